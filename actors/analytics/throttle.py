"""How a projection catching up keeps off the bid path's CPU: `Throttle`.

A catch-up (a projection folding full pages, after a start, a rebuild or a bulk import) can
use every CPU cycle it gets, and the actors run at nice 19 for that. But Linux weighs a
nice value only against processes of the same session (autogroups: a gateway or a client
started in a session of its own gets an equal share whatever our nice), and a Ray worker
cannot leave its session (it leads a process group). So the catch-up also keeps to a
budget of its own: while the CPUs are contended it uses at most `BUDGET` of one CPU,
pausing after each page for as long as the page's CPU allows; a machine that is not
contended costs it no pause, and a pause ends at the first quiet `SAMPLE_S`.

"Contended" is judged from Linux's pressure stall information: some task waited for a CPU
more than `PRESSURE_BUSY` of the span judged (our own waits count too, which errs towards
yielding). Not from how busy the other processes are: a catch-up that takes a CPU leaves
the others less of it, so they looked idle exactly when it hurt them most (a saturated bid
path at 1.45 of 2 CPUs is below any "busy" share). Without pressure information (kernels
built without PSI) it falls back to that: others using more than `BUSY_SHARE` of the CPUs.
"The CPUs" are those of our container's cgroup v2 when we run in one (its `cpu.pressure`,
`cpu.stat` and `cpu.max`: other tenants' load is not ours to yield to), else the machine's
(`/proc/pressure/cpu`; `/proc/stat` without steal time and without counting guest time
twice). Tailing (pages not full) never waits. The lag it leaves shows in the metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Literal

import psutil  # type: ignore[import-untyped]

PRESSURE_BUSY = 0.05  # contended: some task waited for a CPU more than this share of the time
BUDGET = 0.05  # a catch-up's share of one CPU while contended (page plus pause)
BUSY_SHARE = 0.75  # without PSI: contended when others use more than this share of the CPUs
SAMPLE_S = 0.25  # the shortest span judged
MAX_PAUSE_S = 30.0  # the longest pause after one page, whatever the page cost


def machine_cpu(times: Callable[[], Any] = psutil.cpu_times) -> float:
    """CPU-seconds the machine's CPUs have been busy so far: user, nice, system, irq and
    softirq. Not idle or iowait; not steal (the hypervisor's other guests, not ours to yield
    to); not guest or guest_nice, which Linux counts in user and nice already."""
    t = times()
    return float(t.user + t.nice + t.system + getattr(t, "irq", 0.0)
                 + getattr(t, "softirq", 0.0))


def own_cgroup(proc: Path = Path("/proc/self")) -> Path | None:
    """The cgroup v2 directory of this process's container: the root of its cgroup namespace
    (`0::/`) when that is not the system's root cgroup (which has no `cgroup.type`: it is the
    whole machine, and its `cpu.stat` counts steal time). None elsewhere: a desktop session's
    or a service's cgroup holds only some of the processes to yield to (not a gateway or a
    client started in another), so the machine's counters are read."""
    with contextlib.suppress(OSError):
        if "0::/" not in (proc / "cgroup").read_text().splitlines():
            return None
        for line in (proc / "mountinfo").read_text().splitlines():
            fields = line.split()
            if "-" in fields and fields[fields.index("-") + 1] == "cgroup2":
                found = Path(fields[4])
                if (found / "cgroup.type").exists() and (found / "cpu.stat").exists():
                    return found
    return None


def cpu_source(proc: Path = Path("/proc/self")) -> tuple[Callable[[], float], float]:
    """(CPU-seconds used so far by every process we count, how many CPUs they share): our
    container's cgroup usage and quota when we run in one, else the machine's."""
    cpus = float(psutil.cpu_count() or 1)
    group = own_cgroup(proc)
    if group is None:
        return machine_cpu, cpus

    def used() -> float:
        stat = dict(line.split() for line in (group / "cpu.stat").read_text().splitlines())
        return int(stat["usage_usec"]) / 1e6

    quota, _, period = (group / "cpu.max").read_text().partition(" ") \
        if (group / "cpu.max").exists() else ("max", "", "")
    if quota != "max":
        cpus = min(cpus, int(quota) / int(period))
    return used, cpus


