"""Sales per card × grader × grade, in memory, ordered by time: the working set of the
price and market projections (numpy arrays built on demand and cached until the next sale).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from market.catalog import grade_text, normal_grade
from storage.records import SaleRecord


def sale_segment(sale: Mapping[str, Any]) -> str:
    """`market.catalog.segment_key` of a sale from the feed (validated when it was stored:
    only formatted here, which the projections do for every sale)."""
    return f"{sale['card_id']}|{sale['grader']}|{grade_text(sale['grade'])}"


def sale_doc_key(segment: str, at: int, pos: int) -> str:
    """The key of a sale in the `sale` results: by segment, then time (for the history)."""
    return f"{segment}|{at:013d}|{pos:012d}"


class Segment:
    """One segment's sales sorted by (at, pos); `clean` False for suspect ones."""

    __slots__ = ("_arrays", "at", "clean", "keys", "pos", "price")

    def __init__(self) -> None:
        self.keys: list[tuple[int, int]] = []
        self.at: list[int] = []
        self.price: list[int] = []
        self.pos: list[int] = []
        self.clean: list[bool] = []
        self._arrays: tuple[np.ndarray, np.ndarray] | None = None

    def add(self, at: int, price: int, pos: int, clean: bool) -> None:
        i = bisect.bisect(self.keys, (at, pos))
        self.keys.insert(i, (at, pos))
        self.at.insert(i, at)
        self.price.insert(i, price)
        self.pos.insert(i, pos)
        self.clean.insert(i, clean)
        self._arrays = None

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(at, price) of the clean sales, sorted by time."""
        if self._arrays is None:
            mask = np.asarray(self.clean, dtype=bool)
            self._arrays = (np.asarray(self.at, dtype=np.int64)[mask],
                            np.asarray(self.price, dtype=np.int64)[mask])
        return self._arrays

    def __len__(self) -> int:
        return len(self.at)


class Book:
    def __init__(self) -> None:
        self.segments: dict[str, Segment] = {}
        self.sales = 0
        self.suspect = 0

    def add(self, sale: SaleRecord, reason: str | None, key: str | None = None) -> str:
        key = key or sale_segment(sale)
        segment = self.segments.get(key)
        if segment is None:
            segment = self.segments[key] = Segment()
        segment.add(int(sale["at"]), int(sale["price"]), int(sale.get("pos", 0)),
                    reason is None)
        self.sales += 1
        self.suspect += reason is not None
        return key

    def arrays(self, keys: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ids, at, price) of the clean sales of these segments, sorted by (ids, at): id n
        is keys[n] (the form `market.segment_stats` takes)."""
        parts = [self.segments[k].arrays() for k in keys]
        sizes = [len(a) for a, _ in parts]
        ids = np.repeat(np.arange(len(keys), dtype=np.int64), sizes)
        if not parts:
            return ids, np.zeros(0, np.int64), np.zeros(0, np.int64)
        return (ids, np.concatenate([a for a, _ in parts]),
                np.concatenate([p for _, p in parts]))

    def __iter__(self) -> Iterator[tuple[str, Segment]]:
        return iter(self.segments.items())


def segment_parts(key: str) -> dict[str, Any]:
    card_id, grader, grade = key.split("|")
    return {"card_id": card_id, "grader": grader,
            "grade": None if grade == "-" else normal_grade(float(grade))}
