"""market.valuation: index adjustment, the median and its bootstrap interval, widening of few
sales, confidence tiers, PAVA (checked against scipy's isotonic_regression) and the grade
ladder (derived grades, never inverted)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import isotonic_regression

from market.prices import DAY_MS
from market.valuation import (
    DERIVED,
    HIGH,
    LOW,
    MEDIUM,
    SALE_LOG_SIGMA,
    SALES,
    Z_80,
    Valuation,
    adjusted_sales,
    confidence,
    grade_ladder,
    grade_slope,
    index_daily_volatility,
    index_level,
    isotonic,
    value_segment,
)

NOW = 1_750_000_000_000


def days_ago(*d: float) -> list[int]:
    return [NOW - int(x * DAY_MS) for x in d]


def test_index_level_is_a_step_function() -> None:
    t, v = [100, 200, 300], [1.0, 2.0, 4.0]
    assert index_level(t, v, [50, 100, 199, 200, 1000]).tolist() == [1.0, 1.0, 1.0, 2.0, 4.0]
    assert index_level([], [], [5, 6]).tolist() == [1.0, 1.0]


def test_sales_are_adjusted_to_today_by_the_index() -> None:
    # The index doubled since the first sale and is flat since the second.
    t = days_ago(400, 100)
    sales = adjusted_sales(days_ago(200, 50), [1000, 3000], NOW, t, [100.0, 200.0])
    assert sales.factor.tolist() == [2.0, 1.0]
    assert sales.adjusted.tolist() == [2000.0, 3000.0]
    v = value_segment(days_ago(200, 50), [1000, 3000], NOW, t, [100.0, 200.0])
    assert v is not None and v.point == 2500 and v.n == 2 and v.method == SALES


def test_only_the_last_ten_sales_within_a_year_count() -> None:
    at = days_ago(400, *range(20, 0, -1))  # one too old, then 20 in order
    price = [1_000_000, *range(100, 120)]
    sales = adjusted_sales(at, price, NOW)
    assert sales.price.tolist() == list(range(110, 120))
    v = value_segment(at, price, NOW)
    assert v is not None and v.n == 10 and v.last_sale_at == days_ago(1)[0]
    assert v.point == round(float(np.median(np.arange(110, 120))))


def test_no_sale_in_the_window_is_no_value_not_zero() -> None:
    assert value_segment(days_ago(366), [500], NOW) is None
    assert value_segment([], [], NOW) is None
    assert value_segment(days_ago(-1), [500], NOW) is None  # a sale after `now`


def test_confidence_tiers() -> None:
    assert confidence(days_ago(1, 40, 50, 60, 70), NOW) == HIGH
    assert confidence(days_ago(31, 40, 50, 60, 70), NOW) == MEDIUM  # none within 30 days
    assert confidence(days_ago(80, 85), NOW) == MEDIUM
    assert confidence(days_ago(80, 95), NOW) == LOW
    assert confidence(days_ago(1), NOW) == LOW


def test_one_sale_is_widened_by_the_stated_formula() -> None:
    # Index: 1% a day up, steadily: σ_d² = Σ(Δlog)² / days.
    t = [NOW - 100 * DAY_MS + k * DAY_MS for k in range(101)]
    lv = [100.0 * 1.01 ** k for k in range(101)]
    sigma = index_daily_volatility(t, lv)
    assert sigma == pytest.approx(math.log(1.01))
    v = value_segment(days_ago(20), [10_000], NOW, t, lv)
    assert v is not None
    w = Z_80 * math.sqrt(sigma ** 2 * 20 + SALE_LOG_SIGMA ** 2)
    point = 10_000 * lv[-1] / lv[80]
    assert v.point == round(point)
    assert v.low == math.floor(point * math.exp(-w))
    assert v.high == math.ceil(point * math.exp(w))


def test_five_identical_sales_have_no_spread() -> None:
    v = value_segment(days_ago(1, 2, 3, 4, 5), [700] * 5, NOW)
    assert v == Valuation(700, 700, 700, HIGH, SALES, 5, days_ago(1)[0])


def test_the_interval_is_deterministic_given_the_seed() -> None:
    at, price = days_ago(1, 2, 3, 5, 8, 13, 21), [100, 130, 90, 150, 110, 95, 170]
    assert value_segment(at, price, NOW, seed=7) == value_segment(at, price, NOW, seed=7)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 400), st.integers(1, 10**7)), min_size=1,
                max_size=25),
       st.integers(0, 2**32 - 1))
def test_the_interval_contains_the_value(sales: list[tuple[int, int]], seed: int) -> None:
    at = days_ago(*(d for d, _ in sales))
    price = [p for _, p in sales]
    v = value_segment(at, price, NOW, seed=seed)
    recent = [p for d, p in sales if d < 365]
    if not recent:
        assert v is None
        return
    assert v is not None
    assert 0 <= v.low <= v.point <= v.high
    spread = math.exp(2 * SALE_LOG_SIGMA)  # the widening's bound with a flat index: Z_80 < 2
    assert min(recent) / spread - 1 <= v.low and v.high <= max(recent) * spread + 1


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(-1e6, 1e6), st.floats(0.01, 100)), min_size=1,
                max_size=40))
def test_pava_matches_scipy(data: list[tuple[float, float]]) -> None:
    y = np.array([a for a, _ in data])
    w = np.array([b for _, b in data])
    mine = isotonic(y, w)
    theirs = isotonic_regression(y, weights=w).x
    np.testing.assert_allclose(mine, theirs, rtol=1e-9, atol=1e-6)


def val(point: int, spread: int = 0, n: int = 3, tier: str = MEDIUM,
        last: int = NOW) -> Valuation:
    return Valuation(point, point - spread, point + spread, tier, SALES, n, last)


def test_a_missing_grade_is_interpolated_by_the_observed_ratio() -> None:
    out = grade_ladder([9, 9.5, 10], [val(100), None, val(400, tier=HIGH)])
    derived = out[1]
    assert derived is not None and derived.method == DERIVED
    assert derived.point == 200  # geometric midway: the ratio 10 / 9 is 4, so 2 per half
    assert derived.confidence == LOW  # one below the worst used (medium)
    assert derived.n == 6


def test_a_grade_beyond_the_ends_is_extrapolated_by_the_fitted_slope() -> None:
    out = grade_ladder([7, 8, 9, 10], [val(100), val(200), None, None])
    assert grade_slope([7, 8], [100, 200]) == pytest.approx(math.log(2))
    assert [v.point if v else None for v in out] == [100, 200, 400, 800]
    # One valued grade: no observed ratio, so nothing to derive from unless one is given.
    assert grade_ladder([8, 9], [val(200), None]) == [val(200), None]
    given_slope = grade_ladder([8, 9], [val(200), None], step_slope=math.log(1.5))[1]
    assert given_slope is not None and given_slope.point == 300
    assert grade_ladder([8, 9], [None, None]) == [None, None]


def test_inverted_grades_are_pooled() -> None:
    out = grade_ladder([9, 10], [val(500, n=3), val(300, n=1)])
    assert [v.point for v in out if v] == [450, 450]  # weighted by n


values = st.one_of(st.none(), st.integers(1, 10**6).flatmap(lambda p: st.builds(
    val, st.just(p), st.integers(0, p), st.integers(1, 10),
    st.sampled_from([LOW, MEDIUM, HIGH]))))


@settings(max_examples=200, deadline=None)
@given(st.lists(values, min_size=1, max_size=19), st.randoms(use_true_random=False))
def test_the_ladder_never_inverts(vals: list[Valuation | None], rnd: object) -> None:
    grades = [1 + k / 2 for k in range(len(vals))]
    order = list(range(len(vals)))
    rnd.shuffle(order)  # type: ignore[attr-defined]
    out = grade_ladder([grades[i] for i in order], [vals[i] for i in order])
    by_grade = sorted(zip((grades[i] for i in order), out, strict=True))
    got = [v for _, v in by_grade]
    if all(v is None for v in vals):
        assert got == [None] * len(vals)
        return
    present = [v for v in got if v is not None]
    for f in ("low", "point", "high"):
        seq = [getattr(v, f) for v in present]
        assert seq == sorted(seq), f
    assert all(v.low <= v.point <= v.high for v in present)
    for before, after in zip(vals, got, strict=True):
        if before is not None:
            assert after is not None and after.method == SALES
        elif after is not None:
            assert after.method == DERIVED
    valued = sum(v is not None for v in vals)
    if valued >= 2 or len(vals) == 1:
        assert None not in got
