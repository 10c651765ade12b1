"""The catalog and graded-asset part of the Store contract, run against every back end."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from market.catalog import Card, matches_terms, parse_card, query_terms, search_terms
from market.catalog_demo import demo_catalog
from market.provenance import token_id_for
from storage import Conflict, Store, sort_name
from storage.base import prefix_bounds
from storage.records import AssetRecord, CardRecord
from tests.storage.conftest import Backend
from tests.storage.test_contract import T0, asset

GRADED_KEYS = ("card_id", "grader", "grade", "cert", "token_id")
OPTIONAL_CARD_KEYS = ("player", "character", "variant", "rarity")


# -- builders ------------------------------------------------------------------------------
def record(card: Card, created_at: int | None = 1_700_000_000_000) -> CardRecord:
    """What the gateway stores for a validated card: its fields and its search terms."""
    data: dict[str, Any] = {**dict.fromkeys(OPTIONAL_CARD_KEYS), **card.to_dict()}
    return CardRecord(**data, terms=search_terms(card), created_at=created_at)


def card(card_id: str, name: str, set_name: str = "Base Set", category: str = "pokemon",
         **extra: Any) -> CardRecord:
    raw = {"name": name, "set": set_name, "number": extra.pop("number", "4/102"),
           "year": extra.pop("year", 1999), "category": category, **extra}
    return record(parse_card(raw, card_id))


def graded(asset_id: str, owner_id: str, card_id: str, grader: str, grade: float | None,
           cert: str | None) -> AssetRecord:
    return AssetRecord(asset_id=asset_id, owner_id=owner_id, title=f"copy of {card_id}",
                       metadata={}, created_at=int(T0), card_id=card_id, grader=grader,
                       grade=grade, cert=cert, token_id=token_id_for(asset_id))


async def search(store: Store, query: str, **kw: Any) -> list[str]:
    return [c["card_id"] for c in await store.search_cards(query_terms(query), **kw)]


async def all_pages(store: Store, terms: list[str], size: int, **kw: Any) -> list[str]:
    """Walk every page of a search with the cursor a client would use."""
    seen: list[str] = []
    after: tuple[str, str] | None = None
    for _ in range(1000):
        page = await store.search_cards(terms, limit=size, after=after, **kw)
        assert len(page) <= size
        seen += [c["card_id"] for c in page]
        if len(page) < size:
            return seen
        after = (sort_name(page[-1]), page[-1]["card_id"])
    raise AssertionError("pagination does not end")


# -- cards ---------------------------------------------------------------------------------
async def test_create_and_get_card(store: Store) -> None:
    pika = card("card_1", "Pikachu", rarity="Common", variant="1st Edition")
    await store.create_card(pika)
    got = await store.get_card("card_1")
    assert got == pika
    assert got is not None and got["player"] is None and got["variant"] == "1st Edition"
    assert got["terms"] == search_terms(Card.from_dict(pika))  # kept, in order
    assert Card.from_dict(got) == parse_card(
        {"name": "Pikachu", "set": "Base Set", "number": "4/102", "year": 1999,
         "category": "pokemon", "rarity": "Common", "variant": "1st Edition"}, "card_1")
    assert await store.get_card("card_2") is None


async def test_duplicate_card_id_is_card_exists(store: Store) -> None:
    await store.create_card(card("card_1", "Pikachu"))
    with pytest.raises(Conflict) as err:
        await store.create_card(card("card_1", "Charizard"))
    assert err.value.code == "CARD_EXISTS"
    assert (await store.get_card("card_1") or {})["name"] == "Pikachu"
    assert await search(store, "charizard") == []  # no terms of the refused card linger


async def test_search_by_prefix_of_name_set_and_player(store: Store) -> None:
    await store.create_card(card("card_pika", "Pikachu"))
    await store.create_card(card("card_char", "Charizard", number="4/102"))
    await store.create_card(card("card_char2", "Charizard", set_name="Base Set 2"))
    await store.create_card(card("card_jungle", "Pikachu", set_name="Jungle", number="60/64"))
    await store.create_card(card("card_mantle", "1952 Topps Mickey Mantle",
                                 set_name="1952 Topps", category="baseball",
                                 player="Mickey Mantle", year=1952, number="311"))
    await store.create_card(card("card_pele", "Pelé Rookie", set_name="Alifabolaget",
                                 category="soccer", player="Pelé", year=1958, number="1"))
    await store.create_card(card("card_oneal", "Shaquille O'Neal", set_name="1992 Stadium Club",
                                 category="basketball", player="Shaquille O'Neal",
                                 year=1992, number="1"))

    assert await search(store, "pika") == ["card_jungle", "card_pika"]  # by name, then id
    assert await search(store, "CHAR") == ["card_char", "card_char2"]
    assert await search(store, "char base 2") == ["card_char2"]  # every term must match
    assert await search(store, "jun") == ["card_jungle"]  # a set word
    assert await search(store, "mant") == ["card_mantle"]  # a player word
    assert await search(store, "MiCk 1952") == ["card_mantle"]
    assert await search(store, "pelé") == ["card_pele"]  # accents folded on both sides
    assert await search(store, "PELE") == ["card_pele"]
    assert await search(store, "o'ne") == ["card_oneal"]
    assert await search(store, "oneal shaq") == ["card_oneal"]
    assert await search(store, "pikachu zzz") == []
    assert await search(store, "achu") == []  # prefixes, not substrings
    everything = await store.search_cards([])
    assert [c["card_id"] for c in everything] == [  # casefolded name, then id
        "card_mantle", "card_char", "card_char2", "card_pele", "card_jungle", "card_pika",
        "card_oneal"]
    assert everything[0] == await store.get_card("card_mantle")  # full records
    assert await store.search_cards([""]) == everything  # empty terms are no constraint


async def test_search_terms_match_literally(store: Store) -> None:
    # Terms as stored by hand: a store must not read any character as a wildcard.
    odd = card("card_odd", "Odd")
    odd["terms"] = ["100%", "a_b", "back\\slash", "x.*y", "it's"]
    decoy = card("card_decoy", "Decoy")
    decoy["terms"] = ["1000", "axb", "backxslash", "back", "xyzy", "x.zy", "its"]
    await store.create_card(odd)
    await store.create_card(decoy)
    for term in ("100%", "a_", "a_b", "back\\", "back\\s", "x.*", "x.*y", "it'"):
        found = [c["card_id"] for c in await store.search_cards([term])]
        assert found == ["card_odd"], term
    for term in ("%", "_", "\\", ".*", "*", "1000%", "x.*yz", "(", "[", "'", '"', "a%"):
        assert await store.search_cards([term]) == [], term
    both = await store.search_cards(["100", "back"])
    assert [c["card_id"] for c in both] == ["card_decoy", "card_odd"]
    assert await store.get_card("card_odd") == odd


async def test_search_non_ascii_and_extreme_code_points(store: Store) -> None:
    top = chr(0x10FFFF)
    weird = card("card_w", "Weird")
    weird["terms"] = ["ünïcode", f"z{top}", f"{top}x", "\ud7ffq"]
    await store.create_card(weird)
    await store.create_card(card("card_z", "Zed"))  # terms "zed", "base", "set", ...
    for term, want in (("ünï", ["card_w"]), ("z", ["card_w", "card_z"]), (f"z{top}", ["card_w"]),
                       (top, ["card_w"]), (f"{top}x", ["card_w"]), (f"{top}y", []),
                       ("ze", ["card_z"]), ("\ud7ff", ["card_w"]), ("\ue000", [])):
        assert [c["card_id"] for c in await store.search_cards([term])] == want, term


async def test_category_and_set_filters(store: Store) -> None:
    await store.create_card(card("card_1", "Pikachu"))
    await store.create_card(card("card_2", "Pikachu", set_name="Jungle"))
    await store.create_card(card("card_3", "Pikachu Sleeve", set_name="Jungle",
                                 category="magic"))
    await store.create_card(card("card_4", "Black Lotus", set_name="Alpha", category="magic"))
    assert await search(store, "", category="magic") == ["card_4", "card_3"]
    assert await search(store, "pika", category="pokemon") == ["card_1", "card_2"]
    assert await search(store, "pika", set_name="Jungle") == ["card_2", "card_3"]
    assert await search(store, "pika", category="magic", set_name="Jungle") == ["card_3"]
    assert await search(store, "", category="baseball") == []
    assert await search(store, "", set_name="jungle") == []  # the set is matched exactly
    assert await search(store, "", set_name="Base") == []
    assert await search(store, "lotus", category="pokemon") == []


async def test_limit(store: Store) -> None:
    for i in range(5):
        await store.create_card(card(f"card_{i}", "Pikachu"))
    assert await search(store, "pika", limit=3) == ["card_0", "card_1", "card_2"]
    assert await store.search_cards([], limit=0) == []
    assert await store.search_cards([], limit=-1) == []


async def test_pagination_visits_every_match_once_in_order(store: Store) -> None:
    # Ties on the sort name (same name, names differing only in case) are broken by id.
    cards = [card(f"card_{i:02d}", name, category=cat)
             for i, (name, cat) in enumerate(
                 [("Alpha", "pokemon"), ("alpha", "magic"), ("ALPHA", "pokemon"),
                  ("Beta", "magic"), ("beta", "pokemon"), ("Gamma", "pokemon")] * 3)]
    random.Random(5).shuffle(cards)
    for c in cards:
        await store.create_card(c)
    for terms, kw in (([], {}), (["alp"], {}), (["b"], {"category": "magic"}),
                      (["base", "set"], {"category": "pokemon"}), (["nothing"], {})):
        expected = sorted(
            (c for c in cards
             if all(any(t.startswith(q) for t in c["terms"]) for q in terms)
             and kw.get("category", c["category"]) == c["category"]),
            key=lambda c: (sort_name(c), c["card_id"]))
        want = [c["card_id"] for c in expected]
        for size in (1, 2, 3, 5, 7, 18, 50):
            assert await all_pages(store, terms, size, **kw) == want, (terms, kw, size)
    # A cursor past the last card, and one between two cards of the same name.
    assert await store.search_cards([], after=("zzz", "")) == []
    full = await all_pages(store, [], 100)
    middle = sorted(c["card_id"] for c in cards if sort_name(c) == "alpha")[4]
    after = [c["card_id"] for c in await store.search_cards([], after=("alpha", middle))]
    assert after == full[full.index(middle) + 1:]


async def test_search_agrees_with_the_catalog_rules_on_the_demo_catalog(store: Store) -> None:
    cards = [record(c) for c in demo_catalog(3, 60)]
    for c in cards:
        await store.create_card(c)
    rng = random.Random(11)
    words = sorted({t for c in cards for t in c["terms"]})
    queries = ["", "pika", "19", "base set", "the"]
    queries += [" ".join(w[: rng.randint(1, len(w))] for w in rng.sample(words, rng.randint(1, 2)))
                for _ in range(12)]
    for query in queries:
        want = [c["card_id"] for c in sorted(cards, key=lambda c: (sort_name(c), c["card_id"]))
                if matches_terms(c["terms"], query)]
        assert await all_pages(store, query_terms(query), 4) == want, query


def test_prefix_bounds() -> None:
    top = chr(0x10FFFF)
    assert prefix_bounds("ab") == ("ab", "ac")
    assert prefix_bounds("a%") == ("a%", "a&")
    assert prefix_bounds(f"a{top}") == (f"a{top}", "b")
    assert prefix_bounds(top * 2) == (top * 2, None)
    assert prefix_bounds("\ud7ff") == ("\ud7ff", "\ue000")  # no surrogate as a bound
    assert prefix_bounds("") == ("", None)


# -- graded assets -------------------------------------------------------------------------
async def test_graded_assets_roundtrip(store: Store) -> None:
    copies = [graded("c_1", "u1", "card_1", "PSA", 10, "12345678"),
              graded("c_2", "u1", "card_1", "BGS", 9.5, "0012345678"),
              graded("c_3", "u1", "card_1", "RAW", None, None)]
    for copy in copies:
        await store.create_asset(copy)
    for copy in copies:
        assert await store.get_asset(copy["asset_id"]) == {**copy, "listed_in": None}
    assert await store.list_assets("u1") == [{**c, "listed_in": None} for c in copies]
    psa = await store.get_asset("c_1")
    assert psa is not None and type(psa["grade"]) is int  # a whole grade stays an int
    assert psa["token_id"] == token_id_for("c_1")


async def test_cert_is_unique_per_grader(store: Store) -> None:
    await store.create_asset(graded("c_1", "u1", "card_1", "PSA", 10, "111"))
    with pytest.raises(Conflict) as err:
        await store.create_asset(graded("c_2", "u2", "card_2", "PSA", 9, "111"))
    assert err.value.code == "CERT_EXISTS"
    assert await store.get_asset("c_2") is None
    # The same number at another grader is another certificate.
    await store.create_asset(graded("c_3", "u1", "card_1", "BGS", 10, "111"))
    await store.create_asset(graded("c_4", "u1", "card_1", "CGC", 10, "111"))
    # Copies without a cert (RAW) and legacy assets never collide.
    await store.create_asset(graded("c_5", "u1", "card_1", "RAW", None, None))
    await store.create_asset(graded("c_6", "u1", "card_1", "RAW", None, None))
    await store.create_asset(asset("c_7", "u1"))
    await store.create_asset(asset("c_8", "u1"))
    # The asset id is checked too.
    with pytest.raises(Conflict) as err:
        await store.create_asset(graded("c_1", "u1", "card_1", "SGC", 8, "999"))
    assert err.value.code == "ASSET_EXISTS"
    await store.create_asset(graded("c_9", "u1", "card_1", "SGC", 8, "999"))  # not taken
    assert len(await store.list_assets("u1")) == 8


async def test_concurrent_creates_of_one_cert_exactly_one_wins(backend: Backend) -> None:
    stores = [await backend.open() for _ in range(10)]
    results = await asyncio.gather(
        *(s.create_asset(graded(f"c_{i}", f"u{i}", "card_1", "PSA", 10, "4242"))
          for i, s in enumerate(stores)),
        return_exceptions=True,
    )
    winners = [i for i, r in enumerate(results) if r is None]
    losers = [r for r in results if r is not None]
    assert len(winners) == 1, results
    assert all(isinstance(r, Conflict) and r.code == "CERT_EXISTS" for r in losers), losers
    stored = [await stores[0].get_asset(f"c_{i}") for i in range(10)]
    assert [a["asset_id"] for a in stored if a is not None] == [f"c_{winners[0]}"]


async def test_population(store: Store) -> None:
    grades = [("PSA", 10, "1"), ("PSA", 10, "2"), ("PSA", 9.5, "3"), ("PSA", 9, "4"),
              ("BGS", 9.5, "5"), ("BGS", 10, "6"), ("RAW", None, None), ("RAW", None, None),
              ("CGC", 10, "7"), ("CGC", 10.0, "8"), ("SGC", 1, "9")]
    for i, (grader, grade, cert) in enumerate(grades):
        await store.create_asset(graded(f"c_{i}", "u1", "card_1", grader, grade, cert))
    await store.create_asset(graded("c_other", "u1", "card_2", "PSA", 10, "10"))
    await store.create_asset(asset("c_legacy", "u1"))
    rows = await store.population("card_1")
    assert rows == [
        {"grader": "BGS", "grade": 10, "count": 1},
        {"grader": "BGS", "grade": 9.5, "count": 1},
        {"grader": "CGC", "grade": 10, "count": 2},
        {"grader": "PSA", "grade": 10, "count": 2},
        {"grader": "PSA", "grade": 9.5, "count": 1},
        {"grader": "PSA", "grade": 9, "count": 1},
        {"grader": "RAW", "grade": None, "count": 2},
        {"grader": "SGC", "grade": 1, "count": 1},
    ]
    assert all(type(r["grade"]) is int for r in rows if r["grade"] in (10, 9, 1))
    assert await store.population("card_2") == [{"grader": "PSA", "grade": 10, "count": 1}]
    assert await store.population("card_none") == []


async def test_legacy_assets_still_work(store: Store) -> None:
    # Created the way assets were before the catalog: no graded keys at all.
    await store.create_asset(asset("c_old", "u1"))
    await store.create_asset({**graded("c_new", "u1", "card_1", "PSA", 8, "77"),
                              "created_at": int(T0) + 1})
    old = await store.get_asset("c_old")
    # Every asset has a token: without one given, the store derives it from the id.
    assert old == {**asset("c_old", "u1"), "listed_in": None, **dict.fromkeys(GRADED_KEYS),
                   "token_id": token_id_for("c_old")}
    assert [a["asset_id"] for a in await store.list_assets("u1")] == ["c_new", "c_old"]
    assert (await store.list_assets("u1"))[1] == old
