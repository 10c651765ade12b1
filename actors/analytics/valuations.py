"""What each card × grader × grade is worth now (`market.valuation`): the valuations
projection, beside the market projection in the analytics actor, whose book and indexes it
reads: each sale is adjusted to today by its card's category index (weekly; the whole
market's where the category has none).

Results (kind `valuation`, under the segment key, docs/protocol.md): the value (None: no
value, never 0) and its inputs: the sales used, each with the factor that adjusted it; and
`sales_365d`, the clean sales of the last year (how liquid the position is). A
grade whose sales all fall out of the window is derived from the card's other grades of the
same grader (`grade_ladder`), and grades never invert.

Recomputed for the cards that had a sale since the last computation (at most every
RECOMPUTE_MS, once the market projection has folded those sales; with its latest indexes)
and, because an index move changes every value a little, for every card at most every
FULL_MS and once after every start; only the docs that changed are written. Its state is
only the cards waiting, so it is not replayed: a start recomputes every card anyway. A
computation that changes values publishes which positions changed (a `values` message), so
that portfolio projections revalue the holdings of exactly those.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from actors.analytics.book import Book, segment_parts
from actors.analytics.cards import CardInfo
from actors.analytics.runner import Feed, Put
from market.valuation import Valuation, adjusted_sales, grade_ladder, value_segment
from storage import Store
from storage.records import AnalyticsMessage

if TYPE_CHECKING:
    from actors.analytics.market import MarketProjection

KIND = "valuation"
INDEX_INTERVAL = "1w"
FULL_MS = 15 * 60_000
# At most this often (the cards with new sales: about a millisecond each), so that a holder
# hears of a comparable sale within a second; the indexes used are the market's latest.
RECOMPUTE_MS = 250
VALUES_CHANNEL = "values"  # not a client channel: portfolio projections read it from the log
RAW_GRADE = 0.0  # where a raw segment sits on its (one-grade) ladder
YEAR_MS = 365 * 86_400_000  # `sales_365d`: the clean sales of the last year (liquidity)
IndexSeries = tuple[np.ndarray, np.ndarray]


def index_series(indexes: Iterable[tuple[str, str, Mapping[str, Any]]]) -> dict[str, IndexSeries]:
    """The weekly index points of `MarketProjection.indexes`, by segment ("market",
    "category:<c>")."""
    return {segment: (np.array([p["t"] for p in doc["points"]], dtype=np.int64),
                      np.array([p["value"] for p in doc["points"]], dtype=np.float64))
            for interval, segment, doc in indexes if interval == INDEX_INTERVAL}


def index_for(info: CardInfo | None, series: Mapping[str, IndexSeries]) -> str | None:
    category = f"category:{info.category}" if info is not None and info.category else None
    if category in series:
        return category
    return "market" if "market" in series else None


class Valuations:
    def __init__(self) -> None:
        self.pending: set[str] = set()  # cards with a sale since their last valuation
        self.full_at: int | None = None
        self.last: dict[str, dict[str, Any]] = {}  # the doc last written, by key

    def touch(self, card_ids: Iterable[str]) -> None:
        self.pending.update(card_ids)

    def full_due(self, now: int) -> bool:
        return self.full_at is None or now - self.full_at >= FULL_MS

    def compute(self, book: Book, info: Mapping[str, CardInfo],
                indexes: Iterable[tuple[str, str, Mapping[str, Any]]],
                now: int) -> tuple[list[tuple[str, str, dict[str, Any]]], list[str]]:
        """(results to put, positions whose value changed) of the cards due."""
        full = self.full_due(now)
        if full:
            self.full_at = now
        cards = None if full else self.pending
        self.pending = set()
        groups: dict[tuple[str, str], list[str]] = defaultdict(list)
        for key in list(book.segments):  # a copy: the event loop may add segments meanwhile
            card_id, grader, _ = key.split("|")
            if cards is None or card_id in cards:
                groups[card_id, grader].append(key)
        series = index_series(indexes)
        puts, changed = [], []
        for (card_id, _), keys in sorted(groups.items()):
            used = index_for(info.get(card_id), series)
            idx = series.get(used) if used else None
            for key, doc in self._card(book, keys, idx, now):
                doc["index"] = used
                last = self.last.get(key)
                if last == doc:
                    continue  # neither the value nor its inputs moved: nothing to write
                puts.append((KIND, key, {**doc, "computed_at": now}))
                self.last[key] = doc
                if last is None or last["value"] != doc["value"]:
                    changed.append(key)
        return puts, changed

    def _card(self, book: Book, keys: list[str], idx: IndexSeries | None,
              now: int) -> list[tuple[str, dict[str, Any]]]:
        """The valuation docs of one card and grader's segments."""
        index = idx if idx is not None else (np.zeros(0, np.int64), np.zeros(0))
        parts = [segment_parts(k) for k in keys]
        grades = [RAW_GRADE if p["grade"] is None else float(p["grade"]) for p in parts]
        arrays = [book.segments[k].arrays() for k in keys]
        values = [value_segment(at, price, now, *index) if len(at) else None
                  for at, price in arrays]
        ladder: list[Valuation | None] = grade_ladder(grades, values)
        out = []
        for key, part, (at, price), own, value in zip(keys, parts, arrays, values, ladder,
                                                      strict=True):
            sales = adjusted_sales(at, price, now, *index) if own is not None else None
            inputs = [] if sales is None else [
                {"at": int(a), "price": int(p), "factor": round(float(f), 6),
                 "adjusted": round(float(x))}
                for a, p, f, x in zip(sales.at, sales.price, sales.factor, sales.adjusted,
                                      strict=True)]
            year = int(np.count_nonzero((at > now - YEAR_MS) & (at <= now)))
            out.append((key, {**part, "value": value._asdict() if value else None,
                              "sales": inputs, "sales_365d": year}))
        return out


