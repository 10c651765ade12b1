"""Sales per card × grader × grade, in memory: the working set of the price and market
projections. The clean sales of every segment live in two numpy arrays sorted by (segment,
time, feed position); a batch's sales are merged in when they are next read.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from market.catalog import grade_text, normal_grade

IntArray = npt.NDArray[np.int64]
_AT_BITS = 42  # sale times are epoch ms in [0, 2**42): until the year 2109
_AT_MASK = (1 << _AT_BITS) - 1


def sale_segment(sale: Mapping[str, Any]) -> str:
    """`market.catalog.segment_key` of a sale from the feed (validated when it was stored:
    only formatted here, which the projections do for every sale)."""
    return f"{sale['card_id']}|{sale['grader']}|{grade_text(sale['grade'])}"


class Segment:
    """One segment of a `Book`: `len` counts its sales, suspect ones too; `last_pos` is the
    feed position of the newest."""

    __slots__ = ("_book", "code", "last_pos", "sales")

    def __init__(self, book: Book, code: int) -> None:
        self._book, self.code, self.sales, self.last_pos = book, code, 0, 0

    def arrays(self) -> tuple[IntArray, IntArray]:
        """(at, price) of the clean sales, sorted by time."""
        _, at, price = self._book.arrays_of([self.code])
        return at, price

    def __len__(self) -> int:
        return self.sales


class Book:
    def __init__(self) -> None:
        self.segments: dict[str, Segment] = {}
        self.sales = 0
        self.suspect = 0
        self.last_at: int | None = None  # the latest sale's time, suspect ones too
        # Clean sales: (segment code << _AT_BITS | at) and price, sorted (feed order on ties).
        self._key: IntArray = np.zeros(0, dtype=np.int64)
        self._price: IntArray = np.zeros(0, dtype=np.int64)
        self._pending: list[tuple[IntArray, IntArray]] = []
        # The projections read the book in worker threads (`asyncio.to_thread`: the market's
        # indexes, the valuations) while the event loop extends it: sales added and merged
        # under this lock, so that none is dropped by a merge running beside an `extend`.
        self._lock = threading.Lock()

    def extend(self, segments: Sequence[str], at: Sequence[int], price: Sequence[int],
               pos: Sequence[int], clean: Sequence[bool]) -> None:
        """Add sales that come after every sale added so far in the feed (`pos`: their feed
        positions)."""
        codes = []
        for key, p in zip(segments, pos, strict=True):
            segment = self.segments.get(key)
            if segment is None:
                segment = self.segments[key] = Segment(self, len(self.segments))
            segment.sales += 1
            segment.last_pos = p
            codes.append(segment.code)
        times = np.asarray(at, dtype=np.int64)
        if not len(times):
            return
        if int(times.min()) < 0 or int(times.max()) > _AT_MASK:
            raise ValueError("sale times must be epoch ms from 1970 to 2109")
        ok = np.asarray(clean, dtype=bool)
        keys = np.asarray(codes, dtype=np.int64) << _AT_BITS | times
        with self._lock:
            self._pending.append((keys[ok], np.asarray(price, dtype=np.int64)[ok]))
        self.sales += len(times)
        self.suspect += len(times) - int(ok.sum())
        latest = int(times.max())
        self.last_at = latest if self.last_at is None else max(self.last_at, latest)

    def _merged(self) -> tuple[IntArray, IntArray]:
        with self._lock:
            if self._pending:
                keys = np.concatenate([k for k, _ in self._pending])
                prices = np.concatenate([p for _, p in self._pending])
                self._pending = []
                order = np.argsort(keys, kind="stable")  # stable: feed order among equals
                keys, prices = keys[order], prices[order]
                # After the equal keys held: those came earlier in the feed.
                where = np.searchsorted(self._key, keys, side="right")
                self._key = np.insert(self._key, where, keys)
                self._price = np.insert(self._price, where, prices)
            return self._key, self._price

    def arrays_of(self, codes: Sequence[int]) -> tuple[IntArray, IntArray, IntArray]:
        """(ids, at, price) of the clean sales of the segments with these codes, sorted by
        (ids, at): id n is codes[n]."""
        key, price = self._merged()
        wanted = np.asarray(codes, dtype=np.int64)
        lo = np.searchsorted(key, wanted << _AT_BITS)
        hi = np.searchsorted(key, (wanted + 1) << _AT_BITS)
        sizes = hi - lo
        ids = np.repeat(np.arange(len(wanted), dtype=np.int64), sizes)
        rows = np.arange(len(ids), dtype=np.int64) + np.repeat(lo - (np.cumsum(sizes) - sizes),
                                                               sizes)
        return ids, key[rows] & _AT_MASK, price[rows]

    def arrays(self, keys: list[str]) -> tuple[IntArray, IntArray, IntArray]:
        """(ids, at, price) of the clean sales of these segments, sorted by (ids, at): id n
        is keys[n] (the form `market.segment_stats` takes)."""
        return self.arrays_of([self.segments[k].code for k in keys])

    def __iter__(self) -> Iterator[tuple[str, Segment]]:
        return iter(self.segments.items())


def segment_parts(key: str) -> dict[str, Any]:
    card_id, grader, grade = key.split("|")
    return {"card_id": card_id, "grader": grader,
            "grade": None if grade == "-" else normal_grade(float(grade))}
