"""market.risk: every figure checked against empyrical-reloaded (and pandas for the
autocorrelation and the rolling 10-day returns) on the same series, plus the properties
VaR <= CVaR, drawdown <= 0, and Geltner unsmoothing inverting a known smoothing."""

from __future__ import annotations

import math

import empyrical
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from market.performance import wealth
from market.risk import (
    ANNUAL_DAYS,
    PHI_MAX,
    beta,
    conditional_value_at_risk,
    daily_rate,
    horizon_returns,
    lag1_autocorrelation,
    max_drawdown,
    report,
    sharpe,
    shown,
    unsmooth,
    value_at_risk,
    volatility,
)
from market.valuation import HIGH, LOW, MEDIUM

DAY_MS = 86_400_000

# Daily returns to a hundredth of a basis point: what prices in cents can give.
series = arrays(np.float64, st.integers(12, 200),
                elements=st.integers(-300_000, 300_000).map(lambda k: k / 1e6))
close = {"rel": 1e-9, "abs": 1e-12}


def rng_returns(seed: int, n: int = 400) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0005, 0.02, n)


@settings(max_examples=150, deadline=None)
@given(series)
def test_volatility_var_cvar_match_empyrical(r: np.ndarray) -> None:
    assert volatility(r) == pytest.approx(
        empyrical.annual_volatility(r, annualization=ANNUAL_DAYS), **close)
    assert value_at_risk(r) == pytest.approx(-empyrical.value_at_risk(r, cutoff=0.05), **close)
    assert conditional_value_at_risk(r) == pytest.approx(
        -empyrical.conditional_value_at_risk(r, cutoff=0.05), **close)
    assert value_at_risk(r) <= conditional_value_at_risk(r) + 1e-12


@settings(max_examples=100, deadline=None)
@given(series)
def test_ten_day_figures_match_pandas_rolling_and_empyrical(r: np.ndarray) -> None:
    theirs = ((1 + pd.Series(r)).rolling(10).apply(np.prod, raw=True) - 1).dropna().to_numpy()
    mine = horizon_returns(r)
    np.testing.assert_allclose(mine, theirs, rtol=1e-9, atol=1e-12)
    assert value_at_risk(mine) == pytest.approx(-empyrical.value_at_risk(theirs), **close)
    assert conditional_value_at_risk(mine) == pytest.approx(
        -empyrical.conditional_value_at_risk(theirs), **close)
    assert value_at_risk(mine) <= conditional_value_at_risk(mine) + 1e-12


@settings(max_examples=150, deadline=None)
@given(series)
def test_drawdown_matches_empyrical_and_is_never_positive(r: np.ndarray) -> None:
    dd = max_drawdown(wealth(r))
    assert dd.depth <= 0.0
    assert dd.depth == pytest.approx(empyrical.max_drawdown(r), **close)
    if dd.depth < 0:
        w = wealth(r)
        assert dd.peak is not None and dd.trough is not None
        assert dd.peak < dd.trough
        assert w[dd.trough] / w[dd.peak] - 1 == pytest.approx(dd.depth)
        if dd.recovered is not None:
            assert w[dd.recovered] >= w[dd.peak] and dd.recovered > dd.trough
            assert not np.any(w[dd.trough:dd.recovered] >= w[dd.peak])
        else:
            assert not np.any(w[dd.trough:] >= w[dd.peak])


def test_drawdown_dates() -> None:
    values = [100, 120, 90, 60, 100, 125, 130]
    assert tuple(max_drawdown(values)) == (-0.5, 1, 3, 5)
    assert tuple(max_drawdown([1, 2, 3])) == (0.0, None, None, None)
    days = [k * DAY_MS for k in range(len(values))]
    r = np.diff(values) / np.array(values[:-1], dtype=float)
    out = report(r, days, phi=0.0)
    assert (out["drawdown_peak"], out["drawdown_trough"], out["drawdown_recovered"]) == \
        (days[1], days[3], days[5])


