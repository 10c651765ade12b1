"""The auction host: a Ray actor that owns the live state of many auctions.

Each auction is a `market.Auction` state machine. Commands from all callers go into one queue;
a single loop drains it, runs every command in arrival order (so each auction is strictly
serial), writes the whole batch's events to the store in one commit and only then answers
(group commit: durable before acknowledged). The actor is async: concurrent `submit` calls all
queue there, so calls of one command each (the benchmark's baseline) still commit together.
Timers are served by the same loop from one heap entry per auction deadline, so thousands of
auctions closing in the same second cost one commit.

After a close, settlement runs as a saga of idempotent steps (repair the stored view if it
lags the log, settle or release the asset, tell the directory), each retried with capped
exponential backoff until it succeeds or the host stops.

`AuctionHostCore` is plain asyncio: its store, clock and "auction finished" callback can be
injected, so it runs without Ray (unit tests, the close-lag benchmark). `AuctionHost` is the
thin Ray shell over it.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, cast

import ray

from actors.clock import Clock, now_ms
from actors.config import ClusterConfig
from actors.direct import DirectServer
from actors.feed import EventFeed
from actors.messages import (
    Ack,
    Acked,
    Activate,
    Cancel,
    Command,
    FeedPage,
    GetView,
    OfferCommand,
    OfferReply,
    PlaceBid,
    Reply,
    Viewed,
    refusal,
    refused,
)
from actors.metrics import BatchObserver, HostMetrics
from actors.notices import coalesce, outbid_notices
from actors.offer_desk import OfferDesk
from actors.offer_ray import make_offer, send_offers
from actors.serial import Pending, SerialLoop
from actors.settlement import Closing, Settler
from market.auction import Auction, AuctionSpec, Event, public_event
from market.errors import AUCTION_NOT_FOUND, NOT_HERE, UNAVAILABLE, MarketError
from storage import CommitBatch, Conflict, Store, open_store
from storage.base import OPEN_STATUSES
from storage.records import AuctionRecord, Json, NewNotice

log = logging.getLogger("ece.host")

# Batches larger than this are split so one huge burst cannot starve the timers.
MAX_BATCH = 5_000
# After a fence, pauses between looks at the store for "nobody else wrote this auction": on
# MongoDB the fenced batch of another writer stays visible for a short window.
FENCE_RECHECKS_S = (0.05, 0.1, 0.2, 0.4, 0.8)
# Settlement sagas running at once. The store serves one transaction at a time, and the
# host's commits (closes, bids) wait behind whatever is queued there: with every closed
# auction's saga started at once, 2,000 closes within a second put 0.8 s between an
# auction's end and its `closed` event (bench stage close_lag, p99).
SETTLEMENTS_AT_ONCE = 8

OnFinished = Callable[[str], Awaitable[None]]
OnAssetsMoved = Callable[[list[str], str], Awaitable[None]]


class AuctionHostCore(SerialLoop[Command, Reply]):
    """Everything the actor does, without Ray: the actor class below is a thin shell.

    store: opened (idempotently) by the core; closed by `close()` only if the core built it
    from `config.store_url`. clock: epoch milliseconds. on_finished(auction_id): awaited once
    an auction's settlement succeeded (the Ray shell tells the directory); its errors are
    logged, never retried.
    """

    kind = "host"

    def __init__(
        self,
        name: str,
        config: ClusterConfig,
        store: Store | None = None,
        clock: Clock = now_ms,
        on_finished: OnFinished | None = None,
    ) -> None:
        self.config = config
        self._owns_store = store is None
        self._on_finished = on_finished
        # Called with asset ids (and a reason) after a sale moved them: the offer desk
        # invalidates the active offers naming them. None without offers (unit tests).
        self.on_assets_moved: OnAssetsMoved | None = None
        self.auctions: dict[str, Auction] = {}
        self.feed = EventFeed(config.feed_capacity)
        self._since_snapshot: dict[str, int] = {}
        self._finishing: set[str] = set()  # auctions whose settlement saga is running
        self._settling = asyncio.Semaphore(SETTLEMENTS_AT_ONCE)
        self.observe: BatchObserver | None = None  # each batch's figures (the shell's metrics)
        # The loop starts with the base class; everything above is set before it runs.
        super().__init__(name, store if store is not None else open_store(config.store_url),
                         clock, log)
        self.settler = Settler(self.store, config, clock)

    # ---- public API (called through the actor; `submit` runs commands of any auctions) ----

    async def create(self, record: AuctionRecord) -> Reply:
        """Insert a new auction (atomic asset checks in the store), then start serving it."""
        await self._wait_ready()
        try:
            await self.store.create_auction(record)
        except Conflict as exc:
            return refused(exc.code, str(exc))
        return (await self.submit([Activate(record["auction_id"])]))[0]

    async def poll(
        self, epoch: str | None, cursor: int, timeout: float, limit: int = 10_000,
        reader: str | None = None,
    ) -> FeedPage:
        """The feed's events after `cursor`: only the auctions `reader` registered with
        `interest` when given (a gateway), every event without one."""
        await self._wait_ready()
        await self.feed.wait(epoch, cursor, timeout, reader)
        return self.feed.next_page(epoch, cursor, limit, reader)

    async def submit_read(self, commands: list[Command], reader: str, epoch: str, cursor: int,
                          limit: int = 10_000) -> tuple[list[Reply], FeedPage]:
        """`submit`, the reply carrying `reader`'s feed page after `cursor` as of the batch's
        end (its events published): one round trip for the answers and the events they made."""
        began = self.feed.begin(reader)
        try:
            replies = await self.submit(commands)
        finally:
            page = await self.feed.carried(reader, began, epoch, cursor, limit)
        return replies, page

    async def interest(self, reader: str, base: int | None, version: int,
                       add: list[str], remove: list[str]) -> int:
        """Change the auctions `reader` polls (actors.feed.Interests.change): the version held."""
        await self._wait_ready()
        return await self.feed.register(reader, base, version, add, remove)

    async def close(self) -> None:
        """Stop the loop and every background step; close the store if the core opened it."""
        await super().close()
        if self._owns_store:
            await self.store.close()

    # ---- the loop ------------------------------------------------------------------------

    async def _recover(self) -> None:
        """Rebuild every open auction assigned to this host from snapshot + event log."""
        for record in await self.store.open_auctions(host=self.name):
            await self._load(record)
        # A crash between a close and its settlement leaves it pending: finish it now.
        for record in await self.store.unsettled_finished():
            if record.get("host") == self.name:
                auction, _ = await self._replay(record)
                self._begin_finish(record["auction_id"], Closing.of(auction, self.clock()))

    async def _replay(self, record: AuctionRecord) -> tuple[Auction, list[Event]]:
        """The auction's state from its snapshot, and the events after it that it applied."""
        snapshot = record.get("snapshot")
        if snapshot:
            auction = Auction.from_snapshot(snapshot)
        else:
            auction = Auction(AuctionSpec.from_dict(record["spec"]))
        events = await self.store.load_events(record["auction_id"], after_seq=auction.seq)
        for event in events:
            auction.apply(event)
        return auction, events

    async def _load(self, record: AuctionRecord) -> Auction:
        auction_id = record["auction_id"]
        stored_seq = int(record.get("seq") or 0)
        auction, events = await self._replay(record)
        existing = self.auctions.get(auction_id)
        if existing is not None:  # loaded meanwhile (an activate and a reload racing)
            return existing
        self.auctions[auction_id] = auction
        self._schedule(auction)
        # Events past the stored view come from a commit that stored its events but not its
        # views (MongoDB has no multi-document transaction, or the process died in between):
        # nobody published them.
        await self.feed.publish([public_event(e, auction.spec.type)
                                 for e in events if e["seq"] > stored_seq])
        if auction.is_finished and record.get("status") in OPEN_STATUSES:
            # Closed by the log, open in the stored view: store the final view and snapshot,
            # then settle it like any other close.
            repair = CommitBatch(views={auction_id: auction.view(self.clock())},
                                 snapshots={auction_id: auction.to_snapshot()})
            self._begin_finish(auction_id, self._settlement(auction), repair)
        return auction

    # ---- timers --------------------------------------------------------------------------

    def _schedule(self, auction: Auction) -> None:
        self.timers.set(auction.spec.auction_id, auction.next_deadline())

    def _drop(self, auction_id: str) -> None:
        """Stop serving an auction (finished, fenced, or memory ahead of the store)."""
        self.auctions.pop(auction_id, None)
        self._since_snapshot.pop(auction_id, None)
        self.timers.discard(auction_id)

    # ---- batches -------------------------------------------------------------------------

    async def _process(self) -> None:
        batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
        if self._queue:
            self._wake.set()
        now = self.clock()
        events: list[Event] = []
        touched: set[str] = set()
        results: list[tuple[Pending[Command, Reply], Reply]] = []
        outbid: list[NewNotice] = []

        # Timers first: a bid that arrives after ends_at must meet a closed auction.
        for auction_id in self.timers.due(now):
            auction = self.auctions.get(auction_id)
            if auction is None:
                continue
            produced = auction.advance(now)
            if produced:
                events.extend(produced)
                touched.add(auction_id)
            self._schedule(auction)

        for item in batch:
            leader = self._leader_of(item.command)
            result, produced, owner = await self._execute(item.command, now)
            if produced and owner is not None:
                events.extend(produced)
                touched.add(owner)
                if leader is not None:
                    outbid.extend(outbid_notices(leader, produced))
            results.append((item, result))

        commit_s: float | None = None
        if events or touched:
            started = time.perf_counter()
            conflicted = await self._commit(events, touched, coalesce(outbid))
            commit_s = time.perf_counter() - started
        else:
            conflicted = set()
        if self.observe is not None:
            self.observe(len(batch), commit_s, len(self._queue), len(self.auctions))
        for item, result in results:
            if item.command.auction_id in conflicted:
                result = refused(UNAVAILABLE, "auction moved to another host; retry")
            if not item.future.done():
                item.future.set_result(result)

        published = [
            public_event(e, self.auctions[e["auction_id"]].spec.type)
            for e in events
            if e["auction_id"] not in conflicted and e["auction_id"] in self.auctions
        ]
        await self.feed.publish(published)
        for auction_id in touched - conflicted:
            auction = self.auctions.get(auction_id)
            if auction is not None and auction.is_finished:
                self._begin_finish(auction_id, self._settlement(auction))

    def _leader_of(self, command: Command) -> str | None:
        """Who leads the auction a bid goes to, before it runs (outbid notices)."""
        if not isinstance(command, PlaceBid):
            return None
        auction = self.auctions.get(command.auction_id)
        return auction.leader_id if auction is not None else None

    async def _execute(
        self, command: Command, now: int
    ) -> tuple[Reply, list[Event], str | None]:
        """Run one command: its reply, the events it produced and the auction they belong to."""
        auction_id = command.auction_id
        if isinstance(command, Activate):
            record = await self.store.get_auction(auction_id)
            if record is None:
                return refused(AUCTION_NOT_FOUND, "no such auction"), [], None
            auction = self.auctions.get(auction_id) or await self._load(record)
            produced = auction.advance(now)
            self._schedule(auction)
            return Viewed(auction.view(now)), produced, auction_id
        found = self.auctions.get(auction_id)
        if found is None:
            return refused(NOT_HERE, "auction is not served by this host"), [], None
        auction = found
        if isinstance(command, PlaceBid):
            outcome = auction.handle_bid(
                command.bidder_id, command.req_id, command.amount, command.max_amount, now
            )
            self._schedule(auction)  # the close or a soft-close extension may have moved it
            if outcome.error is not None:
                return refusal(outcome.error), outcome.events, auction_id
            return Acked(cast(Ack, dict(outcome.ack or {}))), outcome.events, auction_id
        if isinstance(command, Cancel):
            produced = auction.advance(now)  # applied already: must be stored either way
            try:
                produced += auction.cancel(command.by, now)
            except MarketError as exc:
                self._schedule(auction)
                return refusal(exc), produced, auction_id
            self._schedule(auction)
            return Viewed(auction.view(now)), produced, auction_id
        assert isinstance(command, GetView)
        return Viewed(auction.view(now)), [], None

    async def _commit(self, events: list[Event], touched: set[str],
                      notices: list[NewNotice] | None = None) -> set[str]:
        now = self.clock()
        views: dict[str, Json] = {}
        snapshots: dict[str, Json] = {}
        produced = Counter(e["auction_id"] for e in events)
        for auction_id in touched:
            auction = self.auctions.get(auction_id)
            if auction is None:
                continue
            views[auction_id] = auction.view(now)
            count = self._since_snapshot.get(auction_id, 0) + produced[auction_id]
            # A snapshot costs O(state); taking one every max(N, seq/2) events keeps both the
            # amortised cost per event and the replay after a crash bounded.
            due = max(self.config.snapshot_every, auction.seq // 2)
            if count >= due or auction.is_finished:
                snapshots[auction_id] = auction.to_snapshot()
                count = 0
            self._since_snapshot[auction_id] = count
        try:
            conflicted = await self.store.commit(
                CommitBatch(events=events, views=views, snapshots=snapshots,
                            notices=notices or [])
            )
        except Exception:
            # Memory is ahead of the store: forget those auctions and reload them from what
            # is durable, so nothing unacknowledged survives.
            log.exception("host %s: commit failed; reloading %d auctions", self.name, len(touched))
            for auction_id in touched:
                self._drop(auction_id)
            self._spawn(self._reload(touched))
            return set(touched)
        if conflicted:
            first_seq: dict[str, int] = {}
            for event in events:
                first_seq.setdefault(event["auction_id"], event["seq"])
            for auction_id in conflicted:
                # Someone stored one of these seqs first: stop serving the auction, then take
                # it back only if the fence was spurious (see _reload_fenced).
                log.warning("host %s: fenced out of auction %s", self.name, auction_id)
                auction = self.auctions.get(auction_id)
                durable = first_seq.get(auction_id, (auction.seq if auction else 0) + 1) - 1
                self._drop(auction_id)
                self._spawn(self._reload_fenced(auction_id, durable))
        return conflicted

    async def _reload(self, auction_ids: set[str]) -> None:
        """After a failed commit: serve the auctions again from what the store holds."""
        for auction_id in auction_ids:
            await self._retry(f"reload of {auction_id}", partial(self._reload_one, auction_id))

    async def _reload_one(self, auction_id: str) -> None:
        record = await self.store.get_auction(auction_id)
        if (record is not None and record.get("host") == self.name
                and auction_id not in self.auctions):
            await self._load(record)

    async def _reload_fenced(self, auction_id: str, durable_seq: int) -> None:
        """Serve a fenced auction again if nobody else wrote it after our last durable seq.

        A fence is spurious when the colliding events were a fenced batch of another writer,
        visible only until it deletes them (MongoDB); then the store still ends at our last
        durable seq and the auction is ours. If the record names another host, it moved:
        stay out. If events after our seq stay and the record still names this host, they are
        the late write of an earlier life of this host (a move or a restart keeps the name,
        and Ray runs one actor per name): they stand, and this host serves the auction again
        from the store, those events included.
        """
        for pause in (0.0, *FENCE_RECHECKS_S):
            if pause:
                await asyncio.sleep(pause)
            try:
                record = await self.store.get_auction(auction_id)
                if record is None or record.get("host") != self.name:
                    return  # moved to another host
                if await self.store.load_events(auction_id, after_seq=durable_seq, limit=1):
                    continue
                if auction_id not in self.auctions:
                    await self._load(record)
                log.info("host %s: serving auction %s again after a spurious fence",
                         self.name, auction_id)
                return
            except Exception:
                log.warning("host %s: reload of fenced %s failed", self.name, auction_id,
                            exc_info=True)
        try:
            record = await self.store.get_auction(auction_id)
            if record is None or record.get("host") != self.name or \
                    auction_id in self.auctions:
                return
            await self._load(record)
            log.warning("host %s: serving auction %s again with the late events of an earlier "
                        "life of this host", self.name, auction_id)
        except Exception:
            log.warning("host %s: auction %s fenced and not reloaded; the host's next "
                        "restart serves it", self.name, auction_id, exc_info=True)

    # ---- settlement (saga after a close) -------------------------------------------------

    def _settlement(self, auction: Auction) -> Closing:
        # Everything settlement needs is in memory and already durable: no store read.
        return Closing.of(auction, self.clock())

    def _begin_finish(self, auction_id: str, closing: Closing,
                      repair: CommitBatch | None = None) -> None:
        if auction_id in self._finishing:
            return
        self._finishing.add(auction_id)
        self.timers.discard(auction_id)
        self._spawn(self._finish(auction_id, closing, repair))

    async def _finish(self, auction_id: str, closing: Closing,
                      repair: CommitBatch | None) -> None:
        """Repair the stored view (if it lags the log), then run the settlement saga
        (actors.settlement): each step idempotent, retried until it succeeds or the host
        stops; `SETTLEMENTS_AT_ONCE` at a time."""
        async with self._settling:
            await self._settle(auction_id, closing, repair)

    async def _settle(self, auction_id: str, closing: Closing,
                      repair: CommitBatch | None) -> None:
        if repair is not None and not await self._retry(
                f"view repair of {auction_id}", lambda: self.store.commit(repair)):
            return
        sold: list[bool] = []

        async def settle() -> None:
            sold.append(await self.settler.settle(closing))

        if not await self._retry(f"settlement of {auction_id}", settle):
            return
        self._drop(auction_id)
        self._finishing.discard(auction_id)
        moved = self.on_assets_moved
        if moved is not None and sold[-1]:
            # Trade offers naming a sold card can no longer be accepted as they are.
            await self._retry(f"offer invalidations after {auction_id}",
                              lambda: moved([closing.asset_id], "asset_sold"))
        if self._on_finished is not None:
            try:
                await self._on_finished(auction_id)
            except Exception:  # the directory recomputes its counts from the store on restart
                log.warning("host %s: could not report %s finished", self.name, auction_id,
                            exc_info=True)


# Ray's type stubs lack max_concurrency.
@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0, max_concurrency=10_000)  # type: ignore[call-overload]
class AuctionHost:
    """Ray shell over AuctionHostCore; restarted by Ray, it rebuilds from the store."""

    def __init__(self, name: str, config: dict[str, Any]) -> None:
        logging.basicConfig(level=logging.INFO)
        # Thousands of long-lived auction objects make full collections slow; collect the
        # young generation less often so pauses stay rare (they land in bid latency).
        gc.set_threshold(50_000, 20, 50)
        cluster = ClusterConfig.from_dict(config)
        release = _DirectoryRelease(name, cluster)
        self.core = AuctionHostCore(name, cluster, on_finished=release)
        self.core.observe = HostMetrics(name)
        # The trade offers of the threads placed here: same process, same store connection.
        self.desk = OfferDesk(name, cluster, self.core.store, on_thread_done=release,
                              send_elsewhere=partial(send_offers, cluster),
                              opened=self.core.ready)
        self.core.on_assets_moved = self.desk.invalidate_assets
        self.core.settler.make_offer = partial(make_offer, cluster)
        self.commands = 0  # commands submitted since the actor started (`ece status` rates)
        self.direct = DirectServer(self)  # the bid path's calls past Ray (actors.direct)

    async def endpoint(self) -> str | None:
        """The path of this host's direct channel (a Unix socket, started on first use);
        None when it cannot listen (gateways then call by Ray)."""
        try:
            return await self.direct.start()
        except OSError:
            log.exception("host %s: no direct channel; gateways call by Ray", self.core.name)
            return None

    async def submit(self, commands: list[Command]) -> list[Reply]:
        self.commands += len(commands)
        return await self.core.submit(commands)

    async def submit_read(self, commands: list[Command], reader: str, epoch: str, cursor: int,
                          limit: int = 10_000) -> tuple[list[Reply], FeedPage]:
        self.commands += len(commands)
        return await self.core.submit_read(commands, reader, epoch, cursor, limit)

    async def submit_offers(self, commands: list[OfferCommand]) -> list[OfferReply]:
        return await self.desk.submit(commands)

    async def create(self, record: AuctionRecord) -> Reply:
        return await self.core.create(record)

    async def poll(
        self, epoch: str | None, cursor: int, timeout: float, limit: int = 10_000,
        reader: str | None = None,
    ) -> FeedPage:
        return await self.core.poll(epoch, cursor, timeout, limit, reader)

    async def interest(self, reader: str, base: int | None, version: int,
                       add: list[str], remove: list[str]) -> int:
        return await self.core.interest(reader, base, version, add, remove)

    async def ready(self) -> bool:
        await self.core.ready()
        await self.desk.ready()
        return True

    async def stats(self) -> dict[str, Any]:
        """For `ece status`: where this host runs and what it serves."""
        return {"node_id": ray.get_runtime_context().get_node_id(), "pid": os.getpid(),
                "nice": os.getpriority(os.PRIO_PROCESS, 0),
                "auctions": len(self.core.auctions), "offer_threads": len(self.desk.live_threads()),
                "commands": self.commands}


class _DirectoryRelease:
    """on_finished for a host in Ray: tell the directory the auction left this host."""

    def __init__(self, host: str, config: ClusterConfig) -> None:
        self.host = host
        self.config = config
        self._directory: ray.actor.ActorHandle[Any] | None = None

    async def __call__(self, auction_id: str) -> None:
        if self._directory is None:
            self._directory = ray.get_actor(self.config.directory_name(),
                                            namespace=self.config.namespace)
        await self._directory.release.remote(auction_id, self.host)
