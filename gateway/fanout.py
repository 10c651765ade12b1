"""Live events: one long-poll per auction host per gateway, fanned out to local sockets.

The pollers are the hub's `HostFeeds` (`gateway.feeds`): one per host, bringing only the
events of the auctions of it watched here (the benchmark's baseline, ECE_BATCHING=0, uses them
too).

Every subscription tracks the last seq its socket received. An event is sent only if it is the
next one; an older one is dropped (duplicate) and a newer one triggers a fill from the store's
event log (events are durable before they are published, so the log always has them). That one
rule gives resume with `since`, no gap, no duplicate and no reordering, whatever the order in
which the snapshot, the log and the live feed arrive. The decisions themselves are pure
functions in `gateway.resume`; this module does the I/O around them.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry

from gateway.feeds import FeedCounters, HostFeeds
from gateway.protocol import ProtocolError
from gateway.resume import Replay, classify, merge, resume_plan
from gateway.router import FINISHED, Router
from market.auction import public_event
from market.errors import AUCTION_NOT_FOUND
from storage import Store

if TYPE_CHECKING:
    from gateway.ws import Connection

# Resuming further back than this sends a fresh snapshot instead of the whole log.
MAX_REPLAY = 1_000


def event_frame(event: dict) -> dict:
    return {"op": "event", **event}


class Subscription:
    def __init__(self, hub: Hub, conn: Connection, auction_id: str, auction_type: str) -> None:
        self.hub = hub
        self.conn = conn
        self.auction_id = auction_id
        self.auction_type = auction_type
        self.last = 0
        self.syncing = True  # until the snapshot or replay is out, live events wait here
        self.filling = False
        self.refill = False  # the feed asked for a fill while one was running: run again
        self.buffer: list[dict] = []
        self.closed = False

    def deliver(self, event: dict, cache: dict | None = None) -> None:
        if self.closed:
            return
        if self.syncing:
            self.buffer.append(event)
            return
        kind = classify(self.last, event["seq"])
        if kind == "duplicate":
            return
        if kind == "next":
            self.conn.send(event_frame(event), cache)
            self.last = event["seq"]
            return
        self.syncing = True
        self.buffer.append(event)
        self.hub.spawn(self.fill())

    def request_fill(self) -> None:
        """Read the log again soon: a feed (re)started and may have skipped events."""
        if self.filling:
            self.refill = True
        elif not self.syncing:
            self.hub.spawn(self.fill())
        else:
            self.refill = True  # the subscribe's own fill has not started yet

    async def fill(self) -> None:
        """Catch up from the log after `last`, then release what the live feed buffered.

        A request for another fill while this one runs makes it read the log once more: an
        event published before a new poller's first cursor is found in the log, never lost.
        """
        if self.filling:
            self.refill = True
            return
        self.syncing = self.filling = True
        try:
            self.refill = True
            while self.refill and not self.closed:
                self.refill = False
                await self._catch_up()
        finally:
            self.syncing = self.filling = False

    async def _catch_up(self) -> None:
        for _ in range(5):
            logged = await self.hub.store.load_events(self.auction_id, self.last)
            # Live events that arrived during the read were buffered: merge them in now.
            result = merge(
                self.last, (public_event(e, self.auction_type) for e in logged), self.buffer
            )
            self.buffer = result.buffered
            for event in result.to_send:
                self.conn.send(event_frame(event))
            self.last = result.last
            if not result.gap:
                return


class Hub:
    def __init__(
        self, router: Router, store: Store, present: Callable[[dict], Awaitable[dict]],
        registry: CollectorRegistry | None = None,
    ) -> None:
        """`registry`: where the feed counters go (the gateway's `/metrics`)."""
        self.router = router
        self.present = present
        self.store = store
        self.reader = uuid.uuid4().hex  # this gateway, to the hosts' feeds
        self.subs: dict[str, dict[Connection, Subscription]] = {}
        self.host_of: dict[str, str] = {}
        self.host_auctions: dict[str, set[str]] = {}
        self._tasks: set[asyncio.Task] = set()
        self.counters = FeedCounters(registry if registry is not None else CollectorRegistry())
        self.feeds = HostFeeds(self)
        if router is not None:  # (none in tests of the hub alone)
            router.feed_link = self.feeds  # batches' replies bring events too

    def spawn(self, coroutine) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def subscribe(
        self, conn: Connection, auction_id: str, since: int | None, req_id: Any,
        ticket: object,
    ) -> None:
        """Answer a subscribe. `ticket` is this request's claim in `conn.subscriptions`: after
        every await it is checked again, so a subscribe that finishes after its socket closed
        or after an unsubscribe (or a newer subscribe) leaves nothing registered."""
        if not conn.wants(auction_id, ticket):
            return self._dropped(conn, auction_id, req_id)  # no store read for it
        record = await self.store.get_auction(auction_id)
        if record is None:
            raise ProtocolError(AUCTION_NOT_FOUND, "no such auction", req_id)
        if not conn.wants(auction_id, ticket):
            return self._dropped(conn, auction_id, req_id)
        self._discard(conn, auction_id)
        sub = Subscription(self, conn, auction_id, record["spec"]["type"])
        self.subs.setdefault(auction_id, {})[conn] = sub
        host = await self.router.locate(auction_id) if record["status"] not in FINISHED else None
        if not conn.wants(auction_id, ticket):
            self._discard(conn, auction_id, sub)
            return self._dropped(conn, auction_id, req_id)
        if host is not None:
            # Once the host filters our feed by it, the store read below misses nothing.
            await self._watch(host, auction_id)
            if not conn.wants(auction_id, ticket):
                self._discard(conn, auction_id, sub)
                return self._dropped(conn, auction_id, req_id)
        # Read again now that live events are being buffered: nothing can fall in between.
        record = await self.store.get_auction(auction_id) or record
        if sub.closed:  # unsubscribed, overtaken or its socket gone meanwhile
            return self._dropped(conn, auction_id, req_id)
        current = record["seq"]
        plan = resume_plan(since, current, MAX_REPLAY)
        if isinstance(plan, Replay):
            sub.last = plan.since
            await sub.fill()
            if req_id is not None:
                conn.send({"op": "ack", "req_id": req_id, "auction_id": auction_id,
                           "seq": sub.last})
            return
        snapshot = {"op": "snapshot", "auction_id": auction_id, "seq": current,
                    "auction": await self.present(record["view"])}
        if req_id is not None:
            snapshot["req_id"] = req_id
        conn.send(snapshot)
        sub.last = current
        await sub.fill()

    @staticmethod
    def _dropped(conn: Connection, auction_id: str, req_id: Any) -> None:
        """A subscribe overtaken by a newer subscribe or an unsubscribe of the same auction
        still gets an answer, so a client waiting on its req_id is not left hanging."""
        if req_id is not None:
            conn.send({"op": "ack", "req_id": req_id, "auction_id": auction_id,
                       "subscribed": False})

    def unsubscribe(self, conn: Connection, auction_id: str) -> None:
        conn.subscriptions.pop(auction_id, None)
        self._discard(conn, auction_id)

    def _discard(self, conn: Connection, auction_id: str,
                 only: Subscription | None = None) -> None:
        """Remove conn's subscription to auction_id (only `only`, when given)."""
        subs = self.subs.get(auction_id)
        sub = subs.get(conn) if subs else None
        if only is not None and sub is not only:
            return
        if subs is not None and sub is not None:
            del subs[conn]
        if sub is not None:
            sub.closed = True
        if subs is not None and not subs:
            del self.subs[auction_id]
            host = self.host_of.pop(auction_id, None)
            if host is not None:
                self.host_auctions.get(host, set()).discard(auction_id)
                self.feeds.unwatch(host)

    def drop(self, conn: Connection) -> None:
        for auction_id in list(conn.subscriptions):
            self.unsubscribe(conn, auction_id)

    def registered(self) -> int:
        """Subscriptions held for sockets (a bound the tests check)."""
        return sum(len(subs) for subs in self.subs.values())

    def dispatch(self, event: dict) -> bool:
        """Hand a live event to its auction's subscriptions; False if it has none here."""
        subs = self.subs.get(event["auction_id"])
        if not subs:
            return False
        cache: dict = {}  # each encoding is serialised once per event, not once per socket
        for sub in list(subs.values()):
            sub.deliver(event, cache)
        return True

    async def _watch(self, host: str, auction_id: str) -> None:
        """Watch `auction_id` on `host`; returns once the host knows (or could not be told:
        then it is told later, and every subscription to it reads the log again)."""
        self.host_of[auction_id] = host
        auctions = self.host_auctions.setdefault(host, set())
        added = auction_id not in auctions
        auctions.add(auction_id)
        await self.feeds.watch(host, added).registered()

    def resync(self, host: str) -> None:
        """Have every subscription to `host`'s auctions read the log: its feed restarted."""
        for auction_id in list(self.host_auctions.get(host, ())):
            for sub in list(self.subs.get(auction_id, {}).values()):
                sub.request_fill()

    async def close(self) -> None:
        for task in list(self.feeds.pollers.values()) + list(self._tasks):
            task.cancel()
