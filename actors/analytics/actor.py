"""The analytics actor: a detached Ray actor hosting every projection's runner (price shards,
the market, behaviour) on its own event loop, beside - never on - the bid path.

`projections(store, config)` builds the same set of projections for the actor and for
`ece rebuild analytics`, which runs them in its own process.

The actor keeps off the bid path's CPU twice over. Its process runs at the lowest priority
(`ANALYTICS_NICE`), which ranks it below the auction hosts Ray runs beside it. But Linux
weighs a nice value only against processes of the same session (autogroups: a gateway or a
client started in a session of its own gets an equal share whatever our nice), so a
projection catching up (folding full pages) also waits, before each page, while the other
processes keep more than `BUSY_SHARE` of the CPUs busy (`Throttle`) - at most `MAX_PAUSE_S`
a page, so a catch-up always advances, if slowly, whatever else runs on the machine. "The
CPUs" are those of our container's cgroup v2 when we run in one (its `cpu.stat` and
`cpu.max`: other tenants' load is not ours to yield to), else the machine's (`/proc/stat`,
without steal time and without counting guest time twice). Tailing (pages not full) never
waits. The lag it leaves shows in the metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]
import ray

from actors.analytics.behaviour import BehaviourProjection
from actors.analytics.cards import Cards
from actors.analytics.closings import ClosingFacts
from actors.analytics.market import MarketProjection
from actors.analytics.prices import PriceProjection
from actors.analytics.runner import Projection, Runner, read_lag
from actors.analytics.valuations import ValuationProjection
from actors.analytics.vetted import FeedVetting
from actors.clock import now_ms
from actors.config import ClusterConfig
from actors.directory import get_or_create
from storage import Store, open_store

log = logging.getLogger("ece.analytics")

# The OS nice value of the actor's process: 19, the lowest priority short of SCHED_IDLE, so
# a busy bid path gets nearly all the CPU. Not SCHED_IDLE: a projection holding the store's
# write lock (a save chunk, see storage.sqlite_facts) must still get some CPU to release it
# when every core is busy; with nice the kernel gives it a small share, and the bid path's
# processes, waiting on that lock, leave it the cores anyway.
ANALYTICS_NICE = 19


def lower_priority(nice: int = ANALYTICS_NICE) -> list[int]:
    """Every thread of this process at `nice` at least. On Linux a nice value belongs to a
    thread, not the process: those running already (Ray's, the event loop's) are set one by
    one, and every thread started later inherits its starter's (the store's worker, the
    market recompute's executor). Returns the ids of the threads set."""
    tasks = "/proc/self/task"
    done = []
    for tid in map(int, os.listdir(tasks) if os.path.isdir(tasks) else ["0"]):
        with contextlib.suppress(ProcessLookupError):  # a thread that just ended
            os.setpriority(os.PRIO_PROCESS, tid, max(os.getpriority(os.PRIO_PROCESS, tid), nice))
            done.append(tid)
    return done


BUSY_SHARE = 0.75  # the CPUs are busy when others use more than this share of them
SAMPLE_S = 0.25  # the shortest span over which the others' CPU use is judged
MAX_PAUSE_S = 2.0  # a catch-up waits this long at most before each page


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


