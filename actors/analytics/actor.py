"""The analytics actor: a detached Ray actor hosting every projection's runner (price shards,
the market, behaviour) on its own event loop, beside - never on - the bid path.

`projections(store, config)` builds the same set of projections for the actor and for
`ece rebuild analytics`, which runs them in its own process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import ray

from actors.analytics.behaviour import BehaviourProjection
from actors.analytics.cards import Cards
from actors.analytics.market import MarketProjection
from actors.analytics.prices import PriceProjection
from actors.analytics.runner import Projection, Runner, read_lag
from actors.clock import now_ms
from actors.config import ClusterConfig
from actors.directory import get_or_create
from storage import Store, open_store

log = logging.getLogger("ece.analytics")


def projections(store: Store, config: ClusterConfig) -> list[Projection]:
    cards = Cards(store)
    market = MarketProjection(cards)
    shards: list[Projection] = [PriceProjection(cards, i, config.price_shards)
                                for i in range(config.price_shards)]
    return [*shards, market, BehaviourProjection(store, lambda: market.book)]


def all_kinds(found: list[Projection]) -> list[str]:
    return sorted({kind for p in found for kind in p.kinds})


class AnalyticsCore:
    def __init__(self, config: ClusterConfig, store: Store | None = None) -> None:
        self.config = config
        self.store = store if store is not None else open_store(config.store_url)
        self.runners = [Runner(self.store, p) for p in projections(self.store, config)]
        self._tasks: list[asyncio.Task[None]] = []
        self._opened = asyncio.Event()

    async def start(self) -> None:
        await self.store.open()
        self._opened.set()
        self._tasks = [asyncio.get_running_loop().create_task(r.run()) for r in self.runners]

    async def status(self) -> dict[str, dict[str, Any]]:
        """Each projection's checkpoint and lag."""
        await self._opened.wait()
        return await read_lag(self.store, self.config.price_shards, now_ms())

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


def get_or_create_analytics(config: ClusterConfig) -> ray.actor.ActorHandle[Any]:
    return get_or_create(Analytics, config.analytics_name(), config)
