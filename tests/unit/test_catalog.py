"""The card catalog rules (market/catalog.py) and the demo catalog (market/catalog_demo.py)."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from market.catalog import (
    CATEGORIES,
    GRADERS,
    GRADES,
    Card,
    Grading,
    matches,
    matches_terms,
    parse_card,
    parse_grading,
    parse_segment_key,
    population,
    population_rows,
    query_terms,
    search_terms,
    segment_key,
)
from market.catalog_demo import demo_catalog, demo_copies
from market.errors import INVALID, MarketError


def card_raw(**extra: Any) -> dict[str, Any]:
    return {"name": "Charizard", "set": "Base Set", "number": "4/102", "year": 1999,
            "category": "pokemon", **extra}


def refused(call: Any, *args: Any) -> MarketError:
    with pytest.raises(MarketError) as info:
        call(*args)
    assert info.value.code == INVALID
    return info.value


# --- cards -----------------------------------------------------------------------------------


def test_a_minimal_card() -> None:
    card = parse_card(card_raw(), "c_1")
    assert card == Card(card_id="c_1", name="Charizard", set="Base Set", number="4/102",
                        year=1999, category="pokemon")
    assert card.to_dict() == {"card_id": "c_1", **card_raw()}  # None fields left out


def test_a_full_card_is_normalised() -> None:
    card = parse_card({
        "name": "  Ken   Griffey\tJr. ", "set": "1989 Upper Deck", "number": 1, "year": 1989,
        "category": " Baseball ", "player": "Ken Griffey Jr.", "character": "",
        "variant": "Star Rookie", "rarity": "  ",
    }, "c-2_X")
    assert card == Card(card_id="c-2_X", name="Ken Griffey Jr.", set="1989 Upper Deck",
                        number="1", year=1989, category="baseball", player="Ken Griffey Jr.",
                        variant="Star Rookie")


def test_names_are_stored_nfc() -> None:
    decomposed = "Luka Donc\u030cic\u0301"  # č and ć as letter + combining mark
    card = parse_card(card_raw(name=decomposed, category="basketball"), "c_1")
    assert card.name == "Luka Dončić"


def test_card_dict_round_trip() -> None:
    card = parse_card(card_raw(player=None, character="Charizard", variant="1st Edition"), "c_1")
    assert Card.from_dict(card.to_dict()) == card
    assert Card.from_dict({**card.to_dict(), "terms": ["x"], "created_at": 5}) == card


def test_every_category_is_accepted() -> None:
    assert len(CATEGORIES) == 8
    for category in CATEGORIES:
        assert parse_card(card_raw(category=category.upper()), "c_1").category == category


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (card_raw(name=None), "name"),
        (card_raw(name="   "), "name"),
        (card_raw(name=5), "name"),
        (card_raw(name="x" * 121), "name"),
        (card_raw(name="Chari\x00zard"), "name"),
        (card_raw(set=""), "set"),
        (card_raw(set=["Base"]), "set"),
        (card_raw(set="s" * 81), "set"),
        (card_raw(number=None), "number"),
        (card_raw(number=""), "number"),
        (card_raw(number=4.0), "number"),
        (card_raw(number=True), "number"),
        (card_raw(number=-1), "number"),
        (card_raw(number=100_000), "number"),
        (card_raw(number="1" * 17), "number"),
        (card_raw(year=None), "year"),
        (card_raw(year=1849), "year"),
        (card_raw(year=2101), "year"),
        (card_raw(year="1999"), "year"),
        (card_raw(year=1999.0), "year"),
        (card_raw(year=True), "year"),
        (card_raw(category=None), "category"),
        (card_raw(category="stamps"), "category"),
        (card_raw(category=1), "category"),
        (card_raw(player=3), "player"),
        (card_raw(player="p" * 81), "player"),
        (card_raw(character="c" * 81), "character"),
        (card_raw(variant="v" * 61), "variant"),
        (card_raw(rarity="r" * 41), "rarity"),
        (card_raw(rarity="Holo\x07"), "rarity"),
        (card_raw(colour="red"), "colour"),
        (card_raw(card_id="c_9"), "card_id"),
    ],
)
def test_bad_cards_are_refused_naming_the_field(raw: dict[str, Any], field: str) -> None:
    error = refused(parse_card, raw, "c_1")
    assert error.details == {"field": field}
    assert error.message.startswith(f"{field}: ")


@pytest.mark.parametrize("card_id", ["", "a|b", "c 1", "x" * 65, 7, None])
def test_bad_card_ids_are_refused(card_id: Any) -> None:
    assert refused(parse_card, card_raw(), card_id).details == {"field": "card_id"}


def test_a_body_that_is_not_an_object_is_refused() -> None:
    assert refused(parse_card, ["name"], "c_1").details == {"field": "body"}
    assert refused(parse_grading, "PSA 10").details == {"field": "body"}


def test_length_bounds_are_inclusive() -> None:
    card = parse_card(card_raw(name="n" * 120, set="s" * 80, number="9" * 16, year=1850,
                               rarity="r" * 40), "c_1")
    assert (len(card.name), len(card.set), len(card.number), card.year) == (120, 80, 16, 1850)
    assert parse_card(card_raw(year=2100, number=0), "c_1").number == "0"


# --- grading ---------------------------------------------------------------------------------


def test_a_graded_copy() -> None:
    assert parse_grading({"grader": "psa", "grade": 10, "cert": " 12345678 "}) == Grading(
        "PSA", 10, "12345678")
    grading = parse_grading({"grader": " Bgs", "grade": 9.5, "cert": "ab12", "card_id": "x"})
    assert grading == Grading("BGS", 9.5, "AB12")
    assert grading.to_dict() == {"grader": "BGS", "grade": 9.5, "cert": "AB12"}


def test_whole_float_grades_become_ints() -> None:
    grade = parse_grading({"grader": "CGC", "grade": 9.0, "cert": "1"}).grade
    assert grade == 9 and isinstance(grade, int)
    assert isinstance(parse_grading({"grader": "SGC", "grade": 8.5, "cert": "1"}).grade, float)


def test_raw_has_no_grade_and_an_optional_cert() -> None:
    assert parse_grading({"grader": "raw"}) == Grading("RAW", None, None)
    assert parse_grading({"grader": "RAW", "cert": ""}) == Grading("RAW", None, None)
    assert parse_grading({"grader": "RAW", "cert": "v123"}) == Grading("RAW", None, "V123")
    assert Grading("RAW", None, None).to_dict() == {"grader": "RAW"}
    assert refused(parse_grading, {"grader": "RAW", "grade": 9}).details == {"field": "grade"}


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({}, "grader"),
        ({"grader": "Beckett", "grade": 9, "cert": "1"}, "grader"),
        ({"grader": 1, "grade": 9, "cert": "1"}, "grader"),
        ({"grader": "PSA", "cert": "1"}, "grade"),
        ({"grader": "PSA", "grade": None, "cert": "1"}, "grade"),
        ({"grader": "PSA", "grade": 10}, "cert"),
        ({"grader": "PSA", "grade": 10, "cert": "  "}, "cert"),
        ({"grader": "PSA", "grade": 10, "cert": 12345678}, "cert"),
        ({"grader": "PSA", "grade": 10, "cert": "1234-5678"}, "cert"),
        ({"grader": "PSA", "grade": 10, "cert": "12 34"}, "cert"),
        ({"grader": "PSA", "grade": 10, "cert": "1" * 33}, "cert"),
        ({"grader": "RAW", "cert": "x/1"}, "cert"),
        ({"grader": "RAW", "cert": 5}, "cert"),
    ],
)
def test_bad_gradings_are_refused_naming_the_field(raw: dict[str, Any], field: str) -> None:
    assert refused(parse_grading, raw).details == {"field": field}


def test_cert_bounds() -> None:
    assert parse_grading({"grader": "SGC", "grade": 9, "cert": "Z" * 32}).cert == "Z" * 32
    assert parse_grading({"grader": "SGC", "grade": 9, "cert": "7"}).cert == "7"


HALVES = [h / 2 for h in range(2, 21)]


def test_the_grades_are_the_half_steps() -> None:
    assert list(GRADES) == HALVES
    assert GRADERS == ("PSA", "BGS", "CGC", "SGC", "RAW")


@given(st.sampled_from(HALVES), st.sampled_from(GRADERS[:-1]), st.booleans())
def test_every_half_step_is_accepted(grade: float, grader: str, as_int: bool) -> None:
    value: float = int(grade) if as_int and grade.is_integer() else grade
    assert parse_grading({"grader": grader, "grade": value, "cert": "9"}).grade == grade


@given(st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).filter(lambda f: f not in HALVES),
    st.integers().filter(lambda i: not 1 <= i <= 10),
    st.booleans(), st.text(), st.none(), st.lists(st.integers()),
    st.sampled_from([math.nan, math.inf, "9.5", "10", 0.5, 0, 10.5, 9.25, 1.0000001, 10**400,
                     -math.inf]),
))
def test_anything_else_is_refused(grade: Any) -> None:
    error = refused(parse_grading, {"grader": "PSA", "grade": grade, "cert": "1"})
    assert error.details == {"field": "grade"}


# --- segment key -----------------------------------------------------------------------------


def test_segment_keys() -> None:
    assert segment_key("c_123", "PSA", 9.5) == "c_123|PSA|9.5"
    assert segment_key("c_123", "psa", 10.0) == segment_key("c_123", "PSA", 10) == "c_123|PSA|10"
    assert segment_key("c_123", "RAW", None) == "c_123|RAW|-"
    assert segment_key("c_123", "PSA", 9) != segment_key("c_123", "BGS", 9)
    assert refused(segment_key, "c_1", "PSA", None).details == {"field": "grade"}
    assert refused(segment_key, "c|1", "PSA", 9).details == {"field": "card_id"}
    assert refused(segment_key, "c_1", "XYZ", 9).details == {"field": "grader"}


@given(st.sampled_from(GRADERS), st.sampled_from(HALVES))
def test_segment_keys_round_trip(grader: str, grade: float) -> None:
    value = None if grader == "RAW" else grade
    key = segment_key("c_42", grader, value)
    assert parse_segment_key(key) == ("c_42", grader, value)


@pytest.mark.parametrize("key", ["c_1|PSA", "c_1|PSA|9|x", "c_1|psa|9", "c_1|PSA|9.0",
                                 "c_1|PSA|nine", "c_1|PSA|-", "c_1|RAW|9", "|PSA|9"])
def test_malformed_segment_keys_are_refused(key: str) -> None:
    refused(parse_segment_key, key)


# --- search ----------------------------------------------------------------------------------

ACUNA = Card(card_id="c_1", name="Ronald Acuña Jr.", set="2018 Topps Chrome", number="193",
             year=2018, category="baseball", player="Ronald Acuña Jr.", variant="Refractor")
BLUE_EYES = Card(card_id="c_2", name="Blue-Eyes White Dragon",
                 set="Legend of Blue Eyes White Dragon", number="LOB-001", year=2002,
                 category="yugioh", variant="1st Edition", rarity="Ultra Rare")
ZARD = Card(card_id="c_3", name="Charizard", set="Base Set", number="4/102", year=1999,
            category="pokemon", character="Charizard", variant="Shadowless")


def test_search_terms() -> None:
    assert search_terms(ACUNA) == ["ronald", "acuna", "jr", "2018", "topps", "chrome",
                                   "refractor", "193"]
    assert search_terms(BLUE_EYES) == [  # hyphenated words also give their joined form
        "blue", "eyes", "blueeyes", "white", "dragon", "legend", "of", "1st", "edition", "lob",
        "001", "lob001", "2002"]
    assert search_terms(ZARD) == ["charizard", "base", "set", "shadowless", "4", "102", "1999"]


def test_query_terms_fold_like_the_index() -> None:
    assert query_terms("  ACUÑA,  jr.!! ") == ["acuna", "jr"]
    assert query_terms("Straße O’Neal o'neal") == ["strasse", "oneal"]
    assert query_terms("") == query_terms(" -/ ") == []


@pytest.mark.parametrize(
    ("card", "query", "expected"),
    [
        (ACUNA, "acuna", True),
        (ACUNA, "ACUÑA", True),
        (ACUNA, "acu", True),
        (ACUNA, "ron acu topps", True),
        (ACUNA, "Acuña Jr. 2018 refr", True),
        (ACUNA, "acuna bowman", False),
        (ACUNA, "cuna", False),  # prefixes only
        (ACUNA, "", True),
        (BLUE_EYES, "blue-eyes", True),
        (BLUE_EYES, "blueeyes", True),
        (BLUE_EYES, "lob-001", True),
        (BLUE_EYES, "lob001", True),
        (BLUE_EYES, "BLUE EYES 1st", True),
        (BLUE_EYES, "red-eyes", False),
        (ZARD, "charizard base 4/102", True),
        (ZARD, "zard", False),
        (ZARD, "char 1999", True),
        (ZARD, "charizard jungle", False),
    ],
)
def test_matches(card: Card, query: str, expected: bool) -> None:
    assert matches(card, query) is expected
    assert matches_terms(search_terms(card), query) is expected


def test_every_card_matches_its_own_name_and_set() -> None:
    for card in demo_catalog(3):
        assert matches(card, card.name)
        assert matches(card, f"{card.set} {card.number}")
        assert matches(card, card.name.upper()[:3])


# --- population ------------------------------------------------------------------------------


def test_population_counts_per_grader_and_grade() -> None:
    assets = [
        {"grader": "PSA", "grade": 10}, {"grader": "PSA", "grade": 9},
        {"grader": "PSA", "grade": 10.0}, {"grader": "psa", "grade": 9},
        {"grader": "BGS", "grade": 9.5}, {"grader": "RAW"}, {"grader": "RAW", "grade": None},
        {"grader": "SGC", "grade": 8.5, "cert": "1", "owner": "u1"},
        {"title": "legacy asset, no grader"}, {"grader": "PSA", "grade": 11},
        {"grader": "RAW", "grade": 9},
    ]
    pop = population(assets)
    assert pop == {"PSA": {9: 2, 10: 2}, "BGS": {9.5: 1}, "SGC": {8.5: 1}, "RAW": {None: 2}}
    assert list(pop) == ["PSA", "BGS", "SGC", "RAW"]  # GRADERS order
    assert list(pop["PSA"]) == [9, 10]  # grades ascending
    assert population([]) == {}
    assert population_rows(pop) == [
        {"grader": "PSA", "grade": 9, "count": 2}, {"grader": "PSA", "grade": 10, "count": 2},
        {"grader": "BGS", "grade": 9.5, "count": 1}, {"grader": "SGC", "grade": 8.5, "count": 1},
        {"grader": "RAW", "grade": None, "count": 2},
    ]


def test_population_of_the_demo_copies_adds_up() -> None:
    copies = demo_copies(demo_catalog(5), 5, 400)
    pop = population(g.to_dict() for _, g in copies)
    assert sum(n for per_grade in pop.values() for n in per_grade.values()) == 400


# --- demo data -------------------------------------------------------------------------------


def test_the_demo_catalog_is_deterministic() -> None:
    assert demo_catalog(7) == demo_catalog(7)
    assert demo_catalog(7) != demo_catalog(8)
    cards = demo_catalog(7)
    assert demo_copies(cards, 7, 500) == demo_copies(cards, 7, 500)
    assert demo_copies(cards, 7, 500) != demo_copies(cards, 8, 500)


@pytest.mark.parametrize("seed", [0, 1, 2024])
def test_the_demo_catalog_is_realistic(seed: int) -> None:
    cards = demo_catalog(seed)
    assert len(cards) == 320
    assert len({c.card_id for c in cards}) == len(cards)
    assert len({(c.set, c.number, c.variant) for c in cards}) == len(cards)
    assert len({c.category for c in cards}) >= 5
    assert len({c.set for c in cards}) >= 12
    names = {(c.set, c.name) for c in cards}
    for headline in [("Base Set", "Charizard"), ("1952 Topps", "Mickey Mantle"),
                     ("1986 Fleer", "Michael Jordan"), ("Limited Edition Alpha", "Black Lotus"),
                     ("Legend of Blue Eyes White Dragon", "Blue-Eyes White Dragon")]:
        assert headline in names
    for card in cards:  # every demo card is one a client could have posted
        raw = {k: v for k, v in card.to_dict().items() if k != "card_id"}
        assert parse_card(raw, card.card_id) == card
        if card.category in ("baseball", "basketball", "football", "hockey", "soccer"):
            assert card.player and not card.character
        if card.category == "pokemon" and card.character:
            assert card.character in card.name


def test_the_demo_catalog_grows_beyond_its_tables() -> None:
    cards = demo_catalog(1, 1000)
    assert len(cards) == 1000
    assert len({c.card_id for c in cards}) == 1000
    assert len({(c.set, c.number, c.variant) for c in cards}) == 1000
    assert demo_catalog(1, 1000) == cards
    assert demo_catalog(1, 0) == []
    small = demo_catalog(1, 20)
    assert len(small) == 20 and len({c.set for c in small}) == 20  # headline cards first
    with pytest.raises(ValueError):
        demo_catalog(1, -1)


def test_the_demo_copies_are_realistic() -> None:
    cards = demo_catalog(11)
    copies = demo_copies(cards, 11, 2000)
    assert len(copies) == 2000
    ids = {c.card_id for c in cards}
    assert all(card_id in ids for card_id, _ in copies)
    graders = Counter(g.grader for _, g in copies)
    assert set(graders) == set(GRADERS)
    assert graders["PSA"] == max(graders.values())
    assert graders["RAW"] > 0
    for _, grading in copies:  # every copy is one a client could have posted
        assert parse_grading(grading.to_dict()) == grading
    psa = Counter(g.grade for _, g in copies if g.grader == "PSA")
    assert 0 < psa[10] < psa[9] and psa[10] < psa[8]
    assert psa[9.5] == 0  # PSA gives no 9.5
    certs = [(g.grader, g.cert) for _, g in copies if g.cert is not None]
    assert len(certs) == len(set(certs))
    assert all(g.cert is None and g.grade is None for _, g in copies if g.grader == "RAW")
    vintage = [g.grade for cid, g in copies if g.grade is not None
               and next(c for c in cards if c.card_id == cid).year < 1980]
    modern = [g.grade for cid, g in copies if g.grade is not None
              and next(c for c in cards if c.card_id == cid).year >= 1980]
    assert sum(vintage) / len(vintage) < sum(modern) / len(modern) - 1  # old cards grade lower
