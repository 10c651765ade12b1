"""Candles and trailing medians of one segment's sales: pure numpy maths.

A *segment* is one card × grader × grade (`market.catalog.segment_key`). Every function here
takes one segment's sales as two parallel 1-D arrays: `at` (int epoch ms UTC) and `price`
(int cents). Where order matters (open/close, "the last n sales") the sales must be sorted by
`at`, ties in feed order; a ValueError says when they are not. Buckets are UTC days ("1d") or
ISO weeks ("1w", Monday 00:00 UTC). Results are plain Python ints (JSON-ready), never numpy
scalars. Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

DAY_MS = 86_400_000
WEEK_MS = 7 * DAY_MS
INTERVALS: tuple[str, ...] = ("1d", "1w")
MEDIAN_DAYS: tuple[int, ...] = (7, 30, 90)
# Epoch 0 (1970-01-01) was a Thursday: the first Monday 00:00 UTC is 4 days later.
_FIRST_MONDAY_MS = 4 * DAY_MS

IntArray = npt.NDArray[np.int64]


def bucket_start(at: npt.ArrayLike, interval: str) -> IntArray:
    """Start (epoch ms UTC) of the bucket holding each time: the UTC day (floor to DAY_MS) for
    "1d", the ISO week (the Monday 00:00 UTC at or before) for "1w". Correct before 1970 too."""
    a = np.asarray(at, dtype=np.int64)
    if interval == "1d":
        return a - a % DAY_MS  # numpy's % floors like Python's: right for negative times
    if interval == "1w":
        return a - (a - _FIRST_MONDAY_MS) % WEEK_MS
    raise ValueError(f"interval must be one of {', '.join(INTERVALS)}, not {interval!r}")


def bucket_of(at: int, interval: str) -> int:
    """`bucket_start` of one time (epoch ms UTC), as a Python int."""
    return int(bucket_start(np.array([at], dtype=np.int64), interval)[0])


def _sales(at: npt.ArrayLike, price: npt.ArrayLike) -> tuple[IntArray, IntArray]:
    a = np.asarray(at, dtype=np.int64)
    p = np.asarray(price, dtype=np.int64)
    if a.ndim != 1 or a.shape != p.shape:
        raise ValueError("at and price must be 1-D arrays of the same length")
    return a, p


def _sorted_sales(at: npt.ArrayLike, price: npt.ArrayLike) -> tuple[IntArray, IntArray]:
    a, p = _sales(at, price)
    if a.size > 1 and bool(np.any(a[1:] < a[:-1])):
        raise ValueError("sales must be sorted by `at` (ties in feed order)")
    return a, p


def median_int(values: npt.ArrayLike) -> int:
    """Exact median of integers (cents): the middle value, or the mean of the two middle ones
    rounded half to even. Raises ValueError on an empty array."""
    v = np.sort(np.asarray(values, dtype=np.int64).ravel())
    n = int(v.size)
    if n == 0:
        raise ValueError("median of no values")
    if n % 2:
        return int(v[n // 2])
    q, r = divmod(int(v[n // 2 - 1]) + int(v[n // 2]), 2)  # Python ints: no overflow
    return q + 1 if r and q % 2 else q


def _candle(t: int, p: IntArray) -> dict[str, int]:
    return {
        "t": t, "open": int(p[0]), "high": int(p.max()), "low": int(p.min()),
        "close": int(p[-1]), "volume": int(p.sum()), "count": int(p.size),
    }


def candles(at: npt.ArrayLike, price: npt.ArrayLike, interval: str) -> list[dict[str, int]]:
    """OHLC candles per non-empty bucket, ascending `t` (bucket start, epoch ms UTC).

    open/close = first/last sale of the bucket in input order, high/low = max/min price,
    volume = sum of prices (cents), count = number of sales. Input sorted by `at`.
    """
    a, p = _sorted_sales(at, price)
    if a.size == 0:
        return []
    b = bucket_start(a, interval)
    starts = np.flatnonzero(np.concatenate(([True], b[1:] != b[:-1])))
    ends = np.append(starts[1:], a.size)
    columns: Sequence[list[Any]] = (
        b[starts].tolist(),
        p[starts].tolist(),
        np.maximum.reduceat(p, starts).tolist(),
        np.minimum.reduceat(p, starts).tolist(),
        p[ends - 1].tolist(),
        np.add.reduceat(p, starts).tolist(),
        (ends - starts).tolist(),
    )
    keys = ("t", "open", "high", "low", "close", "volume", "count")
    return [dict(zip(keys, row, strict=True)) for row in zip(*columns, strict=True)]


def candle_at(
    at: npt.ArrayLike, price: npt.ArrayLike, interval: str, t: int
) -> dict[str, int] | None:
    """The candle of the bucket starting at `t` (as in `candles`), None when it has no sale."""
    a, p = _sorted_sales(at, price)
    in_bucket = bucket_start(a, interval) == t
    if not bool(in_bucket.any()):
        return None
    return _candle(int(t), p[in_bucket])


def trailing_medians(
    at: npt.ArrayLike, price: npt.ArrayLike, now: int, days: Sequence[int] = MEDIAN_DAYS
) -> dict[str, int | None]:
    """{"median_<d>d": median price (cents) of sales with now - d·DAY_MS < at <= now} per d;
    None when the window has no sale. Even counts: mean of the middle two, half to even."""
    a, p = _sales(at, price)
    out: dict[str, int | None] = {}
    for d in days:
        window = p[(a > now - int(d) * DAY_MS) & (a <= now)]
        out[f"median_{int(d)}d"] = median_int(window) if window.size else None
    return out


def segment_value(
    at: npt.ArrayLike, price: npt.ArrayLike, t: int, n: int = 5, max_age_days: int = 90
) -> int | None:
    """A segment's value at time t (cents): median of its last <= n sales with
    t - max_age_days·DAY_MS < at <= t; None when there is none. Input sorted by `at`."""
    if n < 1:
        raise ValueError("n must be at least 1")
    a, p = _sorted_sales(at, price)
    recent = np.flatnonzero((a <= t) & (a > t - max_age_days * DAY_MS))[-n:]
    return median_int(p[recent]) if recent.size else None
