"""Routes commands from this gateway to the hosts that own their auctions and offers.

Commands bound for one host that arrive in the same event-loop tick travel in one call
(`HostClient`): over the host's direct channel when it runs on this machine (a Unix socket,
`actors.direct`), else by Ray. The benchmark's baseline (ECE_BATCHING=0) sends every command
in a call of its own instead (`UnbatchedHostClient`), on the same transport, and differs in
nothing else: the host still commits the commands of concurrent calls together, and events
still reach the gateway once per host. The `Router` picks one of the two clients when it is
built. Either way, once the gateway reads a host's feed, a batch's reply brings that feed's
events too (`FeedLink`, `gateway.feeds`).
Host failures become `UNAVAILABLE` results, which are transient: a retry with the same
req_id is answered by the auction itself, which remembers every outcome it committed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Protocol, cast

import ray
from ray.exceptions import ActorDiedError, RayActorError, RayError

from actors.config import ClusterConfig
from actors.direct import ChannelLost, DirectClient, RemoteFailed
from actors.directory import get_or_create_directory
from actors.messages import (
    Command,
    FeedPage,
    OfferCommand,
    OfferReply,
    OfferViewed,
    Refused,
    Reply,
    Viewed,
    refused,
)
from gateway.limits import LRUCache
from market.errors import (
    AUCTION_NOT_FOUND,
    AUCTION_NOT_LIVE,
    NOT_HERE,
    OVERLOADED,
    UNAVAILABLE,
)
from market.offers import ACCEPT
from storage import Store
from storage.records import AuctionRecord

log = logging.getLogger("ece.router")

FINISHED = ("closed", "cancelled")
# Submit calls outstanding per host: one. What arrives meanwhile fills the next batch; with two
# in flight, the second call often held one bid and cost the host a commit of its own (A/B on
# one pinned CPU at 1,600 bids/s: ack p50 / p99 3.3 / 11.0 ms with one, 4.4 / 12.9 with two,
# 533 against 564 us of CPU per bid; e2e and the hot auction unchanged within noise).
MAX_CALLS_IN_FLIGHT = 1
MAX_CACHED_LOCATIONS = 100_000
MAX_HOST_CLIENTS = 10_000
# A host or directory call not answered by then is answered UNAVAILABLE (far above a loaded
# commit's time).
HOST_CALL_TIMEOUT_S = 10.0
# When to look for a host's direct channel again: after finding none on this machine, and
# after a socket that would not connect (a host process gone, Ray restarting it).
CHANNEL_ELSEWHERE_RETRY_S = 30.0
CHANNEL_FAILED_RETRY_S = 1.0
# What travels to a host (auction commands to `submit`, offer commands to `submit_offers`)
# and back.
Sent = Command | OfferCommand
Answer = Reply | OfferViewed


class FeedLink(Protocol):
    """The hub's side of a batch that carries feed events (`gateway.feeds.HostFeeds`)."""

    def ask(self, host: str) -> tuple[str, str, int] | None: ...

    def landed(self, host: str, page: FeedPage) -> None: ...

    def failed(self, host: str) -> None: ...


