"""Stage 5, footprint: gateway memory per idle WebSocket, host memory per live auction."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import psutil

from loadtests.params import GiB, Params
from loadtests.servers import BENCH_AUCTION, bench_api, instance_hosts
from loadtests.usage import host_processes, rss, uss
from loadtests.workload import split
from testkit.client import User, connect
from testkit.processes import Managed


def idle_stage(params: Params, server: Managed) -> dict[str, Any]:
    from loadtests.driver import Generators

    async def warm() -> User:
        async with aiohttp.ClientSession() as http:
            account = await bench_api(server.base, http).signup("idle")
            sockets = [await connect(http, server.base, account) for _ in range(20)]
            for ws in sockets:
                await ws.request({"op": "ping"})
            for ws in sockets:
                await ws.close()
            return account

    account = asyncio.run(warm())
    time.sleep(1.0)
    gateway = server.process()
    rss_before = gateway.memory_info().rss
    uss_before = gateway.memory_full_info().uss
    parts = split(range(params.idle_connections), params.procs)
    jobs = [{"kind": "idle", "url": server.base, "token": account.token, "count": len(p),
             "connect_concurrency": 100, "hold_timeout": 120} for p in parts]
    generators = Generators(jobs)
    try:
        ready = generators.wait_ready(180)
        time.sleep(2.0)  # let the server settle (writer tasks started, buffers allocated)
        rss_after = gateway.memory_info().rss
        uss_after = gateway.memory_full_info().uss
        fds = gateway.num_fds()
        generators.go()  # here: "close them"
        results = generators.wait_results(60)
    finally:
        generators.close()
    connected = sum(r["connected"] for r in ready)
    per_conn = (rss_after - rss_before) / max(1, connected)
    return {
        "figures": {"bytes_per_connection": round(per_conn), "connections": connected},
        "details": {
            "gateway_rss_before": rss_before, "gateway_rss_after": rss_after,
            "gateway_uss_before": uss_before, "gateway_uss_after": uss_after,
            "uss_bytes_per_connection": round((uss_after - uss_before) / max(1, connected)),
            "gateway_fds": fds,
            "connect_failures": sum(r["connect_failures"] for r in ready),
            "connect_s": max(r["connect_s"] for r in ready),
            "alive_at_end": sum(r["alive_at_end"] for r in results),
        },
    }


def auctions_stage(params: Params, server: Managed, ray_root: Managed, per_actor: int,
                   target: int, budget_s: float) -> dict[str, Any]:
    before = set(host_processes(ray_root))
    started = time.monotonic()
    deadline = started + budget_s
    state = {"checked": 0.0, "ok": True, "reason": "count"}

    def keep_going() -> bool:
        now = time.monotonic()
        if now - state["checked"] > 0.5:
            state["checked"] = now
            hosts = instance_hosts(ray_root, before)
            if rss(hosts) > params.per_actor_memory_budget:
                state["ok"], state["reason"] = False, "memory budget"
            elif psutil.virtual_memory().available < 3 * GiB:
                state["ok"], state["reason"] = False, "free memory"
        if now > deadline and state["ok"]:
            state["ok"], state["reason"] = False, "time budget"
        return bool(state["ok"])

    async def create() -> tuple[list[dict], dict[str, Any]]:
        async with aiohttp.ClientSession() as http:
            api = bench_api(server.base, http)
            seller = await api.signup("mem")
            first = await api.auction(seller, **BENCH_AUCTION)
            await asyncio.sleep(0.5)
            first_hosts = instance_hosts(ray_root, before)
            early = {"host_pids": [h.pid for h in first_hosts], "rss": rss(first_hosts)}
            concurrency = 16 if per_actor > 1 else 4
            rest, _ = await api.auctions(
                seller, target - 1, concurrency=concurrency, deadline=deadline,
                keep_going=keep_going if per_actor == 1 else None, errors=create_errors,
                **BENCH_AUCTION)
            return [first, *rest], early

    create_errors: list[str] = []

    views, early = asyncio.run(create())
    created_s = time.monotonic() - started
    time.sleep(1.0)
    hosts = instance_hosts(ray_root, before)
    total_rss, total_uss = rss(hosts), uss(hosts)
    count = len(views)
    out: dict[str, Any] = {
        "figures": {"bytes_per_auction": round(total_rss / max(1, count)),
                    "live_auctions": count},
        "details": {
            "auctions_per_actor": per_actor, "hosts": len(hosts), "host_rss": total_rss,
            "host_uss": total_uss, "uss_bytes_per_auction": round(total_uss / max(1, count)),
            "create_s": round(created_s, 1),
            "creates_per_s": round(count / created_s, 1) if created_s else None,
            "target": target,
            "stopped_by": ("count" if count >= target else
                           "create errors" if len(create_errors) >= 3 else
                           state["reason"] if state["reason"] != "count" else "time budget"),
            "create_errors": create_errors,
        },
    }
    if per_actor > 1 and early["host_pids"]:
        first = [h for h in hosts if h.pid == early["host_pids"][0]]
        on_first = min(count, per_actor)
        if first and on_first > 1:
            grown = rss(first) - early["rss"]
            out["details"]["marginal_bytes_per_auction"] = round(grown / (on_first - 1))
            out["details"]["empty_host_rss"] = early["rss"]
    return out
