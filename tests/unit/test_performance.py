"""market.performance: daily series, flows, the time-weighted return (checked against
empyrical's cum_returns_final), index pricing and the cost-basis and P/L rules."""

from __future__ import annotations

import empyrical
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from market.performance import (
    MINT,
    PURCHASE,
    SWAP,
    cost_basis,
    daily_flows,
    daily_returns,
    daily_values,
    realised_pnl,
    total_unrealised,
    twr,
    unrealised_pnl,
    wealth,
)
from market.prices import DAY_MS

DAY0 = 20_000 * DAY_MS  # a UTC midnight


def test_daily_values_carry_the_last_snapshot_forward() -> None:
    snaps_t = [DAY0 + 5, DAY0 + 2 * DAY_MS + 7, DAY0 + 2 * DAY_MS + 9]
    days, values = daily_values(snaps_t, [100, 200, 300], DAY0 - DAY_MS, DAY0 + 3 * DAY_MS + 1)
    assert days.tolist() == [DAY0 + k * DAY_MS for k in range(-1, 4)]
    assert values.tolist() == [0, 100, 100, 300, 300]


def test_daily_flows_split_in_and_out_per_day() -> None:
    days = [DAY0 + k * DAY_MS for k in range(3)]
    flows = daily_flows(days, [DAY0 + 1, DAY0 + 2, DAY0 + DAY_MS + 3, DAY0 - 1, DAY0 + 9 * DAY_MS],
                        [500, -200, 70, 999, 999])
    assert flows.inflow.tolist() == [500, 70, 0]
    assert flows.outflow.tolist() == [200, 0, 0]


def test_a_purchase_is_not_performance() -> None:
    # Empty, then a card bought for 100 that ends the day worth 100, then it gains 10%.
    r = daily_returns([0, 100, 110], [0, 100, 0], [0, 0, 0])
    assert r.tolist() == [0.0, pytest.approx(0.1)]
    # Bought for 100, worth 120 at the end of the day: that is performance.
    assert daily_returns([0, 120], [0, 100], [0, 0]).tolist() == [pytest.approx(0.2)]
    # Sold at 120 what was worth 100 (proceeds leave): +20%, and nothing is left.
    assert daily_returns([100, 0, 0], [0, 0, 0], [0, 120, 0]).tolist() == \
        [pytest.approx(0.2), 0.0]


@settings(max_examples=200, deadline=None)
@given(st.floats(-0.05, 0.05), st.integers(2, 60), st.data())
def test_twr_is_the_constant_return_whatever_the_flows(g: float, n: int,
                                                      data: st.DataObject) -> None:
    """A portfolio growing by g a day, with deposits at day starts and withdrawals at day ends
    on random days, has TWR (1 + g)^(n - 1) - 1; and so does the same series without flows."""
    inflow = data.draw(st.lists(st.integers(0, 10**6), min_size=n, max_size=n))
    outflow = data.draw(st.lists(st.integers(0, 10**6), min_size=n, max_size=n))
    values = [float(10**6 + inflow[0])]
    for i in range(1, n):
        v = (values[-1] + inflow[i]) * (1 + g)
        out = min(outflow[i], v)
        outflow[i] = out
        values.append(v - out)
    r = daily_returns(values, inflow, outflow)
    expected = (1 + g) ** (n - 1) - 1
    if all(values[i - 1] + inflow[i] > 0 for i in range(1, n)):
        assert twr(r) == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert twr(r) == pytest.approx(empyrical.cum_returns_final(r), rel=1e-12, abs=1e-15)
    assert wealth(r)[-1] == pytest.approx(1 + twr(r))


def test_cost_basis_rules() -> None:
    assert cost_basis(PURCHASE, price=10_000, premium=1_500) == 11_500
    assert cost_basis(SWAP, value_at_acquisition=8_000) == 8_000
    assert cost_basis(MINT) == 0
    with pytest.raises(ValueError):
        cost_basis(SWAP)
    with pytest.raises(ValueError):
        cost_basis("gift")


def test_profit_and_loss() -> None:
    assert unrealised_pnl(12_000, 11_500) == 500
    assert unrealised_pnl(None, 11_500) is None  # no value is not a loss of everything
    assert realised_pnl(proceeds=15_000, fees=1_500, basis=11_500) == 2_000
    assert total_unrealised([12_000, None, 900], [11_500, 400, 1_000]) == (400, 1)


def test_returns_of_a_short_series() -> None:
    assert daily_returns([5], [0], [0]).size == 0
    assert twr(np.zeros(0)) == 0.0