class BaseHostClient:
    """One host's outbound side: `call(command)` is a future of its result that never fails
    (a host that cannot answer yields UNAVAILABLE). Subclasses decide how commands are grouped
    into `submit` calls."""

    def __init__(self, name: str, handle: ray.actor.ActorHandle, method: str = "submit",
                 direct: bool = False) -> None:
        self.name = name
        self.handle = handle
        self.method = method  # submit (auctions) or submit_offers
        # Try the host's direct channel (actors.direct) before Ray: ClusterConfig.direct.
        self.direct = direct
        self._channel: DirectClient | None = None
        self._opening = asyncio.Lock()
        self._channel_retry_at = 0.0
        self._tasks: set[asyncio.Task] = set()
        self._calls = 0
        self.dead = False
        self.retired = False  # dropped by the router: the channel closes once idle
        # Where a batch's reply brings this gateway's events of the host (the hub's feeds);
        # None: answers only (offer desks, or no hub).
        self.feeds: FeedLink | None = None

    def call(self, command: Sent) -> asyncio.Future[Answer]:
        raise NotImplementedError

    def retire(self) -> None:
        """The router dropped this client (its cache of clients is bounded): the channel to
        the host closes as soon as no call is in flight or waiting, so a call already given
        to it is still answered."""
        self.retired = True
        self._close_if_idle()

    def _idle(self) -> bool:
        return not self._tasks

    def _close_if_idle(self) -> None:
        if self.retired and self._channel is not None and self._idle():
            self._channel.close()
            self._channel = None

    async def invoke(self, method: str, *args: object) -> Any:
        """One call of the host's `method`: over its direct channel when the host runs on
        this machine, else by Ray. Raises what either raises (callers map it to
        UNAVAILABLE)."""
        channel = await self._open_channel() if self.direct else None
        if channel is not None:
            return await channel.call(method, *args)
        return await getattr(self.handle, method).remote(*args)

    async def _open_channel(self) -> DirectClient | None:
        """The connection to the host's socket, opened (or reopened after the host
        restarted) on demand; None when there is none to open: use Ray."""
        async with self._opening:
            if self._channel is not None and not self._channel.closed:
                return self._channel
            if time.monotonic() < self._channel_retry_at:
                return None
            path = await self.handle.endpoint.remote()
            retry_s = CHANNEL_ELSEWHERE_RETRY_S  # no socket: the host could not listen
            if path is not None:
                try:
                    self._channel = await DirectClient.connect(path)
                    return self._channel
                except FileNotFoundError:  # the host runs on another machine
                    pass
                except OSError:  # a host process gone (its socket left behind)
                    retry_s = CHANNEL_FAILED_RETRY_S
            self._channel_retry_at = time.monotonic() + retry_s
            return None

    def _spawn(self, batch: list[tuple[Sent, asyncio.Future[Answer]]]) -> None:
        self._calls += 1
        task = asyncio.get_running_loop().create_task(self._send(batch))
        self._tasks.add(task)
        task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        self._calls -= 1
        self._close_if_idle()

    async def _send(self, batch: list[tuple[Sent, asyncio.Future[Answer]]]) -> None:
        results: list[Answer]
        commands = [command for command, _ in batch]
        ask = self.feeds.ask(self.name) if self.feeds is not None else None
        page: FeedPage | None = None
        try:
            if ask is None:
                results = await asyncio.wait_for(self.invoke(self.method, commands),
                                                 HOST_CALL_TIMEOUT_S)
            else:
                results, page = await asyncio.wait_for(
                    self.invoke("submit_read", commands, *ask), HOST_CALL_TIMEOUT_S)
        except TimeoutError:
            # Seen after a node loss: a call to a host Ray restarted elsewhere that neither
            # returns nor fails. Retrying with the same req_id is safe (outcomes are kept).
            log.warning("host %s did not answer within %.0f s", self.name, HOST_CALL_TIMEOUT_S)
            results = [refused(UNAVAILABLE, "auction host not answering; retry")] * len(batch)
        except ActorDiedError:
            # Dead for good (not restarting): have it recreated; callers retry.
            log.warning("host %s died; asking the directory to revive it", self.name)
            self.dead = True
            results = [refused(UNAVAILABLE, "auction host restarting; retry")] * len(batch)
        except (RayActorError, RayError, ChannelLost, RemoteFailed) as exc:
            log.warning("host %s unavailable: %s", self.name, type(exc).__name__)
            results = [refused(UNAVAILABLE, "auction host restarting; retry")] * len(batch)
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)
        if self.feeds is not None and ask is not None:
            if page is not None:
                self.feeds.landed(self.name, page)
            else:
                self.feeds.failed(self.name)


class UnbatchedHostClient(BaseHostClient):
    """The benchmark's baseline (ECE_BATCHING=0): one `submit` call a command."""

    def call(self, command: Sent) -> asyncio.Future[Answer]:
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._spawn([(command, future)])
        return future


class HostClient(BaseHostClient):
    """One host's outbound queue: coalesces commands into few `submit` calls.

    At most `MAX_CALLS_IN_FLIGHT` calls are outstanding per host; whatever arrives meanwhile
    waits and leaves as the next batch. Under light load a command goes out on the next loop
    tick; under heavy load batches grow instead of calls multiplying (like Nagle, or a
    database's group commit).
    """

    def __init__(self, name: str, handle: ray.actor.ActorHandle, method: str = "submit",
                 direct: bool = False) -> None:
        super().__init__(name, handle, method, direct)
        self._pending: list[tuple[Sent, asyncio.Future[Answer]]] = []
        self._flush_scheduled = False

    def call(self, command: Sent) -> asyncio.Future[Answer]:
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._pending.append((command, future))
        self._schedule_flush()
        return future

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled and self._calls < MAX_CALLS_IN_FLIGHT:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._pending and self._calls < MAX_CALLS_IN_FLIGHT:
            batch, self._pending = self._pending, []
            self._spawn(batch)

    def _idle(self) -> bool:
        return super()._idle() and not self._pending

    def _sent(self, task: asyncio.Task) -> None:
        super()._sent(task)
        if self._pending:
            self._schedule_flush()