def stalled_seconds(path: Path) -> float:
    """The `some ... total=` of a PSI file: seconds some task has waited for a CPU so far."""
    for line in path.read_text().splitlines():
        kind, *fields = line.split()
        if kind == "some":
            return int(dict(f.split("=", 1) for f in fields)["total"]) / 1e6
    raise ValueError(f"no 'some' line in {path}")


def pressure_source(proc: Path = Path("/proc/self"),
                    machine: Path = Path("/proc/pressure/cpu")) -> Callable[[], float] | None:
    """Seconds some task (of our container when we run in one, else of the machine) has
    waited for a CPU so far, or None where the kernel keeps no such count."""
    group = own_cgroup(proc)
    path = group / "cpu.pressure" if group is not None else machine
    try:
        stalled_seconds(path)
    except (OSError, ValueError, KeyError):  # no PSI (or disabled: reading fails)
        return None
    return lambda: stalled_seconds(path)


class Throttle:
    """Keeps a catch-up to `budget` of one CPU while the CPUs are contended (module doc).

    `wait()` runs before each catch-up page. It judges the span since the last judgement
    (once that span is `sample_s` long; until then the last judgement stands): between
    pages it is the page just folded. If contended, it pauses for the CPU this process used
    since the last wait ended, times (1 / budget - 1), at most `max_pause_s`, and ends the
    pause at the first `sample_s` that is not contended. `busy()` is the judgement alone.
    Counters, clock and sleep are injectable (tests): `stalled` counts PSI's seconds
    ("auto": found by `pressure_source`; None: judge by the others' share of `source`'s
    CPUs instead)."""

    def __init__(self, *, budget: float = BUDGET, pressure_busy: float = PRESSURE_BUSY,
                 share: float = BUSY_SHARE, sample_s: float = SAMPLE_S,
                 max_pause_s: float = MAX_PAUSE_S,
                 stalled: Callable[[], float] | Literal["auto"] | None = "auto",
                 source: tuple[Callable[[], float], float] | None = None,
                 mine: Callable[[], float] | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> None:
        self.budget, self.pressure_busy, self.share = budget, pressure_busy, share
        self.sample_s, self.max_pause_s = sample_s, max_pause_s
        self.stalled = pressure_source() if stalled == "auto" else stalled
        self.used, self.cpus = source if source is not None else cpu_source()
        if mine is None:
            me = psutil.Process()
            mine = lambda: sum(me.cpu_times()[:2])  # noqa: E731 - user + system
        self.mine, self.clock, self.sleep = mine, clock, sleep
        self.contention = 0.0  # the last span judged: stall share, or the others' CPU share
        self.contended = False
        self.paused_s = 0.0  # waited in all (status)
        self._at, self._used, self._mine = clock(), self.used(), mine()
        self._stalled = self.stalled() if self.stalled else 0.0
        self._since = self._mine  # our CPU when the last wait ended
        self.turn = asyncio.Lock()  # held by a catch-up page and its wait (PoliteRunner)

    def busy(self) -> bool:
        """Whether the CPUs were contended over the span since the last judgement, once it
        is `sample_s` long; until then, the last judgement."""
        now = self.clock()
        if now - self._at >= self.sample_s:
            span, used, mine = now - self._at, self.used(), self.mine()
            if self.stalled:
                stalled = self.stalled()
                self.contention = max(0.0, stalled - self._stalled) / span
                self.contended = self.contention > self.pressure_busy
                self._stalled = stalled
            else:
                others = max(0.0, (used - self._used) - (mine - self._mine))
                self.contention = others / span / self.cpus
                self.contended = self.contention > self.share
            self._at, self._used, self._mine = now, used, mine
        return self.contended

    async def wait(self) -> None:
        start = self.clock()
        if self.busy():
            spent = max(0.0, self.mine() - self._since)
            pause = min(self.max_pause_s, spent * (1 / self.budget - 1))
            while (left := start + pause - self.clock()) > 0:
                await self.sleep(min(self.sample_s, left))
                if not self.busy():
                    break
        self.paused_s += self.clock() - start
        self._since = self.mine()
