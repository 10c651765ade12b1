"""The subscription-aware feed end to end without Ray: gateways' hubs polling a host's real
`EventFeed` through a fake handle. Each gateway receives only the events of the auctions its
sockets watch (counted), every subscription still gets every event in order, also one made
while events flow, and a host that restarts or fails a registration loses nothing."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry

import gateway.feeds
from actors.direct import DirectServer
from actors.feed import EventFeed
from gateway.fanout import Hub
from gateway.router import HostClient
from testkit.client import wait_for


class Store:
    """Each auction's event log; an event is appended here before the host publishes it."""

    def __init__(self) -> None:
        self.logs: dict[str, list[dict]] = {}

    def append(self, auction_id: str) -> dict:
        log = self.logs.setdefault(auction_id, [])
        event = {"auction_id": auction_id, "seq": len(log) + 1, "type": "bid", "at": 0}
        log.append(event)
        return event

    async def get_auction(self, auction_id: str) -> dict:
        seq = len(self.logs.get(auction_id, []))
        return {"auction_id": auction_id, "status": "live", "spec": {"type": "english"},
                "seq": seq, "view": {"auction_id": auction_id, "seq": seq}}

    async def load_events(self, auction_id: str, after_seq: int = 0, limit=None) -> list[dict]:
        return [e for e in self.logs.get(auction_id, []) if e["seq"] > after_seq]


class Host:
    """One auction host's feed behind a Ray-like handle (`handle.poll.remote(...)`)."""

    def __init__(self) -> None:
        self.feed = EventFeed(capacity=1_000)
        self.fail_interest = 0  # the next this many registrations raise
        self.died = asyncio.get_running_loop().create_future()
        self.handle = self
        self.poll = SimpleNamespace(remote=self._poll)
        self.interest = SimpleNamespace(remote=self._interest)
        self.pages_polled = 0  # polls answered with events

    async def invoke(self, method: str, *args):  # a host client's call, by "Ray"
        return await getattr(self, method).remote(*args)

    async def submit_read(self, store: Store, bids: list[str], reader, epoch, cursor, limit,
                          landed: asyncio.Future) -> object:
        """A batch of bids (auction ids) carrying `reader`'s page, as `AuctionHost.submit_read`:
        durable, published, then the page read; its reply held until `landed` is done."""
        feed = self.feed
        began = feed.begin(reader)
        await feed.publish([store.append(auction_id) for auction_id in bids])
        page = await feed.carried(reader, began, epoch, cursor, limit)
        await landed
        return page

    async def _poll(self, epoch, cursor, timeout, limit, reader=None):
        feed, died = self.feed, self.died
        waiting = asyncio.ensure_future(feed.wait(epoch, cursor, timeout, reader))
        await asyncio.wait([waiting, died], return_when=asyncio.FIRST_COMPLETED)
        if died.done():  # a call in flight when its actor dies fails (RayActorError)
            waiting.cancel()
            raise ConnectionError("host died")
        page = feed.next_page(epoch, cursor, limit, reader)
        self.pages_polled += bool(page.events)
        return page

    async def _interest(self, reader, base, version, add, remove) -> int:
        if self.fail_interest:
            self.fail_interest -= 1
            raise ConnectionError("host restarting")
        return await self.feed.register(reader, base, version, add, remove)

    def restart(self) -> None:
        self.died.set_result(None)
        self.died = asyncio.get_running_loop().create_future()
        self.feed = EventFeed(capacity=1_000)  # new epoch, no reader known


class Router:
    def __init__(self, host: Host) -> None:
        self._host = host

    def host(self, name: str) -> Host:
        return self._host

    async def locate(self, auction_id: str) -> str:
        return "h"


class Conn:
    def __init__(self) -> None:
        self.sent: list[dict] = []
        self.subscriptions: dict[str, object] = {}
        self.closing = False

    def wants(self, auction_id: str, ticket: object) -> bool:
        return self.subscriptions.get(auction_id) is ticket

    def send(self, message: dict, cache=None, encoding=None) -> None:
        self.sent.append(message)

    def seqs(self, auction_id: str) -> list[int]:
        return [m["seq"] for m in self.sent
                if m["op"] in ("event", "snapshot") and m["auction_id"] == auction_id]


class Gateway:
    def __init__(self, store: Store, host: Host) -> None:
        self.registry = CollectorRegistry()

        async def present(view: dict) -> dict:
            return view

        self.hub = Hub(Router(host), store, present, self.registry)  # type: ignore[arg-type]

    async def watch(self, auction_id: str) -> Conn:
        conn = Conn()
        ticket = conn.subscriptions[auction_id] = object()
        await self.hub.subscribe(conn, auction_id, None, "r1", ticket)  # type: ignore[arg-type]
        return conn

    def count(self, name: str) -> float:
        return self.registry.get_sample_value(f"ece_fanout_{name}_events_total") or 0.0

    async def close(self) -> None:
        await self.hub.close()
        await asyncio.gather(*self.hub._tasks, return_exceptions=True)