class ValuationProjection:
    """The valuations of the cards with new sales, and of every card now and then (module
    doc), from the market projection's book and indexes."""

    name = "valuations"
    replays = False
    kinds: tuple[str, ...] = (KIND,)

    def __init__(self, market: MarketProjection) -> None:
        self.market = market
        self.reset()

    def reset(self) -> None:
        self.values = Valuations()
        self.pos = 0
        self.computed_at: int | None = None

    def replayed(self) -> None:
        pass

    def feed(self, store: Store) -> Feed:
        return store.sales_feed

    def position(self, store: Store) -> Any:
        return store.sales_position()

    async def apply(self, rows: Sequence[Any], now: int) -> None:
        self.values.touch(sale["card_id"] for sale in rows)
        if rows:
            self.pos = int(rows[-1]["pos"])

    async def flush(self, now: int, more: bool = False) -> tuple[list[Put], list[AnalyticsMessage]]:
        market = self.market
        ready = market.computed is not None and market.pos >= self.pos and not more
        due = self.computed_at is None or now - self.computed_at >= RECOMPUTE_MS
        if not (ready and due and (self.values.pending or self.values.full_due(now))):
            return [], []
        self.computed_at = now
        indexes = market.computed or []
        puts, changed = await asyncio.to_thread(self.values.compute, market.book, market.info,
                                                indexes, now)
        messages: list[AnalyticsMessage] = []
        # Every change is told, the first computation's too (every value then): the portfolio
        # projections may have read the values before they were computed.
        if changed:
            messages.append({"channel": VALUES_CHANNEL, "type": "values",
                             "data": {"positions": changed}})
        return list(puts), messages


def value_of(docs: Iterable[Mapping[str, Any]], grade: Any) -> dict[str, Any] | None:
    """The value of a grade from the valuation docs of its card and grader: its own doc's, or
    derived from the others' (`grade_ladder`) when it has none; None when nothing is valued."""
    docs = list(docs)
    for doc in docs:
        if doc.get("grade") == grade:
            return doc.get("value")
    grades = [RAW_GRADE if d.get("grade") is None else float(d["grade"]) for d in docs]
    want = RAW_GRADE if grade is None else float(grade)
    if want in grades:
        return None
    values = [Valuation(**d["value"]) if d.get("value") else None for d in docs]
    value = grade_ladder([*grades, want], [*values, None])[-1]
    return value._asdict() if value is not None else None
