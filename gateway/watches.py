"""Watches: noting that a signed-in user subscribed to an auction's live channel
(`Store.record_watch`), for the behaviour analytics (auctions watched against bid on).

Off the subscribe's path: the subscribe is answered first, and its watch written after, in a
task of its own, so a slow or failing store never delays or fails a subscribe (a failure is
logged). At most MAX_IN_FLIGHT writes run at once per gateway; beyond, a watch is dropped
(logged at the first and every 1,000th), so neither the gateway's memory nor the store's
load grows with what clients send. Every watch is counted in the gateway's metrics by what
became of it (`ece_watch_writes_total{outcome}`, `OUTCOMES`). The store records only auctions
that exist and are open, once per user and auction (a repeat is answered from a read), so a
client naming 10,000 auctions adds a row for none of them that does not exist.
"""

from __future__ import annotations

import asyncio
import logging

from prometheus_client import Counter

from actors.clock import Clock, now_ms
from storage import Store

log = logging.getLogger("ece.watches")

MAX_IN_FLIGHT = 64
# What became of a watch: a new row; no new row (a repeat, or an auction unknown or finished);
# not written (MAX_IN_FLIGHT writes in flight already); the store failed.
OUTCOMES = ("stored", "unchanged", "dropped", "failed")


class Watches:
    def __init__(self, store: Store, writes: Counter, clock: Clock = now_ms,
                 limit: int = MAX_IN_FLIGHT) -> None:
        """`writes`: the counter of watches by outcome (labelled `outcome`, `OUTCOMES`)."""
        self.store = store
        self.writes = writes
        self.clock = clock
        self.limit = limit
        self._tasks: set[asyncio.Task[None]] = set()

    def counted(self, outcome: str) -> int:
        """Watches so far whose outcome was `outcome`."""
        return int(sum(sample.value for metric in self.writes.collect()
                       for sample in metric.samples
                       if sample.name.endswith("_total") and sample.labels == {"outcome": outcome}))

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    def note(self, user_id: str, auction_id: str) -> None:
        """`user_id` watches `auction_id` from now: written soon, or dropped if the store is
        MAX_IN_FLIGHT writes behind. Never raises, never waits."""
        if len(self._tasks) >= self.limit:
            self.writes.labels("dropped").inc()
            dropped = self.counted("dropped")
            if dropped % 1000 == 1:
                log.warning("watches dropped: %d so far (%d writes in flight)", dropped,
                            len(self._tasks))
            return
        task = asyncio.get_running_loop().create_task(
            self._record(user_id, auction_id, self.clock()))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _record(self, user_id: str, auction_id: str, at: int) -> None:
        try:
            new = await self.store.record_watch(user_id, auction_id, at)
        except Exception:  # analytics only: the subscribe has been answered
            self.writes.labels("failed").inc()
            log.warning("could not record a watch of auction %r", auction_id, exc_info=True)
        else:
            self.writes.labels("stored" if new else "unchanged").inc()

    async def close(self) -> None:
        """Cancel the writes in flight (shutdown, before the store closes)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
