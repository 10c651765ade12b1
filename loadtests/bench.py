"""ECE performance benchmark: `python -m loadtests.bench [--quick] [--out PATH]`.

One run measures, on this machine:

1. the limits: a bare aiohttp WebSocket echo server driven by the same generator, and the
   `market/` rules engine alone (in-process, no I/O);
2. end to end: K English auctions x B bidders x W watchers; saturating bids/s (closed loop),
   bid->ack and bid->event latency, then the same latencies at half that rate (open loop);
3. the naive baseline (ECE_BATCHING=0) on the same workload;
4. fan-out: one auction, many watchers, event deliveries/s;
5. footprint: gateway RSS per idle WebSocket; host memory per live auction at the default
   hosting (ECE_AUCTIONS_PER_ACTOR=500) and at one auction per actor;
6. durability cost: the SQLite file store against the in-memory store (ECE_STORE=memory:NAME);
7. close lag: N auctions closing in the same second on one host, how late each close is
   durable and published (the host core in-process on a SQLite file, no Ray, no gateway).

Servers run as subprocesses (own sessions, stopped by pid/pgid). The first one starts Ray; the
others join it (ECE_RAY_ADDRESS) under their own ECE_INSTANCE, each with its own data dir.
Results: a table on stdout and JSON in loadtests/results/latest.json (quick.json with --quick).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import psutil

from loadtests import gen, report
from loadtests.driver import LoadResult, run_load
from loadtests.usage import host_processes, ray_processes, rss, uss
from testkit.client import Api, User, connect
from testkit.processes import (
    BENCH_LIMITS,
    ROOT,
    Managed,
    free_port,
    ray_address_of,
    start_ece,
)

RESULTS = ROOT / "loadtests" / "results"
# Stages the report knows, plus those that only add a figure of their own.
STAGES = (*report.STAGES, "close_lag")
GiB = 1024**3
# 503s met during set-up (transient by the API's contract, retried), reported with the results.
ANOMALIES: dict[str, list] = {}
# The auctions the benchmark lists: English, an hour, no soft close (no extension mid-run).
BENCH_AUCTION = {"title": "Bench Card", "start_price": 100, "duration_ms": 3_600_000,
                 "soft_close_ms": 0}


def bench_api(base: str, http: aiohttp.ClientSession) -> Api:
    """The set-up client: 503s retried (a host being placed), and recorded."""
    return Api(base, http, retries=4, anomalies=ANOMALIES)


def start_server(name: str, tmp: Path, env: dict[str, str]) -> Managed:
    """`ece serve` with its own data dir under `tmp`; a benchmark is one client machine
    driving thousands of users, so it raises the limits meant for hostile clients."""
    data = tmp / name
    data.mkdir(parents=True, exist_ok=True)
    return start_ece(data / "server.log", {
        "ECE_DATA_DIR": str(data / "data"),
        "ECE_SECRET": "bench-secret-that-is-at-least-thirty-two-bytes-long",
        **BENCH_LIMITS,
        "ECE_LOG_LEVEL": "WARNING",
        **env,
    }, name)


def start_echo(tmp: Path) -> Managed:
    """The bare aiohttp WebSocket echo server (`loadtests.echo`)."""
    port = free_port()
    return Managed("echo", [sys.executable, "-m", "loadtests.echo", "--port", str(port)], {},
                   tmp / "echo.log", port)


@dataclass
class Params:
    quick: bool
    auctions: int  # K
    bidders: int  # B per auction
    watchers: int  # W per auction
    window: int  # outstanding bids per bidder socket (closed loop)
    procs: int  # generator processes
    encoding: str
    warmup_s: float
    measure_s: float
    rules_s: float
    light_rate: float  # total bids/s of the light-load latency phase
    light_measure_s: float
    fanout_watchers: int
    fanout_bidders: int
    fanout_measure_s: float
    idle_connections: int
    auctions_default: int  # live auctions for the default-hosting footprint
    auctions_per_actor_max: int  # cap at ECE_AUCTIONS_PER_ACTOR=1
    per_actor_budget_s: float
    per_actor_memory_budget: int  # bytes of host RSS at which the 1-per-actor stage stops
    close_lag_auctions: int  # auctions closing in the same second on one host
    time_limit_s: float

    @classmethod
    def build(cls, args: argparse.Namespace) -> Params:
        quick = args.quick
        available = psutil.virtual_memory().available
        p = cls(
            quick=quick,
            auctions=args.k or (4 if quick else 20),
            bidders=args.b or (3 if quick else 5),
            watchers=args.w or (3 if quick else 5),
            window=args.window,
            procs=args.procs,
            encoding=args.encoding,
            warmup_s=1.0 if quick else 3.0,
            measure_s=args.measure or (3.0 if quick else 12.0),
            rules_s=0.5 if quick else 2.0,
            light_rate=50.0 if quick else 100.0,
            light_measure_s=3.0 if quick else 8.0,
            fanout_watchers=100 if quick else 1000,
            fanout_bidders=2,
            fanout_measure_s=3.0 if quick else 10.0,
            idle_connections=300 if quick else 5000,
            auctions_default=100 if quick else 2000,
            auctions_per_actor_max=3 if quick else 200,
            per_actor_budget_s=15.0 if quick else 75.0,
            per_actor_memory_budget=int(min(4 * GiB, available * 0.2)),
            close_lag_auctions=200 if quick else 2000,
            time_limit_s=115.0 if quick else 590.0,
        )
        return p


# ---- stage 1: the limits -------------------------------------------------------------------

def rules_engine(seconds: float, auctions: int = 20, bidders: int = 5) -> dict[str, Any]:
    """`Auction.handle_bid` alone: every bid is min_bid from the next bidder (all accepted)."""
    from market.auction import Auction, AuctionSpec

    now = int(time.time() * 1000)
    books = []
    for i in range(auctions):
        spec = AuctionSpec(auction_id=f"a{i}", asset_id=f"c{i}", seller_id="seller",
                           type="english", start_price=100, starts_at=now,
                           ends_at=now + 3_600_000, created_at=now, soft_close_ms=0)
        auction = Auction(spec)
        auction.advance(now)
        books.append(auction)
    names = [f"u{j}" for j in range(bidders)]
    done = accepted = 0
    started = time.perf_counter()
    deadline = started + seconds
    batch = 1_000
    while time.perf_counter() < deadline and done < 5_000_000:
        for n in range(done, done + batch):
            auction = books[n % auctions]
            outcome = auction.handle_bid(names[(n // auctions) % bidders], f"r{n}",
                                         auction.min_bid(now), None, now)
            accepted += outcome.error is None
        done += batch
    elapsed = time.perf_counter() - started
    return {"figures": {"bids_per_s": round(done / elapsed, 1)},
            "details": {"bids": done, "accepted": accepted, "seconds": round(elapsed, 3),
                        "auctions": auctions, "bidders": bidders}}


def echo_limit(params: Params, tmp: Path) -> dict[str, Any]:
    echo = start_echo(tmp)
    try:
        echo.wait_ready(30)
        per_proc = _split(range(params.auctions), params.procs)
        jobs = []
        for part in per_proc:
            bidders = [{"auction_id": f"echo{k}", "bidder_id": f"u{j}", "floor": 100}
                       for k in part for j in range(params.bidders)]
            jobs.append(_job(params, echo.base, bidders, [], mode="closed"))
        result = run_load(jobs, {"echo_server": [echo.process()]})
    finally:
        echo.stop(grace=20)
    s = result.summary()
    return {"figures": {"messages_per_s": s["answered_per_s"]},
            "details": {"sockets": params.auctions * params.bidders, "window": params.window,
                        "rtt_ms": s["ack_ms"], "cpu_cores": s["cpu_cores"],
                        "counts": s["counts"]}}


def ray_calls(params: Params, address: str, env: dict[str, str], tmp: Path) -> dict[str, Any]:
    """Round trips to a no-op Ray actor (loadtests.raycall in a subprocess of its own)."""
    seconds = 1.0 if params.quick else 3.0
    with open(tmp / "raycall.log", "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "loadtests.raycall", address, str(seconds)], cwd=ROOT,
            env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=log,
            stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            out, _ = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
    lines = [line for line in out.decode().splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        log_tail = (tmp / "raycall.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"raycall exited {proc.returncode}: {log_tail}")
    result = json.loads(lines[-1])
    return {"figures": {"calls_per_s": result["concurrent_calls_per_s"],
                        "serial_p50_ms": result["serial_p50_ms"]},
            "details": result}


# ---- helpers -------------------------------------------------------------------------------

def _split(items, parts: int) -> list[list]:
    items = list(items)
    return [items[i::parts] for i in range(parts)]


def _job(params: Params, url: str, bidders: list[dict], watchers: list[dict], mode: str,
         rate_per_bidder: float = 0.0, warmup_s: float | None = None,
         measure_s: float | None = None, window: int | None = None) -> dict:
    return {
        "kind": "load", "url": url, "bidders": bidders, "watchers": watchers, "mode": mode,
        "window": params.window if window is None else window, "encoding": params.encoding,
        "rate_per_bidder": rate_per_bidder,
        "warmup_s": params.warmup_s if warmup_s is None else warmup_s,
        "measure_s": params.measure_s if measure_s is None else measure_s,
        "drain_s": 3.0,
    }


@dataclass
class Workload:
    seller: User
    bidders: list[User]
    auctions: list[dict]
    setup_s: float


async def _setup_workload(base: str, k: int, b: int) -> Workload:
    started = time.monotonic()
    async with aiohttp.ClientSession() as http:
        api = bench_api(base, http)
        accounts = await api.signups("bench", b + 1)
        seller, bidders = accounts[0], accounts[1:]
        auctions, _ = await api.auctions(seller, k, concurrency=8, **BENCH_AUCTION)
    return Workload(seller, bidders, auctions, time.monotonic() - started)


async def _refresh(base: str, auctions: list[dict]) -> list[dict]:
    async with aiohttp.ClientSession() as http:
        api = bench_api(base, http)
        return [await api.get(view["auction_id"]) for view in auctions]


def _bid_jobs(params: Params, base: str, work: Workload, mode: str,
              rate_per_bidder: float = 0.0) -> list[dict]:
    jobs = []
    for part in _split(work.auctions, params.procs):
        bidders = [{"auction_id": v["auction_id"], "token": acct.token,
                    "bidder_id": acct.user_id, "floor": v.get("min_bid") or 100}
                   for v in part for acct in work.bidders]
        watchers = [{"auction_id": v["auction_id"]} for v in part
                    for _ in range(params.watchers)]
        jobs.append(_job(params, base, bidders, watchers, mode, rate_per_bidder))
    return jobs


class Profiler:
    """Optional py-spy sampling (--profile DIR) of the gateway and host during a window."""

    def __init__(self, directory: Path | None, label: str, targets: dict[str, int]) -> None:
        self.directory = directory
        self.label = label
        self.targets = targets
        self.procs: list[subprocess.Popen] = []

    def __call__(self, seconds: float) -> None:
        if self.directory is None:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        for name, pid in self.targets.items():
            out = self.directory / f"{self.label}-{name}.txt"
            self.procs.append(subprocess.Popen(
                [spy, "record", "-p", str(pid), "-d", str(max(1, int(seconds))), "-r", "200",
                 "-f", "raw", "-o", str(out), "--nonblocking"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))

    def wait(self) -> None:
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


def _groups(server: Managed, ray_root: Managed, hosts: list[psutil.Process]) -> dict:
    host_pids = {h.pid for h in hosts}
    return {"gateway": [server.process()], "hosts": hosts,
            "ray_other": [p for p in ray_processes(ray_root) if p.pid not in host_pids]}


def _instance_hosts(ray_root: Managed, before: set[int]) -> list[psutil.Process]:
    return [p for pid, p in host_processes(ray_root).items() if pid not in before]


def _load_summary(result: LoadResult) -> dict[str, Any]:
    return result.summary()


# ---- stage 2, 3, 6: end to end -------------------------------------------------------------

def e2e_stage(params: Params, server: Managed, ray_root: Managed, label: str,
              half_rate: bool, profile_dir: Path | None) -> dict[str, Any]:
    before = set(host_processes(ray_root))
    work = asyncio.run(_setup_workload(server.base, params.auctions, params.bidders))
    hosts = _instance_hosts(ray_root, before)
    targets = {"gateway": server.pid, **{f"host{i}": h.pid for i, h in enumerate(hosts)}}
    profiler = Profiler(profile_dir, f"{label}-saturated", targets)
    saturated = run_load(_bid_jobs(params, server.base, work, "closed"),
                         _groups(server, ray_root, hosts), on_window=profiler)
    profiler.wait()
    sat = _load_summary(saturated)
    out: dict[str, Any] = {
        "figures": {
            "bids_per_s": sat["answered_per_s"],
            "accepted_per_s": sat["accepted_per_s"],
            "ack_p99_ms": sat["ack_ms"]["p99"],
            "event_p99_ms": sat["event_ms"]["p99"],
        },
        "saturated": sat,
        "setup_s": round(work.setup_s, 2),
        "hosts": len(hosts),
    }
    if half_rate:
        target = saturated.answered_per_s / 2
        work.auctions = asyncio.run(_refresh(server.base, work.auctions))
        per_bidder = target / (params.auctions * params.bidders)
        profiler = Profiler(profile_dir, f"{label}-half", targets)
        paced = run_load(_bid_jobs(params, server.base, work, "open", per_bidder),
                         _groups(server, ray_root, hosts), on_window=profiler)
        profiler.wait()
        half = _load_summary(paced)
        half["target_per_s"] = round(target, 1)
        out["half_rate"] = half
        out["figures"].update({
            "half_rate_bids_per_s": half["answered_per_s"],
            "half_rate_ack_p99_ms": half["ack_ms"]["p99"],
            "half_rate_event_p99_ms": half["event_ms"]["p99"],
        })
        # The latency floor: the same workload at a low fixed rate (open loop).
        work.auctions = asyncio.run(_refresh(server.base, work.auctions))
        per_bidder = params.light_rate / (params.auctions * params.bidders)
        jobs = _bid_jobs(params, server.base, work, "open", per_bidder)
        for job in jobs:
            job["measure_s"] = params.light_measure_s
        light = _load_summary(run_load(jobs, _groups(server, ray_root, hosts)))
        light["target_per_s"] = params.light_rate
        out["light"] = light
        out["figures"].update({
            "light_ack_p99_ms": light["ack_ms"]["p99"],
            "light_event_p99_ms": light["event_ms"]["p99"],
        })
    return out


# ---- stage 4: fan-out ----------------------------------------------------------------------

def fanout_stage(params: Params, server: Managed, ray_root: Managed) -> dict[str, Any]:
    async def setup() -> tuple[dict, list[User]]:
        async with aiohttp.ClientSession() as http:
            api = bench_api(server.base, http)
            accounts = await api.signups("fan", params.fanout_bidders + 1)
            view = await api.auction(accounts[0], **BENCH_AUCTION)
            return view, accounts[1:]

    view, bidders = asyncio.run(setup())
    watchers = [{"auction_id": view["auction_id"]} for _ in range(params.fanout_watchers)]
    parts = _split(watchers, params.procs)
    jobs = []
    for i, part in enumerate(parts):
        bids = [{"auction_id": view["auction_id"], "token": a.token, "bidder_id": a.user_id,
                 "floor": view["min_bid"]} for a in bidders] if i == 0 else []
        job = _job(params, server.base, bids, part, "closed", window=1,
                   warmup_s=min(params.warmup_s, 2.0), measure_s=params.fanout_measure_s)
        job["connect_concurrency"] = 50
        jobs.append(job)
    result = run_load(jobs, _groups(server, ray_root, list(host_processes(ray_root).values())))
    s = _load_summary(result)
    return {
        "figures": {"deliveries_per_s": s["deliveries_per_s"],
                    "bid_events_per_s": s["bid_events_per_s"],
                    "event_p99_ms": s["event_ms"]["p99"]},
        "details": {"watchers": params.fanout_watchers, "bidders": params.fanout_bidders,
                    "watchers_connected": sum(r["watchers"] for r in result.ready),
                    **s},
    }


# ---- stage 5: footprint --------------------------------------------------------------------

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
    parts = _split(range(params.idle_connections), params.procs)
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
            hosts = _instance_hosts(ray_root, before)
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
            first_hosts = _instance_hosts(ray_root, before)
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
    hosts = _instance_hosts(ray_root, before)
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


# ---- stage 7: timers -----------------------------------------------------------------------

def close_lag_stage(params: Params, tmp: Path) -> dict[str, Any]:
    """N auctions closing in the same second on one host: how late each close is published
    (committed to the store, then on the host's event feed) after its ends_at.

    Two runs: the ends spread evenly over one second (the figures), and all at the same
    instant (the worst case: one batch; its lag is `burst_ms`). The host core runs in this
    process over a SQLite file at the default durability (synchronous=FULL), as a host
    recovering the auctions after a restart would: the timer path alone, without Ray or a
    gateway in between.
    """
    count = params.close_lag_auctions
    spread = asyncio.run(_close_lag(count, 1000, tmp / "close_lag.db"))
    burst = asyncio.run(_close_lag(count, 0, tmp / "close_lag_burst.db"))
    return {
        "figures": {"close_lag_p50_ms": round(spread["lag_ms"]["p50"], 2),
                    "close_lag_p99_ms": round(spread["lag_ms"]["p99"], 2),
                    "close_lag_max_ms": round(spread["lag_ms"]["max"], 2),
                    "close_lag_burst_max_ms": round(burst["lag_ms"]["max"], 2)},
        "details": {"auctions": count, "store": "sqlite synchronous=FULL",
                    "ends_within_1s": spread, "ends_at_once": burst},
    }


def _percentile(sorted_values: list[float], q: float) -> float:
    rank = max(0, min(len(sorted_values) - 1, round(q * len(sorted_values) + 0.5) - 1))
    return sorted_values[rank]


def _spread(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"p50": round(_percentile(ordered, 0.50), 2),
            "p99": round(_percentile(ordered, 0.99), 2), "max": round(ordered[-1], 2)}


async def _close_lag(count: int, window_ms: int, path: Path) -> dict[str, Any]:
    """`count` auctions on one host, their ends spread evenly over `window_ms`."""
    from actors.config import ClusterConfig
    from actors.host import AuctionHostCore
    from market.auction import Auction, AuctionSpec
    from storage import open_store

    config = ClusterConfig(store_url=f"sqlite:///{path}", instance="closelag")
    host = config.host_name(0)
    setup = open_store(f"sqlite:///{path}?synchronous=OFF")  # filling it is not measured
    await setup.open()
    started = time.monotonic()
    now = int(time.time() * 1000)
    # Room for the inserts and the host's recovery (both ~linear in count) before the ends.
    first_end = now + 1_000 + 2 * count
    ends: dict[str, int] = {}
    try:
        for i in range(count):
            asset_id, auction_id = f"c_lag{i}", f"a_lag{i}"
            ends[auction_id] = first_end + i * window_ms // count
            await setup.create_asset({"asset_id": asset_id, "owner_id": "u_seller",
                                      "title": "t", "metadata": {}, "created_at": now})
            spec = AuctionSpec(auction_id=auction_id, asset_id=asset_id, seller_id="u_seller",
                               type="english", start_price=100, starts_at=now,
                               ends_at=ends[auction_id], created_at=now, soft_close_ms=0)
            await setup.create_auction({
                "auction_id": auction_id, "asset_id": asset_id, "seller_id": "u_seller",
                "host": host, "spec": spec.to_dict(), "view": Auction(spec).view(now),
                "status": "scheduled", "seq": 0, "created_at": now,
            })
    finally:
        await setup.close()
    core = AuctionHostCore(host, config)
    try:
        await core.ready()
        setup_s = time.monotonic() - started
        spare_ms = first_end - int(time.time() * 1000)
        if spare_ms < 0:
            raise RuntimeError(f"setup overran the first end by {-spare_ms} ms")
        published: dict[str, float] = {}
        fired: dict[str, int] = {}

        async def watch() -> None:
            epoch, cursor = None, 0
            while len(published) < count:
                batch = await core.poll(epoch, cursor, 1.0)
                at = time.time() * 1000
                epoch, cursor = batch.epoch, batch.cursor
                for event in batch.events:
                    if event["type"] == "closed" and event["auction_id"] in ends:
                        published.setdefault(event["auction_id"], at)
                        fired.setdefault(event["auction_id"], event["at"])

        await asyncio.wait_for(watch(), timeout=60 + count / 50)
    finally:
        await core.close()
    lag = [published[a] - ends[a] for a in ends]
    fire = [float(fired[a] - ends[a]) for a in ends]
    if min(lag) < 0 or min(fire) < 0:
        raise RuntimeError(f"an auction closed before its end ({min(fire):.0f} ms)")
    return {"window_ms": window_ms, "lag_ms": _spread(lag), "timer_fired_ms": _spread(fire),
            "setup_s": round(setup_s, 2), "spare_before_first_end_ms": spare_ms}


# ---- the run -------------------------------------------------------------------------------

def machine_info(tmp: Path) -> dict[str, Any]:
    import ray

    fs = "?"
    with contextlib.suppress(Exception):
        fs = subprocess.run(["df", "-T", str(tmp)], capture_output=True, text=True,
                            timeout=5).stdout.splitlines()[-1].split()[1]
    return {
        "cpu_count": os.cpu_count(), "memory_bytes": psutil.virtual_memory().total,
        "memory_available_bytes": psutil.virtual_memory().available,
        "python": platform.python_version(), "ray": ray.__version__,
        "aiohttp": aiohttp.__version__, "platform": platform.platform(),
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
        "data_dir_filesystem": fs, "nofile": gen.raise_nofile(),
    }


class TimeLimit(Exception):
    pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="every stage, small, < 2 min")
    parser.add_argument("--out", type=Path, help="JSON output (default results/latest.json)")
    parser.add_argument("--k", type=int, help="live auctions in the end-to-end workload")
    parser.add_argument("--b", type=int, help="bidder sockets per auction")
    parser.add_argument("--w", type=int, help="watcher sockets per auction")
    parser.add_argument("--window", type=int, default=2, help="outstanding bids per bidder")
    parser.add_argument("--procs", type=int, default=2, help="generator processes")
    parser.add_argument("--encoding", choices=("json", "msgpack"), default="json")
    parser.add_argument("--measure", type=float, help="seconds per throughput window")
    parser.add_argument("--profile", type=Path, help="py-spy the gateway and hosts into DIR")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (server logs)")
    parser.add_argument("--only", help=f"comma-separated subset of: {', '.join(STAGES)}")
    args = parser.parse_args(argv)

    params = Params.build(args)
    out_path = args.out or RESULTS / ("quick.json" if params.quick else "latest.json")
    t_start = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="ece-bench-"))
    bench_id = f"{os.getpid()}{int(time.time()) % 100000}"
    mem_name = f"bench{bench_id}"
    # The servers' private Ray keeps token authentication on; the bench makes up the token
    # for this run and hands it to the servers it starts (the head and those joining it).
    ray_env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    machine = machine_info(tmp)
    stages: dict[str, Any] = {}
    costs: dict[str, Any] = {}
    errors: list[str] = []
    servers: list[Managed] = []

    def on_alarm(signum, frame):
        raise TimeLimit(f"time limit {params.time_limit_s:.0f}s reached")

    def on_term(signum, frame):
        raise TimeLimit(f"stopped by signal {signum}")

    signal.signal(signal.SIGALRM, on_alarm)
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    signal.alarm(int(params.time_limit_s))

    wanted = set(STAGES)
    if args.only:
        wanted = {name.strip() for name in args.only.split(",")}
        unknown = wanted - set(STAGES)
        if unknown:
            parser.error(f"unknown stage(s): {', '.join(sorted(unknown))}")

    def stage(name: str, fn, *a, **kw) -> None:
        if name not in wanted:
            return
        t = time.monotonic()
        print(f"[{time.monotonic() - t_start:6.1f}s] {name} ...", flush=True)
        try:
            stages[name] = fn(*a, **kw)
            stages[name]["elapsed_s"] = round(time.monotonic() - t, 1)
        except TimeLimit:
            raise
        except Exception as exc:
            errors.append(f"{name}: {exc!r}")
            traceback.print_exc()
            stages[name] = {"error": repr(exc), "figures": {}}

    try:
        stage("rules_engine", rules_engine, params.rules_s, params.auctions, params.bidders)
        stage("echo", echo_limit, params, tmp)
        stage("close_lag", close_lag_stage, params, tmp)
        if not wanted - {"rules_engine", "echo", "close_lag"}:
            raise StopIteration  # nothing needs a server

        # Servers: the first starts Ray; the others join it, each its own instance and data.
        print(f"[{time.monotonic() - t_start:6.1f}s] starting servers ...", flush=True)
        main_srv = start_server("main", tmp, {"ECE_INSTANCE": f"b{bench_id}main", **ray_env})
        servers.append(main_srv)
        costs["ray_head_and_gateway_start_s"] = round(main_srv.wait_ready(180), 2)
        ray_address = ray_address_of(main_srv)
        joined_specs = {
            "inmemory": {"ECE_STORE": f"memory:{mem_name}"},
            "naive": {"ECE_BATCHING": "0"},
            "hosted": {},
            "per_actor": {"ECE_AUCTIONS_PER_ACTOR": "1"},
        }
        needs = {"inmemory": "inmemory", "naive": "baseline", "hosted": "auctions_hosted",
                 "per_actor": "auctions_per_actor"}
        joined: dict[str, Managed] = {}
        t_join = time.monotonic()
        for name, env in joined_specs.items():
            if needs[name] not in wanted:
                continue
            srv = start_server(name, tmp, {"ECE_RAY_ADDRESS": ray_address,
                                        "ECE_INSTANCE": f"b{bench_id}{name}", **ray_env, **env})
            servers.append(srv)
            joined[name] = srv
        for name, srv in joined.items():
            costs[f"join_gateway_start_s.{name}"] = round(srv.wait_ready(180), 2)
        costs["join_all_parallel_s"] = round(time.monotonic() - t_join, 2)
        costs["ray_address"] = ray_address

        stage("ray_calls", ray_calls, params, ray_address, ray_env, tmp)
        stage("idle_connections", idle_stage, params, main_srv)
        stage("e2e", e2e_stage, params, main_srv, main_srv, "e2e", True, args.profile)
        stage("fanout", fanout_stage, params, main_srv, main_srv)
        stage("inmemory", e2e_stage, params, joined.get("inmemory"), main_srv, "inmemory",
              False, args.profile)
        stage("baseline", e2e_stage, params, joined.get("naive"), main_srv, "baseline", False,
              args.profile)
        stage("auctions_hosted", auctions_stage, params, joined.get("hosted"), main_srv, 500,
              params.auctions_default, 120.0 if not params.quick else 20.0)
        stage("auctions_per_actor", auctions_stage, params, joined.get("per_actor"), main_srv,
              1, params.auctions_per_actor_max, params.per_actor_budget_s)
    except StopIteration:
        pass
    except TimeLimit as exc:
        errors.append(str(exc))
    except Exception as exc:
        errors.append(f"setup: {exc!r}")
        traceback.print_exc()
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # cleaning up: finish it
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        t_stop = time.monotonic()
        for srv in reversed(servers):  # joined gateways first, the Ray head last
            try:
                srv.stop(grace=20)
            except Exception as exc:
                errors.append(f"stop {srv.name}: {exc!r}")
        costs["stop_all_s"] = round(time.monotonic() - t_stop, 2)
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(OSError):
                os.remove(f"/dev/shm/ece-{mem_name}.db{suffix}")
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    machine["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    elapsed = time.monotonic() - t_start
    result = report.build(params=asdict(params), machine=machine, stages=stages, costs=costs,
                          errors=errors, elapsed_s=elapsed)
    lag = stages.get("close_lag", {}).get("figures", {}).get("close_lag_p99_ms")
    if "close_lag" in wanted:
        n = params.close_lag_auctions
        result["figures"]["close_lag_p99_ms"] = {
            "value": lag, "unit": "ms",
            "what": f"close lag p99, {n:,} auctions ending within 1 s, one host"}
        if lag is None:
            result["missing_stages"].append("close_lag")
    result["setup_anomalies"] = {k: {"count": len(v), "first": v[0]}
                                 for k, v in ANOMALIES.items()}
    result["generated_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(result, indent=2, sort_keys=False) + "\n")
    print(report.table(result))
    print(f"\nwrote {out_path} in {elapsed:.0f}s")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