def host_clients(size: int = MAX_HOST_CLIENTS) -> LRUCache[str, BaseHostClient]:
    """The router's cache of host clients: bounded, and a client dropped is retired."""
    return LRUCache(size, on_evict=BaseHostClient.retire)


class Router:
    def __init__(self, config: ClusterConfig, store: Store, max_inflight: int) -> None:
        self.config = config
        self.store = store
        self.max_inflight = max_inflight
        self.directory = get_or_create_directory(config)
        # auction -> host, a cache of the directory's answers (bounded; misses ask again).
        self._locations: LRUCache[str, str] = LRUCache(MAX_CACHED_LOCATIONS)
        # Host clients by name, bounded: with one auction per host (ECE_AUCTIONS_PER_ACTOR=1)
        # every auction brings a new name; an evicted client closes its channel (`retire`)
        # and is made again on next use.
        self._hosts = host_clients()
        self._offer_hosts = host_clients()
        # Chosen once: coalescing commands per host, or (the baseline) one call each.
        self._host_client: type[BaseHostClient] = (
            HostClient if config.batching else UnbatchedHostClient)
        self._inflight = 0
        self.feed_link: FeedLink | None = None  # set by the hub

    async def ready(self) -> None:
        await self.directory.ready.remote()

    def host(self, name: str, offers: bool = False) -> BaseHostClient:
        """The client of a host's auctions (`submit`) or, with `offers`, its offer desk."""
        hosts = self._offer_hosts if offers else self._hosts
        client = hosts.get(name)
        if client is not None and client.dead:
            hosts.pop(name)
            client.retire()
            self.directory.revive.remote(name)
            client = None
        if client is None:
            handle = ray.get_actor(name, namespace=self.config.namespace)
            client = self._host_client(name, handle, "submit_offers" if offers else "submit",
                                       self.config.direct)
            client.feeds = None if offers else self.feed_link
            hosts.put(name, client)
        return client

    def inflight(self) -> int:
        return self._inflight

    async def locate(self, auction_id: str) -> str | None:
        name = self._locations.get(auction_id)
        if name is None:
            name = await asyncio.wait_for(self.directory.locate.remote(auction_id),
                                          HOST_CALL_TIMEOUT_S)
            if name is not None:
                self._locations.put(auction_id, name)
        return name

    async def _not_served(self, auction_id: str) -> Refused:
        """Why no host serves an auction: it does not exist, or it has finished."""
        record = await self.store.get_auction(auction_id)
        if record is None:
            return refused(AUCTION_NOT_FOUND, "no such auction")
        if record["status"] in FINISHED:
            return refused(AUCTION_NOT_LIVE, f"auction is {record['status']}")
        return refused(UNAVAILABLE, "auction is being placed; retry")

    async def send(self, command: Command) -> Reply:
        """Deliver one command to the auction's host and return its result."""
        if self._inflight >= self.max_inflight:
            return refused(OVERLOADED, "too many commands in flight; retry shortly")
        self._inflight += 1
        try:
            return await self._send(command)
        finally:
            self._inflight -= 1

    def send_known(self, command: Command) -> asyncio.Future[Answer] | None:
        """`send` without a coroutine when the auction's host is known and connected: the
        future of its answer (NOT_HERE included: the caller falls back to `send`), counted in
        flight until it resolves. None when `send` must find the host (or refuse)."""
        if self._inflight >= self.max_inflight:
            return None
        name = self._locations.get(command.auction_id)
        client = self._hosts.get(name) if name is not None else None
        if client is None or client.dead:
            return None
        self._inflight += 1
        future = client.call(command)
        future.add_done_callback(self._landed)
        return future

    def _landed(self, _: asyncio.Future[Answer]) -> None:
        self._inflight -= 1

    async def _send(self, command: Command) -> Reply:
        result = await self._route(command.auction_id, command)
        if result is None:
            return await self._not_served(command.auction_id)
        return cast(Reply, result)

    async def _route(self, key: str, command: Sent, offers: bool = False,
                     alone: bool = False) -> Answer | None:
        """Deliver a command to the host of auction or offer thread `key` (`alone`: in a
        Ray call of its own, not batched); None when no host serves it."""
        for _ in range(2):
            try:
                name = await self.locate(key)
                if name is None:
                    return None
                client = self.host(name, offers)
                if alone:
                    result = (await asyncio.wait_for(client.invoke(client.method, [command]),
                                                     HOST_CALL_TIMEOUT_S))[0]
                else:
                    result = await client.call(command)
            except ValueError:
                # No such actor: a host retired after its auctions finished. The cached
                # location is stale; the directory knows (and revives nothing it retired).
                self._locations.pop(key)
                continue
            except (RayActorError, RayError, TimeoutError, ChannelLost, RemoteFailed) as exc:
                log.warning("routing %s failed: %s", key, type(exc).__name__)
                return refused(UNAVAILABLE, "host unavailable; retry")
            if not (isinstance(result, Refused) and result.code == NOT_HERE):
                return result
            self._locations.pop(key)  # stale cache: ask the directory again
        return None

    # ---- trade offers (market.offers), hosted like auctions ------------------------------

    async def send_offer(self, command: OfferCommand) -> OfferReply:
        """Deliver a command about a live offer to the host of its thread."""
        if self._inflight >= self.max_inflight:
            return refused(OVERLOADED, "too many commands in flight; retry shortly")
        self._inflight += 1
        try:
            if command.action == ACCEPT:
                # An accept is answered when its swap ends: it travels alone, so the commands
                # batched with it (and the host's other calls) never wait for a swap.
                result = await self._route(command.thread_id, command, offers=True, alone=True)
            else:
                result = await self._route(command.thread_id, command, offers=True)
        finally:
            self._inflight -= 1
        if result is None:
            return refused(UNAVAILABLE, "the offer's host is starting; retry")
        return cast(OfferReply, result)

    async def invalidate_offers(self, asset_ids: list[str], reason: str) -> None:
        """Every active offer naming one of these assets becomes invalidated (they moved)."""
        for record in await self.store.offers_with_assets(asset_ids):
            await self.send_offer(OfferCommand(record["offer_id"], record["thread_id"],
                                               "invalidate", reason=reason))

    async def create_offer(self, command: OfferCommand) -> OfferReply:
        """Place a new offer's thread on a host (like an auction) and create it there."""
        thread_id = command.thread_id
        name = await self._place(thread_id)
        if name is None:
            return refused(OVERLOADED, "no host capacity; retry later")
        result: Answer
        try:
            result = await self.host(name, offers=True).call(command)
        except (RayActorError, RayError) as exc:
            log.warning("create of offer %s failed: %s", command.offer_id, exc)
            result = refused(UNAVAILABLE, "host unavailable; retry")
        if isinstance(result, Refused) and result.code == UNAVAILABLE:
            stored = await self.store.get_offer(command.offer_id)
            if stored is not None:  # stored before the host failed: recovered with it
                result = OfferViewed(dict(stored))
        if isinstance(result, Refused):
            await self.directory.release.remote(thread_id, name)
        else:
            self._locations.put(thread_id, name)
        return cast(OfferReply, result)

    async def _place(self, key: str) -> str | None:
        """The directory's host for a new auction or offer thread; None when it has no room
        or does not answer in time (both answered OVERLOADED: retry later)."""
        try:
            return cast(str | None, await asyncio.wait_for(self.directory.place.remote(key),
                                                           HOST_CALL_TIMEOUT_S))
        except TimeoutError:
            log.warning("the directory did not place %s within %.0f s", key,
                        HOST_CALL_TIMEOUT_S)
            return None

    async def create(self, record: AuctionRecord) -> Reply:
        auction_id = record["auction_id"]
        name = await self._place(auction_id)
        if name is None:  # every host slot (ECE_MAX_HOSTS) is taken
            return refused(OVERLOADED, "no auction host capacity; retry later")
        placed: AuctionRecord = {**record, "host": name}
        result: Reply
        try:
            result = await self.host(name).handle.create.remote(placed)
        except (RayActorError, RayError) as exc:
            log.warning("create %s failed: %s", auction_id, exc)
            result = refused(UNAVAILABLE, "auction host unavailable; retry")
        if isinstance(result, Refused) and result.code == UNAVAILABLE:
            # The host may have died after the auction was stored: it exists then, and the
            # restarted host recovers it like any other open auction.
            stored = await self.store.get_auction(auction_id)
            if stored is not None:
                result = Viewed(stored["view"])
        if not isinstance(result, Refused):
            self._locations.put(auction_id, name)
        else:
            await self.directory.release.remote(auction_id, name)
        return result
