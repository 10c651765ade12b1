"""The capacity stage: open-loop Poisson bids at a swept offered rate, against ECE and against
the naive baseline (ECE_BATCHING=0), until the latency target fails (`loadtests.sweep`).

Per step: p50/p99 bid->ack and bid->event from the intended send time, answered share,
accepted and refused rates apart, server CPU (gateway, auction hosts and every other Ray
process) per answered bid, and the generator's CPU apart. The echo server's CPU per message is
measured here too, under the same CPU placement, so the two are comparable.

CPU placement: on a machine with two CPUs or more, the servers' processes (every thread) run on
the first CPUs and the generator processes on the last ones for the stage
(`split_cpus`), so the generator never takes the server's CPU.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

from loadtests import charts
from loadtests.cpu_use import runq_wait
from loadtests.driver import LoadResult, run_load
from loadtests.gen import HIST_MAX_US
from loadtests.params import Params
from loadtests.report import goal
from loadtests.servers import cpu_groups, server_hosts, start_echo
from loadtests.sweep import Ladder, Target, capacity, per_unit_us
from loadtests.usage import host_processes
from loadtests.workload import load_job, poisson_jobs, setup_workload, split
from testkit.processes import ROOT, Managed

RESULTS = ROOT / "loadtests" / "results"
TARGET = Target()
SERVER_GROUPS = ("gateway", "hosts", "ray_other")


def split_cpus(available: set[int]) -> tuple[set[int] | None, list[int] | None]:
    """(server CPUs, generator CPUs): the generators get the last quarter (at least one),
    the servers the rest; (None, None) on one CPU (nothing to keep apart)."""
    cpus = sorted(available)
    if len(cpus) < 2:
        return None, None
    n_gen = max(1, len(cpus) // 4)
    return set(cpus[:-n_gen]), cpus[-n_gen:]


def step_row(offered: float, s: dict[str, Any], target: Target = TARGET) -> dict[str, Any]:
    """One sweep step from a load summary (`LoadResult.summary()`): the figures and whether
    the target was met. An answer is an ack or a BID_TOO_LOW (a decision); OVERLOADED and the
    like, and no answer at all, are failures."""
    counts = s["counts"]
    sent = counts["sent_in_window"]
    decided = counts["accepted"] + counts["rejected"]
    window = s["window_s"]
    cores = s["cpu_cores"]
    server_cores = sum(cores.get(g, 0.0) for g in SERVER_GROUPS)
    row = {
        "offered_per_s": round(offered, 1),
        "sent_per_s": round(sent / window, 1),
        "answered_share": round(decided / sent, 5) if sent else 0.0,
        "accepted_per_s": s["accepted_per_s"],
        "refused_per_s": s["rejected_per_s"],
        "accepted_share": round(counts["accepted"] / decided, 3) if decided else 0.0,
        "other_errors": counts.get("other_errors", {}),
        "events_missing": counts.get("events_missing", 0),
        "ack_p50_ms": s["ack_ms"]["p50"], "ack_p99_ms": s["ack_ms"]["p99"],
        "event_p50_ms": s["event_ms"]["p50"], "event_p99_ms": s["event_ms"]["p99"],
        "send_lag_p99_ms": s.get("send_lag_ms", {}).get("p99"),
        "server_cores": round(server_cores, 3),
        "server_cores_by_group": {g: round(cores.get(g, 0.0), 3) for g in SERVER_GROUPS},
        "generator_cores": round(cores.get("generator", 0.0), 3),
        "not_ours_cores": round(cores.get("not_ours", 0.0), 3),
        "server_cpu_us_per_bid": per_unit_us(server_cores * window, decided),
    }
    if counts["accepted"] and not s["event_ms"]["count"]:
        row["event_p99_ms"] = HIST_MAX_US / 1000  # accepted bids and not one event: failed
    row["met"] = bool(sent) and target.met(row)
    return row


def _step(params: Params, server: Managed, ray_root: Managed, work, hosts, rate: float,
          cpus: tuple[set[int] | None, list[int] | None], seed: int) -> dict[str, Any]:
    server_cpus, gen_cpus = cpus
    jobs = poisson_jobs(params, server.base, work, rate, params.capacity_watchers, gen_cpus,
                        seed)
    groups = cpu_groups(server, ray_root, hosts)
    procs = [p for group in SERVER_GROUPS for p in groups[group]]
    waited, started = runq_wait(procs), time.monotonic()
    result: LoadResult = run_load(jobs, groups, server_cpus=server_cpus)
    row = step_row(rate, result.summary())
    # Seconds per second the server's threads sat runnable waiting for a CPU (the whole run,
    # warm-up and drain included): on a shared machine, the others' share of a latency.
    row["server_runq_wait_per_s"] = round(
        (runq_wait(procs) - waited) / (time.monotonic() - started), 3)
    row["loadavg"] = [round(x, 2) for x in os.getloadavg()]
    print(f"    {rate:8.0f}/s  ack p50/p99 {row['ack_p50_ms']:.1f}/{row['ack_p99_ms']:.1f} ms"
          f"  event p99 {row['event_p99_ms']:.1f} ms  answered {row['answered_share']:.4f}"
          f"  accepted {row['accepted_share']:.2f}  runq wait {row['server_runq_wait_per_s']:.2f}"
          f"  {'met' if row['met'] else 'MISSED'}",
          flush=True)
    return row


def sweep(params: Params, server: Managed, ray_root: Managed, cpus, half: bool,
          label: str) -> dict[str, Any]:
    before = set(host_processes(ray_root))
    work = asyncio.run(setup_workload(server.base, params.capacity_auctions,
                                      params.capacity_bidders))
    hosts = server_hosts(server, ray_root, before)
    ladder = Ladder(start=params.capacity_start_rate, factor=params.capacity_factor,
                    max_steps=params.capacity_max_steps, refine=0 if params.quick else 1)
    steps: list[dict[str, Any]] = []
    print(f"  {label}: {params.capacity_auctions} auctions x {params.capacity_bidders} bidders,"
          f" {params.capacity_watchers} watchers each", flush=True)
    # A first step right after set-up runs on cold hosts (its p99 came out 4x the next one's):
    # it primes them and is reported apart, not counted.
    # (Both skipped with --quick, to keep it short.)
    prime = None if params.quick else _step(params, server, ray_root, work, hosts,
                                            ladder.start, cpus, 98)
    # The same sockets open and no bids: the server's fixed CPU cost.
    idle = None if params.quick else _step(params, server, ray_root, work, hosts, 0.0, cpus, 97)
    while (rate := ladder.next_rate([(s["offered_per_s"], s["met"]) for s in steps])):
        steps.append(_step(params, server, ray_root, work, hosts, rate, cpus, len(steps)))
    best = capacity([(s["offered_per_s"], s["met"]) for s in steps])
    out: dict[str, Any] = {"steps": steps, "capacity_bids_per_s": best, "hosts": len(hosts),
                           "prime": prime,
                           "idle_server_cores": idle["server_cores"] if idle else None,
                           "idle_server_cores_by_group": idle and idle["server_cores_by_group"],
                           "setup_s": round(work.setup_s, 2)}
    if best is not None:
        out["knee"] = next(s for s in steps if s["offered_per_s"] == best)
        if half:
            out["half"] = _step(params, server, ray_root, work, hosts, best / 2, cpus, 99)
    return out


def echo_cost(params: Params, tmp: Path, cpus) -> dict[str, Any]:
    """The echo server saturated (closed loop, the echo stage's sockets and window) under the
    same CPU placement: messages/s and its CPU per message."""
    server_cpus, gen_cpus = cpus
    echo = start_echo(tmp)
    try:
        echo.wait_ready(30)
        jobs = []
        for part in split(range(params.auctions), params.procs):
            bidders = [{"auction_id": f"echo{k}", "bidder_id": f"u{j}", "floor": 100}
                       for k in part for j in range(params.bidders)]
            job = load_job(params, echo.base, bidders, [], mode="closed",
                           warmup_s=params.capacity_warmup_s,
                           measure_s=params.capacity_measure_s)
            job["cpus"] = gen_cpus
            jobs.append(job)
        result = run_load(jobs, {"echo_server": [echo.process()]}, server_cpus=server_cpus)
    finally:
        echo.stop(grace=20)
    s = result.summary()
    answered = s["counts"]["answered"]
    return {"messages_per_s": s["answered_per_s"], "rtt_ms": s["ack_ms"],
            "cpu_cores": s["cpu_cores"],
            "cpu_us_per_msg": per_unit_us(s["cpu_cores"]["echo_server"] * s["window_s"],
                                          answered)}


def capacity_stage(params: Params, server: Managed, baseline: Managed | None,
                   ray_root: Managed, tmp: Path) -> dict[str, Any]:
    cpus = split_cpus(os.sched_getaffinity(0)) if params.capacity_pin else (None, None)
    workdir = tmp / "capacity"
    workdir.mkdir(parents=True, exist_ok=True)
    loadavg_start = [round(x, 2) for x in os.getloadavg()]
    echo = echo_cost(params, workdir, cpus)
    ours = sweep(params, server, ray_root, cpus, True, "ECE")
    base = sweep(params, baseline, ray_root, cpus, False, "baseline") if baseline else None
    series = {"ECE": ours["steps"]}
    knees = {"ECE": ours["capacity_bids_per_s"]}
    if base is not None:
        series["naive baseline"] = base["steps"]
        knees["naive baseline"] = base["capacity_bids_per_s"]
    name = "capacity-quick.png" if params.quick else "capacity.png"
    load = [round(x, 1) for x in os.getloadavg()]
    chart = charts.capacity_chart(series, knees, TARGET.ack_p99_ms, RESULTS / name,
                                  f"{params.capacity_auctions} auctions, loadavg at the end "
                                  f"{load[0]} / {load[1]} / {load[2]} on {os.cpu_count()} CPUs")
    knee = ours.get("knee") or {}
    half = ours.get("half") or {}
    # CPU per bid and the bid mix: at the knee; with no knee (a loaded machine), at the
    # busiest step that still answered (said in `cpu_step`).
    cpu_step = knee or max((s for s in ours["steps"]
                            if s["answered_share"] >= TARGET.answered_share),
                           key=lambda s: s["offered_per_s"], default={})
    figures = {
        "capacity_bids_per_s": ours["capacity_bids_per_s"],
        "baseline_capacity_bids_per_s": base["capacity_bids_per_s"] if base else None,
        "capacity_ack_p99_ms": knee.get("ack_p99_ms"),
        "capacity_event_p99_ms": knee.get("event_p99_ms"),
        "half_capacity_ack_p99_ms": half.get("ack_p99_ms"),
        "half_capacity_event_p99_ms": half.get("event_p99_ms"),
        "accepted_share": cpu_step.get("accepted_share"),
        "server_cpu_us_per_bid": cpu_step.get("server_cpu_us_per_bid"),
        # Above the idle cost: what one more bid costs.
        "server_marginal_cpu_us_per_bid": per_unit_us(
            cpu_step["server_cores"] - ours["idle_server_cores"],
            cpu_step["accepted_per_s"] + cpu_step["refused_per_s"])
        if cpu_step and ours["idle_server_cores"] is not None else None,
        "server_idle_cores": ours["idle_server_cores"],
        "echo_cpu_us_per_msg": echo["cpu_us_per_msg"],
        "capacity_echo_messages_per_s": echo["messages_per_s"],
    }
    return {
        "figures": {k: v for k, v in figures.items() if v is not None},
        "target": {"answered_share": TARGET.answered_share, "ack_p99_ms": TARGET.ack_p99_ms,
                   "event_p99_ms": TARGET.event_p99_ms},
        "cpu_placement": {"server_cpus": sorted(cpus[0]) if cpus[0] else None,
                          "generator_cpus": cpus[1]},
        "cpu_step": {"offered_per_s": cpu_step.get("offered_per_s"), "knee": bool(knee)},
        "loadavg_start": loadavg_start,
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        "echo": echo, "ours": ours, "baseline": base,
        "chart": str(chart.relative_to(ROOT)) if chart else None,
    }


# (key, figure, unit, description): the report rows of this stage.
FIGURES = (
    ("capacity_bids_per_s", "bids/s", "capacity: highest offered rate meeting the target"),
    ("baseline_capacity_bids_per_s", "bids/s", "  the naive baseline's capacity"),
    ("capacity_ack_p99_ms", "ms", "  bid->ack p99 at capacity"),
    ("half_capacity_ack_p99_ms", "ms", "  bid->ack p99 at half capacity"),
    ("half_capacity_event_p99_ms", "ms", "  bid->event p99 at half capacity"),
    ("accepted_share", "share", "  accepted share of the answered bids at capacity"),
    ("server_cpu_us_per_bid", "us", "server CPU per answered bid at capacity"),
    ("server_marginal_cpu_us_per_bid", "us", "  the same above the server's idle CPU"),
    ("server_idle_cores", "cores", "  server CPU with the sockets open and no bids"),
    ("echo_cpu_us_per_msg", "us", "echo server CPU per message"),
)


GOALS = ("capacity / baseline capacity", "capacity / echo",
         "server CPU per bid / echo CPU per msg", "p99 bid->ack at half capacity")


def add_to_report(result: dict[str, Any], stages: dict[str, Any], wanted: set[str]) -> None:
    """The capacity figures, ratios and goals in the report (when the stage was wanted)."""
    if "capacity" not in wanted:
        return
    got = stages.get("capacity", {}).get("figures", {})
    for key, unit, what in FIGURES:
        result["figures"][key] = {"value": got.get(key), "unit": unit, "what": what}

    def ratio(a: str, b: str) -> float | None:
        x, y = got.get(a), got.get(b)
        return round(x / y, 3) if x is not None and y else None

    ratios = {
        "capacity_over_baseline": ratio("capacity_bids_per_s", "baseline_capacity_bids_per_s"),
        "capacity_over_echo": ratio("capacity_bids_per_s", "capacity_echo_messages_per_s"),
        "cpu_per_bid_over_echo": ratio("server_cpu_us_per_bid", "echo_cpu_us_per_msg"),
    }
    # What a bid costs in paced Ray calls (the ray_calls stage): at the knee nothing is
    # batched, so this says how many calls' worth of fixed cost each bid pays.
    paced_call = result["figures"].get("ray_call_cpu_us_paced", {}).get("value")
    per_bid = got.get("server_cpu_us_per_bid")
    ratios["cpu_per_bid_over_ray_call"] = (round(per_bid / paced_call, 3)
                                           if per_bid is not None and paced_call else None)
    result["ratios"].update(ratios)
    over_baseline, over_echo, cpu_ratio, half_p99 = GOALS
    result["goals"] += [
        goal(over_baseline, ratios["capacity_over_baseline"], 10, ">=", "x"),
        goal(over_echo, ratios["capacity_over_echo"], 0.30, ">=", "x",
             "echo saturated under the same CPU placement"),
        goal(cpu_ratio, ratios["cpu_per_bid_over_echo"], 6, "<=", "x"),
        goal(half_p99, got.get("half_capacity_ack_p99_ms"), 10, "<=", "ms"),
    ]
    # Nothing meeting the target is a result (the figures are null), not a missing stage.
    if "capacity" not in stages or stages["capacity"].get("error"):
        result["missing_stages"].append("capacity")
