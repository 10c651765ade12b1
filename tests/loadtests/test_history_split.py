"""The history stage's client keeps the latencies of the cache's hits and misses apart (by
the answer's `X-Cache`), and counts the gateway's wait for a CPU."""

from __future__ import annotations

import asyncio

import psutil
from aiohttp import web

from loadtests import stages_analytics_server as sas
from loadtests.cpu_use import runq_wait
from tests.loadtests.test_analytics_stage import serve


async def test_open_loop_splits_latency_by_cache_result() -> None:
    async def handler(request: web.Request) -> web.Response:
        miss = request.match_info["n"] == "1"
        await asyncio.sleep(0.05 if miss else 0)
        return web.Response(body=b"{}", headers={"X-Cache": "miss" if miss else "hit"})

    runner, port = await serve("/h/{n}", handler)
    urls = [f"http://127.0.0.1:{port}/h/{n}" for n in range(2)]
    try:
        found = await sas._open_loop(urls, rate=100, seconds=1.0, warmup_s=0.0)
    finally:
        await runner.cleanup()
    split = found["latency_ms_by_cache"]
    assert split["hit"]["count"] + split["miss"]["count"] == found["latency_ms"]["count"]
    assert split["miss"]["p50"] >= 50 > split["hit"]["p50"]
    assert found["client_cores"] >= 0


def test_runq_wait_grows_and_is_seconds() -> None:
    me = [psutil.Process()]
    before = runq_wait(me)
    sum(range(2_000_000))
    assert 0 <= before <= runq_wait(me) < 10 ** 6
