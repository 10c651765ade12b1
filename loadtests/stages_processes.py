"""Stage `processes`: capacity with 1 and 2 gateway processes (ECE_GATEWAYS, `SO_REUSEPORT`)
and 1, 2 and 4 auction host actors, at the capacity stage's latency target
(`loadtests.sweep.Target`: >= 99.9% answered, p99 bid->ack <= 20 ms, p99 bid->event <= 50 ms).

Two joined servers differ in ECE_GATEWAYS only; both host `Sizes.per_host` auctions per actor
(ECE_AUCTIONS_PER_ACTOR). Each creates its auctions in up to four rounds of that many: the
directory places an auction on the fullest host with room, so each round fills one new host
(checked: the host processes that appeared in each round are recorded, `hosts_per_round`).
The load on "h hosts" then bids on the auctions of the first h rounds only: the same server,
the same sockets per auction, the load spread over 1, 2 or 4 hosts.

Per configuration a short ladder (`loadtests.sweep.Ladder`) from the knee of a neighbouring
configuration, the first from the capacity stage's knee when there is one (x 1.3 up while
the target is met, / 1.3 down while it is not, at most `max_steps`), so the knee is known to
within 30% in a few steps and the stage stays in the bench's budget; with `--quick` one
small step of 2 gateway processes x 2 hosts (the keys are written; the figures say little).
No CPU pinning here: the question is whether more processes use more of the machine, and
pinning the server to one CPU (as the capacity stage does) would answer no by construction.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import psutil

from loadtests import report
from loadtests.driver import run_load
from loadtests.params import Params
from loadtests.servers import BENCH_AUCTION, bench_api, cpu_groups, instance_hosts
from loadtests.stages_capacity import TARGET, step_row
from loadtests.sweep import Ladder, capacity
from loadtests.usage import host_processes
from loadtests.workload import Workload, poisson_jobs
from testkit.client import User
from testkit.processes import Managed

STAGE = "processes"
GATEWAYS = (1, 2)
HOSTS = (1, 2, 4)
SERVERS = {g: f"procs{g}gw" for g in GATEWAYS}  # the joined servers' names in the bench


@dataclass(frozen=True)
class Sizes:
    per_host: int  # auctions per host actor (ECE_AUCTIONS_PER_ACTOR), one round each
    bidders: int  # bidder sockets per auction
    watchers: int  # watcher sockets per auction
    warmup_s: float
    measure_s: float
    drain_s: float
    start_rate: float  # bids/s of the first configuration's first step
    factor: float
    max_steps: int
    measured: tuple[tuple[int, int], ...]  # the (gateways, hosts) configurations run


EVERY = tuple((g, h) for g in GATEWAYS for h in HOSTS)
FULL = Sizes(per_host=20, bidders=3, watchers=2, warmup_s=1.0, measure_s=3.0, drain_s=2.0,
             start_rate=100.0, factor=1.3, max_steps=5, measured=EVERY)
# --quick (inside `make test`, where each server and host actor started costs seconds): one
# step of 2 gateway processes x 2 hosts, one auction per host, on the one server with
# ECE_GATEWAYS=2; the other figures and the ratios are null.
QUICK = Sizes(per_host=1, bidders=2, watchers=1, warmup_s=0.3, measure_s=1.0, drain_s=1.0,
              start_rate=30.0, factor=1.3, max_steps=1, measured=((2, 2),))


def sizes(params: Params) -> Sizes:
    return QUICK if params.quick else FULL


def gateway_counts(size: Sizes) -> list[int]:
    """The ECE_GATEWAYS of the servers a run of `size` needs."""
    return [g for g in GATEWAYS if any(g0 == g for g0, _ in size.measured)]


def server_specs(params: Params) -> dict[str, dict[str, str]]:
    """The joined servers this stage needs: name -> environment."""
    size = sizes(params)
    return {SERVERS[g]: {"ECE_GATEWAYS": str(g), "ECE_AUCTIONS_PER_ACTOR": str(size.per_host)}
            for g in gateway_counts(size)}


def key(gateways: int, hosts: int) -> str:
    return f"capacity_{gateways}gw_{hosts}host_bids_per_s"


# (key, stage, figure, unit, description)
FIGURES = tuple(
    (key(g, h), STAGE, key(g, h), "bids/s",
     f"capacity, {g} gateway process{'es' if g > 1 else ''}, {h} host{'s' if h > 1 else ''}")
    for g in GATEWAYS for h in HOSTS)
# ratio -> (numerator, denominator): each dimension compared where the other is largest.
RATIOS = {"two_gateways_over_one": (key(2, 4), key(1, 4)),
          "four_hosts_over_one": (key(2, 4), key(2, 1))}


def ratios_of(figures: dict[str, Any]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for name, (a, b) in RATIOS.items():
        x, y = figures.get(a), figures.get(b)
        out[name] = round(x / y, 3) if x is not None and y else None
    return out


def gateway_processes(server: Managed) -> list[psutil.Process]:
    """The server's gateway processes: the one started and those it started."""
    procs = [server.process()]
    for child in server.descendants():
        try:
            if "--gateway-process" in child.cmdline():
                procs.append(child)
        except psutil.Error:
            continue
    return procs


def accounts(bases: list[str], size: Sizes) -> list[list[User]]:
    """A seller and `size.bidders` bidders on each server, all at once (signing up hashes a
    password: the slow part of the set-up)."""

    async def on_all() -> list[list[User]]:
        async with aiohttp.ClientSession() as http:
            return list(await asyncio.gather(*(
                bench_api(base, http).signups("procs", size.bidders + 1) for base in bases)))

    return asyncio.run(on_all())


