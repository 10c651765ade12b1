"""What a card × grader × grade is worth, how sure we are, and grades with no sale: pure numpy.

One segment's value comes from its *vetted* sales (suspect ones already left out by the
caller): the last <= VALUE_SALES sales within VALUE_WINDOW_DAYS of `now`, each adjusted to
today by the segment's index, price × I(now) / I(at). I(x) is the level of the last index point
with t <= x (the first level before the first point; no points: I = 1). The point is the median
of the adjusted prices; the interval, the 10th–90th percentile of the medians of BOOTSTRAP
resamples of them (seeded: the same call gives the same interval), widened when n < FEW_SALES
(`widening`). The tiers, from the sales used: "high" with >= 5 and one within 30 days of now,
"medium" with >= 2 within 90 days, else "low".

A grade with no sale is *derived* from the card's other grades of the same grader
(`grade_ladder`), and the grades of one card and grader never invert: the points (and lows and
highs) are made isotonic in grade by pool-adjacent-violators. No sale anywhere: None, never 0.
Prices int cents, times int epoch ms UTC. Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from market.prices import DAY_MS

VALUE_SALES = 10
VALUE_WINDOW_DAYS = 365
BOOTSTRAP = 1000
LOW_PCT, HIGH_PCT = 10.0, 90.0
FEW_SALES = 5  # below this many sales the interval is widened
Z_80 = 1.2815515655446004  # the standard normal's 90th percentile: a central 80% band
# Log-price spread of single sales around their segment's value (~12%, the vetting's noise
# floor): what one sale alone says about the value when the index does not move.
SALE_LOG_SIGMA = 0.12
HIGH, MEDIUM, LOW = "high", "medium", "low"
CONFIDENCES: tuple[str, ...] = (LOW, MEDIUM, HIGH)  # worst first
SALES, DERIVED = "sales", "derived"

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


class Valuation(NamedTuple):
    """A value (`_asdict()` is the API's shape). point/low/high: int cents, low <= point <=
    high; confidence: "high" | "medium" | "low"; method: "sales" | "derived"; n: the sales
    the value used; last_sale_at: the newest of them (epoch ms)."""

    point: int
    low: int
    high: int
    confidence: str
    method: str
    n: int
    last_sale_at: int


class AdjustedSales(NamedTuple):
    """The sales a value uses (oldest first) and how each was adjusted: adjusted = price ×
    factor, factor = I(now) / I(at)."""

    at: IntArray
    price: IntArray
    factor: FloatArray
    adjusted: FloatArray


def index_level(index_t: npt.ArrayLike, index_value: npt.ArrayLike,
                at: npt.ArrayLike) -> FloatArray:
    """I(at) for each time: the level of the last point with t <= at, the first level before
    the first point, 1.0 everywhere when there is no point. `index_t` ascending."""
    t = np.asarray(index_t, dtype=np.int64)
    v = np.asarray(index_value, dtype=np.float64)
    a = np.asarray(at, dtype=np.int64)
    if t.ndim != 1 or t.shape != v.shape:
        raise ValueError("index_t and index_value must be 1-D of the same length")
    if t.size == 0:
        return np.ones(a.shape)
    if not bool(np.all(v > 0)):
        raise ValueError("index levels must be positive")
    i = np.maximum(np.searchsorted(t, a, side="right") - 1, 0)
    return v[i]


def index_daily_volatility(index_t: npt.ArrayLike, index_value: npt.ArrayLike) -> float:
    """σ_d, the index's volatility per day, as a random walk in log level with irregular steps:
    σ_d² = Σ (Δ log I)² / Σ Δt_days over consecutive points. 0.0 with fewer than 2 points."""
    t = np.asarray(index_t, dtype=np.int64)
    v = np.asarray(index_value, dtype=np.float64)
    if t.size < 2:
        return 0.0
    days = float((t[-1] - t[0]) / DAY_MS)
    if days <= 0:
        return 0.0
    return math.sqrt(float(np.sum(np.diff(np.log(v)) ** 2)) / days)


def adjusted_sales(at: npt.ArrayLike, price: npt.ArrayLike, now: int,
                   index_t: npt.ArrayLike = (), index_value: npt.ArrayLike = ()
                   ) -> AdjustedSales:
    """The last <= VALUE_SALES sales with now - VALUE_WINDOW_DAYS days < at <= now (any input
    order; ties keep input order), adjusted to `now` by the index."""
    a = np.asarray(at, dtype=np.int64)
    p = np.asarray(price, dtype=np.int64)
    if a.ndim != 1 or a.shape != p.shape:
        raise ValueError("at and price must be 1-D of the same length")
    if p.size and p.min() <= 0:
        raise ValueError("prices must be positive cents")
    order = np.argsort(a, kind="stable")
    a, p = a[order], p[order]
    keep = np.flatnonzero((a <= now) & (a > now - VALUE_WINDOW_DAYS * DAY_MS))[-VALUE_SALES:]
    a, p = a[keep], p[keep]
    level_now = index_level(index_t, index_value, np.array([now]))[0]
    factor = level_now / index_level(index_t, index_value, a)
    return AdjustedSales(a, p, factor, p * factor)


def confidence(at: npt.ArrayLike, now: int) -> str:
    """The tier of a value from the times of the sales it used (see the module doc)."""
    a = np.asarray(at, dtype=np.int64)
    age = now - a
    if a.size >= 5 and bool(np.any(age <= 30 * DAY_MS)):
        return HIGH
    if int(np.count_nonzero(age <= 90 * DAY_MS)) >= 2:
        return MEDIUM
    return LOW


def widening(n: int, age_days: float, sigma_day: float) -> float:
    """w, the half-width in log price an interval of n < FEW_SALES sales is widened to at least:

        w = Z_80 · sqrt(σ_d² · max(age_days, 1) + SALE_LOG_SIGMA² / n)

    the 80% band of a log value that has drifted with the index (σ_d per day, `index_daily_
    volatility`) since the newest sale `age_days` ago, plus the spread of a mean of n single
    sales. The interval becomes [min(low, point·e^-w), max(high, point·e^w)]. 0 for n >= 5."""
    if n >= FEW_SALES or n < 1:
        return 0.0
    return Z_80 * math.sqrt(sigma_day ** 2 * max(age_days, 1.0) + SALE_LOG_SIGMA ** 2 / n)


def value_segment(at: npt.ArrayLike, price: npt.ArrayLike, now: int,
                  index_t: npt.ArrayLike = (), index_value: npt.ArrayLike = (),
                  seed: int = 0) -> Valuation | None:
    """One segment's value from its vetted sales (module doc); None when no sale is in the
    window. low = floor, high = ceil, point = round half to even of the float values."""
    sales = adjusted_sales(at, price, now, index_t, index_value)
    n = int(sales.at.size)
    if n == 0:
        return None
    x = sales.adjusted
    point = float(np.median(x))
    rng = np.random.default_rng(seed)
    resamples = np.sort(x[rng.integers(0, n, size=(BOOTSTRAP, n))], axis=1)
    medians = (resamples[:, (n - 1) // 2] + resamples[:, n // 2]) / 2.0
    low, high = (float(q) for q in np.percentile(medians, [LOW_PCT, HIGH_PCT]))
    last = int(sales.at[-1])
    w = widening(n, (now - last) / DAY_MS, index_daily_volatility(index_t, index_value))
    low = min(low, point, point * math.exp(-w))
    high = max(high, point, point * math.exp(w))
    return Valuation(round(point), math.floor(low), math.ceil(high),
                     confidence(sales.at, now), SALES, n, last)


# --- grades of one card and grader --------------------------------------------------------


def isotonic(y: npt.ArrayLike, weight: npt.ArrayLike | None = None) -> FloatArray:
    """The non-decreasing sequence closest to y in weighted least squares (pool-adjacent-
    violators: each violating block becomes its weighted mean). Weights > 0, default 1."""
    v = np.asarray(y, dtype=np.float64)
    w = np.ones(v.shape) if weight is None else np.asarray(weight, dtype=np.float64)
    if v.ndim != 1 or v.shape != w.shape:
        raise ValueError("y and weight must be 1-D of the same length")
    if w.size and not bool(np.all(w > 0)):
        raise ValueError("weights must be positive")
    means: list[float] = []
    weights: list[float] = []
    sizes: list[int] = []
    for yi, wi in zip(v.tolist(), w.tolist(), strict=True):
        m, wt, k = yi, wi, 1
        while means and means[-1] > m:
            pm, pw, pk = means.pop(), weights.pop(), sizes.pop()
            m, wt, k = (pm * pw + m * wt) / (pw + wt), pw + wt, pk + k
        means.append(m)
        weights.append(wt)
        sizes.append(k)
    return np.repeat(np.array(means, dtype=np.float64), sizes)


def _worse(tier: str) -> str:
    """One tier below (a derived value is less sure than what it came from)."""
    return CONFIDENCES[max(CONFIDENCES.index(tier) - 1, 0)]


def _derive(g: float, grades: list[float], vals: list[Valuation],
            slope: float | None) -> Valuation | None:
    """A value for grade g from valued grades (ascending): log-linear between the nearest
    grade below and above (in log(1 + cents), so a low of 0 is fine); beyond the ends, the
    nearest one scaled by exp(slope·Δgrade)."""
    below = [i for i, x in enumerate(grades) if x < g]
    above = [i for i, x in enumerate(grades) if x > g]
    if below and above:
        i, j = below[-1], above[0]
        f = (g - grades[i]) / (grades[j] - grades[i])
        used = [vals[i], vals[j]]

        def mix(a: float, b: float) -> float:  # geometric, shifted by a cent to allow 0
            x = math.expm1(math.log1p(a) + f * (math.log1p(b) - math.log1p(a)))
            return min(max(x, min(a, b)), max(a, b))  # no rounding past a neighbour

        point = mix(vals[i].point, vals[j].point)
        low, high = mix(vals[i].low, vals[j].low), mix(vals[i].high, vals[j].high)
    else:
        if slope is None:
            return None
        k = below[-1] if below else above[0]
        scale = math.exp(slope * (g - grades[k]))
        used = vals  # the slope came from all of them
        point, low, high = (scale * vals[k].point, scale * vals[k].low, scale * vals[k].high)
    tier = min((v.confidence for v in used), key=CONFIDENCES.index)
    return Valuation(round(point), math.floor(low), math.ceil(high), _worse(tier), DERIVED,
                     sum(v.n for v in used), max(v.last_sale_at for v in used))


def grade_slope(grades: Sequence[float], points: Sequence[float]) -> float | None:
    """The observed grade ratio as a slope: least squares of log point on grade (value ×
    exp(slope) per grade step), floored at 0 so higher grades are never worth less. None
    with fewer than 2 distinct grades."""
    g = np.asarray(grades, dtype=np.float64)
    if np.unique(g).size < 2:
        return None
    y = np.log(np.maximum(np.asarray(points, dtype=np.float64), 1.0))
    gc = g - g.mean()
    return max(float(np.dot(gc, y - y.mean()) / np.dot(gc, gc)), 0.0)


def grade_ladder(grades: Sequence[float], values: Sequence[Valuation | None],
                 step_slope: float | None = None) -> list[Valuation | None]:
    """The values of one card and grader at `grades` (each once, any order), made whole and
    monotone.

    1. The sale-based values are made isotonic in grade: points, lows and highs each by
       `isotonic` weighted by n (PAVA preserves order, so low <= point <= high still holds).
    2. A grade with None is derived (method "derived", confidence one tier below the worst
       value used, n and last_sale_at of the values used): log-linear interpolation between
       the nearest valued grades below and above; beyond the ends, the nearest valued grade
       times exp(slope × grade difference), slope = `grade_slope` of the valued grades, else
       `step_slope` (e.g. the market's), else None. Both keep the order of step 1.
    Returns values in the order of `grades`; all None when no grade has a value.
    """
    if len(grades) != len(values):
        raise ValueError("grades and values must have the same length")
    if len(set(grades)) != len(grades):
        raise ValueError("each grade once")
    order = sorted(range(len(grades)), key=lambda i: grades[i])
    valued = [i for i in order if values[i] is not None]
    out: list[Valuation | None] = [None] * len(grades)
    if not valued:
        return out
    vs = [v for v in (values[i] for i in valued) if v is not None]
    w = np.array([max(v.n, 1) for v in vs], dtype=np.float64)
    cols = [isotonic([float(getattr(v, f)) for v in vs], w) for f in ("point", "low", "high")]
    fixed = [
        v._replace(point=round(p), low=math.floor(lo), high=math.ceil(hi))
        for v, p, lo, hi in zip(vs, *(c.tolist() for c in cols), strict=True)
    ]
    g_valued = [float(grades[i]) for i in valued]
    slope = grade_slope(g_valued, [v.point for v in fixed])
    if slope is None and step_slope is not None:
        slope = max(step_slope, 0.0)
    for i, v in zip(valued, fixed, strict=True):
        out[i] = v
    for i in order:
        if out[i] is None:
            out[i] = _derive(float(grades[i]), g_valued, fixed, slope)
    return out
