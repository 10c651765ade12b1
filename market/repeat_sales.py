"""Market index by repeat sales (Bailey–Muth–Nourse, Case–Shiller weights): pure numpy maths.

Each pair of consecutive sales of one segment (card × grader × grade) in different periods
says how much the market moved between them: dlog = log(price1 / price0) ≈ β[p1] - β[p0]. The
index is 100·exp(β), β[0] = 0 (the base period). Periods are ISO weeks ("1w") or UTC calendar
months ("1mo"), numbered 0..n_periods-1 from the first. Times are int epoch ms UTC, prices
int cents > 0. With too few pairs, `median_index` gives a cruder index from single sales.
Pure: no I/O, no clock.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from market.prices import WEEK_MS, bucket_start

PERIODS: tuple[str, ...] = ("1w", "1mo")
MIN_PAIRS = 30
MAX_PERIODS = 2000  # the normal equations are n_periods²: ~38 years of weeks
REPEAT_SALES = "repeat_sales"
MEDIAN = "median"

# Random-walk ridge λ·(β[k] - β[k-1])², λ relative to the mean weight on a touched period:
# strong where period k has no pair (it carries β[k-1]), negligible where it has (it only
# anchors blocks of periods no pair links to the ones before).
_RIDGE_EMPTY = 1.0
_RIDGE_TOUCHED = 1e-8
_VARIANCE_FLOOR = 1e-3  # fitted variances are clipped to this share of the mean

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


class IndexResult(NamedTuple):
    """values: index per period (100 at the base); pairs: repeat-sale pairs touching each
    period (for the median method: sales in the period); method: "repeat_sales" | "median"."""

    values: FloatArray
    pairs: IntArray
    method: str


def period_start(at: npt.ArrayLike, interval: str) -> IntArray:
    """Start (epoch ms UTC) of each time's period: the ISO week (Monday 00:00 UTC) for "1w",
    the UTC calendar month (day 1, 00:00) for "1mo"."""
    a = np.asarray(at, dtype=np.int64)
    if interval == "1w":
        return bucket_start(a, "1w")
    if interval == "1mo":
        month = a.astype("datetime64[ms]").astype("datetime64[M]")  # floors, also before 1970
        return month.astype("datetime64[ms]").astype(np.int64)
    raise ValueError(f"interval must be one of {', '.join(PERIODS)}, not {interval!r}")


def period_starts(first: int, last: int, interval: str) -> IntArray:
    """Every period start (epoch ms UTC) from the period of `first` to that of `last`."""
    lo, hi = (int(x) for x in period_start(np.array([first, last], dtype=np.int64), interval))
    if interval == "1w":
        return np.arange(lo, hi + 1, WEEK_MS, dtype=np.int64)
    months = np.arange(np.datetime64(lo, "ms").astype("datetime64[M]"),
                       np.datetime64(hi, "ms").astype("datetime64[M]") + np.timedelta64(1, "M"))
    return months.astype("datetime64[ms]").astype(np.int64)


def sale_pairs(
    segment_ids: npt.ArrayLike, period: npt.ArrayLike, log_price: npt.ArrayLike
) -> tuple[IntArray, IntArray, FloatArray]:
    """(p0, p1, dlog) of consecutive sales of the same segment in different periods;
    dlog = log_price1 - log_price0. Sales sorted by time within each segment."""
    seg = np.asarray(segment_ids)
    per = np.asarray(period, dtype=np.int64)
    lp = np.asarray(log_price, dtype=np.float64)
    if seg.ndim != 1 or seg.shape != per.shape or seg.shape != lp.shape:
        raise ValueError("segment_ids, period and log_price must be 1-D of the same length")
    order = np.argsort(seg, kind="stable")  # keeps each segment's time order
    s, q, v = seg[order], per[order], lp[order]
    i = np.flatnonzero((s[1:] == s[:-1]) & (q[1:] != q[:-1]))
    return q[i], q[i + 1], v[i + 1] - v[i]


def _solve(c0: IntArray, c1: IntArray, y: FloatArray, w: FloatArray, n: int) -> FloatArray:
    """β minimising Σ w·(y - β[c1] + β[c0])² + ridge with β[0] = 0, by the normal equations.

    One row per distinct (c0, c1) cell: y the cell's mean dlog, w its total weight (the same
    normal equations as one row per pair)."""
    diag = np.bincount(c0, w, n) + np.bincount(c1, w, n)
    a = np.diag(diag)
    a[c0, c1] -= w  # distinct cells: no repeated index
    a[c1, c0] -= w
    rhs = np.bincount(c1, w * y, n) - np.bincount(c0, w * y, n)
    touched = diag > 0
    scale = float(diag[touched].mean()) if touched.any() else 1.0
    lam = scale * np.where(touched[1:], _RIDGE_TOUCHED, _RIDGE_EMPTY)  # links k-1 -> k
    k = np.arange(1, n)
    a[k, k] += lam
    a[k - 1, k - 1] += lam
    a[k, k - 1] -= lam
    a[k - 1, k] -= lam
    beta = np.zeros(n)
    if n > 1:
        beta[1:] = np.linalg.solve(a[1:, 1:], rhs[1:])
    return beta


def repeat_sales_index(
    p0: npt.ArrayLike, p1: npt.ArrayLike, dlog: npt.ArrayLike, n_periods: int,
    min_pairs: int = MIN_PAIRS,
) -> IndexResult:
    """Case–Shiller weighted repeat-sales index over periods 0..n_periods-1 (base 0 = 100).

    1. OLS of dlog on period dummies (-1 at p0, +1 at p1); 2. OLS of the squared residuals
    on the holding interval h = |p1 - p0| (a + b·h, clipped to a positive floor); 3. WLS with
    weights 1/fitted variance. Pairs with p0 == p1 carry nothing and are dropped. The pairs
    are first summed per (p0, p1) cell (count, mean, within-cell sum of squares): every stage
    needs only those, so the cost past one pass is in n_periods, not in pairs.
    Raises ValueError with fewer than `min_pairs` pairs: use `median_index` then.
    """
    q0 = np.asarray(p0, dtype=np.int64)
    q1 = np.asarray(p1, dtype=np.int64)
    y = np.asarray(dlog, dtype=np.float64)
    if q0.ndim != 1 or q0.shape != q1.shape or q0.shape != y.shape:
        raise ValueError("p0, p1 and dlog must be 1-D of the same length")
    n = int(n_periods)
    if not 1 <= n <= MAX_PERIODS:
        raise ValueError(f"n_periods must be in 1..{MAX_PERIODS}")
    if q0.size and (min(q0.min(), q1.min()) < 0 or max(q0.max(), q1.max()) >= n):
        raise ValueError("periods must be in 0..n_periods-1")
    if not np.isfinite(y).all():
        raise ValueError("dlog must be finite")
    cell = q0 * n + q1
    count = np.bincount(cell, minlength=n * n)
    sums = np.bincount(cell, y, n * n)
    cells = np.flatnonzero(count)
    c0, c1 = cells // n, cells % n
    mean = sums[cells] / count[cells]
    full_mean = np.zeros(n * n)
    full_mean[cells] = mean
    within = np.bincount(cell, (y - full_mean[cell]) ** 2, n * n)[cells]  # two-pass: stable
    informative = c0 != c1
    c0, c1, cnt = c0[informative], c1[informative], count[cells][informative].astype(np.float64)
    mean, within = mean[informative], within[informative]
    total = float(cnt.sum())
    if total < min_pairs:
        raise ValueError(f"{int(total)} pairs, fewer than min_pairs={min_pairs}")
    pairs = (np.bincount(c0, cnt, n) + np.bincount(c1, cnt, n)).astype(np.int64)
    beta = _solve(c0, c1, mean, cnt, n)
    if total:
        # Squared residuals summed per cell: within-cell spread + count·(cell mean - fit)².
        resid2 = within + cnt * (mean - beta[c1] + beta[c0]) ** 2
        mean2 = float(resid2.sum()) / total
        if mean2 > 0:  # an exact fit (no noise) has nothing to weight by
            h = np.abs(c1 - c0).astype(np.float64)
            hc = h - float((cnt * h).sum()) / total
            var_h = float((cnt * hc * hc).sum()) / total
            slope = float((hc * resid2).sum()) / total / var_h if var_h > 0 else 0.0
            fitted = mean2 + slope * hc  # a + b·h with a = mean2 - b·mean(h)
            w = 1.0 / np.maximum(fitted, _VARIANCE_FLOOR * mean2)
            beta = _solve(c0, c1, mean, cnt * w / (float((cnt * w).sum()) / total), n)
    return IndexResult(100.0 * np.exp(beta), pairs, REPEAT_SALES)


def median_index(
    segment_ids: npt.ArrayLike, period: npt.ArrayLike, log_price: npt.ArrayLike,
    n_periods: int,
) -> IndexResult:
    """Fallback index: per period, the median of each sale's log price minus its segment's
    mean log price, exp'd and rebased to 100 at the first period with a sale. Empty periods
    carry the previous value (those before the first sale: 100). `pairs` = sales per period."""
    seg = np.asarray(segment_ids)
    per = np.asarray(period, dtype=np.int64)
    lp = np.asarray(log_price, dtype=np.float64)
    if seg.ndim != 1 or seg.shape != per.shape or seg.shape != lp.shape:
        raise ValueError("segment_ids, period and log_price must be 1-D of the same length")
    n = int(n_periods)
    if n < 1 or (per.size and (per.min() < 0 or per.max() >= n)):
        raise ValueError("periods must be in 0..n_periods-1")
    counts = np.bincount(per, minlength=n).astype(np.int64)
    if per.size == 0:
        return IndexResult(np.full(n, 100.0), counts, MEDIAN)
    inverse = np.unique(seg, return_inverse=True)[1].ravel()
    rel = lp - (np.bincount(inverse, lp) / np.bincount(inverse))[inverse]
    rel_sorted = rel[np.lexsort((rel, per))]  # by period, then value
    ends = np.cumsum(counts)
    nonempty = counts > 0
    lo = (ends - counts + (counts - 1) // 2)[nonempty]
    hi = (ends - counts + counts // 2)[nonempty]
    med = np.zeros(n)
    med[nonempty] = (rel_sorted[lo] + rel_sorted[hi]) / 2.0
    first = int(np.argmax(nonempty))
    carried = np.maximum.accumulate(np.where(nonempty, np.arange(n), first))
    return IndexResult(100.0 * np.exp(med[carried] - med[first]), counts, MEDIAN)


def build_index(
    segment_ids: npt.ArrayLike, at: npt.ArrayLike, price: npt.ArrayLike, interval: str,
    start: int | None = None, end: int | None = None, min_pairs: int = MIN_PAIRS,
) -> dict[str, Any]:
    """{"method", "base", "points": [{"t", "value", "pairs"}]} from raw sales (any order).

    Periods run from the period of `start` (default: of the first sale) to that of `end`
    (default: of the last); sales outside are ignored. The repeat-sales index when there are
    >= min_pairs pairs, else the median index. t and base: period starts (epoch ms UTC);
    value: the index rounded to 2 decimals. No sale in range: no points, base None.
    """
    seg = np.asarray(segment_ids)
    a = np.asarray(at, dtype=np.int64)
    p = np.asarray(price, dtype=np.int64)
    if seg.ndim != 1 or seg.shape != a.shape or seg.shape != p.shape:
        raise ValueError("segment_ids, at and price must be 1-D of the same length")
    if p.size and p.min() <= 0:
        raise ValueError("prices must be positive cents")
    ps = period_start(a, interval)
    lo = int(ps.min()) if start is None and ps.size else start
    hi = int(ps.max()) if end is None and ps.size else end
    if lo is None or hi is None:
        return {"method": MEDIAN, "base": None, "points": []}
    starts = period_starts(lo, hi, interval)
    if starts.size > MAX_PERIODS:
        raise ValueError(f"more than {MAX_PERIODS} periods: use a longer interval")
    keep = (ps >= starts[0]) & (ps <= starts[-1]) if starts.size else np.zeros(a.shape, bool)
    if not keep.any():
        return {"method": MEDIAN, "base": None, "points": []}
    ids = np.unique(seg[keep], return_inverse=True)[1].ravel()
    period = np.searchsorted(starts, ps[keep])
    log_price = np.log(p[keep].astype(np.float64))
    order = np.argsort(a[keep], kind="stable")  # time order; sale_pairs groups by segment
    p0, p1, dlog = sale_pairs(ids[order], period[order], log_price[order])
    n = int(starts.size)
    if np.count_nonzero(p0 != p1) >= min_pairs:
        result = repeat_sales_index(p0, p1, dlog, n, min_pairs)
        base = 0
    else:
        result = median_index(ids, period, log_price, n)
        base = int(np.argmax(result.pairs > 0))
    points = [
        {"t": t, "value": round(v, 2), "pairs": c}
        for t, v, c in zip(starts.tolist(), result.values.tolist(), result.pairs.tolist(),
                           strict=True)
    ]
    return {"method": result.method, "base": int(starts[base]), "points": points}