def setup_rounds(base: str, users: list[User], ray_root: Managed, size: Sizes,
                 rounds: int) -> tuple[Workload, list[list[dict]], list[list[psutil.Process]]]:
    """`rounds` rounds of `size.per_host` auctions by `users[0]`, bid on by the others; per
    round its auctions and the host processes that appeared while it was created."""
    started = time.monotonic()

    async def one_round(seller) -> list[dict]:
        async with aiohttp.ClientSession() as http:
            views, _ = await bench_api(base, http).auctions(seller, size.per_host,
                                                            concurrency=4, **BENCH_AUCTION)
            return views

    seller, bidders = users[0], users[1:]
    by_round: list[list[dict]] = []
    hosts: list[list[psutil.Process]] = []
    for _ in range(rounds):
        before = set(host_processes(ray_root))
        by_round.append(asyncio.run(one_round(seller)))
        hosts.append(instance_hosts(ray_root, before))
    work = Workload(seller, bidders, [], time.monotonic() - started)
    return work, by_round, hosts


def step(params: Params, size: Sizes, server: Managed, ray_root: Managed, work: Workload,
         hosts: list[psutil.Process], rate: float, seed: int) -> dict[str, Any]:
    jobs = poisson_jobs(params, server.base, work, rate, size.watchers, None, seed)
    for job in jobs:
        job.update(warmup_s=size.warmup_s, measure_s=size.measure_s, drain_s=size.drain_s)
    groups = cpu_groups(server, ray_root, hosts)
    groups["gateway"] = gateway_processes(server)
    row = step_row(rate, run_load(jobs, groups).summary())
    print(f"    {rate:8.0f}/s  ack p50/p99 {row['ack_p50_ms']:.1f}/{row['ack_p99_ms']:.1f} ms"
          f"  event p99 {row['event_p99_ms']:.1f} ms  answered {row['answered_share']:.4f}"
          f"  {'met' if row['met'] else 'MISSED'}", flush=True)
    return row


def processes_stage(params: Params, servers: dict[int, Managed | None], ray_root: Managed,
                    start_rate: float | None = None) -> dict[str, Any]:
    """`start_rate`: where the first ladder starts (the capacity stage's knee, when it has
    one: the best guess of this machine's knee now), else `Sizes.start_rate`."""
    size = sizes(params)
    if start_rate and not params.quick:
        size = dataclasses.replace(size, start_rate=start_rate)
    if params.quick:  # one generator process: spawning a second costs more than it adds
        params = dataclasses.replace(params, procs=1)
    configs: dict[str, Any] = {}

    def start_of(g: int, h: int) -> float:
        """Where a ladder starts: the knee of the same hosts with one gateway process fewer,
        else of the fewer hosts before, else the first rate."""
        for g0, h0 in ((g - 1, h), (g, HOSTS[max(0, HOSTS.index(h) - 1)])):
            known = configs.get(key(g0, h0), {}).get("capacity_bids_per_s")
            if known:
                return known
        return size.start_rate

    counts = gateway_counts(size)
    chosen = {g: server for g, server in servers.items() if server is not None}
    missing = [g for g in counts if g not in chosen]
    if missing:
        raise RuntimeError(f"no server with ECE_GATEWAYS={missing[0]}")
    started = time.monotonic()
    users = dict(zip(counts, accounts([chosen[g].base for g in counts], size), strict=True))
    signups_s = round(time.monotonic() - started, 2)
    for g in counts:
        server = chosen[g]
        rounds = max(h for g0, h in size.measured if g0 == g)  # one new host each
        work, by_round, round_hosts = setup_rounds(server.base, users[g], ray_root, size,
                                                   rounds)
        all_hosts = [p for hosts in round_hosts for p in hosts]
        for h in HOSTS:
            if (g, h) not in size.measured:
                continue
            auctions = [view for views in by_round[:h] for view in views]
            load = Workload(work.seller, work.bidders, auctions, work.setup_s)
            ladder = Ladder(start=start_of(g, h), factor=size.factor, stop_after=1, refine=0,
                            max_steps=size.max_steps)
            print(f"  {g} gateway process(es), {h} host(s): {len(auctions)} auctions",
                  flush=True)
            steps: list[dict[str, Any]] = []
            while (rate := ladder.next_rate([(s["offered_per_s"], s["met"]) for s in steps])):
                steps.append(step(params, size, server, ray_root, load, all_hosts, rate,
                                  len(configs) * 100 + len(steps)))
            best = capacity([(s["offered_per_s"], s["met"]) for s in steps])
            configs[key(g, h)] = {"gateways": g, "hosts": h, "auctions": len(auctions),
                                  "capacity_bids_per_s": best, "steps": steps}
        configs[f"server_{g}gw"] = {
            "gateway_processes": len(gateway_processes(server)),
            "hosts_per_round": [len(hosts) for hosts in round_hosts],
            "setup_s": round(work.setup_s, 2)}
    figures = {name: c["capacity_bids_per_s"] for name, c in configs.items()
               if name.startswith("capacity_") and c["capacity_bids_per_s"] is not None}
    return {"figures": figures, "ratios": ratios_of(figures), "configs": configs,
            "target": {"answered_share": TARGET.answered_share,
                       "ack_p99_ms": TARGET.ack_p99_ms, "event_p99_ms": TARGET.event_p99_ms},
            "signups_s": signups_s, "sizes": dataclasses.asdict(size)}


def add_processes_report(result: dict[str, Any], stages: dict[str, Any],
                         wanted: set[str]) -> None:
    """The stage's figures and ratios into the bench's result (in place); a capacity no step
    met is a null figure (a result), a failed stage is a missing one."""
    if report.add_stage(result, stages, wanted, STAGE, FIGURES):
        result["ratios"].update(ratios_of({k: f["value"] for k, f in result["figures"].items()}))
