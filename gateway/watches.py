"""Watches: noting that a signed-in user subscribed to an auction's live channel
(`Store.record_watch`), for the behaviour analytics (auctions watched against bid on).

Off the subscribe's path: the subscribe is answered first, and its watch written after, in a
task of its own, so a slow or failing store never delays or fails a subscribe (a failure is
logged). At most MAX_IN_FLIGHT writes run at once per gateway; beyond, a watch is dropped
(counted in `dropped`, logged at the first and every 1,000th), so neither the gateway's
memory nor the store's load grows with what clients send. The store records only auctions
that exist and are open, once per user and auction (a repeat is answered from a read), so a
client naming 10,000 auctions adds a row for none of them that does not exist.
"""

from __future__ import annotations

import asyncio
import logging

from actors.clock import Clock, now_ms
from storage import Store

log = logging.getLogger("ece.watches")

MAX_IN_FLIGHT = 64


class Watches:
    def __init__(self, store: Store, clock: Clock = now_ms, limit: int = MAX_IN_FLIGHT) -> None:
        self.store = store
        self.clock = clock
        self.limit = limit
        self.recorded = 0  # watches the store took as new
        self.dropped = 0  # watches not written: too many writes in flight
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    def note(self, user_id: str, auction_id: str) -> None:
        """`user_id` watches `auction_id` from now: written soon, or dropped if the store is
        MAX_IN_FLIGHT writes behind. Never raises, never waits."""
        if len(self._tasks) >= self.limit:
            self.dropped += 1
            if self.dropped % 1000 == 1:
                log.warning("watches dropped: %d so far (%d writes in flight)", self.dropped,
                            len(self._tasks))
            return
        task = asyncio.get_running_loop().create_task(
            self._record(user_id, auction_id, self.clock()))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _record(self, user_id: str, auction_id: str, at: int) -> None:
        try:
            if await self.store.record_watch(user_id, auction_id, at):
                self.recorded += 1
        except Exception:  # analytics only: the subscribe has been answered
            log.warning("could not record a watch of auction %r", auction_id, exc_info=True)

    async def close(self) -> None:
        """Cancel the writes in flight (shutdown, before the store closes)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
