"""market.trends: percentage changes, moving averages and movers (order, limits, ties)."""

from __future__ import annotations

import math
import random
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from market.prices import DAY_MS
from market.trends import movers, moving_average, pct_change


def test_pct_change() -> None:
    t = np.array([0, 10, 20, 30]) * DAY_MS
    v = np.array([100.0, 110.0, 0.0, 121.0])
    assert pct_change(t, v, 30 * DAY_MS, 20) == pytest.approx(0.1)  # 121 / 110 - 1
    assert pct_change(t, v, 35 * DAY_MS, 30) == pytest.approx(0.21)  # last <= 5d is t=0
    assert pct_change(t, v, 19 * DAY_MS, 19) == pytest.approx(0.1)  # 110 / 100 - 1
    assert pct_change(t, v, 19 * DAY_MS, 0) == 0.0  # the same point
    assert pct_change(t, v, 30 * DAY_MS, 10) is None  # then = 0
    assert pct_change(t, v, 20 * DAY_MS, 1) is None  # now = 0
    assert pct_change(t, v, 30 * DAY_MS, 31) is None  # nothing that early
    assert pct_change(t, v, -1, 0) is None
    assert pct_change(t, np.array([100.0, np.nan, 1, 2]), 10 * DAY_MS, 10) is None
    assert pct_change([], [], 0, 1) is None


def test_moving_average() -> None:
    got = moving_average(np.array([1.0, 2.0, 3.0, 4.0, np.nan, 6.0, 7.0]), 2)
    np.testing.assert_array_equal(got, [np.nan, 1.5, 2.5, 3.5, np.nan, np.nan, 6.5])
    assert np.isnan(moving_average([1.0, 2.0], 3)).all()
    np.testing.assert_array_equal(moving_average([5.0, 7.0], 1), [5.0, 7.0])
    with pytest.raises(ValueError):
        moving_average([1.0], 0)


@given(st.lists(st.floats(-1e6, 1e6), max_size=40), st.integers(1, 10))
def test_moving_average_matches_a_loop(values: list[float], n: int) -> None:
    got = moving_average(values, n)
    assert got.shape == (len(values),)
    for i, g in enumerate(got):
        if i < n - 1:
            assert math.isnan(g)
        else:
            assert g == pytest.approx(sum(values[i - n + 1:i + 1]) / n, abs=1e-6)


def row(card: str, grade: Any, now: Any, then: Any, volume: int, count: int,
        grader: str = "PSA") -> dict[str, Any]:
    return {"card_id": card, "grader": grader, "grade": grade, "value_now": now,
            "value_then": then, "volume": volume, "count": count}


def test_movers_example() -> None:
    rows = [
        row("a", 10, 150, 100, 5_000, 3),
        row("b", 9.5, 80, 100, 9_000, 9),
        row("c", 10, 100, 100, 1_000, 9),  # unchanged: neither gainer nor loser
        row("d", None, 300, None, 7_000, 1, grader="RAW"),  # no change: traded only
        row("e", 10, 120, 0, 100, 1),  # then = 0: no change
        row("f", 10, 90, 100, 0, 0),  # a loser that did not trade in the window
        row("a", 9, 110, 100, 2_000, 9),
    ]
    got = movers(rows, 10)
    assert got["gainers"] == [
        {"card_id": "a", "grader": "PSA", "grade": 10, "change": 0.5, "volume": 5_000},
        {"card_id": "a", "grader": "PSA", "grade": 9, "change": 0.1, "volume": 2_000},
    ]
    assert [(g["card_id"], g["change"]) for g in got["losers"]] == [("b", -0.2), ("f", -0.1)]
    # Count 9 three times: then by volume 9000, 2000, 1000.
    assert [(g["card_id"], g["grade"]) for g in got["most_traded"]] == [
        ("b", 9.5), ("a", 9), ("c", 10), ("a", 10), ("d", None), ("e", 10),
    ]
    assert got["most_traded"][4]["change"] is None
    assert movers(rows, 1) == {k: v[:1] for k, v in got.items()}
    assert movers(rows, 0) == {"gainers": [], "losers": [], "most_traded": []}
    with pytest.raises(ValueError):
        movers(rows, -1)


def test_movers_ties_break_on_card_grader_grade() -> None:
    rows = [
        row("b", 10, 110, 100, 500, 2),
        row("a", 10, 110, 100, 500, 2, grader="SGC"),
        row("a", 9.5, 110, 100, 500, 2, grader="SGC"),
        row("a", None, 110, 100, 500, 2, grader="RAW"),
        row("a", 10, 110, 100, 500, 2),
    ]
    expected = [("a", "PSA", 10), ("a", "RAW", None), ("a", "SGC", 9.5), ("a", "SGC", 10),
                ("b", "PSA", 10)]
    got = movers(rows, 10)
    for key in ("gainers", "most_traded"):
        assert [(g["card_id"], g["grader"], g["grade"]) for g in got[key]] == expected
    assert got["gainers"][0]["change"] == 0.1


rows_strategy = st.lists(
    st.builds(
        row,
        st.sampled_from(["a", "b", "c", "d"]),
        st.sampled_from([None, 8, 9, 9.5, 10]),
        st.one_of(st.none(), st.sampled_from([0, 50, 99, 100, 101, 150, 10**6])),
        st.one_of(st.none(), st.sampled_from([0, 50, 99, 100, 101, 150])),
        st.integers(0, 5).map(lambda x: x * 1_000),
        st.integers(0, 4),
        st.sampled_from(["PSA", "BGS"]),
    ),
    max_size=30,
)


@given(rows_strategy, st.integers(0, 12), st.randoms(use_true_random=False))
def test_movers_properties(rows: list[dict[str, Any]], limit: int, rnd: random.Random) -> None:
    # One row per segment, as the projection gives them.
    rows = list({(r["card_id"], r["grader"], r["grade"]): r for r in rows}.values())
    got = movers(rows, limit)
    assert set(got) == {"gainers", "losers", "most_traded"}
    assert all(len(v) <= limit for v in got.values())
    gains = [g["change"] for g in got["gainers"]]
    losses = [g["change"] for g in got["losers"]]
    assert all(c > 0 for c in gains) and gains == sorted(gains, reverse=True)
    assert all(c < 0 for c in losses) and losses == sorted(losses)
    n_gainers = sum(
        1 for r in rows
        if r["value_now"] and r["value_then"]
        and round(r["value_now"] / r["value_then"] - 1, 4) > 0
    )
    assert len(gains) == min(limit, n_gainers)
    counts = {(r["card_id"], r["grader"], r["grade"]): r["count"] for r in rows}
    traded = [counts[(g["card_id"], g["grader"], g["grade"])] for g in got["most_traded"]]
    assert traded == sorted(traded, reverse=True) and all(c > 0 for c in traded)
    # Deterministic whatever the order of the rows.
    shuffled = rows[:]
    rnd.shuffle(shuffled)
    assert movers(shuffled, limit) == got
