"""A portfolio's value over time, its time-weighted return and its profit and loss: pure numpy.

A *flow* is money or a card entering or leaving the measured portfolio from outside it: a
deposit or a purchase (in, > 0: the cash paid), a withdrawal or a sale (out, < 0: the proceeds).
Flows are not performance. Daily snapshots are end-of-day values (int cents) at day starts
(int epoch ms UTC, `market.prices.bucket_start(..., "1d")`). Convention for a day's flows:
inflows are invested at the start of the day, outflows taken at its end, so the day's return is

    r_i = (V_i + out_i) / (V_{i-1} + in_i) - 1        (out_i >= 0 is the amount taken out)

and the time-weighted return chains the days: TWR = Π (1 + r_i) - 1. A portfolio that grows
by g a day has r_i = g whatever its flows. A day with nothing invested (V_{i-1} + in_i <= 0)
has r_i = 0. Pure: no I/O, no clock.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from market.prices import DAY_MS, bucket_start

PURCHASE, SWAP, MINT = "purchase", "swap", "mint"
ACQUISITIONS: tuple[str, ...] = (PURCHASE, SWAP, MINT)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


class DailyFlows(NamedTuple):
    """Per day of a series: the money that came in (>= 0) and that went out (>= 0), cents."""

    inflow: IntArray
    outflow: IntArray


def daily_values(snap_t: npt.ArrayLike, snap_value: npt.ArrayLike, start: int,
                 end: int) -> tuple[IntArray, IntArray]:
    """(days, values): every UTC day from the day of `start` to that of `end`, each with the
    value of the last snapshot before the day ends (carried forward over days without one; 0
    before the first). Snapshots ascending by time."""
    t = np.asarray(snap_t, dtype=np.int64)
    v = np.asarray(snap_value, dtype=np.int64)
    if t.ndim != 1 or t.shape != v.shape:
        raise ValueError("snap_t and snap_value must be 1-D of the same length")
    lo, hi = (int(x) for x in bucket_start(np.array([start, end]), "1d"))
    days = np.arange(lo, hi + 1, DAY_MS, dtype=np.int64)
    i = np.searchsorted(t, days + DAY_MS, side="left") - 1  # last snapshot before day's end
    return days, np.where(i >= 0, v[np.maximum(i, 0)], 0).astype(np.int64)


def daily_flows(days: npt.ArrayLike, flow_t: npt.ArrayLike,
                flow_amount: npt.ArrayLike) -> DailyFlows:
    """The flows (signed cents, any order) summed into the days of a series (day starts,
    ascending, one day apart); flows outside the days are ignored."""
    d = np.asarray(days, dtype=np.int64)
    t = np.asarray(flow_t, dtype=np.int64)
    a = np.asarray(flow_amount, dtype=np.int64)
    if t.ndim != 1 or t.shape != a.shape:
        raise ValueError("flow_t and flow_amount must be 1-D of the same length")
    if d.size == 0:
        return DailyFlows(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
    i = (bucket_start(t, "1d") - d[0]) // DAY_MS
    keep = (i >= 0) & (i < d.size)
    i, a = i[keep], a[keep]
    inflow = np.bincount(i, np.where(a > 0, a, 0), d.size).astype(np.int64)
    outflow = np.bincount(i, np.where(a < 0, -a, 0), d.size).astype(np.int64)
    return DailyFlows(inflow, outflow)


def daily_returns(values: npt.ArrayLike, inflow: npt.ArrayLike,
                  outflow: npt.ArrayLike) -> FloatArray:
    """r_i for days 1..n-1 of a daily series (module doc): length n - 1. The flows of day 0
    only set its value."""
    v = np.asarray(values, dtype=np.float64)
    fin = np.asarray(inflow, dtype=np.float64)
    fout = np.asarray(outflow, dtype=np.float64)
    if v.ndim != 1 or v.shape != fin.shape or v.shape != fout.shape:
        raise ValueError("values, inflow and outflow must be 1-D of the same length")
    if v.size < 2:
        return np.zeros(0)
    base = v[:-1] + fin[1:]
    end = v[1:] + fout[1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(base > 0, end / np.where(base > 0, base, 1.0) - 1.0, 0.0)
    return r.astype(np.float64)


def twr(returns: npt.ArrayLike) -> float:
    """Time-weighted return of daily returns: Π (1 + r_i) - 1 (0.0 for none). This is
    empyrical's `cum_returns_final`."""
    r = np.asarray(returns, dtype=np.float64)
    return float(np.prod(1.0 + r) - 1.0)


def wealth(returns: npt.ArrayLike) -> FloatArray:
    """The growth of 1 invested before the first return: [1, 1+r_1, (1+r_1)(1+r_2), ...],
    one longer than `returns`: the performance curve with the flows taken out."""
    r = np.asarray(returns, dtype=np.float64)
    return np.concatenate(([1.0], np.cumprod(1.0 + r)))


# --- cost basis and profit and loss -------------------------------------------------------


def cost_basis(how: str, price: int = 0, premium: int = 0,
               value_at_acquisition: int | None = None) -> int:
    """What a holding cost, cents: a purchase (an auction won, a bought offer) the price plus
    the buyer's premium paid; a swap, the cash-equivalent value of what was given, taken at
    acquisition (`value_at_acquisition`, which must be known); a mint, 0."""
    if how == PURCHASE:
        if price < 0 or premium < 0:
            raise ValueError("price and premium must be >= 0")
        return int(price) + int(premium)
    if how == SWAP:
        if value_at_acquisition is None or value_at_acquisition < 0:
            raise ValueError("a swap's cost basis needs its value at acquisition (>= 0)")
        return int(value_at_acquisition)
    if how == MINT:
        return 0
    raise ValueError(f"how must be one of {', '.join(ACQUISITIONS)}, not {how!r}")


def unrealised_pnl(value: int | None, basis: int) -> int | None:
    """Value now minus cost basis; None when the holding has no value (never counted as 0)."""
    return None if value is None else int(value) - int(basis)


def realised_pnl(proceeds: int, fees: int, basis: int) -> int:
    """What a sale made: proceeds less the seller's fees less the cost basis, cents."""
    return int(proceeds) - int(fees) - int(basis)


def total_unrealised(values: list[int | None], bases: list[int]) -> tuple[int, int]:
    """(Σ unrealised P/L over the holdings with a value, how many holdings have none)."""
    if len(values) != len(bases):
        raise ValueError("values and bases must have the same length")
    pnl = [unrealised_pnl(v, b) for v, b in zip(values, bases, strict=True)]
    return sum(p for p in pnl if p is not None), sum(p is None for p in pnl)
