"""The portfolio actors: one detached Ray actor per shard of users (`ECE_PORTFOLIO_SHARDS`),
each running its `PortfolioProjection` over the ownership feed and, beside it, a tail of the
analytics log: a `values` message (positions whose value changed) revalues their holders; a
new point of an index makes the risk series read the indexes again. Like the analytics actor,
it runs at the lowest CPU priority and never on the bid path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import ray

from actors.analytics.actor import PoliteRunner, lower_priority
from actors.analytics.throttle import Throttle
from actors.analytics.valuations import VALUES_CHANNEL
from actors.config import ClusterConfig
from actors.directory import get_or_create
from actors.portfolio.projection import PortfolioProjection
from actors.tail import GapCursor, Tailer
from storage import Store, open_store

log = logging.getLogger("ece.portfolio")

PAGE = 1_000
POLL_S = 0.1
RETRY_S = 1.0
# A gap this wide in the log's positions is no writer still inserting (those are a few) but
# messages trimmed before this tail read them.
LOST_AFTER = 1_000


class PortfolioCore:
    def __init__(self, config: ClusterConfig, shard: int, store: Store | None = None) -> None:
        self.config = config
        self.store = store if store is not None else open_store(config.store_url)
        # Polite like the analytics actor: catch-up pages keep to the throttle's budget, and
        # the whole portfolios of users already told wait while the CPUs are contended.
        self.throttle = Throttle()
        self.projection = PortfolioProjection(
            self.store, shard, config.portfolio_shards, risk_free=config.risk_free_rate,
            threshold=config.concentration_share,
            busy=self.throttle.busy)
        self.runner = PoliteRunner(self.store, self.projection, self.throttle)
        self.cursor = GapCursor(0, name=f"{self.projection.name} values")
        self._tail = Tailer(self.step_values, f"{self.projection.name} values", PAGE, POLL_S,
                            RETRY_S)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.store.open()
        # Every value is read afresh after a start: only later changes are news.
        self.cursor.pos = await self.store.analytics_log_position()
        self._tail.start()
        self._task = asyncio.get_running_loop().create_task(self.runner.run())

    async def step_values(self) -> int:
        rows = await self.store.analytics_log(self.cursor.pos, PAGE)
        if rows and int(rows[0]["pos"]) > self.cursor.pos + LOST_AFTER:
            # The log was trimmed past us: changes went unseen. Read every value again.
            log.warning("%s: fell behind the analytics log; revaluing every portfolio",
                        self.projection.name)
            self.projection.revalue_all()
            self.runner.wake()
            self.cursor.pos = int(rows[0]["pos"]) - 1
        for message in self.cursor.take(rows):
            if message["channel"] == VALUES_CHANNEL:
                if self.projection.revalue(message["data"]["positions"]):
                    self.runner.wake()  # its holders are told at the next flush: now
            elif message["type"] == "index":
                self.projection.values.forget_indexes()
        return len(rows)

    async def stop(self) -> None:
        await self._tail.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.store.close()


@ray.remote(num_cpus=0, max_restarts=-1, max_concurrency=100)  # type: ignore[call-overload]
class Portfolio:
    def __init__(self, config: dict[str, Any], shard: int) -> None:
        logging.basicConfig(level=logging.INFO)
        lower_priority()  # before the store starts its threads
        self.core = PortfolioCore(ClusterConfig.from_dict(config), shard)
        # Started here: after a crash Ray re-runs only __init__ (see the analytics actor).
        self._started = asyncio.get_running_loop().create_task(self.core.start())

    async def ready(self) -> bool:
        await asyncio.shield(self._started)
        return True


def get_or_create_portfolios(config: ClusterConfig) -> list[ray.actor.ActorHandle[Any]]:
    return [get_or_create(Portfolio, config.portfolio_name(i), config, i)
            for i in range(config.portfolio_shards)]
