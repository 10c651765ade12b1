"""Runs generator jobs in worker processes and merges what they measured."""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import queue
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from hdrh.histogram import HdrHistogram

from loadtests import gen, worker
from loadtests.usage import cpu_seconds


class GeneratorError(RuntimeError):
    pass


def percentiles_ms(hist: HdrHistogram) -> dict[str, float]:
    if hist.get_total_count() == 0:
        return {"count": 0, "p50": 0.0, "p95": 0.0, "p99": 0.0, "max": 0.0}
    return {
        "count": hist.get_total_count(),
        "p50": hist.get_value_at_percentile(50) / 1000,
        "p95": hist.get_value_at_percentile(95) / 1000,
        "p99": hist.get_value_at_percentile(99) / 1000,
        "max": hist.get_max_value() / 1000,
    }


@dataclass
class LoadResult:
    window_s: float
    totals: dict[str, Any]
    ack: dict[str, float]
    event: dict[str, float]
    ack_by_second: list[dict[str, float]] = field(default_factory=list)
    cpu_cores: dict[str, float] = field(default_factory=dict)
    ready: list[dict] = field(default_factory=list)
    lag: dict[str, float] = field(default_factory=dict)  # generator: send time - intended

    @property
    def answered_per_s(self) -> float:
        return self.totals["answered"] / self.window_s

    def summary(self) -> dict[str, Any]:
        t = self.totals
        w = self.window_s
        return {
            "window_s": w,
            "answered_per_s": round(t["answered"] / w, 1),
            "accepted_per_s": round(t["accepted"] / w, 1),
            "rejected_per_s": round(t["rejected"] / w, 1),
            "sent_per_s": round(t["sent_in_window"] / w, 1),
            "deliveries_per_s": round(t["deliveries"] / w, 1),
            "bid_events_per_s": round(t["bid_events"] / w, 1),
            "ack_ms": self.ack,
            "event_ms": self.event,
            # [answered, p50, p99] for each second of the window
            "ack_by_second": [[s["count"], s["p50"], s["p99"]] for s in self.ack_by_second],
            "counts": {k: v for k, v in t.items()},
            "cpu_cores": {k: round(v, 2) for k, v in self.cpu_cores.items()},
            "send_lag_ms": self.lag,
        }


HISTOGRAMS = ("ack_hist", "event_hist", "lag_hist")


def merge(results: list[dict]) -> tuple[dict[str, Any], dict[str, HdrHistogram],
                                       list[dict[str, float]]]:
    """Totals summed, histograms (by name) added, and the per-second ack percentiles."""
    totals: dict[str, Any] = {}
    other: dict[str, int] = {}
    hists = {name: gen.new_histogram() for name in HISTOGRAMS}
    seconds: dict[int, HdrHistogram] = {}
    for r in results:
        for second, encoded in r.get("ack_by_second", {}).items():
            seconds.setdefault(int(second), gen.new_histogram()).decode_and_add(encoded)
        for key, value in r.items():
            if key in HISTOGRAMS or key in ("window_s", "ack_by_second"):
                continue
            if key == "other_errors":
                for code, n in value.items():
                    other[code] = other.get(code, 0) + n
            elif isinstance(value, (int, float)):
                totals[key] = totals.get(key, 0) + value
        for name, hist in hists.items():
            if name in r:
                hist.decode_and_add(r[name])
    totals["other_errors"] = other
    by_second = [percentiles_ms(seconds[k]) for k in sorted(seconds)]
    return totals, hists, by_second


