"""The node-loss scenario on a `testkit.cluster.Cluster`, shared by tests/cluster and the
benchmark (loadtests/stages_cluster.py).

Auctions are created through every gateway; then, per auction, a few bidders bid steadily
over WebSockets spread over every gateway, each bid with a `req_id` and retried with the same
`req_id` on `UNAVAILABLE` (or, when its socket dies with its gateway, on another gateway).
One watcher per gateway follows every auction; the killed gateway's watcher reconnects to a
surviving gateway and subscribes with `since`. Then the worker node hosting most auctions is
SIGKILLed. `run` returns everything needed to judge the outcome: every acknowledgement, the
store's event log, what each watcher received, and per auction the time from the kill to its
first accepted bid.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from storage import Store, open_store
from testkit.client import Api, Socket, User, connect, wait_for
from testkit.cluster import Cluster

ANSWER_TIMEOUT_S = 30.0
RETRY_FOR_S = 90.0  # one bid's retries on UNAVAILABLE or a dead socket, at most
PACE_S = 0.1  # between one bidder's bids: about 10 bids/s per bidder (under the rate limit)


@dataclass
class Ack:
    auction_id: str
    req_id: str
    seq: int
    price: int
    received: float  # time.monotonic()


@dataclass
class Watcher:
    gateway: int  # node index of the gateway it is on now
    socket: Socket
    events: dict[str, list[dict]] = field(default_factory=dict)  # auction -> events, in order
    snapshots: dict[str, list[int]] = field(default_factory=dict)  # auction -> snapshot seqs
    moved: bool = False  # reconnected to another gateway after its own died

    def last(self, auction_id: str) -> int:
        seen = self.events.get(auction_id) or []
        return seen[-1]["seq"] if seen else self.snapshots[auction_id][-1]


@dataclass
class Outcome:
    victim: int  # index of the node killed
    killed_at: float  # time.monotonic()
    auctions: list[str]
    on_victim: list[str]  # auctions whose host ran on the killed node
    acks: list[Ack]
    errors: dict[str, int]  # error code -> count
    reconnects: int  # bidder sockets moved to another gateway
    log: dict[str, list[dict]]  # auction -> the store's events (raw, with req_id)
    views: dict[str, dict]  # auction -> final REST view
    watchers: list[Watcher]
    recovery_s: dict[str, float]  # auction -> kill to first accepted bid sent after it

    def lost_acks(self) -> list[Ack]:
        """Acknowledged bids missing from the log (by req_id at the acked seq)."""
        logged = logged_bids(self.log)
        return [a for a in self.acks if logged.get(_key_of(a)) != [a.seq]]


def logged_bids(log: Mapping[str, list[dict]]) -> dict[tuple[str, str], list[int]]:
    """(auction, stored req_id) -> the seqs of the logged events carrying that req_id. The
    gateway stores a protocol req_id with its JSON type: "str:<req_id>"."""
    by_req: dict[tuple[str, str], list[int]] = {}
    for auction_id, events in log.items():
        for e in events:
            if e.get("req_id") is not None:
                by_req.setdefault((auction_id, e["req_id"]), []).append(e["seq"])
    return by_req


def ack_mismatches(acks: Iterable[Ack], log: Mapping[str, list[dict]]) -> list[str]:
    """How `acks` and the store's `log` disagree: an acknowledged bid not in its auction's log
    once at the seq its ack named, a req_id acknowledged twice, a logged bid never
    acknowledged. Empty when every ack is in the log and every logged bid was acked."""
    logged = logged_bids(log)
    problems: list[str] = []
    seen: set[tuple[str, str]] = set()
    for ack in acks:
        key = _key_of(ack)
        if key in seen:
            problems.append(f"acked twice: {ack}")
        seen.add(key)
        if logged.get(key) != [ack.seq]:
            problems.append(f"ack not logged once at its seq: {ack}, logged {logged.get(key)}")
    problems += [f"logged, never acked: {key} at {seqs}" for key, seqs in logged.items()
                 if key not in seen]
    return problems


def _key_of(ack: Ack) -> tuple[str, str]:
    return ack.auction_id, f"str:{ack.req_id}"


class Bidding:
    """Steady bidding on `auctions` until `stop` is set."""

    def __init__(self, cluster: Cluster, http: aiohttp.ClientSession, users: list[User],
                 auctions: list[str], per_auction: int) -> None:
        self.cluster = cluster
        self.http = http
        self.users = users
        self.auctions = auctions
        self.per_auction = per_auction
        self.acks: list[Ack] = []
        self.errors: dict[str, int] = {}
        self.reconnects = 0
        self.next_amount = dict.fromkeys(auctions, 1000)
        self.stop = asyncio.Event()
        self._ids = itertools.count()
        self._tasks: list[asyncio.Task] = []

    def start(self) -> None:
        slots = itertools.count()
        for auction_id in self.auctions:
            for _ in range(self.per_auction):
                slot = next(slots)
                self._tasks.append(asyncio.create_task(self._bidder(
                    auction_id, self.users[slot % len(self.users)], slot)))

    async def finish(self) -> None:
        """Stop bidding: every bidder settles its current bid and closes its socket. Raises
        the first bidder's failure, once all are done."""
        self.stop.set()
        results = await asyncio.gather(*self._tasks, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    def acked(self, auction_id: str, after: float = 0.0) -> int:
        return sum(1 for a in self.acks if a.auction_id == auction_id and a.received > after)

    async def _open(self, user: User, slot: int) -> Socket:
        """A socket to a live gateway (a dying one may still be listed for a moment)."""
        for attempt in itertools.count():
            gateways = self.cluster.gateways
            try:
                return await connect(self.http, gateways[(slot + attempt) % len(gateways)].base,
                                     user)
            except aiohttp.ClientError:
                if attempt >= 50:
                    raise
                await asyncio.sleep(PACE_S)
        raise AssertionError("unreachable")

    async def _bidder(self, auction_id: str, user: User, slot: int) -> None:
        ws = await self._open(user, slot)
        try:
            while not self.stop.is_set():
                amount = self.next_amount[auction_id]
                self.next_amount[auction_id] = amount + 100
                req_id = f"b{slot}-{next(self._ids)}"
                give_up = time.monotonic() + RETRY_FOR_S
                while True:  # the same bid, by its req_id, until it has an outcome
                    if time.monotonic() > give_up:
                        raise AssertionError(f"bid {req_id} on {auction_id}: no outcome "
                                             f"after {RETRY_FOR_S}s of retries")
                    if ws.closed_code is not None or ws.ws.closed:
                        with contextlib.suppress(Exception):
                            await ws.close()
                        ws = await self._open(user, slot)
                        self.reconnects += 1
                    answer = await _answer(ws, {"op": "bid", "auction_id": auction_id,
                                                "amount": amount, "req_id": req_id})
                    if answer is None:  # the socket died before answering: resend
                        continue
                    if answer["op"] == "ack":
                        self.acks.append(Ack(auction_id, req_id, answer["seq"],
                                             answer["price"], time.monotonic()))
                        break
                    code = answer.get("code", "?")
                    self.errors[code] = self.errors.get(code, 0) + 1
                    if code != "UNAVAILABLE":
                        if answer.get("min_bid"):
                            self.next_amount[auction_id] = max(
                                self.next_amount[auction_id], int(answer["min_bid"]))
                        break
                    await asyncio.sleep(PACE_S)  # pacing the retries, not a synchronisation
                await asyncio.sleep(PACE_S)
        finally:
            with contextlib.suppress(Exception):
                await ws.close()


async def _answer(ws: Socket, message: dict) -> dict | None:
    """The answer to `message` (matched by req_id among messages after it was sent), or None
    when the socket closes first."""
    start = len(ws.messages)
    try:
        await ws.send(message)
    except (ConnectionError, RuntimeError, aiohttp.ClientError):
        return None
    deadline = time.monotonic() + ANSWER_TIMEOUT_S
    while time.monotonic() < deadline:
        for m in ws.messages[start:]:
            if m.get("req_id") == message["req_id"] and m.get("op") in ("ack", "error"):
                return m
        if ws.closed_code is not None or ws.ws.closed:
            return None
        await asyncio.sleep(0.02)
    raise AssertionError(f"no answer to {message} within {ANSWER_TIMEOUT_S}s")


async def watch(cluster: Cluster, http: aiohttp.ClientSession, index: int,
                 auctions: list[str], since: dict[str, int] | None = None) -> Watcher:
    """A watcher on node `index`'s gateway, subscribed to every one of `auctions`."""
    gateway = cluster.nodes[index].gateway
    assert gateway is not None
    watcher = Watcher(index, await connect(http, gateway.base))
    await subscribe(watcher, auctions, since)
    return watcher


async def subscribe(watcher: Watcher, auctions: list[str],
                    since: dict[str, int] | None = None) -> None:
    """Subscribe `watcher` to `auctions` (resuming after `since[auction]` when given)."""
    for auction_id in auctions:
        message: dict[str, Any] = {"op": "subscribe", "auction_id": auction_id}
        if since is not None:
            message["since"] = since[auction_id]
        await watcher.socket.send({**message, "req_id": f"s-{auction_id}"})


def collect(watcher: Watcher) -> None:
    """Fold the watcher's socket messages into its per-auction events and snapshots."""
    watcher.events.clear()
    watcher.snapshots.clear()
    for m in watcher.socket.messages:
        auction_id = str(m.get("auction_id"))
        if m.get("op") == "snapshot":
            watcher.snapshots.setdefault(auction_id, []).append(m["seq"])
        elif m.get("op") == "event" and m.get("channel") is None:
            watcher.events.setdefault(auction_id, []).append(m)


async def _move_watcher(cluster: Cluster, http: aiohttp.ClientSession, old: Watcher,
                        auctions: list[str]) -> Watcher:
    """The killed gateway's watcher: reconnect to a surviving gateway, resume with since."""
    await wait_for(lambda: old.socket.closed_code is not None or old.socket.ws.closed,
                   timeout=30, message="the killed gateway's socket to close")
    collect(old)
    since = {a: old.last(a) for a in auctions}
    index = next(n.index for n in cluster.nodes if n.alive)
    gateway = cluster.nodes[index].gateway
    assert gateway is not None
    socket = await connect(http, gateway.base)
    # One socket's history: what the old one received, then the resumed stream.
    socket.messages[:0] = old.socket.messages
    moved = Watcher(index, socket, moved=True)
    await subscribe(moved, auctions, since)
    return moved


async def read_store[T](cluster: Cluster, read: Callable[[Store, str], Awaitable[T]],
                     ids: Iterable[str]) -> dict[str, T]:
    """`read(store, id)` for each id, on the cluster's store opened for the purpose."""
    store = open_store(cluster.mongo_uri)
    await store.open()
    try:
        return {i: await read(store, i) for i in ids}
    finally:
        await store.close()


async def events_of(store: Store, auction_id: str) -> list[dict]:
    return await store.load_events(auction_id)


async def record_of(store: Store, auction_id: str) -> Any:
    return await store.get_auction(auction_id)


async def nodes_of(cluster: Cluster, auctions: list[str]) -> dict[str, str | None]:
    """auction -> the Ray node id its host runs on (the store's `host`, located by `ece
    status`), or None when its host is not running."""
    records = await read_store(cluster, record_of, auctions)
    status = await asyncio.to_thread(cluster.status)
    node_of_host = {h["name"]: h.get("node_id") for h in status["hosts"]}
    return {a: node_of_host.get(str(r.get("host"))) if r is not None else None
            for a, r in records.items()}


async def victim_of(cluster: Cluster, auctions: list[str]) -> tuple[int, list[str]]:
    """The live worker node hosting most of `auctions`, and those auctions."""
    index_of = {n.node_id: n.index for n in cluster.nodes if n.alive}
    by_node: dict[int, list[str]] = {}
    for auction_id, node_id in (await nodes_of(cluster, auctions)).items():
        node = index_of.get(node_id or "")
        if node is not None and node > 0:
            by_node.setdefault(node, []).append(auction_id)
    if not by_node:
        raise AssertionError(f"no auction of {auctions} hosted on a live worker node")
    victim = max(by_node, key=lambda i: len(by_node[i]))
    return victim, by_node[victim]


async def run(cluster: Cluster, auctions: int = 6, bidders: int = 3, per_auction: int = 2,
              before: int = 3, after: int = 3, recovery_timeout: float = 60.0) -> Outcome:
    """Create `auctions`, bid (`per_auction` bidder sockets each, `bidders` users), wait for
    `before` acks per auction, kill the worker node hosting most of them, wait for `after`
    acks per auction past the kill, stop and read the store's log. The bidders are stopped
    and every socket closed whatever happens."""
    async with aiohttp.ClientSession() as http:
        apis = [Api(g.base, http, retries=5) for g in cluster.gateways]
        seller = await apis[0].signup("seller")
        views = [await apis[i % len(apis)].auction(seller, duration_ms=3_600_000)
                 for i in range(auctions)]
        ids = [v["auction_id"] for v in views]
        users = [await apis[i % len(apis)].signup(f"bidder{i}-") for i in range(bidders)]
        victim, on_victim = await victim_of(cluster, ids)
        watchers = [await watch(cluster, http, n.index, ids) for n in cluster.nodes if n.alive]
        moved = list(watchers)
        bidding = Bidding(cluster, http, users, ids, per_auction)
        bidding.start()
        try:
            try:
                await wait_for(lambda: all(bidding.acked(a) >= before for a in ids),
                               timeout=60, message=f"{before} acks on every auction before "
                               "the kill")
                killed_at = await asyncio.to_thread(cluster.kill_node, victim)
                moved = [await _move_watcher(cluster, http, w, ids) if w.gateway == victim
                         else w for w in watchers]
                await wait_for(lambda: all(bidding.acked(a, killed_at) >= after for a in ids),
                               timeout=recovery_timeout, interval=0.1,
                               message=f"{after} acks on every auction after the kill")
            finally:
                await bidding.finish()
            api = Api(cluster.gateways[0].base, http, retries=5)
            final = {a: await api.get(a) for a in ids}
            await wait_for(lambda: all(caught_up(w, final) for w in moved), timeout=30,
                           message="every watcher caught up with the final seq")
            for w in moved:
                collect(w)
        finally:
            for w in {id(w): w for w in [*watchers, *moved]}.values():
                with contextlib.suppress(Exception):
                    await w.socket.close()
    log = await read_store(cluster, events_of, ids)
    recovery = {a: min(k.received for k in bidding.acks
                       if k.auction_id == a and k.received > killed_at) - killed_at
                for a in ids}
    return Outcome(victim, killed_at, ids, on_victim, bidding.acks, bidding.errors,
                   bidding.reconnects, log, final, moved, recovery)


def caught_up(watcher: Watcher, final: Mapping[str, dict]) -> bool:
    """Has `watcher` received, for every auction of `final` (auction -> REST view), an event
    at or past the view's seq? (Folds its messages first: `collect`.)"""
    collect(watcher)
    return all(watcher.events.get(a) and watcher.events[a][-1]["seq"] >= view["seq"]
               for a, view in final.items())
