"""The card catalog and graded copies: validation, the price segment key, search terms, population.

A *card* is a catalog entry (what was printed); a *graded copy* (an asset) is one physical card
with its grader, grade and the grader's certificate number. Prices, values and indexes are per
card × grader × grade (`segment_key`), never mixed across grades. Pure: no I/O, no clock.

Normalisation, applied by `parse_card` and `parse_grading` so stores compare like with like:
strings are NFC, trimmed, inner whitespace collapsed to one space, control characters refused;
`category` is lower-case, `grader` and `cert` upper-case; a whole grade is an int (9.0 -> 9),
a half grade a float (9.5).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, NamedTuple

from market.errors import INVALID, MarketError

CATEGORIES: tuple[str, ...] = (
    "pokemon", "baseball", "basketball", "football", "hockey", "soccer", "magic", "yugioh",
)
GRADERS: tuple[str, ...] = ("PSA", "BGS", "CGC", "SGC", "RAW")
RAW = "RAW"
MIN_GRADE, MAX_GRADE = 1, 10
# Every accepted grade, 1, 1.5, ..., 10 (whole grades as int, halves as float).
GRADES: tuple[float, ...] = tuple(h // 2 if h % 2 == 0 else h / 2 for h in range(2, 21))
MIN_YEAR, MAX_YEAR = 1850, 2100

# Longest accepted length of each text field (after trimming).
MAX_LENGTHS: dict[str, int] = {
    "name": 120, "set": 80, "number": 16, "player": 80, "character": 80, "variant": 60,
    "rarity": 40,
}
_REQUIRED_TEXT = ("name", "set")
_OPTIONAL_TEXT = ("player", "character", "variant", "rarity")
_CARD_FIELDS = frozenset({*_REQUIRED_TEXT, *_OPTIONAL_TEXT, "number", "year", "category"})
_MAX_NUMBER = 99_999  # an int `number` is accepted and stored as its decimal string
_CARD_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")  # never "|", the segment key's separator
_CERT = re.compile(r"[A-Z0-9]{1,32}")
_BAD_CHAR_CATEGORIES = frozenset({"Cc", "Cs", "Co"})
SEGMENT_SEPARATOR = "|"
RAW_GRADE_TEXT = "-"  # the grade part of a RAW segment key


@dataclass(frozen=True)
class Card:
    card_id: str
    name: str
    set: str
    number: str
    year: int
    category: str
    player: str | None = None
    character: str | None = None
    variant: str | None = None
    rarity: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The card as JSON-ready data; optional fields that are None are left out."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Card:
        # Tolerate extra keys (a stored record may carry more, e.g. search terms).
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


class Grading(NamedTuple):
    """How one copy is graded: `grade` None only for RAW; `cert` None only for RAW."""

    grader: str
    grade: float | None
    cert: str | None

    def to_dict(self) -> dict[str, Any]:
        """`grade` and `cert` are left out when None (a RAW copy has no grade)."""
        return {k: v for k, v in self._asdict().items() if v is not None}


def _invalid(field: str, message: str) -> MarketError:
    return MarketError(INVALID, f"{field}: {message}", field=field)


def _text(raw: Mapping[str, Any], name: str, *, required: bool) -> str | None:
    """A trimmed, NFC, single-spaced string within MAX_LENGTHS; "" counts as absent."""
    value = raw.get(name)
    if value is not None and not isinstance(value, str):
        raise _invalid(name, "must be a string")
    text = " ".join(unicodedata.normalize("NFC", value).split()) if value else ""
    if not text:
        if required:
            raise _invalid(name, "is required")
        return None
    if any(unicodedata.category(ch) in _BAD_CHAR_CATEGORIES for ch in text):
        raise _invalid(name, "must not contain control characters")
    if len(text) > MAX_LENGTHS[name]:
        raise _invalid(name, f"must be at most {MAX_LENGTHS[name]} characters")
    return text


def _number(raw: Mapping[str, Any]) -> str:
    value = raw.get("number")
    if isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value <= _MAX_NUMBER:
            raise _invalid("number", f"as an integer must be in 0..{_MAX_NUMBER}")
        return str(value)
    if value is not None and not isinstance(value, str):
        raise _invalid("number", "must be a string (e.g. \"4/102\") or an integer")
    number = _text(raw, "number", required=True)
    assert number is not None  # required=True never yields None
    return number


def parse_card(raw: Mapping[str, Any], card_id: str) -> Card:
    """Validate a client's card into a Card; raise MarketError(INVALID, field=...).

    Required: name, set, number (string, or a non-negative int stored as its string), year
    (int in 1850..2100), category (one of CATEGORIES, any case). Optional: player, character,
    variant, rarity (an empty string is absent). Unknown fields, `card_id` included (the
    server assigns it), are refused.
    """
    if not isinstance(raw, Mapping):
        raise _invalid("body", "must be a JSON object")
    if not isinstance(card_id, str) or not _CARD_ID.fullmatch(card_id):
        raise _invalid("card_id", "must be 1-64 letters, digits, '_' or '-'")
    unknown = sorted(str(k) for k in raw if k not in _CARD_FIELDS)
    if unknown:
        raise _invalid(unknown[0], "is not a card field")

    name = _text(raw, "name", required=True)
    card_set = _text(raw, "set", required=True)
    assert name is not None and card_set is not None
    number = _number(raw)

    year = raw.get("year")
    if year is None:
        raise _invalid("year", "is required")
    if not isinstance(year, int) or isinstance(year, bool) or not MIN_YEAR <= year <= MAX_YEAR:
        raise _invalid("year", f"must be an integer in {MIN_YEAR}..{MAX_YEAR}")

    category = raw.get("category")
    if category is None:
        raise _invalid("category", "is required")
    category = category.strip().lower() if isinstance(category, str) else None
    if category not in CATEGORIES:
        raise _invalid("category", f"must be one of {', '.join(CATEGORIES)}")

    optional = {name_: _text(raw, name_, required=False) for name_ in _OPTIONAL_TEXT}
    return Card(card_id=card_id, name=name, set=card_set, number=number, year=year,
                category=category, **optional)


# --- graded copies -----------------------------------------------------------------------


def parse_grader(value: object) -> str:
    """A grader name, any case and surrounding spaces, as it appears in GRADERS."""
    grader = value.strip().upper() if isinstance(value, str) else None
    if grader not in GRADERS:
        raise _invalid("grader", f"must be one of {', '.join(GRADERS)}")
    return grader


def parse_grade(grader: str, value: object) -> float | None:
    """None for RAW (which must have none); otherwise a half step in 1..10, normalised."""
    if grader == RAW:
        if value is not None:
            raise _invalid("grade", "a RAW copy has no grade")
        return None
    if value is None:
        raise _invalid("grade", f"is required for {grader}")
    # The range check also refuses NaN and infinities (and never converts a huge int).
    if (not isinstance(value, int | float) or isinstance(value, bool)
            or not MIN_GRADE <= value <= MAX_GRADE or (value * 2) % 1 != 0):
        raise _invalid("grade", "must be a number from 1 to 10 in halves (1, 1.5, ..., 10)")
    return normal_grade(value)


def normal_grade(value: float | None) -> float | None:
    """The one form of a grade everywhere (stores, JSON): a whole grade an int (10.0 -> 10),
    a half a float (9.5); None stays None (RAW)."""
    if value is None:
        return None
    return int(value) if value % 1 == 0 else float(value)


def parse_cert(grader: str, value: object) -> str | None:
    """The grader's certificate number: 1-32 letters and digits (upper-cased), a string.

    Required for a graded copy; optional for RAW (an empty string is absent).
    """
    if value is not None and not isinstance(value, str):
        raise _invalid("cert", "must be a string")
    cert = value.strip().upper() if value else ""
    if not cert:
        if grader != RAW:
            raise _invalid("cert", f"is required for {grader}")
        return None
    if not _CERT.fullmatch(cert):
        raise _invalid("cert", "must be 1-32 letters and digits")
    return cert


def parse_grading(raw: Mapping[str, Any]) -> Grading:
    """Validate `grader`, `grade` and `cert` of an asset request; raise MarketError(INVALID).

    Reads those three keys only: the caller validates the rest of the request (card_id, ...).
    """
    if not isinstance(raw, Mapping):
        raise _invalid("body", "must be a JSON object")
    grader = parse_grader(raw.get("grader"))
    grade = parse_grade(grader, raw.get("grade"))
    return Grading(grader, grade, parse_cert(grader, raw.get("cert")))


def grade_text(grade: float | None) -> str:
    """"9.5", "10"; RAW_GRADE_TEXT ("-") for no grade."""
    if grade is None:
        return RAW_GRADE_TEXT
    return str(int(grade)) if grade % 1 == 0 else str(float(grade))


def segment_key(card_id: str, grader: str, grade: object) -> str:
    """The card × grader × grade key prices, valuations and indexes are kept under.

    "card_id|GRADER|grade": e.g. "card_1|PSA|9.5", "card_1|PSA|10", "card_1|RAW|-". The grader is
    normalised and the grade validated like `parse_grading` (9.0 and 9 give the same key), so
    a key is unambiguous; card ids never contain "|". Raises MarketError(INVALID).
    """
    if not isinstance(card_id, str) or not _CARD_ID.fullmatch(card_id):
        raise _invalid("card_id", "must be 1-64 letters, digits, '_' or '-'")
    normal = parse_grader(grader)
    return SEGMENT_SEPARATOR.join((card_id, normal, grade_text(parse_grade(normal, grade))))


def parse_segment_key(key: str) -> tuple[str, str, float | None]:
    """The inverse of segment_key: (card_id, grader, grade). Raises MarketError(INVALID)."""
    parts = key.split(SEGMENT_SEPARATOR) if isinstance(key, str) else []
    if len(parts) != 3:
        raise _invalid("segment", "must be card_id|GRADER|grade")
    card_id, grader, text = parts
    if text == RAW_GRADE_TEXT:
        grade: float | None = None
    else:
        try:
            grade = float(text)
        except ValueError:
            raise _invalid("grade", "must be a number from 1 to 10 in halves") from None
    normal = parse_grader(grader)
    grade = parse_grade(normal, grade)
    if segment_key(card_id, normal, grade) != key:
        raise _invalid("segment", "is not in canonical form")
    return card_id, normal, grade


# --- search --------------------------------------------------------------------------------

_APOSTROPHES = re.compile(r"['’`´]")
_NON_ALNUM = re.compile(r"[^0-9a-z]+")


def _fold(text: str) -> str:
    """Casefolded, accents stripped (NFKD minus combining marks), apostrophes dropped."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return _APOSTROPHES.sub("", plain)


