"""How events come from the hosts: one long-poll per host this gateway watches auctions of,
filtered by the host to those auctions (`actors.feed`).

Per host, `HostFeed` keeps the host's copy of this gateway's interest up to date — the whole
set once, then deltas, one call at a time so they apply in order — and runs the poller. The
order that keeps every subscription whole: a new watch is registered with the host *before*
its subscription reads the store (`Hub.subscribe` awaits `registered`), so each of its events
is either published after the host knew of it (the feed brings it: the next read after the
publication includes it, and a registration wakes a waiting poll) or durable before (the
store read finds it). Whenever the host may not hold our interest — a reply with `reset` (a
restarted host, or one that forgot us) or a failed registration — the whole set is sent
again and, once the host has it, every subscription to the host's auctions reads the log.
Every call to a host is bounded (after a node loss, a call to a host Ray restarted elsewhere
has been seen to neither answer nor fail): one not answered in time is a failure like any
other, so a subscribe never waits on a silent host for long, nor a poller forever.

A batch of bids to a host carries this gateway's cursor there (`HostFeeds.ask`), and the
host's reply brings the events after it as of the batch's end (`HostFeeds.landed`): the
events a batch made come back with its answers, in the same round trip, and the host sends
each event once (the poll wakes only for the others: timers, other gateways' bids). Replies
come back in the order they were sent as a rule; one that lands early leaves a subscription a
gap, which it fills from the log, and drops by seq what it has delivered already. A batch
whose reply never came may have carried events away: the feed is forgotten, so the host
drops what it counted as carried and every subscription reads the log.

A host's feed lasts while any of its auctions is watched here: when the last is unwatched,
the poller tells the host and the hub forgets the host (hosts retire and new names come).

Counted per gateway, for `/metrics`: events received from the hosts, those a socket here
watched (needed), and the events the polled hosts published meanwhile (the host-wide cursor's
advance: what an unfiltered feed would have sent).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter
from ray.exceptions import ActorDiedError

from actors.messages import FeedPage
from gateway.router import HOST_CALL_TIMEOUT_S

if TYPE_CHECKING:
    from gateway.fanout import Hub

log = logging.getLogger("ece.fanout")

# How long a poll waits at the host for events; its call is given a host call's time on top.
POLL_TIMEOUT_S = 2.0
POLL_LIMIT = 10_000


class FeedCounters:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.received = Counter("ece_fanout_received_events",
                                "Events received from the hosts' feeds", registry=registry)
        self.needed = Counter("ece_fanout_needed_events",
                              "Events received that a socket here watched", registry=registry)
        self.published = Counter(
            "ece_fanout_host_events",
            "Events the polled hosts published while polled (an unfiltered feed sends all)",
            registry=registry)


class HostFeed:
    """One host's feed as this gateway reads it: the interest the host holds, the poller."""

    def __init__(self, hub: Hub, host: str) -> None:
        self.hub = hub
        self.host = host
        self.version = 0  # of the interest the host holds
        self.failures = 0  # interest calls failed so far
        self.held: set[str] | None = None  # what it holds; None: maybe nothing (send it all)
        self.changes = 0  # watches and unwatches here so far
        self.sent = -1  # `changes` when the interest the host holds was taken
        self.resync = False  # once the host holds our interest, every subscription reads the log
        self.epoch: str | None = None  # of the host's feed, as last read
        self.cursor = -1  # where this gateway has read the feed to
        self.lock = asyncio.Lock()
        self.poller: asyncio.Task | None = None

    def changed(self) -> None:
        self.changes += 1

    def current(self) -> bool:
        return self.held is not None and self.sent == self.changes

    def forget(self) -> None:
        """The host may not hold our interest (or have skipped some events): send it all."""
        self.held = None
        self.resync = True

    async def registered(self) -> bool:
        """Bring the host's copy of our interest up to date with what is watched here now
        (changes made meanwhile may go in the same call); False if the host could not be
        told (the poller tries again, then every subscription reads the log). A call that
        failed while this one waited for the lock fails this one too: callers queued behind
        a silent host wait for one call's timeout, not one each."""
        stamp, failures = self.changes, self.failures
        async with self.lock:
            if self.failures != failures:
                return False
            for _ in range(3):  # at worst: a delta on a version the host lost, the whole set
                if self.held is not None and self.sent >= stamp:
                    break
                if not await self._send():
                    return False
            else:
                return False
            if self.resync:
                self.resync = False
                self.hub.resync(self.host)
            return True

    async def _send(self) -> bool:
        """Send what changed since the version the host holds (all of it if it may hold
        none); False if the call failed."""
        changes = self.changes
        wanted = set(self.hub.host_auctions.get(self.host, ()))
        held = self.held
        # Never reused (not even by a later feed of the host): a call that timed out and
        # lands late cannot pass for a newer one.
        version = next(self.hub.feeds.versions)
        if held is None:
            base, add, remove = None, sorted(wanted), []
        else:
            base, add, remove = self.version, sorted(wanted - held), sorted(held - wanted)
        try:
            handle = self.hub.router.host(self.host).handle
            answer: int = await asyncio.wait_for(
                handle.interest.remote(self.hub.reader, base, version, add, remove),
                HOST_CALL_TIMEOUT_S)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # host restarting or silent: the poller registers again
            log.info("interest %s failed: %s", self.host, type(exc).__name__)
            self.failures += 1
            self.lost(exc)
            self.forget()
            return False
        if answer != version:
            self.forget()  # the host lost our interest: send the whole set next
            return True
        self.version, self.held, self.sent = version, wanted, changes
        return True

    def lost(self, exc: Exception) -> None:
        """After a failed call: a host stopped for good (moved by `ece drain`) is a new actor
        under the same name, which the router finds (and has revived) on its next use."""
        if isinstance(exc, ActorDiedError):
            with contextlib.suppress(ValueError):
                self.hub.router.host(self.host).dead = True

    def take(self, page: FeedPage) -> None:
        """Dispatch a page's events (a poll's or a batch reply's) and move the cursor on."""
        hub, counters = self.hub, self.hub.counters
        first = self.epoch is None  # the first page: no cursor to count the host's events from
        if not first and not page.reset and page.cursor > self.cursor:
            counters.published.inc(page.cursor - self.cursor)
        if page.reset or page.epoch != self.epoch:
            self.epoch, self.cursor = page.epoch, page.cursor
        else:
            self.cursor = max(self.cursor, page.cursor)
        counters.received.inc(len(page.events))
        needed = 0
        for event in page.events:
            needed += hub.dispatch(event)
        counters.needed.inc(needed)

    async def run(self) -> None:
        """Poll the host's feed while any of its auctions is watched here and dispatch each
        reply's events; after a reply that may have skipped some (the first one, or a
        reset) or a failed call, every subscription to the host's auctions reads the log.
        Once nothing of the host is watched, the host is told and the hub forgets it."""
        hub = self.hub
        self.epoch, self.cursor = None, -1  # the feed's head; subscriptions fill from the log
        backoff = 0.05
        while hub.host_auctions.get(self.host):
            try:
                if not self.current() and not await self.registered():
                    raise ConnectionError("interest not registered")
                # The router's client each time: a host moved (`ece drain`) is a new actor.
                # Over the host's direct channel when it is on this machine: a poll that
                # returns at once costs a Ray call's CPU (~2.8 ms, both sides) otherwise, and
                # a gateway whose sockets watch auctions another gateway bids on polls once
                # per batch the host commits.
                client = hub.router.host(self.host)
                page: FeedPage = await asyncio.wait_for(
                    client.invoke("poll", self.epoch, self.cursor, POLL_TIMEOUT_S, POLL_LIMIT,
                                  hub.reader),
                    POLL_TIMEOUT_S + HOST_CALL_TIMEOUT_S)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # host restarting or silent: back off, register again
                log.info("poll %s failed: %s", self.host, type(exc).__name__)
                self.lost(exc)
                self.forget()  # the host may be new, or have skipped our registration
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 1.0)
                continue
            backoff = 0.05
            first = self.epoch is None
            self.take(page)
            if page.reset:
                self.forget()  # registered again (and resynced) before the next poll
            elif first:
                hub.resync(self.host)
        self.poller = None
        if not self.current():
            await self.registered()  # tell the host we want nothing more of it
        hub.feeds.ended(self)


