"""market.prices: buckets, candles, trailing medians and segment values against plain-Python
references (calendar arithmetic by `datetime`, medians by `fractions`)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from market.prices import (
    DAY_MS,
    INTERVALS,
    WEEK_MS,
    bucket_of,
    bucket_start,
    candle_at,
    candles,
    median_int,
    segment_value,
    trailing_medians,
)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# 1950 .. 2100 in ms: before the epoch too, where floor division matters.
TIMES = st.integers(min_value=-20 * 365 * DAY_MS, max_value=130 * 365 * DAY_MS)
PRICES = st.integers(min_value=1, max_value=10**9)


def ms(dt: datetime) -> int:
    return (dt - EPOCH) // timedelta(milliseconds=1)


def ref_bucket(at: int, interval: str) -> int:
    """Start of the UTC day / ISO week by calendar arithmetic."""
    day = (EPOCH + timedelta(milliseconds=at)).date()
    if interval == "1w":
        day -= timedelta(days=day.weekday())  # Monday is weekday 0
    return ms(datetime(day.year, day.month, day.day, tzinfo=UTC))


def ref_candles(sales: list[tuple[int, int]], interval: str) -> list[dict[str, int]]:
    out: dict[int, dict[str, int]] = {}
    for at, price in sales:
        t = ref_bucket(at, interval)
        c = out.get(t)
        if c is None:
            out[t] = {"t": t, "open": price, "high": price, "low": price, "close": price,
                      "volume": price, "count": 1}
        else:
            c["high"], c["low"] = max(c["high"], price), min(c["low"], price)
            c["close"] = price
            c["volume"] += price
            c["count"] += 1
    return [out[t] for t in sorted(out)]


def ref_median(values: list[int]) -> int:
    v = sorted(values)
    mid = len(v) // 2
    exact = Fraction(v[mid]) if len(v) % 2 else Fraction(v[mid - 1] + v[mid], 2)
    return round(exact)  # Fraction rounds half to even


sales_lists = st.lists(st.tuples(TIMES, PRICES), max_size=60).map(
    lambda xs: sorted(xs, key=lambda s: s[0])  # stable: ties keep the drawn order
)
# Many sales packed into a few days, so buckets hold several sales and ties happen.
dense_sales = st.lists(
    st.tuples(st.integers(0, 20 * DAY_MS).map(lambda x: x - x % 3_600_000), PRICES), max_size=80
).map(lambda xs: sorted(xs, key=lambda s: s[0]))


def arrays(sales: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    at = np.array([s[0] for s in sales], dtype=np.int64)
    price = np.array([s[1] for s in sales], dtype=np.int64)
    return at, price


@given(TIMES, st.sampled_from(INTERVALS))
def test_bucket_start_matches_calendar(at: int, interval: str) -> None:
    assert bucket_of(at, interval) == ref_bucket(at, interval)
    assert int(bucket_start(np.array([at]), interval)[0]) == ref_bucket(at, interval)


def test_iso_week_boundaries() -> None:
    sunday_end = ms(datetime(2024, 6, 9, 23, 59, 59, 999000, tzinfo=UTC))
    monday = ms(datetime(2024, 6, 10, tzinfo=UTC))
    assert bucket_of(monday, "1w") == monday
    assert bucket_of(sunday_end, "1w") == monday - WEEK_MS
    assert bucket_of(sunday_end, "1d") == monday - DAY_MS
    # Epoch 0 was a Thursday: its ISO week began Monday 1969-12-29.
    assert bucket_of(0, "1w") == ms(datetime(1969, 12, 29, tzinfo=UTC)) == -3 * DAY_MS
    assert bucket_of(-1, "1d") == -DAY_MS
    got = candles([sunday_end, monday], [100, 200], "1w")
    assert [c["t"] for c in got] == [monday - WEEK_MS, monday]


def test_unknown_interval_and_bad_input() -> None:
    with pytest.raises(ValueError):
        bucket_start(np.array([0]), "1h")
    with pytest.raises(ValueError):
        candles([2, 1], [10, 10], "1d")  # not sorted
    with pytest.raises(ValueError):
        candles([1, 2], [10], "1d")


@given(sales_lists | dense_sales, st.sampled_from(INTERVALS))
def test_candles_match_reference(sales: list[tuple[int, int]], interval: str) -> None:
    at, price = arrays(sales)
    got = candles(at, price, interval)
    assert got == ref_candles(sales, interval)
    assert all(type(v) is int for c in got for v in c.values())
    json.dumps(got)
    for c in got:
        assert candle_at(at, price, interval, c["t"]) == c


@given(dense_sales, st.sampled_from(INTERVALS), st.integers(-3, 25))
def test_candle_at_is_the_candle_of_its_bucket(
    sales: list[tuple[int, int]], interval: str, day: int
) -> None:
    at, price = arrays(sales)
    t = bucket_of(day * DAY_MS, interval)
    by_t = {c["t"]: c for c in candles(at, price, interval)}
    assert candle_at(at, price, interval, t) == by_t.get(t)


def test_candles_open_close_follow_input_order_on_ties() -> None:
    got = candles([5, 5, 5], [300, 100, 200], "1d")
    assert got == [{"t": 0, "open": 300, "high": 300, "low": 100, "close": 200,
                    "volume": 600, "count": 3}]
    assert candles(np.array([], dtype=np.int64), np.array([], dtype=np.int64), "1w") == []
    assert candle_at([5], [300], "1d", DAY_MS) is None


def test_median_int_rounds_half_to_even() -> None:
    assert median_int([1, 2]) == 2  # 1.5 -> 2
    assert median_int([2, 3]) == 2  # 2.5 -> 2
    assert median_int([3, 4, 100]) == 4
    assert median_int([2**62, 2**62 + 2]) == 2**62 + 1  # no overflow
    with pytest.raises(ValueError):
        median_int([])


def test_trailing_medians_windows() -> None:
    now = 100 * DAY_MS
    at = [now - 7 * DAY_MS, now - 7 * DAY_MS + 1, now - DAY_MS, now, now + 1]
    price = [1_000, 200, 400, 300, 9_999]
    # 7 days: the sale exactly 7 days old is out, the one at `now` in, the future one out.
    assert trailing_medians(at, price, now) == {
        "median_7d": 300, "median_30d": 350, "median_90d": 350,
    }
    assert trailing_medians(at, price, now - 8 * DAY_MS, days=(1, 30)) == {
        "median_1d": None, "median_30d": None,
    }
    assert trailing_medians([], [], now) == {
        "median_7d": None, "median_30d": None, "median_90d": None,
    }


@given(sales_lists, TIMES, st.lists(st.integers(1, 400), min_size=1, max_size=3))
def test_trailing_medians_match_reference(
    sales: list[tuple[int, int]], now: int, days: list[int]
) -> None:
    at, price = arrays(sales)
    got = trailing_medians(at, price, now, days)
    for d in days:
        window = [p for a, p in sales if now - d * DAY_MS < a <= now]
        assert got[f"median_{d}d"] == (ref_median(window) if window else None)


def test_segment_value_examples() -> None:
    t = 200 * DAY_MS
    at = [t - 100 * DAY_MS, t - 5, t - 4, t - 3, t - 2, t - 1, t, t + 1]
    price = [1, 10, 20, 30, 40, 50, 60, 7]
    assert segment_value(at, price, t) == 40  # last 5 at or before t: 20..60
    assert segment_value(at, price, t, n=2) == 55
    assert segment_value(at, price, t - 50 * DAY_MS) == 1  # one sale, 50 days old...
    assert segment_value(at, price, t - 50 * DAY_MS, max_age_days=50) is None  # ...too old
    assert segment_value([], [], t) is None
    with pytest.raises(ValueError):
        segment_value(at, price, t, n=0)


@given(dense_sales, st.integers(0, 25 * DAY_MS), st.integers(1, 8), st.integers(1, 30))
def test_segment_value_matches_reference(
    sales: list[tuple[int, int]], t: int, n: int, max_age_days: int
) -> None:
    at, price = arrays(sales)
    recent = [p for a, p in sales if t - max_age_days * DAY_MS < a <= t][-n:]
    expected = ref_median(recent) if recent else None
    assert segment_value(at, price, t, n, max_age_days) == expected
