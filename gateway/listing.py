"""Search, filters and sorting of the auction list (`GET /api/auctions`).

Pure: the handler reads stored views, the gateway adds each one's `title` and `card`, and
`ListQuery` picks and orders them. Filtering happens in the gateway over at most
`SCAN_LIMIT` stored views of the requested status (ending soonest first), which bounds the
work of one request whatever its filters.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.protocol import plain_int
from market.catalog import CATEGORIES, GRADERS, matches_terms, query_terms
from market.errors import INVALID, MarketError
from market.money import MAX_AMOUNT

SORTS = ("ending", "newest", "price_asc", "price_desc", "bids")
TYPES = ("english", "dutch", "sealed")
SCAN_LIMIT = 1_000
MAX_QUERY = 200  # characters of `q`
MAX_ENDING_WITHIN_S = 366 * 24 * 3600


def _bad(name: str, message: str) -> MarketError:
    return MarketError(INVALID, f"{name}: {message}", field=name)


def _choice(query: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str | None:
    value = query.get(name) or None
    if value is not None and value not in choices:
        raise _bad(name, f"one of {', '.join(choices)}")
    return value


def _integer(query: Mapping[str, str], name: str, high: int) -> int | None:
    """A plain decimal integer in 0..high (like every integer query parameter)."""
    raw = query.get(name) or None
    if raw is None:
        return None
    value = plain_int(raw, 0, high)
    if value is None:
        raise _bad(name, f"an integer in 0..{high}")
    return value


def _number(query: Mapping[str, str], name: str, low: float, high: float) -> float | None:
    raw = query.get(name) or None
    if raw is None:
        return None
    try:
        value = float(raw) if len(raw) <= 20 else float("nan")
    except ValueError:
        value = float("nan")
    if not low <= value <= high:  # NaN fails too
        raise _bad(name, f"a number in {low:g}..{high:g}")
    return value


@dataclass(frozen=True)
class ListQuery:
    """What a list request asks for; `parse` validates, `select` applies."""

    q: str = ""
    category: str | None = None
    grader: str | None = None
    grade_min: float | None = None
    grade_max: float | None = None
    type: str | None = None
    price_min: int | None = None
    price_max: int | None = None
    ending_within_s: int | None = None
    card_id: str | None = None
    sort: str = "ending"

    @classmethod
    def parse(cls, query: Mapping[str, str]) -> ListQuery:
        q = query.get("q") or ""
        if len(q) > MAX_QUERY:
            raise _bad("q", f"at most {MAX_QUERY} characters")
        card_id = query.get("card_id") or None
        if card_id is not None and len(card_id) > 160:
            raise _bad("card_id", "at most 160 characters")
        return cls(
            q=q, category=_choice(query, "category", CATEGORIES),
            grader=_choice(query, "grader", GRADERS),
            grade_min=_number(query, "grade_min", 1, 10),
            grade_max=_number(query, "grade_max", 1, 10),
            type=_choice(query, "type", TYPES),
            price_min=_integer(query, "price_min", MAX_AMOUNT),
            price_max=_integer(query, "price_max", MAX_AMOUNT),
            ending_within_s=_integer(query, "ending_within", MAX_ENDING_WITHIN_S),
            card_id=card_id, sort=_choice(query, "sort", SORTS) or "ending",
        )

    @property
    def filters(self) -> bool:
        """Does it ask for anything beyond the stored order?"""
        return self != ListQuery()

    def select(self, views: list[dict[str, Any]], now_ms: int, limit: int) -> list[dict[str, Any]]:
        """The views that match, ordered, at most `limit`."""
        picked = [v for v in views if self.matches(v, now_ms)]
        picked.sort(key=_SORT_KEYS[self.sort])
        return picked[:limit]

    def matches(self, view: Mapping[str, Any], now_ms: int) -> bool:
        card: Mapping[str, Any] = view.get("card") or {}
        if self.q:
            terms = [*card.get("terms", ()), *query_terms(str(view.get("title") or ""))]
            if not matches_terms(terms, self.q):
                return False
        if self.card_id is not None and card.get("card_id") != self.card_id:
            return False
        if self.category is not None and card.get("category") != self.category:
            return False
        if self.grader is not None and card.get("grader") != self.grader:
            return False
        grade = card.get("grade")
        if self.grade_min is not None and (grade is None or grade < self.grade_min):
            return False
        if self.grade_max is not None and (grade is None or grade > self.grade_max):
            return False
        if self.type is not None and view.get("type") != self.type:
            return False
        price = _price(view)
        if self.price_min is not None and price < self.price_min:
            return False
        if self.price_max is not None and price > self.price_max:
            return False
        if self.ending_within_s is not None:
            ends_at = view.get("ends_at")
            if ends_at is None or ends_at - now_ms > self.ending_within_s * 1000:
                return False
        return True


def _price(view: Mapping[str, Any]) -> int:
    """The price a buyer would pay now: the current price, else the opening one."""
    price = view.get("price")
    return int(price if price is not None else view.get("start_price") or 0)


_SORT_KEYS: dict[str, Any] = {
    "ending": lambda v: (v.get("ends_at") or 0, v["auction_id"]),
    "newest": lambda v: (-(v.get("starts_at") or 0), v["auction_id"]),
    "price_asc": lambda v: (_price(v), v["auction_id"]),
    "price_desc": lambda v: (-_price(v), v["auction_id"]),
    "bids": lambda v: (-(v.get("bid_count") or 0), v.get("ends_at") or 0, v["auction_id"]),
}