class HostFeeds:
    """The hub's feeds, one per host it watches auctions of."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.feeds: dict[str, HostFeed] = {}
        self.versions = itertools.count(1)  # interest versions, for every host

    def ask(self, host: str) -> tuple[str, str, int] | None:
        """What a batch to `host` carries to have its reply bring our events: (reader, epoch,
        cursor); None while the feed has no cursor there (its poller reads first)."""
        feed = self.feeds.get(host)
        if feed is None or feed.epoch is None or feed.cursor < 0 or not feed.current():
            return None
        return self.hub.reader, feed.epoch, feed.cursor

    def landed(self, host: str, page: FeedPage) -> None:
        """A batch's reply brought `page`: dispatch it unless the feed moved to another epoch
        (its poller resets) or a reset page (the poller finds out too)."""
        feed = self.feeds.get(host)
        if feed is not None and not page.reset and page.epoch == feed.epoch:
            feed.take(page)

    def failed(self, host: str) -> None:
        """A batch that asked for events got no reply: the host may have counted them as sent
        (its poll will not send them): every subscription to the host reads the log."""
        feed = self.feeds.get(host)
        if feed is not None:
            feed.forget()

    def feed(self, host: str) -> HostFeed:
        found = self.feeds.get(host)
        if found is None:
            found = self.feeds[host] = HostFeed(self.hub, host)
        return found

    def watch(self, host: str, added: bool = True) -> HostFeed:
        """An auction of `host` is watched here (already registered with the hub; `added`: it
        was not before): poll the host."""
        feed = self.feed(host)
        if added:
            feed.changed()
        if feed.poller is None or feed.poller.done():
            feed.poller = self.hub.spawn(feed.run())
        return feed

    def unwatch(self, host: str) -> None:
        """An auction of `host` is no longer watched here: the poller tells the host."""
        feed = self.feeds.get(host)
        if feed is not None:
            feed.changed()

    def ended(self, feed: HostFeed) -> None:
        """`feed`'s poller ended, nothing of its host being watched: forget the host, unless
        a watch came meanwhile (it started a new poller, on this same feed)."""
        hub, host = self.hub, feed.host
        if feed.poller is not None or hub.host_auctions.get(host):
            return
        if self.feeds.get(host) is feed:
            del self.feeds[host]
        hub.host_auctions.pop(host, None)

    @property
    def pollers(self) -> dict[str, asyncio.Task]:
        return {host: feed.poller for host, feed in self.feeds.items()
                if feed.poller is not None and not feed.poller.done()}