@settings(max_examples=150, deadline=None)
@given(series, st.integers(0, 2**32 - 1))
def test_beta_matches_empyrical(r: np.ndarray, seed: int) -> None:
    m = np.random.default_rng(seed).normal(0, 0.01, r.size)
    assert beta(r, m) == pytest.approx(empyrical.beta(r, m), **close)
    assert beta(2 * m, m) == pytest.approx(2.0)


@settings(max_examples=150, deadline=None)
@given(series, st.floats(0.0, 0.1))
def test_sharpe_matches_empyrical(r: np.ndarray, rf: float) -> None:
    mine = sharpe(r, risk_free_annual=rf)
    theirs = empyrical.sharpe_ratio(r, risk_free=daily_rate(rf), annualization=ANNUAL_DAYS)
    if not math.isfinite(theirs):  # no spread: empyrical says ±inf or NaN, we say NaN
        assert math.isnan(mine)
    else:
        assert mine == pytest.approx(theirs, rel=1e-9, abs=1e-9)


def test_daily_rate_compounds_to_the_annual_rate() -> None:
    assert (1 + daily_rate(0.05)) ** ANNUAL_DAYS == pytest.approx(1.05)


@settings(max_examples=100, deadline=None)
@given(series)
def test_lag1_autocorrelation_matches_pandas(r: np.ndarray) -> None:
    s = pd.Series(r)
    theirs = s.autocorr(lag=1)
    if np.std(r[1:]) == 0 or np.std(r[:-1]) == 0 or math.isnan(theirs):
        assert lag1_autocorrelation(r) == 0.0
    else:
        assert lag1_autocorrelation(r) == pytest.approx(theirs, rel=1e-6, abs=1e-9)


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2**32 - 1), st.floats(0.0, PHI_MAX))
def test_unsmoothing_inverts_geltner_smoothing(seed: int, phi: float) -> None:
    """Appraisal smoothing r*_t = (1 - φ)·r_t + φ·r*_{t-1} is undone exactly with that φ."""
    true = rng_returns(seed, 300)
    smooth = np.empty_like(true)
    smooth[0] = true[0]
    for t in range(1, true.size):
        smooth[t] = (1 - phi) * true[t] + phi * smooth[t - 1]
    np.testing.assert_allclose(unsmooth(smooth, phi), true[1:], rtol=1e-7, atol=1e-12)


def test_unsmoothing_raises_the_volatility_of_a_smoothed_series() -> None:
    true = rng_returns(3, 2000)
    smooth = np.empty_like(true)
    smooth[0] = true[0]
    for t in range(1, true.size):
        smooth[t] = 0.2 * true[t] + 0.8 * smooth[t - 1]
    assert lag1_autocorrelation(smooth) == pytest.approx(0.8, abs=0.05)
    assert volatility(smooth) < 0.5 * volatility(true)
    assert volatility(unsmooth(smooth)) == pytest.approx(volatility(true), rel=0.1)
    # Negative autocorrelation is not smoothing: φ is clipped to 0, returns left as they are.
    alternating = np.array([0.01, -0.01] * 20)
    np.testing.assert_array_equal(unsmooth(alternating), alternating[1:])


def test_report_figures_are_consistent() -> None:
    r = rng_returns(11)
    m = r * 0.5 + np.random.default_rng(12).normal(0, 0.01, r.size)
    days = [k * DAY_MS for k in range(r.size + 1)]
    out = report(r, days, market=m, risk_free_annual=0.03)
    u = unsmooth(r)
    assert out["volatility"] == pytest.approx(volatility(u))
    assert out["var_95_1d"] <= out["cvar_95_1d"]
    assert out["var_95_10d"] <= out["cvar_95_10d"]
    assert out["max_drawdown"] <= 0
    assert out["beta"] == pytest.approx(empyrical.beta(r, m))
    assert report(r[:5], days[:6])["var_95_10d"] is None  # too short for a 10-day return


def test_risk_is_shown_only_on_enough_confident_value() -> None:
    assert shown([60, 40], [MEDIUM, LOW], 100) == (True, None)
    ok, reason = shown([40, 60], [HIGH, None], 100)
    assert not ok and reason is not None and "confidence" in reason
    ok, reason = shown([100], [HIGH], 10)
    assert not ok and reason is not None and "days" in reason
