"""The analytics actor: a detached Ray actor hosting every projection's runner (price shards,
the market, behaviour) on its own event loop, beside - never on - the bid path.

`projections(store, config)` builds the same set of projections for the actor and for
`ece rebuild analytics`, which runs them in its own process.

The actor keeps off the bid path's CPU twice over. Its process runs at the lowest priority
(`ANALYTICS_NICE`), which ranks it below the auction hosts Ray runs beside it, and a
projection catching up keeps to a CPU budget while the CPUs are contended
(`actors.analytics.throttle`). Tailing (pages not full) never waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import Any

import ray

from actors.analytics.behaviour import BehaviourProjection
from actors.analytics.cards import Cards
from actors.analytics.closings import ClosingFacts
from actors.analytics.market import MarketProjection
from actors.analytics.prices import PriceProjection
from actors.analytics.runner import Projection, Runner, read_lag
from actors.analytics.throttle import Throttle
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


class PoliteRunner(Runner):
    """A `Runner` whose catch-up pages keep to the `Throttle`'s budget. The runners sharing
    a throttle (one process) take turns: one catch-up page, and its pause, at a time."""

    def __init__(self, store: Store, projection: Projection, throttle: Throttle) -> None:
        super().__init__(store, projection)
        self.throttle = throttle
        self.catching_up = False  # until a page comes full

    async def step(self) -> int:
        if not self.catching_up:
            n = await super().step()
        else:
            async with self.throttle.turn:
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