def query_terms(text: str) -> list[str]:
    """A search query's tokens, normalised like `search_terms` (in order, no duplicates)."""
    return list(dict.fromkeys(t for t in _NON_ALNUM.split(_fold(text)) if t))


def search_terms(card: Card) -> list[str]:
    """The tokens a store indexes a card under: name, set, player, character, variant, number
    and year, casefolded with accents stripped and split at punctuation ("Blue-Eyes" gives
    "blue", "eyes" and the joined "blueeyes"; "O'Neal" gives "oneal"). Ordered, no duplicates.
    """
    texts = [card.name, card.set, card.player, card.character, card.variant, card.number,
             str(card.year)]
    terms: list[str] = []
    for text in texts:
        if not text:
            continue
        for word in _fold(text).split():
            parts = [p for p in _NON_ALNUM.split(word) if p]
            terms.extend(parts)
            if len(parts) > 1 and "-" in word:
                terms.append("".join(parts))
    return list(dict.fromkeys(terms))


def matches_terms(terms: Iterable[str], query: str) -> bool:
    """True when every token of `query` is a prefix of some term (an empty query matches)."""
    have = list(terms)
    return all(any(term.startswith(token) for term in have) for token in query_terms(query))


def matches(card: Card, query: str) -> bool:
    """Does `card` match a search box query? Every query token prefixes one of its terms."""
    return matches_terms(search_terms(card), query)


