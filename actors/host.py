"""The auction host: a Ray actor that owns the live state of many auctions.

Each auction is a `market.Auction` state machine. Commands from all callers go into one queue;
a single loop drains it, runs every command in arrival order (so each auction is strictly
serial), writes the whole batch's events to the store in one commit and only then answers
(group commit: durable before acknowledged). Timers are a heap of auction deadlines served by
the same loop, so thousands of auctions closing in the same second cost one commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import heapq
import logging
import time
from collections import Counter
from dataclasses import dataclass, field

import ray

from actors.config import ClusterConfig
from actors.feed import EventFeed
from market.auction import Auction, AuctionSpec, public_event
from market.errors import MarketError
from storage import CommitBatch, Conflict, Store, open_store

log = logging.getLogger("ece.host")

# Batches larger than this are split so one huge burst cannot starve the timers.
MAX_BATCH = 5_000


def now_ms() -> int:
    return int(time.time() * 1000)


def error_result(code: str, message: str, **details: object) -> dict:
    return {"ok": False, "error": {"code": code, "message": message, **details}}


@dataclass
class _Pending:
    command: dict
    future: asyncio.Future = field(repr=False)


class AuctionHostCore:
    """Everything the actor does, without Ray: the actor class below is a thin shell."""

    def __init__(self, name: str, config: ClusterConfig) -> None:
        self.name = name
        self.config = config
        self.auctions: dict[str, Auction] = {}
        self.feed = EventFeed(config.feed_capacity)
        self.store: Store = open_store(config.store_url)
        self._queue: list[_Pending] = []
        self._wake = asyncio.Event()
        self._deadlines: list[tuple[int, str]] = []
        self._since_snapshot: dict[str, int] = {}
        self._ready = asyncio.Event()
        self._failed: BaseException | None = None
        self._loop_task = asyncio.get_running_loop().create_task(self._run())
        self._background: set[asyncio.Task] = set()

    # ---- public API (called through the actor) -------------------------------------------

    async def submit(self, commands: list[dict]) -> list[dict]:
        """Run commands (any auctions) and answer each once its events are durable."""
        await self._wait_ready()
        loop = asyncio.get_running_loop()
        pending = [_Pending(command, loop.create_future()) for command in commands]
        self._queue.extend(pending)
        self._wake.set()
        return list(await asyncio.gather(*(p.future for p in pending)))

    async def create(self, record: dict) -> dict:
        """Insert a new auction (atomic asset checks in the store), then start serving it."""
        await self._wait_ready()
        try:
            await self.store.create_auction(record)
        except Conflict as exc:
            return error_result(exc.code, str(exc))
        return (await self.submit([{"op": "activate", "auction_id": record["auction_id"]}]))[0]

    async def poll(
        self, epoch: str | None, cursor: int, timeout: float, limit: int = 10_000,
        auction_id: str | None = None,
    ) -> dict:
        await self._wait_ready()
        await self.feed.wait(epoch, cursor, timeout)
        return self.feed.read(epoch, cursor, limit, auction_id)

    async def close(self) -> None:
        """Stop the loop and release the store (tests; Ray simply ends the process)."""
        self._loop_task.cancel()
        for task in list(self._background):
            task.cancel()
        await self.store.close()

    # ---- the loop ------------------------------------------------------------------------

    async def _wait_ready(self) -> None:
        await self._ready.wait()
        if self._failed is not None:
            raise RuntimeError(f"host {self.name} failed to start: {self._failed!r}")

    async def _run(self) -> None:
        try:
            await self.store.open()
            await self._recover()
        except BaseException as exc:
            log.exception("host %s failed to start", self.name)
            self._failed = exc
            self._ready.set()
            raise
        self._ready.set()
        while True:
            timeout = None
            if self._deadlines:
                timeout = max(0.0, (self._deadlines[0][0] - now_ms()) / 1000)
            if not self._queue:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)
            self._wake.clear()
            try:
                await self._process()
            except Exception:  # keep serving: one bad batch must not stop the host
                log.exception("host %s: batch failed", self.name)

    async def _recover(self) -> None:
        """Rebuild every open auction assigned to this host from snapshot + event log."""
        for record in await self.store.open_auctions(host=self.name):
            await self._load(record)
        # A crash between a close and its settlement leaves it pending: finish it now.
        for record in await self.store.unsettled_finished():
            if record.get("host") == self.name:
                await self._settle(record["auction_id"], record)

    async def _load(self, record: dict) -> Auction:
        snapshot = record.get("snapshot")
        if snapshot:
            auction = Auction.from_snapshot(snapshot)
        else:
            auction = Auction.new(AuctionSpec.from_dict(record["spec"]))
        for event in await self.store.load_events(record["auction_id"], after_seq=auction.seq):
            auction.apply(event)
        self.auctions[record["auction_id"]] = auction
        self._schedule(auction)
        return auction

    def _schedule(self, auction: Auction) -> None:
        deadline = auction.next_deadline()
        if deadline is not None:
            heapq.heappush(self._deadlines, (deadline, auction.spec.auction_id))

    async def _process(self) -> None:
        size = MAX_BATCH if self.config.batching else 1
        batch, self._queue = self._queue[:size], self._queue[size:]
        if self._queue:
            self._wake.set()
        now = now_ms()
        events: list[dict] = []
        touched: set[str] = set()
        results: list[tuple[_Pending, dict]] = []

        # Timers first: a bid that arrives after ends_at must meet a closed auction.
        while self._deadlines and self._deadlines[0][0] <= now:
            _, auction_id = heapq.heappop(self._deadlines)
            auction = self.auctions.get(auction_id)
            if auction is None:
                continue
            produced = auction.advance(now)
            if produced:
                events.extend(produced)
                touched.add(auction_id)
            self._schedule(auction)

        for item in batch:
            result, produced, auction_id = await self._execute(item.command, now)
            if produced:
                events.extend(produced)
                touched.add(auction_id)
            results.append((item, result))

        if events or touched:
            conflicted = await self._commit(events, touched)
        else:
            conflicted = set()
        for item, result in results:
            if item.command.get("auction_id") in conflicted:
                result = error_result("UNAVAILABLE", "auction moved to another host; retry")
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
                self._spawn(self._finish(auction))

    async def _execute(self, command: dict, now: int) -> tuple[dict, list[dict], str | None]:
        op = command.get("op")
        auction_id = command.get("auction_id")
        if op == "activate":
            record = await self.store.get_auction(auction_id)
            if record is None:
                return error_result("AUCTION_NOT_FOUND", "no such auction"), [], None
            auction = self.auctions.get(auction_id) or await self._load(record)
            produced = auction.advance(now)
            self._schedule(auction)
            return {"ok": True, "auction": auction.view(now)}, produced, auction_id
        auction = self.auctions.get(auction_id)
        if auction is None:
            return error_result("NOT_HERE", "auction is not served by this host"), [], None
        if op == "bid":
            outcome = auction.handle_bid(
                command["bidder_id"], command["req_id"], command["amount"],
                command.get("max_amount"), now,
            )
            self._schedule(auction)  # soft close may have moved the end
            if outcome.error is not None:
                return {"ok": False, "error": outcome.error.to_dict()}, outcome.events, auction_id
            ack = dict(outcome.ack or {})
            return {"ok": True, "ack": ack}, outcome.events, auction_id
        if op == "cancel":
            produced = auction.advance(now)  # applied already: must be stored either way
            try:
                produced += auction.cancel(command["by"], now)
            except MarketError as exc:
                return {"ok": False, "error": exc.to_dict()}, produced, auction_id
            return {"ok": True, "auction": auction.view(now)}, produced, auction_id
        if op == "view":
            return {"ok": True, "auction": auction.view(now)}, [], None
        return error_result("INVALID", f"unknown host command {op!r}"), [], None

    async def _commit(self, events: list[dict], touched: set[str]) -> set[str]:
        now = now_ms()
        views: dict[str, dict] = {}
        snapshots: dict[str, dict] = {}
        produced = Counter(e["auction_id"] for e in events)
        for auction_id in touched:
            auction = self.auctions[auction_id]
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
                CommitBatch(events=events, views=views, snapshots=snapshots)
            )
        except Exception:
            # Memory is ahead of the store: forget those auctions and reload them from what
            # is durable, so nothing unacknowledged survives.
            log.exception("host %s: commit failed; reloading %d auctions", self.name, len(touched))
            for auction_id in touched:
                self.auctions.pop(auction_id, None)
            self._spawn(self._reload(touched))
            return set(touched)
        for auction_id in conflicted:
            # Someone else owns this auction now (we are a stale owner): stop serving it.
            log.warning("host %s: fenced out of auction %s", self.name, auction_id)
            self.auctions.pop(auction_id, None)
        return conflicted

    async def _reload(self, auction_ids: set[str]) -> None:
        for auction_id in auction_ids:
            record = await self.store.get_auction(auction_id)
            if record is not None and record.get("host") == self.name:
                await self._load(record)

    # ---- settlement (saga step after a close) --------------------------------------------

    async def _finish(self, auction: Auction) -> None:
        # Everything settlement needs is in memory and already durable: no store read.
        auction_id = auction.spec.auction_id
        await self._settle(auction_id, {"asset_id": auction.spec.asset_id,
                                        "seller_id": auction.spec.seller_id,
                                        "view": auction.view(now_ms())})
        self.auctions.pop(auction_id, None)
        self._since_snapshot.pop(auction_id, None)
        try:
            directory = ray.get_actor(self.config.directory_name(), self.config.namespace)
            await directory.release.remote(auction_id, self.name)
        except Exception:  # the directory recomputes its counts from the store on restart
            log.warning("host %s: could not tell the directory about %s", self.name, auction_id)

    async def _settle(self, auction_id: str, record: dict) -> None:
        view = record["view"]
        if view.get("winner_id"):
            await self.store.settle({
                "auction_id": auction_id,
                "asset_id": record["asset_id"],
                "seller_id": record["seller_id"],
                "buyer_id": view["winner_id"],
                "price": view["final_price"],
                "at": view.get("ends_at") or now_ms(),
            })
        else:
            await self.store.release(auction_id, record["asset_id"])

    def _spawn(self, coroutine) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0, max_concurrency=10_000)
class AuctionHost:
    """Ray shell over AuctionHostCore; restarted by Ray, it rebuilds from the store."""

    def __init__(self, name: str, config: dict) -> None:
        logging.basicConfig(level=logging.INFO)
        # Thousands of long-lived auction objects make full collections slow; collect the
        # young generation less often so pauses stay rare (they land in bid latency).
        gc.set_threshold(50_000, 20, 50)
        self.core = AuctionHostCore(name, ClusterConfig.from_dict(config))

    async def submit(self, commands: list[dict]) -> list[dict]:
        return await self.core.submit(commands)

    async def create(self, record: dict) -> dict:
        return await self.core.create(record)

    async def poll(
        self, epoch: str | None, cursor: int, timeout: float, limit: int = 10_000,
        auction_id: str | None = None,
    ) -> dict:
        return await self.core.poll(epoch, cursor, timeout, limit, auction_id)

    async def ready(self) -> bool:
        await self.core._wait_ready()
        return True
