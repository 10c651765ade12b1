"""The "offers" stage: accepted trade-offer swaps per second end to end, and accept->settled.

Set-up (not timed): pairs of users, each with one card; in every pair the first offers their
card and $1 for the second's card. Measured: the seconds from the first accept to the last
answer while a fixed number of clients (`CONCURRENCY`) accept them all over REST, each accept
answered once its swap (lock both cards, move the cash, move both tokens with signed
records) has ended. Every answer is counted; the latency of each is accept sent -> settled
offer received (the accept's answer is the settled offer).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
from hdrh.histogram import HdrHistogram

from loadtests.driver import percentiles_ms
from loadtests.params import Params
from loadtests.servers import bench_api
from testkit.client import Api, User, unique
from testkit.processes import Managed

CONCURRENCY = 16


async def _pair(api: Api) -> tuple[User, User, str]:
    a, b = await api.signup("offa"), await api.signup("offb")
    card_a = (await api.mint(a, "Offer Card A"))["asset_id"]
    card_b = (await api.mint(b, "Offer Card B"))["asset_id"]
    made = await api.expect(201, "POST", "/api/offers", a, json={
        "to_id": b.user_id, "give": {"assets": [card_a], "cash": 100},
        "want": {"assets": [card_b]}, "req_id": unique("bench")})
    return a, b, made["offer_id"]


async def _run(base: str, offers: int) -> dict[str, Any]:
    connector = aiohttp.TCPConnector(limit=CONCURRENCY * 2)
    async with aiohttp.ClientSession(connector=connector) as http:
        api = bench_api(base, http)
        started = time.monotonic()
        pairs: list[tuple[User, User, str]] = []
        for start in range(0, offers, CONCURRENCY):
            batch = min(CONCURRENCY, offers - start)
            pairs += await asyncio.gather(*(_pair(api) for _ in range(batch)))
        setup_s = time.monotonic() - started

        hist = HdrHistogram(1, 60_000_000, 3)  # µs
        statuses: dict[str, int] = {}
        queue = list(pairs)

        async def client() -> None:
            while queue:
                _, b, offer_id = queue.pop()
                sent = time.perf_counter()
                status, body = await api.request("POST", f"/api/offers/{offer_id}/accept", b,
                                                 json={"req_id": unique("acc")})
                hist.record_value(max(1, int((time.perf_counter() - sent) * 1e6)))
                key = body.get("status", "?") if status == 200 else f"http {status}"
                statuses[key] = statuses.get(key, 0) + 1

        t0 = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(CONCURRENCY)))
        elapsed = time.perf_counter() - t0
    settled = statuses.get("settled", 0)
    latency = percentiles_ms(hist)
    return {
        "figures": {"swaps_per_s": round(settled / elapsed, 1),
                    "accept_settled_p50_ms": round(latency["p50"], 1),
                    "accept_settled_p99_ms": round(latency["p99"], 1)},
        "details": {"offers": offers, "concurrency": CONCURRENCY, "answers": statuses,
                    "measure_s": round(elapsed, 2), "setup_s": round(setup_s, 1),
                    "latency_ms": latency},
    }


def offers_stage(params: Params, server: Managed) -> dict[str, Any]:
    return asyncio.run(_run(server.base, CONCURRENCY if params.quick else 300))
