"""What the portfolio projections know of values: each held position's valuation, read from
the analytics' persisted `valuation` docs (`actors.analytics.valuations`) and kept until a
`values` message says it changed; a grade never sold is derived from its card's other grades
of the same grader (`value_of`). Also each position's sales in the last year (liquidity) and
the weekly index series (risk), read as needed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from actors.analytics.valuations import INDEX_INTERVAL, KIND, value_of
from market.catalog import parse_segment_key
from market.valuation import Valuation
from storage import Store

MAX_GRADES = 64  # a card and grader's valuation docs read to derive a grade never sold
IndexSeries = tuple[np.ndarray, np.ndarray]


def _prefix(position: str) -> str:
    card_id, grader, _ = position.split("|")
    return f"{card_id}|{grader}|"


class Values:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._value: dict[str, Valuation | None] = {}
        self._doc: dict[str, dict[str, Any] | None] = {}
        self._index: dict[str, IndexSeries] = {}
        self._reads: list[set[str]] = []  # per read in flight: the prefixes forgotten meanwhile
        self._recheck: set[str] = set()  # read while they changed: read again when next asked

    def forget(self, positions: Iterable[str]) -> set[str]:
        """Positions whose value changed: they, and the derived grades of the same card and
        grader, are read again when next asked for. Returns every position forgotten."""
        prefixes = {_prefix(p) for p in positions if "|" in p}
        for dirty in self._reads:
            dirty |= prefixes
        gone = {p for p in self._value if "|" in p and _prefix(p) in prefixes}
        for p in gone:
            self._value.pop(p, None)
            self._doc.pop(p, None)
        return gone

    def forget_indexes(self) -> None:
        self._index.clear()

    def forget_all(self) -> None:
        """Every value is read again when next asked for (changes may have gone unseen)."""
        for dirty in self._reads:
            dirty.update(_prefix(p) for p in self._value if "|" in p)
        self._value.clear()
        self._doc.clear()
        self._index.clear()

    async def values(self, positions: Iterable[str]) -> dict[str, Valuation | None]:
        wanted = [p for p in dict.fromkeys(positions)]
        missing = [p for p in wanted
                   if (p not in self._value or p in self._recheck) and "|" in p]
        if missing:
            # A position forgotten while it is being read may have been read as it was
            # before: kept for this answer, read again when next asked for.
            dirty: set[str] = set()
            self._reads.append(dirty)
            try:
                found = await self.store.get_projection_docs(KIND, missing)
                for p in missing:
                    doc = found.get(p)
                    # Only what the portfolios read of it (not the sales list).
                    self._doc[p] = None if doc is None else {
                        "index": doc.get("index"), "sales_365d": doc.get("sales_365d", 0)}
                    if doc is not None:
                        self._value[p] = _valuation(doc.get("value"))
                    else:
                        self._value[p] = await self._derived(p)
            finally:
                self._reads = [r for r in self._reads if r is not dirty]  # not ==
            self._recheck.difference_update(missing)
            self._recheck.update(p for p in missing if _prefix(p) in dirty)
        return {p: self._value.get(p) for p in wanted}

    async def _derived(self, position: str) -> Valuation | None:
        prefix = _prefix(position)
        rows = await self.store.scan_projection(KIND, prefix, prefix + "~", MAX_GRADES)
        return _valuation(value_of([d for _, d in rows], parse_segment_key(position)[2]))

    def value_now(self, position: str) -> int | None:
        """The point of a position already read (None: no value, or not read yet)."""
        value = self._value.get(position)
        return value.point if value is not None else None

    async def index(self, segment: str) -> IndexSeries | None:
        if segment not in self._index:
            doc = await self.store.get_projection_doc("index", f"{INDEX_INTERVAL}|{segment}")
            points = doc.get("points", []) if doc else []
            self._index[segment] = (np.array([p["t"] for p in points], dtype=np.int64),
                                    np.array([p["value"] for p in points], dtype=np.float64))
        series = self._index[segment]
        return series if len(series[0]) else None

    def __len__(self) -> int:
        return len(self._value)

    def keep(self, positions: set[str]) -> None:
        """Drop what is cached of positions nobody holds any more (memory stays bounded)."""
        for p in [p for p in self._value if p not in positions]:
            self._value.pop(p, None)
            self._doc.pop(p, None)

    def sales_last_year(self, position: str) -> int:
        """The position's clean sales in the last year (0: none, or not read)."""
        doc = self._doc.get(position)
        return int(doc.get("sales_365d", 0)) if doc else 0

    def index_of(self, position: str) -> str | None:
        """The index segment the position's valuation used (None: not read, or none)."""
        doc = self._doc.get(position)
        return doc.get("index") if doc else None


def _valuation(value: Any) -> Valuation | None:
    return Valuation(**value) if value else None