class Generators:
    """A set of generator processes running one job each (spawn: a clean interpreter)."""

    def __init__(self, jobs: list[dict]) -> None:
        ctx = mp.get_context("spawn")
        self.jobs = jobs
        self.start_event = ctx.Event()
        self.results = ctx.Queue()
        self.procs = [
            ctx.Process(target=worker.worker_main, args=(job, i, self.start_event, self.results),
                        daemon=True, name=f"ece-gen-{i}")
            for i, job in enumerate(jobs)
        ]
        for proc in self.procs:
            proc.start()
        self.started_at: float | None = None

    def psutil_procs(self) -> list[psutil.Process]:
        out = []
        for proc in self.procs:
            with contextlib.suppress(psutil.Error, ValueError):
                out.append(psutil.Process(proc.pid))
        return out

    def _collect(self, kind: str, timeout: float) -> list[dict]:
        got: dict[int, dict] = {}
        deadline = time.monotonic() + timeout
        while len(got) < len(self.procs):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise GeneratorError(f"generators: {len(got)}/{len(self.procs)} {kind} "
                                     f"after {timeout:.0f}s")
            try:
                tag, index, payload = self.results.get(timeout=min(remaining, 1.0))
            except queue.Empty:
                dead = [p for p in self.procs if not p.is_alive() and p.exitcode not in (0, None)]
                if dead:
                    raise GeneratorError(f"generator died (exit {dead[0].exitcode})") from None
                continue
            if tag == "error":
                raise GeneratorError(f"generator {index}: {payload}")
            if tag == kind:
                got[index] = payload
        return [got[i] for i in sorted(got)]

    def wait_ready(self, timeout: float) -> list[dict]:
        return self._collect("ready", timeout)

    def go(self) -> None:
        self.started_at = time.monotonic()
        self.start_event.set()

    def wait_results(self, timeout: float) -> list[dict]:
        return self._collect("result", timeout)

    def close(self) -> None:
        for proc in self.procs:
            proc.join(timeout=5)
        for proc in self.procs:
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=3)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=3)
        self.results.close()


def _busy_seconds() -> float:
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0) - getattr(
        times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)


def pin_threads(procs: list[psutil.Process], cpus: set[int] | None) -> None:
    """Every thread of `procs` onto `cpus` (None: every CPU of the machine). A process's new
    threads and children inherit it; processes already gone are skipped."""
    target = cpus if cpus else set(range(os.cpu_count() or 1))
    for proc in procs:
        for task in Path(f"/proc/{proc.pid}/task").glob("*"):
            with contextlib.suppress(OSError, ValueError):
                os.sched_setaffinity(int(task.name), target)


def run_load(jobs: list[dict], cpu_groups: dict[str, list[psutil.Process]] | None = None,
             ready_timeout: float = 120.0, on_window=None,
             server_cpus: set[int] | None = None) -> LoadResult:
    """Run `jobs` (one per process) to completion; sample CPU over the measurement window.

    `on_window(seconds)` is called when the window opens (e.g. to start a profiler).
    `server_cpus`: the processes of `cpu_groups` run on those CPUs only for the run (the
    generators' own CPUs are their jobs' `cpus`)."""
    warmup = float(jobs[0]["warmup_s"])
    measure = float(jobs[0]["measure_s"])
    pinned = [p for procs in (cpu_groups or {}).values() for p in procs] if server_cpus else []
    pin_threads(pinned, server_cpus)
    generators = Generators(jobs)
    try:
        ready = generators.wait_ready(ready_timeout)
        groups = dict(cpu_groups or {})
        groups["generator"] = generators.psutil_procs()
        generators.go()
        assert generators.started_at is not None
        time.sleep(max(0.0, generators.started_at + warmup - time.monotonic()))
        if on_window is not None:
            on_window(measure)
        before = cpu_seconds(groups)
        machine_before = _busy_seconds()
        t_before = time.monotonic()
        time.sleep(max(0.0, generators.started_at + warmup + measure - time.monotonic()))
        after = cpu_seconds(groups)
        machine_after = _busy_seconds()
        elapsed = time.monotonic() - t_before
        cores = {k: (after[k] - before[k]) / elapsed for k in groups}
        # Whatever else ran on the machine meanwhile (other users): the noise level.
        busy = (machine_after - machine_before) / elapsed
        cores["machine_busy"] = busy
        cores["not_ours"] = max(0.0, busy - sum(cores[k] for k in groups))
        results = generators.wait_results(float(jobs[0].get("drain_s", 3.0)) + 60)
    finally:
        generators.close()
        pin_threads(pinned, None)
    totals, hists, by_second = merge(results)
    return LoadResult(measure, totals, percentiles_ms(hists["ack_hist"]),
                      percentiles_ms(hists["event_hist"]), by_second, cores, ready,
                      percentiles_ms(hists["lag_hist"]))
