"""Per-segment statistics for many segments at once (vectorised group-bys): candles, counts,
trailing medians and values. The projections use these for a whole book after a catch-up and
for the few segments a live batch touched alike.

Input: parallel arrays `ids` (segment number 0..n-1), `at` (ms) and `price` (cents), sorted by
(ids, at). Medians of an even count are the mean of the two middle prices, rounded to cents.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from market.prices import bucket_start

IntArray = npt.NDArray[np.int64]
DAY_MS = 86_400_000
VALUE_SALES = 5  # a value is the median of at most this many latest sales...
VALUE_MAX_AGE_DAYS = 90  # ...no older than this


def group_median(ids: IntArray, values: IntArray, mask: npt.NDArray[np.bool_],
                 n: int) -> npt.NDArray[np.float64]:
    """The median of `values[mask]` per group id (NaN for a group with none)."""
    g, v = ids[mask], values[mask]
    order = np.lexsort((v, g))
    g, v = g[order], v[order].astype(np.float64)
    counts = np.bincount(g, minlength=n)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    out = np.full(n, np.nan)
    ok = counts > 0
    lo = starts[ok] + (counts[ok] - 1) // 2
    hi = starts[ok] + counts[ok] // 2
    out[ok] = (v[lo] + v[hi]) / 2
    return out


def _exact(values: IntArray) -> bool:
    """Whether int64 sums of these values cannot overflow (else sum Python ints)."""
    return len(values) == 0 or int(values.max()) * len(values) < 2**62


def group_sum(ids: IntArray, values: IntArray, n: int) -> npt.NDArray[np.float64]:
    """The sum of `values` per group id (0 for none), exact up to 2**53."""
    out = np.zeros(n, dtype=np.int64 if _exact(values) else object)
    np.add.at(out, ids, values if out.dtype == np.int64 else values.astype(object))
    return out.astype(np.float64)


def _rank_from_end(ids: IntArray, mask: npt.NDArray[np.bool_], n: int) -> IntArray:
    """For each masked row, how many masked rows of its group come after it (0 = latest);
    -1 for rows not masked. Rows are sorted by (ids, at)."""
    m = mask.astype(np.int64)
    before = np.cumsum(m) - m  # masked rows before this one, overall
    counts = np.bincount(ids, weights=m, minlength=n).astype(np.int64)
    # A group's masked rows are contiguous in masked order: the first one's index there is
    # the number of masked rows of the groups before it.
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    within = before - starts[ids]
    rank = counts[ids] - within - 1
    return np.where(mask, rank, -1)


def values_at(ids: IntArray, at: IntArray, price: IntArray, t: int, n: int,
              sales: int = VALUE_SALES,
              max_age_days: int = VALUE_MAX_AGE_DAYS) -> npt.NDArray[np.float64]:
    """Each group's value at time t: the median of its latest <= `sales` sales at or before
    t and within `max_age_days` of it (NaN when none) - `market.prices.segment_value` for
    every segment at once."""
    upto = at <= t
    rank = _rank_from_end(ids, upto, n)
    recent = upto & (rank >= 0) & (rank < sales) & (at > t - max_age_days * DAY_MS)
    return group_median(ids, price, recent, n)


def stats(ids: IntArray, at: IntArray, price: IntArray, now: int,
          n: int) -> dict[str, npt.NDArray[np.float64]]:
    """Per group: count, last_price, last_at, median_7d/30d/90d, value and value_7d_ago,
    value_30d_ago, value_90d_ago; count_30d and volume_30d (sales and the sum of their prices
    in the last 30 days) and count_prev_30d, volume_prev_30d (the 30 days before those)."""
    counts = np.bincount(ids, minlength=n).astype(np.float64)
    # Sorted by (ids, at): a group's latest sale is its last row.
    last = np.cumsum(counts).astype(np.int64) - 1
    has = counts > 0
    last_price = np.where(has, price[np.maximum(last, 0)], np.nan) if len(ids) else \
        np.full(n, np.nan)
    last_at = np.where(has, at[np.maximum(last, 0)], np.nan) if len(ids) else np.full(n, np.nan)
    out = {"count": counts, "last_price": last_price.astype(np.float64),
           "last_at": last_at.astype(np.float64)}
    for days in (7, 30, 90):
        window = (at > now - days * DAY_MS) & (at <= now)
        out[f"median_{days}d"] = group_median(ids, price, window, n)
    out["value"] = values_at(ids, at, price, now, n)
    for days in (7, 30, 90):
        out[f"value_{days}d_ago"] = values_at(ids, at, price, now - days * DAY_MS, n)
    for name, lo, hi in (("30d", now - 30 * DAY_MS, now), ("prev_30d", now - 60 * DAY_MS,
                                                              now - 30 * DAY_MS)):
        window = (at > lo) & (at <= hi)
        out[f"count_{name}"] = np.bincount(ids[window], minlength=n).astype(np.float64)
        out[f"volume_{name}"] = group_sum(ids[window], price[window], n)
    return out


MA_DAYS = (7, 30, 90)  # the moving averages every candle carries
_SPAN = 1 << 42  # > any epoch ms before the year 2109: (id, at) packed into one sortable int64


def trailing_means(ids: IntArray, at: IntArray, price: IntArray, group: IntArray,
                   end: IntArray, days: int) -> npt.NDArray[np.float64]:
    """For each (group[k], end[k]): the mean price of that group's sales with
    end - days <= at < end (NaN when none) - a time-based simple moving average. The sales
    are sorted by (ids, at), times in [0, 2**42) ms."""
    key = ids * _SPAN + at
    # Exact sums: int64 while the total cannot overflow, else Python ints (hostile prices).
    exact = _exact(price)
    sums = np.concatenate(([0], np.cumsum(price if exact else price.astype(object))))
    lo = np.searchsorted(key, group * _SPAN + end - days * DAY_MS, side="left")
    hi = np.searchsorted(key, group * _SPAN + end, side="left")
    count = hi - lo
    out = np.full(len(group), np.nan)
    has = count > 0
    means = (sums[hi[has]] - sums[lo[has]]) / count[has]
    out[has] = means if exact else [float(x) for x in means]
    return out


def candles(ids: IntArray, at: IntArray, price: IntArray,
            interval: str) -> dict[str, IntArray]:
    """Every (group, bucket) candle: arrays id, t, open, high, low, close, volume, count."""
    if len(ids) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return {k: empty for k in ("id", "t", "open", "high", "low", "close", "volume",
                                   "count")}
    t = bucket_start(at, interval)
    change = np.ones(len(ids), dtype=bool)
    change[1:] = (ids[1:] != ids[:-1]) | (t[1:] != t[:-1])
    starts = np.flatnonzero(change)
    ends = np.concatenate((starts[1:], [len(ids)])) - 1
    return {"id": ids[starts], "t": t[starts], "open": price[starts],
            "high": np.maximum.reduceat(price, starts), "low": np.minimum.reduceat(price, starts),
            "close": price[ends], "volume": np.add.reduceat(price, starts),
            "count": (ends - starts + 1).astype(np.int64)}