# --- population ----------------------------------------------------------------------------


def population(assets: Iterable[Mapping[str, Any]]) -> dict[str, dict[float | None, int]]:
    """The Pop Report: how many copies per grader and grade, from asset dicts.

    Graders in GRADERS order, grades ascending (RAW's only key is None); absent graders are
    left out. An asset without a valid grader and grade (e.g. one minted before the catalog)
    is not counted. Filtering (one card, redeemed copies) is the caller's.
    """
    counts: dict[str, dict[float | None, int]] = {}
    for asset in assets:
        try:
            grader = parse_grader(asset.get("grader"))
            grade = parse_grade(grader, asset.get("grade"))
        except MarketError:
            continue
        per_grade = counts.setdefault(grader, {})
        per_grade[grade] = per_grade.get(grade, 0) + 1
    return {
        g: dict(sorted(counts[g].items(), key=lambda kv: -1.0 if kv[0] is None else kv[0]))
        for g in GRADERS if g in counts
    }


def population_rows(pop: Mapping[str, Mapping[float | None, int]]) -> list[dict[str, Any]]:
    """`population` as JSON-friendly rows: [{grader, grade, count}], grade null for RAW."""
    return [{"grader": g, "grade": grade, "count": n}
            for g, per_grade in pop.items() for grade, n in per_grade.items()]
