"""market.segment_stats (every segment at once) against the per-segment references of
market.prices (`trailing_medians`, `segment_value`, `candles`), group by group, on the same
sales: random segments (some empty), times around the windows' edges, ties in time, prices
up to MAX_AMOUNT."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt
from hypothesis import given, settings
from hypothesis import strategies as st

from market import prices
from market import segment_stats as ss
from market.money import MAX_AMOUNT
from market.prices import DAY_MS, INTERVALS

Sales = list[tuple[int, int]]  # one segment's (at, price), sorted by at, ties in feed order
NOW = 1_700_000_000_000 - 1_700_000_000_000 % DAY_MS + 12 * 3_600_000  # a noon, UTC
# The edges the windows are cut at, relative to `now`: the medians' 7/30/90 days, the value's
# 90 days (at now and 30 days before it: 30 + 90) and the value 30 days ago itself.
EDGES = sorted({d * DAY_MS for d in (0, 7, 30, 60, 90, 97, 120, 180)})
OFFSETS = st.one_of(
    st.integers(-200 * DAY_MS, 3 * DAY_MS),
    st.sampled_from(EDGES).flatmap(lambda e: st.integers(-e - 1, -e + 1)),
    st.sampled_from([-3 * DAY_MS, -40 * DAY_MS]),  # a few fixed times: ties
)
PRICES = st.one_of(st.integers(1, 10_000), st.integers(1, MAX_AMOUNT),
                   st.sampled_from([100, 101, 250]))


def _sorted(xs: Sales) -> Sales:
    return sorted(xs, key=lambda s: s[0])  # stable: ties keep the drawn (feed) order


segments_st = st.lists(st.lists(st.tuples(OFFSETS.map(lambda o: NOW + o), PRICES),
                                max_size=25).map(_sorted), max_size=7)


def flatten(groups: list[Sales]) -> tuple[npt.NDArray[np.int64], ...]:
    """(ids, at, price) sorted by (ids, at): the form segment_stats takes."""
    ids = [i for i, g in enumerate(groups) for _ in g]
    at = [a for g in groups for a, _ in g]
    price = [p for g in groups for _, p in g]
    return (np.array(ids, dtype=np.int64), np.array(at, dtype=np.int64),
            np.array(price, dtype=np.int64))


def cents(x: float) -> int | None:
    """How the projections read a figure: NaN is none, else rounded (half to even)."""
    return None if math.isnan(x) else round(x)


def half_cents(x: float, ref: int | None) -> bool:
    """x is the exact mean of two prices: a whole or half cent within half a cent of ref."""
    if ref is None:
        return math.isnan(x)
    return abs(x - ref) <= 0.5 and (2 * x) == int(2 * x)


def arrays(g: Sales) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    return (np.array([a for a, _ in g], dtype=np.int64),
            np.array([p for _, p in g], dtype=np.int64))


# -- stats ----------------------------------------------------------------------------------
def check_stats(groups: list[Sales], now: int, extra: int = 0) -> None:
    n = len(groups) + extra  # `extra` trailing groups without a sale
    ids, at, price = flatten(groups)
    got = ss.stats(ids, at, price, now, n)
    assert set(got) == {"count", "last_price", "last_at", "median_7d", "median_30d",
                        "median_90d", "value", "value_7d_ago", "value_30d_ago",
                        "value_90d_ago", "count_30d", "volume_30d", "count_prev_30d",
                        "volume_prev_30d"}
    assert all(v.shape == (n,) for v in got.values())
    for i, g in enumerate([*groups, *([[]] * extra)]):
        a, p = arrays(g)
        assert got["count"][i] == len(g)
        assert cents(got["last_price"][i]) == (g[-1][1] if g else None)
        assert cents(got["last_at"][i]) == (g[-1][0] if g else None)
        medians = prices.trailing_medians(a, p, now)
        for name, ref in medians.items():
            assert cents(got[name][i]) == ref, (i, name)
            assert half_cents(got[name][i], ref)
        value = prices.segment_value(a, p, now)
        assert cents(got["value"][i]) == value
        assert half_cents(got["value"][i], value)
        for d in (7, 30, 90):
            assert cents(got[f"value_{d}d_ago"][i]) == prices.segment_value(a, p,
                                                                           now - d * DAY_MS)
        for name, lo, hi in (("30d", now - 30 * DAY_MS, now),
                             ("prev_30d", now - 60 * DAY_MS, now - 30 * DAY_MS)):
            inside = [q for t, q in g if lo < t <= hi]
            assert got[f"count_{name}"][i] == len(inside)
            # Exact below 2**53 (floats hold integers exactly there); close above it.
            assert math.isclose(got[f"volume_{name}"][i], sum(inside), rel_tol=2**-52)
            assert got[f"volume_{name}"][i] == sum(inside) or sum(inside) > 2**53


@settings(max_examples=120, deadline=None)
@given(segments_st, st.integers(0, 2))
def test_stats_equal_the_per_segment_references(groups: list[Sales], extra: int) -> None:
    check_stats(groups, NOW, extra)


@settings(deadline=None)
@given(segments_st, OFFSETS)
def test_stats_at_any_now(groups: list[Sales], shift: int) -> None:
    check_stats(groups, NOW + shift)


def test_stats_of_nothing() -> None:
    empty = np.zeros(0, dtype=np.int64)
    got = ss.stats(empty, empty, empty, NOW, 0)
    assert all(v.shape == (0,) for v in got.values())
    got = ss.stats(empty, empty, empty, NOW, 3)
    assert got["count"].tolist() == [0, 0, 0]
    totals = {"count", "count_30d", "volume_30d", "count_prev_30d", "volume_prev_30d"}
    assert all(x == 0 for k in totals for x in got[k])
    assert all(math.isnan(x) for k, v in got.items() if k not in totals for x in v)


def test_stats_with_an_empty_group_between_others() -> None:
    groups: list[Sales] = [[(NOW - DAY_MS, 100), (NOW, 300)], [], [(NOW - 2, 7)], []]
    check_stats(groups, NOW)
    ids, at, price = flatten(groups)
    got = ss.stats(ids, at, price, NOW, 4)
    assert got["count"].tolist() == [2, 0, 1, 0]
    assert got["median_7d"][0] == 200 and math.isnan(got["median_7d"][1])
    assert got["last_price"][2] == 7 and math.isnan(got["last_price"][3])


def test_window_edges_exactly() -> None:
    # A sale exactly d days old is out of the d-day window; one a millisecond younger is in;
    # a sale after `now` counts for nothing but the totals (count, last sale).
    for d in (7, 30, 90):
        groups: list[Sales] = [[(NOW - d * DAY_MS, 1_000), (NOW - d * DAY_MS + 1, 10)],
                               [(NOW - d * DAY_MS, 1_000)], [(NOW + 1, 5)]]
        check_stats(groups, NOW)
        ids, at, price = flatten(groups)
        got = ss.stats(ids, at, price, NOW, 3)
        assert got[f"median_{d}d"][0] == 10 and math.isnan(got[f"median_{d}d"][1])
        assert math.isnan(got["value"][2]) and got["last_price"][2] == 5
    # The value: the 90 days end at `now`, and 30 days earlier at now - 30 days.
    groups = [[(NOW - 90 * DAY_MS, 1_000), (NOW - 90 * DAY_MS + 1, 10)],
              [(NOW - 120 * DAY_MS, 1_000), (NOW - 120 * DAY_MS + 1, 10), (NOW - 30 * DAY_MS, 4)]]
    check_stats(groups, NOW)
    ids, at, price = flatten(groups)
    got = ss.stats(ids, at, price, NOW, 2)
    assert got["value"].tolist() == [10, 4]
    assert got["value_30d_ago"].tolist() == [505, 7]


def test_ties_in_time_keep_feed_order() -> None:
    # Same `at`: the last in feed order is the last sale, and the value takes the latest five
    # in that order.
    groups: list[Sales] = [[(NOW, p) for p in (900, 1, 2, 3, 4, 5, 600)]]
    check_stats(groups, NOW)
    ids, at, price = flatten(groups)
    got = ss.stats(ids, at, price, NOW, 1)
    assert got["last_price"][0] == 600
    assert got["value"][0] == 4  # median of 2, 3, 4, 5, 600


# -- values_at ------------------------------------------------------------------------------
@settings(max_examples=120, deadline=None)
@given(segments_st, OFFSETS, st.integers(1, 7), st.integers(1, 130), st.integers(0, 2))
def test_values_at_equal_segment_value(groups: list[Sales], shift: int, sales: int,
                                       max_age_days: int, extra: int) -> None:
    n = len(groups) + extra
    ids, at, price = flatten(groups)
    t = NOW + shift
    got = ss.values_at(ids, at, price, t, n, sales=sales, max_age_days=max_age_days)
    assert got.shape == (n,)
    for i, g in enumerate([*groups, *([[]] * extra)]):
        ref = prices.segment_value(*arrays(g), t, n=sales, max_age_days=max_age_days)
        assert cents(got[i]) == ref, i
        assert half_cents(got[i], ref)


def test_values_at_edges() -> None:
    t = NOW
    g: Sales = [(t - 90 * DAY_MS, 1), (t - 90 * DAY_MS + 1, 2), (t, 3), (t + 1, 1_000)]
    ids, at, price = flatten([g])
    # 90 days exactly is too old; the future sale does not count; `sales` cuts the oldest.
    assert ss.values_at(ids, at, price, t, 1).tolist() == [2.5]
    assert ss.values_at(ids, at, price, t, 1, sales=1).tolist() == [3.0]
    assert ss.values_at(ids, at, price, t + 1, 1, sales=1).tolist() == [1_000.0]
    assert math.isnan(ss.values_at(ids, at, price, t - 90 * DAY_MS - 1, 1)[0])
    empty = np.zeros(0, dtype=np.int64)
    assert ss.values_at(empty, empty, empty, t, 0).shape == (0,)
    assert math.isnan(ss.values_at(empty, empty, empty, t, 1)[0])


# -- group_median ---------------------------------------------------------------------------
@settings(deadline=None)
@given(segments_st, st.data())
def test_group_median_equals_median_int_per_group(groups: list[Sales], data: Any) -> None:
    ids, _, price = flatten(groups)
    mask = np.array(data.draw(st.lists(st.booleans(), min_size=len(ids), max_size=len(ids))),
                    dtype=bool)
    n = len(groups)
    got = ss.group_median(ids, price, mask, n)
    assert got.shape == (n,)
    for i in range(n):
        chosen = price[(ids == i) & mask]
        ref = prices.median_int(chosen) if chosen.size else None
        assert cents(got[i]) == ref
        assert half_cents(got[i], ref)


def test_group_median_examples() -> None:
    ids = np.array([0, 0, 0, 0, 2, 2, 2], dtype=np.int64)
    v = np.array([4, 1, 3, 2, 9, 5, 7], dtype=np.int64)  # not sorted within a group
    everything = np.ones(7, dtype=bool)
    got = ss.group_median(ids, v, everything, 4)
    assert got[0] == 2.5 and math.isnan(got[1]) and got[2] == 7 and math.isnan(got[3])
    none = np.zeros(7, dtype=bool)
    assert np.isnan(ss.group_median(ids, v, none, 3)).all()
    # The largest amounts: the mean of two still rounds like median_int (half to even).
    big = np.array([MAX_AMOUNT - 1, MAX_AMOUNT - 2, MAX_AMOUNT, MAX_AMOUNT - 3], dtype=np.int64)
    pairs = np.array([0, 0, 1, 1], dtype=np.int64)
    got = ss.group_median(pairs, big, np.ones(4, dtype=bool), 2)
    assert [round(x) for x in got] == [prices.median_int(big[:2]), prices.median_int(big[2:])]


# -- candles --------------------------------------------------------------------------------
def check_candles(groups: list[Sales], interval: str) -> None:
    ids, at, price = flatten(groups)
    got = ss.candles(ids, at, price, interval)
    assert set(got) == {"id", "t", "open", "high", "low", "close", "volume", "count"}
    rows = [{k: int(v[r]) for k, v in got.items()} for r in range(len(got["id"]))]
    for i, g in enumerate(groups):
        mine = [{k: v for k, v in row.items() if k != "id"} for row in rows if row["id"] == i]
        assert mine == prices.candles(*arrays(g), interval), (i, interval)
    assert [r["id"] for r in rows] == sorted(r["id"] for r in rows)


# Many sales in a few days so buckets hold several, with ties; prices modest (volume sums).
dense_st = st.lists(st.lists(st.tuples(
    st.integers(-20 * DAY_MS, 0).map(lambda x: NOW + x - x % 3_600_000),
    st.integers(1, 10**9)), max_size=30).map(_sorted), max_size=6)


@settings(max_examples=120, deadline=None)
@given(dense_st | segments_st.map(lambda gs: [[(a, p % 10**9 + 1) for a, p in g] for g in gs]),
       st.sampled_from(INTERVALS))
def test_candles_equal_the_per_segment_candles(groups: list[Sales], interval: str) -> None:
    check_candles(groups, interval)


def test_candles_edges() -> None:
    for interval in INTERVALS:
        empty = np.zeros(0, dtype=np.int64)
        got = ss.candles(empty, empty, empty, interval)
        assert all(v.shape == (0,) for v in got.values())
        check_candles([], interval)
        check_candles([[], [(NOW, 5)], []], interval)
    # Bucket edges: the last millisecond of a day / ISO week and the first of the next;
    # two groups with sales in the same bucket stay two candles.
    day = NOW - NOW % DAY_MS
    monday = int(prices.bucket_start(np.array([NOW]), "1w")[0])
    groups: list[Sales] = [[(day - 1, 10), (day, 20), (day, 30), (day + DAY_MS - 1, 5)],
                           [(monday - 1, 7), (monday, 8)], [(day, 1)]]
    for interval in INTERVALS:
        check_candles(groups, interval)
    ids, at, price = flatten(groups)
    got = ss.candles(ids, at, price, "1d")
    assert got["id"].tolist()[:2] == [0, 0]
    assert got["t"].tolist()[:2] == [day - DAY_MS, day]
    assert [got[k][1] for k in ("open", "high", "low", "close", "volume", "count")] == \
        [20, 30, 5, 5, 55, 3]


# -- moving averages ---------------------------------------------------------------------------
@settings(max_examples=150, deadline=None)
@given(segments_st, st.lists(st.tuples(st.integers(0, 8), OFFSETS), max_size=12),
       st.sampled_from(ss.MA_DAYS))
def test_trailing_means_equal_a_plain_mean(groups: list[Sales], asks: list[tuple[int, int]],
                                           days: int) -> None:
    ids, at, price = flatten(groups)
    group = np.array([g for g, _ in asks], dtype=np.int64)
    end = np.array([NOW + o for _, o in asks], dtype=np.int64)
    got = ss.trailing_means(ids, at, price, group, end, days)
    assert got.shape == (len(asks),)
    for k, (g, o) in enumerate(asks):
        sales = groups[g] if g < len(groups) else []
        inside = [p for t, p in sales if NOW + o - days * DAY_MS <= t < NOW + o]
        if inside:
            assert math.isclose(got[k], sum(inside) / len(inside), rel_tol=1e-12)
        else:
            assert math.isnan(got[k])


def test_trailing_means_window_is_closed_at_its_start_and_open_at_its_end() -> None:
    groups: list[Sales] = [[(NOW - 7 * DAY_MS - 1, 1), (NOW - 7 * DAY_MS, 10), (NOW - 1, 20),
                            (NOW, 1_000)]]
    ids, at, price = flatten(groups)
    got = ss.trailing_means(ids, at, price, np.array([0]), np.array([NOW]), 7)
    assert got.tolist() == [15.0]