@pytest.fixture(autouse=True)
def long_polls(monkeypatch) -> None:
    """Polls that never time out: whatever arrives came through a poll the feed woke."""
    monkeypatch.setattr(gateway.feeds, "POLL_TIMEOUT_S", 3600.0)


async def bids(store: Store, host: Host, auction_id: str, n: int) -> None:
    for _ in range(n):
        await host.feed.publish([store.append(auction_id)])  # durable first, then published
        await asyncio.sleep(0)


def whole(conn: Conn, auction_id: str, store: Store) -> bool:
    """The snapshot's seq and then every event after it, in order, up to the log's end."""
    seqs = conn.seqs(auction_id)
    return bool(seqs) and seqs == list(range(seqs[0], len(store.logs[auction_id]) + 1))


async def test_each_gateway_receives_only_the_auctions_it_watches() -> None:
    store, host = Store(), Host()
    a, b = Gateway(store, host), Gateway(store, host)
    for auction_id in ("x", "y", "z"):
        await bids(store, host, auction_id, 2)
    on_a, on_b = await a.watch("x"), await b.watch("y")
    await asyncio.gather(*(bids(store, host, auction_id, 30) for auction_id in "xyz"))
    await wait_for(lambda: whole(on_a, "x", store) and whole(on_b, "y", store)
                   and on_a.seqs("x")[-1] == on_b.seqs("y")[-1] == 32, timeout=10,
                   message="every event of its auction on each gateway")
    for gw in (a, b):
        # Only its own auction's events came: 30 each (or fewer, if the subscribe's store read
        # found some), none of the two others' 60, which the host published meanwhile.
        assert 0 < gw.count("received") == gw.count("needed") <= 30
        assert gw.count("host") >= 60
    await a.close()
    await b.close()


async def test_a_watcher_subscribing_while_events_flow_misses_nothing() -> None:
    store, host = Store(), Host()
    gw = Gateway(store, host)
    await bids(store, host, "y", 1)
    await gw.watch("y")  # the gateway already polls the host, waiting on "y" only
    flowing = asyncio.create_task(bids(store, host, "x", 200))
    await bids(store, host, "x", 5)
    late = await gw.watch("x")  # registered with the host mid-poll, mid-flow
    await flowing
    await wait_for(lambda: whole(late, "x", store) and late.seqs("x")[-1] == 205, timeout=10,
                   message="every event after the snapshot")
    # Events after the subscribe came live: through a poll the registration woke.
    assert gw.count("received") > 0
    await gw.close()


async def test_a_restarted_host_or_a_failed_registration_loses_nothing() -> None:
    store, host = Store(), Host()
    gw = Gateway(store, host)
    host.fail_interest = 1
    conn = await gw.watch("x")  # the host could not be told: the poller tells it later
    await bids(store, host, "x", 10)
    await wait_for(lambda: whole(conn, "x", store) and conn.seqs("x")[-1] == 10, timeout=10,
                   message="every event despite the failed registration")
    host.restart()  # the poller's cursor and interest mean nothing to the new feed
    await bids(store, host, "x", 10)
    await wait_for(lambda: whole(conn, "x", store) and conn.seqs("x")[-1] == 20, timeout=10,
                   message="every event across the host's restart")
    assert host.feed.interests.of(gw.hub.reader) == {"x"}  # registered again
    await gw.close()


async def test_the_last_unwatch_leaves_the_host_wanting_nothing_for_us() -> None:
    store, host = Store(), Host()
    gw = Gateway(store, host)
    conn = await gw.watch("x")
    assert host.feed.interests.of(gw.hub.reader) == {"x"}
    gw.hub.unsubscribe(conn, "x")  # type: ignore[arg-type]
    await bids(store, host, "x", 1)  # wakes the poll, which then sees nothing is watched
    await wait_for(lambda: host.feed.interests.of(gw.hub.reader) == set(), timeout=10,
                   message="the host told")
    await gw.close()


class SilentHost(Host):
    """A host whose next calls neither answer nor fail (seen after a node loss: a host Ray
    restarted elsewhere), until it answers again."""

    def __init__(self) -> None:
        super().__init__()
        self.silent_polls = 0  # the next this many polls never return
        self.silent_interests = 0  # likewise registrations
        self.unanswered = 0
        self.poll = SimpleNamespace(remote=self._maybe_poll)
        self.interest = SimpleNamespace(remote=self._maybe_interest)

    async def _never(self) -> None:
        self.unanswered += 1
        await asyncio.get_running_loop().create_future()

    async def _maybe_poll(self, *args):
        if self.silent_polls:
            self.silent_polls -= 1
            await self._never()
        return await self._poll(*args)

    async def _maybe_interest(self, *args) -> int:
        if self.silent_interests:
            self.silent_interests -= 1
            await self._never()
        return await self._interest(*args)


