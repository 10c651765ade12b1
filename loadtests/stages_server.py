"""The stages against ECE servers: Ray calls, end to end (and the baseline and in-memory
store on the same workload), fan-out."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp

from loadtests.driver import LoadResult, run_load
from loadtests.params import Params
from loadtests.servers import BENCH_AUCTION, bench_api, cpu_groups, server_hosts
from loadtests.usage import host_processes
from loadtests.workload import bid_jobs, load_job, refresh, setup_workload, split
from testkit.client import User
from testkit.processes import ROOT, Managed

# ---- stage 1: the limits -------------------------------------------------------------------

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
                        "serial_p50_ms": result["serial_p50_ms"],
                        "paced_cpu_us_per_call": result["paced_cpu_us_per_call"]},
            "details": result}


# ---- helpers -------------------------------------------------------------------------------

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


def _load_summary(result: LoadResult) -> dict[str, Any]:
    return result.summary()


# ---- stage 2, 3, 6: end to end -------------------------------------------------------------

def e2e_stage(params: Params, server: Managed, ray_root: Managed, label: str,
              half_rate: bool, profile_dir: Path | None) -> dict[str, Any]:
    before = set(host_processes(ray_root))
    work = asyncio.run(setup_workload(server.base, params.auctions, params.bidders))
    hosts = server_hosts(server, ray_root, before)
    targets = {"gateway": server.pid, **{f"host{i}": h.pid for i, h in enumerate(hosts)}}
    profiler = Profiler(profile_dir, f"{label}-saturated", targets)
    saturated = run_load(bid_jobs(params, server.base, work, "closed"),
                         cpu_groups(server, ray_root, hosts), on_window=profiler)
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
        work.auctions = asyncio.run(refresh(server.base, work.auctions))
        per_bidder = target / (params.auctions * params.bidders)
        profiler = Profiler(profile_dir, f"{label}-half", targets)
        paced = run_load(bid_jobs(params, server.base, work, "open", per_bidder),
                         cpu_groups(server, ray_root, hosts), on_window=profiler)
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
        work.auctions = asyncio.run(refresh(server.base, work.auctions))
        per_bidder = params.light_rate / (params.auctions * params.bidders)
        jobs = bid_jobs(params, server.base, work, "open", per_bidder)
        for job in jobs:
            job["measure_s"] = params.light_measure_s
        light = _load_summary(run_load(jobs, cpu_groups(server, ray_root, hosts)))
        light["target_per_s"] = params.light_rate
        out["light"] = light
        out["figures"].update({
            "light_ack_p99_ms": light["ack_ms"]["p99"],
            "light_event_p99_ms": light["event_ms"]["p99"],
        })
    return out


# ---- stage 4: fan-out ----------------------------------------------------------------------

# Watchers in the bidders' generator process (the ones whose events are timed).
FANOUT_TIMING_WATCHERS = 10


def fanout_stage(params: Params, server: Managed, ray_root: Managed) -> dict[str, Any]:
    async def setup() -> tuple[dict, list[User]]:
        async with aiohttp.ClientSession() as http:
            api = bench_api(server.base, http)
            accounts = await api.signups("fan", params.fanout_bidders + 1)
            view = await api.auction(accounts[0], **BENCH_AUCTION)
            return view, accounts[1:]

    view, bidders = asyncio.run(setup())
    watchers = [{"auction_id": view["auction_id"]} for _ in range(params.fanout_watchers)]
    bids = [{"auction_id": view["auction_id"], "token": a.token, "bidder_id": a.user_id,
             "floor": view["min_bid"]} for a in bidders]
    # The bidders' process holds only the few watchers that time bid -> event: with a share
    # of the watchers it read hundreds of deliveries before each ack, and its closed loop,
    # not the gateway, set the event rate.
    parts = [watchers[:FANOUT_TIMING_WATCHERS],
             *split(watchers[FANOUT_TIMING_WATCHERS:], params.procs)]
    jobs = []
    for i, part in enumerate(parts):
        job = load_job(params, server.base, bids if i == 0 else [], part, "closed", window=1,
                       warmup_s=min(params.warmup_s, 2.0), measure_s=params.fanout_measure_s)
        job["connect_concurrency"] = 50
        jobs.append(job)
    result = run_load(jobs, cpu_groups(server, ray_root, list(host_processes(ray_root).values())))
    s = _load_summary(result)
    return {
        "figures": {"deliveries_per_s": s["deliveries_per_s"],
                    "bid_events_per_s": s["bid_events_per_s"],
                    "event_p99_ms": s["event_ms"]["p99"]},
        "details": {"watchers": params.fanout_watchers, "bidders": params.fanout_bidders,
                    "watchers_connected": sum(r["watchers"] for r in result.ready),
                    **s},
    }
