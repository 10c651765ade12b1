"""Stage `portfolio_push`'s own machinery (the quick benchmark runs it for real): the holders
written into the store are what the portfolio projection folds, an event counts for a sale
only when it tells that sale, the analytics-log hops are split per sale, and the goal joins
the report."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from actors.portfolio.projection import PortfolioProjection
from loadtests import stages_portfolio_push as pp
from storage import open_store
from testkit.client import User


def test_filled_holders_are_folded_as_holders_of_the_position(tmp_path: Path) -> None:
    db = tmp_path / "ece.db"

    async def run() -> tuple[dict, set[str]]:
        fill = await pp._fill_holders(db, "card1", 30, "t")
        store = open_store(f"sqlite:///{db}")
        await store.open()
        try:
            projection = PortfolioProjection(store)
            await projection.apply(await store.ownership_feed(0, 100), 1_000)
            return fill, projection.holders["card1|PSA|9"]
        finally:
            await store.close()

    fill, holders = asyncio.run(run())
    assert fill["ownership_position"] == 30
    assert len(holders) == 30 and all(u.startswith("uth") for u in holders)


def _event(last_sale_at: int | None) -> dict:
    value = None if last_sale_at is None else {"point": 1, "last_sale_at": last_sale_at}
    return {"op": "event", "channel": "me", "type": "portfolio", "total": {},
            "changed": [{"asset_id": "a", "value": value}]}


def test_an_event_counts_only_for_the_sale_it_tells() -> None:
    listener = pp.Listener(User("u", "u", "t"))
    listener.events = [(1.0, _event(None)), (2.0, _event(500)),
                       (3.0, {**_event(900), "changed": []}), (4.0, _event(1_000))]
    assert listener.first_after(400) == 2.0
    assert listener.first_after(1_000) == 4.0  # not the one without a changed holding
    assert listener.first_after(1_001) is None


async def test_waiting_ends_at_the_deadline_without_an_event() -> None:
    listener = pp.Listener(User("u", "u", "t"))
    loop = asyncio.get_running_loop()
    assert await listener.wait_for(1, loop.time() + 0.05) is None
    listener.events.append((5.0, _event(2)))
    listener.arrived.set()
    assert await listener.wait_for(1, loop.time() + 5) == 5.0


def test_hops_take_the_first_value_after_the_answer_and_the_portfolios_after_it() -> None:
    watch = pp.LogWatch(Path("unused"))
    watch.seen = [(0.5, "portfolios", 9), (1.2, "values", 10), (1.5, "portfolios", 100),
                  (1.6, "portfolios", 200), (3.0, "values", 10), (3.1, "portfolios", 1)]
    hops = watch.hops(1.0, 2.9)
    assert hops["value_s"] == pytest.approx(0.2)
    assert hops["portfolios_first_s"] == pytest.approx(0.5)
    assert hops["portfolios_last_s"] == pytest.approx(0.6)
    assert (hops["portfolio_messages"], hops["portfolio_bytes"]) == (2, 300)
    assert watch.hops(3.5, 4.0)["value_s"] is None


@pytest.mark.parametrize("p99", [None, 600.0, 2_500.0])
def test_the_goal_joins_the_report(p99: float | None) -> None:
    stages = {} if p99 is None else {pp.STAGE: {
        "figures": {"p99_ms": p99, "p50_ms": 400.0, "holders": 10_020.0},
        "details": {"missing": 0}}}
    result: dict = {"figures": {}, "ratios": {}, "goals": [], "missing_stages": []}
    pp.add_push_report(result, stages, {pp.STAGE})
    (goal,) = result["goals"]
    assert goal["value"] == p99
    assert goal["met"] is {None: None, 600.0: True, 2_500.0: False}[p99]
    assert result["missing_stages"] == ([pp.STAGE] if p99 is None else [])
    assert result["figures"]["portfolio_push_p99_ms"]["value"] == p99
    other: dict = {"figures": {}, "ratios": {}, "goals": [], "missing_stages": []}
    pp.add_push_report(other, stages, {"e2e"})
    assert other["goals"] == [] and other["figures"] == {}
