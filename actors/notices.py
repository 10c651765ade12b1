"""Outbid notices: which bids took the lead from whom, and a host's outbox that stores them
off the ack path, one store call at a time for everything queued meanwhile."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from market.auction import Event
from storage import Store
from storage.records import NewNotice

log = logging.getLogger("ece.host")

MAX_OUTBOX = 100_000  # notices kept while the store cannot take them; the oldest dropped beyond
BATCH = 5_000  # notices per store call
ATTEMPTS = 8  # tries at one call (~10 s with the backoff) before its notices are given up
FIRST_PAUSE_S = 0.05
MAX_PAUSE_S = 5.0


def outbid_notices(leader: str, events: list[Event]) -> list[NewNotice]:
    """A notice for `leader` if one of these events (of one command) took the lead from
    them: keyed by the bid event, so storing it twice adds it once."""
    notices: list[NewNotice] = []
    for event in events:
        if event.get("type") == "bid" and event.get("leader_id") not in (None, leader):
            auction_id = str(event["auction_id"])
            notices.append(NewNotice(
                user_id=leader, key=f"outbid:{auction_id}:{event['seq']}", type="outbid",
                at=int(event.get("at") or 0),
                data={"auction_id": auction_id, "amount": event.get("price")}))
    return notices


class Outbox:
    """Notices derived from durable events, stored in the background: they never delay an
    ack, and a crash before they are stored loses them (the auction's log keeps every bid)."""

    def __init__(self, store: Store, spawn: Callable[[Awaitable[object]], None],
                 name: str) -> None:
        self.store = store
        self._spawn = spawn
        self._name = name
        self._waiting: list[NewNotice] = []
        self._flushing = False

    def add(self, notices: list[NewNotice]) -> None:
        if not notices:
            return
        self._waiting.extend(notices)
        if len(self._waiting) > MAX_OUTBOX:
            dropped = len(self._waiting) - MAX_OUTBOX
            del self._waiting[:dropped]
            log.warning("host %s: store unavailable; dropped %d notices", self._name, dropped)
        if not self._flushing:
            self._flushing = True
            self._spawn(self._flush())

    async def _flush(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting[:BATCH], self._waiting[BATCH:]
                await self._store(batch)
        finally:
            self._flushing = False

    async def _store(self, batch: list[NewNotice]) -> None:
        pause = FIRST_PAUSE_S
        for attempt in range(1, ATTEMPTS + 1):
            try:
                await self.store.add_notices(batch)
                return
            except Exception:
                log.warning("host %s: storing %d notices failed (attempt %d)", self._name,
                            len(batch), attempt, exc_info=attempt == ATTEMPTS)
            await asyncio.sleep(pause)
            pause = min(pause * 2, MAX_PAUSE_S)
        log.error("host %s: gave up %d notices", self._name, len(batch))
