"""The analytics stages' own machinery at tiny sizes (the quick benchmark runs them for real):
the open-loop client counts every answer from the intended send time, the in-process stages
give positive figures, and the report gets their goals in the report's shape."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from loadtests import stages_analytics as sa
from loadtests import stages_analytics_server as sas
from loadtests.params import Params
from testkit.processes import free_port


def tiny_params(**sizes: int) -> Params:
    args = argparse.Namespace(quick=True, k=None, b=None, w=None, window=2, procs=2,
                              encoding="json", measure=None)
    return dataclasses.replace(Params.build(args), **sizes)


async def serve(path: str, handler: Any) -> tuple[web.AppRunner, int]:
    """`handler` on `path` of a local aiohttp server; its runner and port."""
    app = web.Application()
    app.router.add_get(path, handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


async def test_open_loop_counts_every_answer_from_the_intended_time() -> None:
    calls = 0

    async def handler(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.02)
        if calls % 4 == 0:
            return web.json_response({"error": "no"}, status=503)
        return web.json_response({"ok": True})

    runner, port = await serve("/x", handler)
    try:
        found = await sas._open_loop(f"http://127.0.0.1:{port}/x", rate=100, seconds=1.0,
                                    warmup_s=0.2)
        refused = await sas._open_loop(f"http://127.0.0.1:{free_port()}/x", rate=50,
                                      seconds=0.3, warmup_s=0.0)  # nobody listens
    finally:
        await runner.cleanup()
    assert sum(found["answers"].values()) == found["sent"] > 50
    assert found["answers"].get("503", 0) > 0 and found["answers"].get("200", 0) > 0
    assert found["latency_ms"]["count"] == found["sent"]
    assert found["latency_ms"]["p50"] >= 20  # the handler's 20 ms, at least
    # Failures to connect are answers too, counted by their kind.
    assert sum(refused["answers"].values()) == refused["sent"]
    assert "200" not in refused["answers"]


def test_in_process_stages_give_positive_figures(tmp_path: Path) -> None:
    params = tiny_params(analytics_ingest_sales=2_000, analytics_runner_sales=1_000,
                         analytics_auctions=40, analytics_index_sales=20_000)
    ingest = sa.ingest_stage(params, tmp_path)
    index = sa.index_stage(params)
    for stage in (ingest, index):
        assert stage["figures"]
        assert all(isinstance(v, float) and v > 0 for v in stage["figures"].values())
    runner = ingest["details"]["runner"]
    assert runner["prices"]["sales"] == runner["market"]["sales"] == 1_000
    assert runner["prices"]["docs"]["sale"] == 1_000
    assert ingest["details"]["behaviour"]["bids"] > 40
    assert index["details"]["categories"] > 1


@pytest.mark.parametrize("missing", [False, True])
def test_goals_join_the_report(missing: bool) -> None:
    params = tiny_params()
    stages = {} if missing else {
        "analytics_ingest": {"figures": {"price_sales_per_s": 25_000.0,
                                         "market_sales_per_s": 60_000.0,
                                         "runner_price_sales_per_s": 1.0,
                                         "behaviour_bids_per_s": 1e6}},
        "analytics_index": {"figures": {"market_and_categories_s": 2.0, "all_s": 3.0}},
        "analytics_history": {"figures": {"p99_ms": 40.0, "answered_per_s": 200.0}},
        "analytics_bidpath": {"figures": {"on_over_off": 0.97}},
    }
    result: dict = {"figures": {}, "ratios": {}, "goals": [], "missing_stages": []}
    sa.add_to_report(result, stages, set(sa.ANALYTICS_STAGES), params)
    goals = {g["goal"]: g for g in result["goals"]}
    assert len(goals) == 7
    if missing:
        assert result["missing_stages"] == list(sa.ANALYTICS_STAGES)
        assert all(g["met"] is None for g in goals.values())
        return
    assert result["missing_stages"] == []
    assert goals["price projection ingest"]["met"] is False
    assert goals["price projection ingest"]["off_by_factor"] == 2.0
    assert goals["market projection ingest"]["met"] is True
    assert goals["index rebuild"]["met"] is True
    assert goals["card history p99"] == {**goals["card history p99"], "met": False,
                                         "off_by_factor": 2.0}
    assert goals["bid path analytics on / off"]["met"] is True
    assert result["ratios"]["analytics_on_over_off"] == 0.97
    assert result["figures"]["analytics_history_p99_ms"]["value"] == 40.0


async def test_open_loop_spreads_requests_by_weight() -> None:
    """Several URLs: each request draws one by weight (Zipf here), every one counted."""
    seen: dict[str, int] = {}

    async def handler(request: web.Request) -> web.Response:
        seen[request.match_info["n"]] = seen.get(request.match_info["n"], 0) + 1
        return web.Response(body=b"x" * (int(request.match_info["n"]) + 1))

    runner, port = await serve("/s/{n}", handler)
    urls = [f"http://127.0.0.1:{port}/s/{n}" for n in range(20)]
    weights = [1 / r for r in range(1, 21)]
    try:
        found = await sas._open_loop(urls, rate=300, seconds=1.0, warmup_s=0.0,
                                     weights=weights)
    finally:
        await runner.cleanup()
    assert sum(seen.values()) == found["sent"] == found["answers"]["200"] > 150
    # Zipf(1) over 20: the first is asked ~28% of the time, the last ~1.4%.
    assert seen["0"] > 2 * seen.get("9", 0) and seen["0"] > found["sent"] / 6
    assert len(seen) > 10
    assert 1 <= found["response_bytes_mean"] < found["response_bytes_max"] <= 20
