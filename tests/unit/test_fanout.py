"""Fan-out without Ray: a subscription's catch-up, the feed's restart requests, and the
per-host poller delivering a host's events (the benchmark's baseline polls the same way)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from actors.messages import FeedPage
from gateway.fanout import Hub, Subscription
from testkit.client import wait_for


class FakeStore:
    """An event log whose reads can be held open, to interleave them with live traffic."""

    def __init__(self) -> None:
        self.log: list[dict] = []
        self.gate: asyncio.Event | None = None
        self.reads = 0

    def append(self, seq: int) -> dict:
        event = {"auction_id": "a1", "seq": seq, "type": "bid", "at": seq}
        self.log.append(event)
        return event

    async def load_events(self, auction_id: str, after_seq: int = 0, limit=None) -> list[dict]:
        snapshot = [e for e in self.log if e["seq"] > after_seq]
        self.reads += 1
        if self.gate is not None:
            gate, self.gate = self.gate, None
            await gate.wait()
        return snapshot


class FakeConnection:
    def __init__(self) -> None:
        self.sent: list[dict] = []
        self.subscriptions: dict[str, object] = {}
        self.closing = False

    def send(self, message: dict, cache=None, encoding=None) -> None:
        self.sent.append(message)


def _seqs(conn: FakeConnection) -> list[int]:
    return [m["seq"] for m in conn.sent if m.get("op") == "event"]


@pytest.mark.asyncio
async def test_an_event_published_while_a_fill_runs_is_not_lost() -> None:
    """A new poller starts at the feed's head; an event committed before that head but after
    the subscription's log read must still arrive (it is in the log: durable first)."""
    store = FakeStore()
    hub = Hub(router=None, store=store, present=None)  # type: ignore[arg-type]
    conn = FakeConnection()
    sub = Subscription(hub, conn, "a1", "english")  # type: ignore[arg-type]
    hub.subs["a1"] = {conn: sub}  # type: ignore[dict-item]
    hub.host_auctions["h"] = {"a1"}
    store.append(1)
    gate = store.gate = asyncio.Event()
    filling = asyncio.create_task(sub.fill())
    while store.reads == 0:
        await asyncio.sleep(0)
    # While the fill's read is in flight: seq 2 commits, then the poller's first reply comes
    # back with a cursor past it (no events) and asks every subscription to resync.
    store.append(2)
    hub.resync("h")
    gate.set()
    await asyncio.wait_for(filling, timeout=5)
    await asyncio.wait_for(_drain(hub), timeout=5)
    assert _seqs(conn) == [1, 2]
    assert not sub.syncing


def test_a_subscription_that_is_not_syncing_fills_at_once() -> None:
    async def scenario() -> list[int]:
        store = FakeStore()
        hub = Hub(router=None, store=store, present=None)  # type: ignore[arg-type]
        conn = FakeConnection()
        sub = Subscription(hub, conn, "a1", "english")  # type: ignore[arg-type]
        sub.syncing = False
        hub.subs["a1"] = {conn: sub}  # type: ignore[dict-item]
        hub.host_auctions["h"] = {"a1"}
        store.append(1)
        hub.resync("h")
        await _drain(hub)
        return _seqs(conn)

    assert asyncio.run(scenario()) == [1]


async def _drain(hub: Hub) -> None:
    while hub._tasks:
        await asyncio.gather(*hub._tasks)


class FakeHost:
    """A host's `poll` and `interest` (Ray-style: `handle.poll.remote(...)` is awaited): the
    given replies, then nothing until cancelled; every interest change accepted."""

    def __init__(self, replies: list[FeedPage]) -> None:
        self.replies = replies
        self.polls = 0
        self.changes: list[tuple] = []
        self.handle = self
        self.poll = SimpleNamespace(remote=self._poll)
        self.interest = SimpleNamespace(remote=self._interest)

    async def invoke(self, method: str, *args):  # a host client's call, by "Ray"
        return await getattr(self, method).remote(*args)

    def _poll(self, epoch, cursor, timeout, limit, reader=None):
        self.polls += 1
        return self._answer()

    async def _interest(self, reader, base, version, add, remove) -> int:
        self.changes.append((base, version, add, remove))
        return version

    async def _answer(self) -> FeedPage:
        if self.replies:
            return self.replies.pop(0)
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")


class FakeRouter:
    def __init__(self, host: FakeHost) -> None:
        self._host = host

    def host(self, name: str) -> FakeHost:
        return self._host


@pytest.mark.asyncio
async def test_one_poller_per_host_delivers_to_every_watcher() -> None:
    store = FakeStore()
    events = [store.append(1), store.append(2)]
    host = FakeHost([FeedPage("e1", 2, False, events)])
    hub = Hub(router=FakeRouter(host), store=store, present=None)  # type: ignore[arg-type]
    conns = [FakeConnection() for _ in range(3)]
    subs = []
    for conn in conns:
        sub = Subscription(hub, conn, "a1", "english")  # type: ignore[arg-type]
        sub.syncing = False
        conn.subscriptions["a1"] = object()
        hub.subs.setdefault("a1", {})[conn] = sub  # type: ignore[index]
        await hub._watch("h", "a1")
        subs.append(sub)
    await wait_for(lambda: all(_seqs(c) == [1, 2] for c in conns)
                   and not any(s.filling for s in subs), timeout=10,
                   message="both events delivered to every watcher")
    # Three watchers, one poll at a time for the host: the first reply, then one waiting.
    assert len(hub.feeds.pollers) == 1 and host.polls == 2
    # The host was told of the auction once, before the first poll, for all three watchers.
    assert host.changes == [(None, 1, ["a1"], [])]
    for conn in conns:
        hub.unsubscribe(conn, "a1")
    assert hub.subs == {} and hub.host_of == {}
    await hub.close()
    await asyncio.gather(*hub._tasks, return_exceptions=True)


class ClosingStore:
    """Auction records; the second read closes the subscribing socket meanwhile."""

    def __init__(self, on_second_read) -> None:
        self.reads = 0
        self.on_second_read = on_second_read

    async def get_auction(self, auction_id: str) -> dict:
        self.reads += 1
        if self.reads == 2:
            self.on_second_read()
        return {"auction_id": auction_id, "status": "live", "seq": 3,
                "spec": {"type": "english"}, "view": {}}


class TicketConnection(FakeConnection):
    def wants(self, auction_id: str, ticket: object) -> bool:
        return self.subscriptions.get(auction_id) is ticket


@pytest.mark.asyncio
async def test_a_subscribe_overtaken_during_its_last_read_is_still_answered() -> None:
    """A subscription closed while its snapshot read runs answers `subscribed: False`, as
    every other overtaken subscribe does: a Socket.IO callback waiting on it must fire."""
    conn = TicketConnection()
    hub: Hub

    def unsubscribe() -> None:
        hub.unsubscribe(conn, "a1")  # type: ignore[arg-type]

    hub = Hub(router=SimpleNamespace(locate=_no_host), store=ClosingStore(unsubscribe),  # type: ignore[arg-type]
              present=None)  # type: ignore[arg-type]
    ticket = object()
    conn.subscriptions["a1"] = ticket
    await hub.subscribe(conn, "a1", None, "r1", ticket)  # type: ignore[arg-type]
    assert conn.sent == [{"op": "ack", "req_id": "r1", "auction_id": "a1",
                          "subscribed": False}]
    assert not hub.subs


async def _no_host(auction_id: str) -> None:
    return None