class Throttle:
    """Waits, before a catch-up page, while processes other than this one keep the CPUs busy.

    The others' share is judged over the span since the last judgement (our own process's
    CPU taken out), once that span is `sample_s` long: between pages it is the page just
    folded, so a machine that is not busy costs a catch-up no pause at all. Readers, clock
    and sleep are injectable (tests)."""

    def __init__(self, share: float = BUSY_SHARE, sample_s: float = SAMPLE_S,
                 max_pause_s: float = MAX_PAUSE_S, *,
                 source: tuple[Callable[[], float], float] | None = None,
                 mine: Callable[[], float] | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> None:
        self.share, self.sample_s, self.max_pause_s = share, sample_s, max_pause_s
        self.used, self.cpus = source if source is not None else cpu_source()
        if mine is None:
            me = psutil.Process()
            mine = lambda: sum(me.cpu_times()[:2])  # noqa: E731 - user + system
        self.mine, self.clock, self.sleep = mine, clock, sleep
        self.others = 0.0  # the share of the CPUs others used over the last span judged
        self.paused_s = 0.0  # waited in all (status)
        self._at, self._used, self._mine = clock(), self.used(), mine()

    def others_busy(self) -> float:
        """The share of the CPUs others used since the last judgement, once it is `sample_s`
        ago; until then, the last one."""
        now = self.clock()
        if now - self._at >= self.sample_s:
            used, mine = self.used(), self.mine()
            others = max(0.0, (used - self._used) - (mine - self._mine))
            self.others = others / (now - self._at) / self.cpus
            self._at, self._used, self._mine = now, used, mine
        return self.others

    async def wait(self) -> None:
        start = self.clock()
        while (left := start + self.max_pause_s - self.clock()) > 0 \
                and self.others_busy() > self.share:
            await self.sleep(min(self.sample_s, left))
        self.paused_s += self.clock() - start


class PoliteRunner(Runner):
    """A `Runner` whose catch-up pages wait for a machine that is not busy (`Throttle`)."""

    def __init__(self, store: Store, projection: Projection, throttle: Throttle) -> None:
        super().__init__(store, projection)
        self.throttle = throttle
        self.catching_up = False  # until a page comes full

    async def step(self) -> int:
        if self.catching_up:
            await self.throttle.wait()
        n = await super().step()
        self.catching_up = n >= self.page
        return n


def projections(store: Store, config: ClusterConfig) -> list[Projection]:
    cards = Cards(store)
    vetting = FeedVetting()  # the feed vetted once for the shards and the market
    market = MarketProjection(cards, vetting)
    shards: list[Projection] = [PriceProjection(cards, i, config.price_shards, vetting)
                                for i in range(config.price_shards)]
    n = config.behaviour_shards
    closings = ClosingFacts(store, lambda: market.book, n)  # each closing loaded once for all
    users: list[Projection] = [BehaviourProjection(store, shard=i, shards=n, closings=closings)
                               for i in range(n)]
    return [*shards, market, ValuationProjection(market), *users]


def all_kinds(found: list[Projection]) -> list[str]:
    return sorted({kind for p in found for kind in p.kinds})


class AnalyticsCore:
    def __init__(self, config: ClusterConfig, store: Store | None = None) -> None:
        self.config = config
        self.store = store if store is not None else open_store(config.store_url)
        self.throttle = Throttle()
        self.runners = [PoliteRunner(self.store, p, self.throttle)
                        for p in projections(self.store, config)]
        self._tasks: list[asyncio.Task[None]] = []
        self._opened = asyncio.Event()

    async def start(self) -> None:
        await self.store.open()
        self._opened.set()
        self._tasks = [asyncio.get_running_loop().create_task(r.run()) for r in self.runners]

    async def status(self) -> dict[str, dict[str, Any]]:
        """Each projection's checkpoint and lag."""
        await self._opened.wait()
        return await read_lag(self.store, self.config.price_shards,
                              self.config.behaviour_shards, now_ms())

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.store.close()


@ray.remote(num_cpus=0, max_restarts=-1, max_concurrency=100)  # type: ignore[call-overload]
class Analytics:
    def __init__(self, config: dict[str, Any]) -> None:
        logging.basicConfig(level=logging.INFO)
        self.lowered = lower_priority()  # before the store and the runners start threads
        self.core = AnalyticsCore(ClusterConfig.from_dict(config))
        # Started here, not on a first call: after a crash Ray re-runs only __init__, and
        # nobody calls a restarted actor (gateways read the lag from the store).
        self._started = asyncio.get_running_loop().create_task(self.core.start())

    async def ready(self) -> bool:
        await asyncio.shield(self._started)
        return True

    async def status(self) -> dict[str, dict[str, Any]]:
        await self.ready()
        return await self.core.status()

    def process(self) -> tuple[int, list[int]]:
        """The actor's process id and the threads `lower_priority` set (tests check them)."""
        return os.getpid(), self.lowered


def get_or_create_analytics(config: ClusterConfig) -> ray.actor.ActorHandle[Any]:
    return get_or_create(Analytics, config.analytics_name(), config)
