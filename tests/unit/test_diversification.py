"""market.diversification: weights per position (copies are one exposure), HHI and effective N
(checked against a pandas group-by), warnings, and liquidity."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from market.diversification import (
    MAX_DAYS_TO_SELL,
    UNKNOWN,
    days_to_sell,
    diversification,
    effective_n,
    hhi,
    liquidity,
    weights,
)


def holding(card: str, value: int | None, grade: int = 10, **attrs: str) -> dict[str, Any]:
    return {"position": f"{card}|PSA|{grade}", "card_id": card, "value": value, **attrs}


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("abcdefgh"), st.integers(1, 10**6)), min_size=1,
                max_size=30))
def test_hhi_is_between_one_over_n_and_one(rows: list[tuple[str, int]]) -> None:
    w = weights([k for k, _ in rows], [v for _, v in rows])
    n = len(w)
    assert sum(w.values()) == pytest.approx(1.0)
    assert 1 / n - 1e-12 <= hhi(w) <= 1 + 1e-12
    assert 1 - 1e-9 <= effective_n(w) <= n + 1e-9
    frame = pd.DataFrame(rows, columns=["k", "v"])
    shares = frame.groupby("k")["v"].sum() / frame["v"].sum()
    assert hhi(w) == pytest.approx(float((shares ** 2).sum()), rel=1e-12)
    assert w == pytest.approx(shares.to_dict(), rel=1e-12)
    assert list(w.values()) == sorted(w.values(), reverse=True)


def test_equal_positions_have_hhi_one_over_n() -> None:
    w = weights(["a", "b", "c", "d"], [5, 5, 5, 5])
    assert hhi(w) == pytest.approx(0.25) and effective_n(w) == pytest.approx(4)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(1, 10**5), min_size=1, max_size=10), st.integers(1, 10**5))
def test_copies_are_one_exposure(copies: list[int], other: int) -> None:
    one = diversification([holding("a", sum(copies)), holding("b", other)])
    many = diversification([*(holding("a", c) for c in copies), holding("b", other)])
    assert many["hhi"] == pytest.approx(one["hhi"])
    assert many["weights"] == pytest.approx(one["weights"])


def test_unvalued_holdings_are_left_out_and_counted() -> None:
    out = diversification([holding("a", 300), holding("b", None)])
    assert out["weights"] == {"a|PSA|10": 1.0} and out["unvalued"] == 1
    empty = diversification([holding("a", None)])
    assert empty["hhi"] is None and empty["effective_n"] is None


def test_concentration_warnings() -> None:
    hs = [holding("a", 50, player="P", set="S1"), holding("a", 10, grade=9, player="P"),
          holding("b", 20, player="Q", set="S1"), holding("c", 20, set="S2")]
    out = diversification(hs)
    assert out["warnings"] == [
        {"by": "set", "label": "S1", "share": pytest.approx(0.7)},
        {"by": "card", "label": "a", "share": pytest.approx(0.6)},
    ]  # UNKNOWN players (c) and sets (a, grade 9) do not warn; player P is all card a: the
    # card's warning says it (set S1 spans cards a and b: its own warning)
    assert out["by"]["player"]["weights"]["P"] == pytest.approx(0.6)
    assert out["by"]["player"]["weights"][UNKNOWN] == pytest.approx(0.2)
    assert diversification(hs, threshold=0.75)["warnings"] == []


def test_days_to_sell_is_a_poisson_wait_capped() -> None:
    assert days_to_sell([365, 12, 1, 0]).tolist() == \
        [1.0, pytest.approx(365 / 12), 365.0, float(MAX_DAYS_TO_SELL)]


def test_liquidity_share_over_90_days() -> None:
    out = liquidity([600, 300, None, 100], [52, 2, 0, 0])
    assert out["days_to_sell"] == [7.0, 182.5, 730.0, 730.0]
    assert out["share_over"] == pytest.approx(0.4)
    assert out["mean_days"] == pytest.approx((600 * 365 / 52 + 300 * 182.5 + 100 * 730) / 1000)
    assert liquidity([None], [3])["share_over"] is None
    assert not math.isnan(liquidity([1], [0])["mean_days"])
