"""The portfolio stages' own machinery at tiny sizes (the quick benchmark runs them against
servers): the documents written are the projection's shape, with the measured user's
holdings; the mints are ownership rows of the busiest segments; the report gets both goals."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest

from loadtests import stages_portfolio as sp
from storage import open_store
from tests.loadtests.test_analytics_stage import tiny_params


def test_written_portfolios_have_the_route_shape(tmp_path: Path) -> None:
    params = dataclasses.replace(tiny_params(), portfolio_users=30, portfolio_holdings=120)
    sim = sp._simulated(2_000, sp._today_end())
    positions = sp._segments(sim)
    path = tmp_path / "ece.db"

    async def run() -> tuple[dict, dict, dict | None, int]:
        written = await sp._write_portfolios(path, "u_measured", params, positions)
        store = open_store(f"sqlite:///{path}")
        await store.open()
        try:
            doc = await store.get_projection_doc("portfolio", "u_measured")
            other = await store.get_projection_doc("portfolio", "u_pfread000003")
            users = sum([await store.get_user(f"u_pfread{i:06d}") is not None
                         for i in range(40)])
        finally:
            await store.close()
        assert doc is not None
        return written, doc, other, users

    written, doc, other, users = asyncio.run(run())
    assert written["portfolio_docs"] == 30 and users == 29  # the measured one signs up
    assert len(doc["holdings"]) == 120 == doc["totals"]["holdings"]
    assert set(doc) >= {"holdings", "totals", "allocation", "risk", "diversification",
                        "liquidity", "computed_at"}
    assert doc["risk"]["shown"] in (True, False) and other and other["holdings"]
    assert {h["position"] for h in doc["holdings"]} <= set(positions)


def test_mints_are_ownership_rows_of_the_given_positions(tmp_path: Path) -> None:
    path = tmp_path / "ece.db"
    positions = sp._segments(sp._simulated(2_000, sp._today_end()))[:5]
    minted = asyncio.run(sp._mint_holders(path, "t", 7, 3, positions))
    assert minted["assets"] == 21 == minted["ownership_head"]

    async def rows() -> list:
        store = open_store(f"sqlite:///{path}")
        await store.open()
        try:
            return await store.ownership_feed(0)
        finally:
            await store.close()

    from market.holdings import position_of
    feed = asyncio.run(rows())
    assert {r["how"] for r in feed} == {"mint"} and len({r["to_user"] for r in feed}) == 7
    assert {position_of(r) for r in feed} <= set(positions)


@pytest.mark.parametrize("missing", [False, True])
def test_goals_join_the_report(missing: bool) -> None:
    stages = {} if missing else {
        "portfolio_read": {"figures": {"p99_ms": 100.0, "p50_ms": 5.0}},
        "portfolio_bidpath": {"figures": {"on_over_off": 0.97}},
    }
    result: dict = {"figures": {}, "ratios": {}, "goals": [], "missing_stages": []}
    sp.add_portfolio_report(result, stages, set(sp.PORTFOLIO_STAGES), tiny_params())
    goals = {g["goal"]: g for g in result["goals"]}
    assert len(goals) == 2
    if missing:
        assert result["missing_stages"] == list(sp.PORTFOLIO_STAGES)
        assert all(g["met"] is None for g in goals.values())
        return
    assert goals["portfolio read p99"]["met"] is False
    assert goals["portfolio read p99"]["off_by_factor"] == 2.0
    assert goals["bid path portfolios on / off"]["met"] is True
    assert result["ratios"]["portfolio_on_over_off"] == 0.97
    assert result["figures"]["portfolio_read_p99_ms"]["value"] == 100.0