@pytest.fixture
def short_host_calls(monkeypatch) -> None:
    monkeypatch.setattr(gateway.feeds, "HOST_CALL_TIMEOUT_S", 0.05)


async def test_subscribes_to_a_host_that_never_answers_a_registration_still_complete(
        short_host_calls) -> None:
    store, host = Store(), SilentHost()
    gw = Gateway(store, host)
    await bids(store, host, "x", 3)
    host.silent_interests = 1_000  # every registration is left unanswered
    # Each waits on the host's lock behind the one before: all are answered all the same.
    conns = await asyncio.wait_for(asyncio.gather(*(gw.watch(a) for a in ("x", "y", "x"))),
                                   timeout=10)
    assert all(conn.sent and conn.sent[0]["op"] == "snapshot" for conn in conns)
    assert host.unanswered > 0
    host.silent_interests = 0  # it answers again: registered, and the events flow
    await bids(store, host, "x", 10)
    await wait_for(lambda: all(whole(conn, "x", store) and conn.seqs("x")[-1] == 13
                               for conn in (conns[0], conns[2])), timeout=10,
                   message="every event once the host answers again")
    assert host.feed.interests.of(gw.hub.reader) == {"x", "y"}
    await gw.close()


async def test_a_poll_that_never_returns_does_not_stop_the_events(
        short_host_calls, monkeypatch) -> None:
    monkeypatch.setattr(gateway.feeds, "POLL_TIMEOUT_S", 0.05)
    store, host = Store(), SilentHost()
    gw = Gateway(store, host)
    conn = await gw.watch("x")
    await bids(store, host, "x", 1)
    await wait_for(lambda: conn.seqs("x")[-1] == 1, timeout=10, message="the first event")
    host.silent_polls = 3  # the next polls hang; what is published meanwhile waits
    await wait_for(lambda: host.unanswered, timeout=10, message="a poll left unanswered")
    await bids(store, host, "x", 10)
    await wait_for(lambda: whole(conn, "x", store) and conn.seqs("x")[-1] == 11, timeout=10,
                   message="every event despite the silent polls")
    await bids(store, host, "x", 10)  # and live again afterwards
    await wait_for(lambda: whole(conn, "x", store) and conn.seqs("x")[-1] == 21, timeout=10,
                   message="the events after the host answers again")
    assert host.unanswered == 3
    await gw.close()


class ManyHosts(Router):
    """Auction `a<i>` on host `h<i>`, each its own feed (hosts retire, new names come)."""

    def __init__(self) -> None:
        self.hosts: dict[str, Host] = {}

    def host(self, name: str) -> Host:
        if name not in self.hosts:
            self.hosts[name] = Host()
        return self.hosts[name]

    async def locate(self, auction_id: str) -> str:
        return "h" + auction_id[1:]


async def test_hosts_no_longer_watched_leave_nothing_behind(monkeypatch) -> None:
    monkeypatch.setattr(gateway.feeds, "POLL_TIMEOUT_S", 0.05)  # pollers see the unwatch
    store, router = Store(), ManyHosts()
    gw = Gateway(store, Host())
    hub = gw.hub
    hub.router = router  # type: ignore[assignment]
    for i in range(1_000):
        conn = await gw.watch(f"a{i}")
        hub.unsubscribe(conn, f"a{i}")  # type: ignore[arg-type]
    await wait_for(lambda: not hub.feeds.feeds and not hub.host_auctions, timeout=30,
                   message="no per-host state left")
    assert not hub.feeds.pollers and not hub.subs and not hub.host_of
    # Each host was told we want nothing of it any more.
    assert all(not host.feed.interests.of(hub.reader) for host in router.hosts.values())
    await gw.close()


async def test_a_watch_while_the_last_poller_ends_keeps_the_host(monkeypatch) -> None:
    store, host = Store(), Host()
    gw = Gateway(store, host)
    hub = gw.hub
    first = await gw.watch("x")
    hub.unsubscribe(first, "x")  # type: ignore[arg-type]
    told, watch = host.feed.register, hub.feeds.watch
    reached = asyncio.Event()

    def watching(*args):
        reached.set()
        return watch(*args)

    async def watched_meanwhile(*args) -> int:
        """The ending poller tells the host "nothing": a watch of the host comes meanwhile."""
        monkeypatch.setattr(host.feed, "register", told)
        held = await told(*args)
        later.append(asyncio.ensure_future(gw.watch("x")))
        await reached.wait()  # it found the host's feed, before the poller ends
        return held

    later: list[asyncio.Future] = []
    monkeypatch.setattr(hub.feeds, "watch", watching)
    monkeypatch.setattr(host.feed, "register", watched_meanwhile)
    await bids(store, host, "x", 1)  # wakes the poll: the poller sees nothing watched, ends
    await wait_for(lambda: reached.is_set(), timeout=10, message="the watch during the end")
    second = await later[0]
    await bids(store, host, "x", 5)
    await wait_for(lambda: whole(second, "x", store) and second.seqs("x")[-1] == 6,
                   timeout=10, message="the new watch's events")
    assert hub.host_auctions == {"h": {"x"}} and list(hub.feeds.pollers) == ["h"]
    assert host.feed.interests.of(hub.reader) == {"x"}
    await gw.close()


