"""Risk of a daily return series: unsmoothing, volatility, VaR and CVaR, drawdown, beta,
Sharpe: pure numpy.

Conventions, each checked against empyrical-reloaded in the tests:
- Returns are simple daily returns (0.01 = +1%), from `market.performance.daily_returns`.
- A year is ANNUAL_DAYS = 365 days: cards sell on every day of the week and the snapshots are
  daily. empyrical: `annualization=365`.
- Standard deviations are sample ones (ddof = 1), as empyrical's.
- Losses are positive fractions of value: VaR = -(5th percentile of the returns, numpy's
  linear interpolation: empyrical's `value_at_risk`); CVaR = -(mean of the k + 1 lowest
  returns, k = floor((n - 1)·0.05): empyrical's `conditional_value_at_risk`), so VaR <= CVaR.
  A negative figure means even the worst days gained.
- 10-day figures are historical too, over the overlapping 10-day compounded returns
  Π_{j=t}^{t+9} (1 + r_j) - 1 (no √10 scaling: it assumes the independence that appraisal
  returns lack).
Returns built from appraisals are smoothed (each day's value leans on the last), which hides
volatility: `unsmooth` (Geltner) undoes that before volatility, VaR and Sharpe. Pure: no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from market.performance import wealth
from market.valuation import HIGH, MEDIUM

ANNUAL_DAYS = 365
CONFIDENCE = 0.95
HORIZON_DAYS = 10
PHI_MIN, PHI_MAX = 0.0, 0.9
MIN_RETURNS = 30  # fewer daily returns than this: risk figures are not shown
MIN_SHOWN_SHARE = 0.5  # share of value that must be at medium confidence or better

FloatArray = npt.NDArray[np.float64]


def _returns(returns: npt.ArrayLike) -> FloatArray:
    r = np.asarray(returns, dtype=np.float64)
    if r.ndim != 1:
        raise ValueError("returns must be 1-D")
    if not bool(np.isfinite(r).all()):
        raise ValueError("returns must be finite")
    return r


def lag1_autocorrelation(returns: npt.ArrayLike) -> float:
    """Pearson correlation of r_t with r_{t-1}; 0.0 with fewer than 3 returns or no spread."""
    r = _returns(returns)
    if r.size < 3:
        return 0.0
    a, b = r[1:], r[:-1]
    if float(np.std(a)) == 0.0 or float(np.std(b)) == 0.0:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def unsmooth(returns: npt.ArrayLike, phi: float | None = None) -> FloatArray:
    """Geltner unsmoothing: r_t = (r*_t - φ·r*_{t-1}) / (1 - φ) for t = 1..n-1 (one shorter:
    the first return has no predecessor). φ defaults to the series' lag-1 autocorrelation,
    clipped to [PHI_MIN, PHI_MAX] = [0, 0.9]: a negative one is not smoothing, and past 0.9
    the 1/(1 - φ) gain turns noise into risk. φ = 0 gives the returns back (less the first)."""
    r = _returns(returns)
    p = lag1_autocorrelation(r) if phi is None else float(phi)
    p = min(max(p, PHI_MIN), PHI_MAX)
    out: FloatArray = (r[1:] - p * r[:-1]) / (1.0 - p)
    return out


def volatility(returns: npt.ArrayLike, annual_days: int = ANNUAL_DAYS) -> float:
    """Annualised volatility: sample std × sqrt(annual_days) (empyrical `annual_volatility`
    with annualization=annual_days). NaN with fewer than 2 returns."""
    r = _returns(returns)
    return float(np.std(r, ddof=1)) * math.sqrt(annual_days) if r.size >= 2 else math.nan


def value_at_risk(returns: npt.ArrayLike, level: float = CONFIDENCE) -> float:
    """Historical VaR at `level`, a loss fraction (module doc). NaN for no returns."""
    r = _returns(returns)
    return -float(np.percentile(r, 100.0 * (1.0 - level))) if r.size else math.nan


def conditional_value_at_risk(returns: npt.ArrayLike, level: float = CONFIDENCE) -> float:
    """Historical CVaR (expected shortfall) at `level`, a loss fraction (module doc)."""
    r = _returns(returns)
    if r.size == 0:
        return math.nan
    k = int((r.size - 1) * (1.0 - level))
    return -float(np.mean(np.partition(r, k)[: k + 1]))


def horizon_returns(returns: npt.ArrayLike, days: int = HORIZON_DAYS) -> FloatArray:
    """The overlapping `days`-day compounded returns (n - days + 1 of them; none if shorter)."""
    r = _returns(returns)
    if r.size < days:
        return np.zeros(0)
    w = wealth(r)
    out: FloatArray = w[days:] / w[:-days] - 1.0
    return out


class Drawdown(NamedTuple):
    """depth: the worst fall from a running peak, a fraction <= 0 (0 when never below a peak);
    peak/trough/recovered: indexes into the series (recovered: the first point back at the
    peak's level after the trough, None if not yet); all None with no fall."""

    depth: float
    peak: int | None
    trough: int | None
    recovered: int | None


def max_drawdown(values: npt.ArrayLike) -> Drawdown:
    """The maximum drawdown of a value (or `wealth`) series; min(v / running max - 1). On
    `wealth(r)` this is empyrical's `max_drawdown(r)` (which anchors at 100 before r_1)."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or not bool(np.all(v >= 0)) or (v.size and v[0] <= 0):
        raise ValueError("values must be 1-D, >= 0, the first > 0")
    if v.size == 0:
        return Drawdown(0.0, None, None, None)
    peak_value = np.maximum.accumulate(v)
    dd = v / peak_value - 1.0
    trough = int(np.argmin(dd))
    depth = float(dd[trough])
    if depth >= 0.0:
        return Drawdown(0.0, None, None, None)
    peak = int(np.argmax(v[: trough + 1]))  # the first index holding the running max
    back = np.flatnonzero(v[trough:] >= v[peak])
    return Drawdown(depth, peak, trough, int(trough + back[0]) if back.size else None)


def beta(returns: npt.ArrayLike, market: npt.ArrayLike) -> float:
    """cov(r, m) / var(m) over the same days (empyrical `beta`); NaN when the market does not
    move or there are fewer than 2 days."""
    r, m = _returns(returns), _returns(market)
    if r.shape != m.shape:
        raise ValueError("returns and market must have the same length")
    if r.size < 2:
        return math.nan
    mc = m - m.mean()
    var = float(np.mean(mc * mc))
    return float(np.mean(mc * r)) / var if var > 1e-30 else math.nan


def daily_rate(annual_rate: float, annual_days: int = ANNUAL_DAYS) -> float:
    """The daily rate compounding to `annual_rate` over a year: (1 + a)^(1/annual_days) - 1."""
    return float((1.0 + annual_rate) ** (1.0 / annual_days) - 1.0)


def sharpe(returns: npt.ArrayLike, risk_free_annual: float = 0.0,
           annual_days: int = ANNUAL_DAYS) -> float:
    """Annualised Sharpe ratio: mean(r - rf) / std(r - rf) × sqrt(annual_days), rf the daily
    rate of `risk_free_annual` (empyrical `sharpe_ratio(r, risk_free=rf, annualization=
    annual_days)`). NaN with fewer than 2 returns or all equal (empyrical: ±inf)."""
    r = _returns(returns)
    if r.size < 2:
        return math.nan
    x = r - daily_rate(risk_free_annual, annual_days)
    if float(np.ptp(x)) == 0.0:  # all equal: std is 0 (or a rounding residue), ratio undefined
        return math.nan
    sd = float(np.std(x, ddof=1))
    return float(np.mean(x)) / sd * math.sqrt(annual_days) if sd > 0 else math.nan


def shown(values: Sequence[float], confidences: Sequence[str | None], n_returns: int,
          min_share: float = MIN_SHOWN_SHARE) -> tuple[bool, str | None]:
    """Whether risk figures mean anything: (True, None), or (False, reason) when there are
    fewer than MIN_RETURNS daily returns or less than `min_share` of the value is at medium
    confidence or better (a holding without value counts as not)."""
    if n_returns < MIN_RETURNS:
        return False, f"fewer than {MIN_RETURNS} days of history"
    total = float(sum(values))
    good = float(sum(v for v, c in zip(values, confidences, strict=True)
                     if c in (MEDIUM, HIGH)))
    if total <= 0 or good / total < min_share:
        return False, (f"less than {round(100 * min_share)}% of the value is at medium "
                       "confidence or better")
    return True, None


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def report(returns: npt.ArrayLike, days: npt.ArrayLike, market: npt.ArrayLike | None = None,
           risk_free_annual: float = 0.0, phi: float | None = None) -> dict[str, Any]:
    """The risk panel of a daily return series (oldest first; `days` the n + 1 day starts of
    the values they came from, as `performance.daily_returns` has it; `market` the index's
    returns on the same days): volatility, VaR/CVaR 95% 1-day and 10-day and Sharpe of the
    Geltner-unsmoothed returns; max drawdown (depth <= 0 and the days of its peak, trough and
    recovery) and beta of the returns as observed. NaN figures come back as None."""
    r = _returns(returns)
    d = np.asarray(days, dtype=np.int64)
    if d.shape != (r.size + 1,):
        raise ValueError("days must be one longer than returns")
    u = unsmooth(r, phi)
    u10 = horizon_returns(u)
    dd = max_drawdown(wealth(r))
    return {
        "phi": min(max(lag1_autocorrelation(r) if phi is None else phi, PHI_MIN), PHI_MAX),
        "volatility": _finite(volatility(u)),
        "var_95_1d": _finite(value_at_risk(u)),
        "cvar_95_1d": _finite(conditional_value_at_risk(u)),
        "var_95_10d": _finite(value_at_risk(u10)),
        "cvar_95_10d": _finite(conditional_value_at_risk(u10)),
        "max_drawdown": dd.depth,
        **{f"drawdown_{k}": None if i is None else int(d[i])
           for k, i in (("peak", dd.peak), ("trough", dd.trough), ("recovered", dd.recovered))},
        "beta": None if market is None else _finite(beta(r, market)),
        "sharpe": _finite(sharpe(u, risk_free_annual)),
    }