async def watching_x(store: Store, host: Host) -> tuple[Gateway, Conn]:
    """A gateway with a socket watching "x", once its feed of the host has a cursor."""
    gw = Gateway(store, host)
    await bids(store, host, "x", 1)
    watcher = await gw.watch("x")
    await wait_for(lambda: gw.hub.feeds.ask("h") is not None, timeout=10, message="a cursor")
    return gw, watcher


async def test_events_brought_by_batch_replies_landing_in_any_order_reach_every_watcher() -> None:
    """Batches' replies carry the gateway's events (`HostFeeds.ask` / `landed`) and land in
    reverse order: every watcher still gets every event once, in order, and the poll sends
    none of them again."""
    store, host = Store(), Host()
    gw, watcher = await watching_x(store, host)
    feeds = gw.hub.feeds
    polled = host.pages_polled
    for _ in range(5):
        gates = [asyncio.get_running_loop().create_future() for _ in range(4)]
        batches = []
        for gate in gates:  # each leaves with the cursor the feed has when it leaves
            ask = feeds.ask("h")
            assert ask is not None
            batches.append(asyncio.create_task(
                host.submit_read(store, ["x", "x"], *ask, 100, gate)))
            await asyncio.sleep(0)
        for gate, batch in reversed(list(zip(gates, batches, strict=True))):
            gate.set_result(None)
            feeds.landed("h", await batch)
    assert whole(watcher, "x", store) and watcher.seqs("x")[-1] == 41
    assert host.pages_polled == polled  # the replies brought them all
    await gw.close()


async def test_a_batch_reply_that_never_came_has_every_watcher_read_the_log() -> None:
    store, host = Store(), Host()
    gw, watcher = await watching_x(store, host)
    feeds = gw.hub.feeds
    ask = feeds.ask("h")
    assert ask is not None
    gate = asyncio.get_running_loop().create_future()
    gate.set_result(None)
    await host.submit_read(store, ["x"] * 3, *ask, 100, gate)  # the reply is lost
    feeds.failed("h")
    await gw.watch("y")  # the next registration: the whole interest, the poll sends all
    await wait_for(lambda: watcher.seqs("x")[-1:] == [4], timeout=10,
                   message="the lost reply's events, from the log")
    assert whole(watcher, "x", store)
    await gw.close()


class LocalHost(Host):
    """A host on this machine: its `poll` served on a real direct channel, and counted apart
    from the polls that come by "Ray" (`handle.poll.remote`)."""

    def __init__(self) -> None:
        super().__init__()
        self.server = DirectServer(SimpleNamespace(poll=self._channel_poll))
        self.by_channel = 0
        self.by_ray = 0
        self.poll = SimpleNamespace(remote=self._ray_poll)
        self.endpoint = SimpleNamespace(remote=self.server.start)

    async def _channel_poll(self, *args):
        self.by_channel += 1
        return await self._poll(*args)

    async def _ray_poll(self, *args):
        self.by_ray += 1
        return await self._poll(*args)


class ClientRouter(Router):
    """The router's real host client (direct channel on) in front of the host."""

    def __init__(self, host: LocalHost) -> None:
        super().__init__(host)
        self.client = HostClient("h", host, direct=True)  # type: ignore[arg-type]

    def host(self, name: str) -> HostClient:  # type: ignore[override]
        return self.client


async def test_a_local_hosts_feed_is_polled_over_its_direct_channel_not_ray() -> None:
    """A poll that returns at once costs a Ray call's CPU on both sides (~2.8 ms here); a
    gateway whose sockets watch auctions another gateway bids on polls once per commit."""
    store, host = Store(), LocalHost()
    gw = Gateway(store, host)
    gw.hub.router = ClientRouter(host)  # type: ignore[assignment]
    conn = await gw.watch("x")
    for n in range(5):
        await bids(store, host, "x", 1)
        await wait_for(lambda n=n: conn.seqs("x")[-1:] == [n + 1], timeout=10,
                       message=f"event {n + 1} through the feed")
    assert host.by_channel >= 5 and host.by_ray == 0
    await gw.close()
    await host.server.close()
