"""The closed auctions of the closings feed, loaded once for the behaviour shards of a process.

Every behaviour shard folds every closing (the market-wide counters need them all, and any
closing may have a bidder or a watcher of any shard): its auction record, its event log, its
watchers, its lot's card and the value at the close. `ClosingFacts` loads those once per
closing for all the shards of one process and hands each shard the same `AuctionFacts` and
value. Shards folding the feed together (the actor's start their runners together; `ece
rebuild analytics` runs them side by side) ask for each closing within a few rows of one
another: the first to ask loads it, the others await that load, and the entry is dropped once
every shard took it. At most `CAPACITY` entries are kept (the oldest go first): a shard far
behind the others (restoring alone after a failure) loads its own, which is slower, never
different - the facts of a closing never change, and the value at the close is the market
book's as it stands when the closing is first loaded, as before sharding.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

from actors.analytics.book import Book
from market.behaviour import AuctionFacts, auction_facts
from market.catalog import segment_key
from market.prices import segment_value
from storage import Store

CAPACITY = 4_096  # closings loaded and not yet taken by every shard, at most
Loaded = tuple[AuctionFacts, int | None] | None  # the facts and value; None: no such auction


class ClosingFacts:
    def __init__(self, store: Store, book: Callable[[], Book] | None = None, takers: int = 1,
                 capacity: int = CAPACITY) -> None:
        self.store = store
        self.book = book  # the market projection's current book (it is replaced on reset)
        self.takers = takers  # the shards sharing these loads
        self.capacity = capacity
        self.loads = 0  # closings loaded from the store (tests, metrics)
        # Feed position -> (the load, shards that took it), oldest first.
        self._entries: dict[int, tuple[asyncio.Task[Loaded], int]] = {}

    async def get(self, closing: Mapping[str, Any]) -> Loaded:
        """The facts of the closed auction of a closings-feed row and its value at the close."""
        pos = int(closing["pos"])
        found = self._entries.get(pos)
        if found is None:
            task = asyncio.get_running_loop().create_task(self._load(str(closing["auction_id"])))
            task.add_done_callback(lambda done: self._forget_failed(pos, done))
            found = (task, 0)
            while len(self._entries) >= self.capacity:
                del self._entries[next(iter(self._entries))]
        task, taken = found
        if taken + 1 >= self.takers:
            self._entries.pop(pos, None)
        else:
            self._entries[pos] = (task, taken + 1)
        return await asyncio.shield(task)  # a cancelled shard leaves the load to the others

    def _forget_failed(self, pos: int, task: asyncio.Task[Loaded]) -> None:
        if task.cancelled() or task.exception() is not None:  # the next to ask loads again
            found = self._entries.get(pos)
            if found is not None and found[0] is task:
                del self._entries[pos]

    async def _load(self, auction_id: str) -> Loaded:
        self.loads += 1
        record = await self.store.get_auction(auction_id)
        if record is None:
            return None
        events = await self.store.load_events(auction_id)
        watches = await self.store.auction_watchers(auction_id)
        facts = auction_facts(record["spec"], record["view"], events, watches)
        return facts, await self._value_at(record["asset_id"], facts.closed_at or facts.ends_at)

    async def _value_at(self, asset_id: str, t: int) -> int | None:
        book = self.book() if self.book is not None else None
        if book is None:
            return None
        asset = await self.store.get_asset(asset_id)
        card_id = asset.get("card_id") if asset is not None else None
        if asset is None or not card_id:
            return None
        segment = book.segments.get(
            segment_key(card_id, asset.get("grader") or "RAW", asset.get("grade")))
        if segment is None:
            return None
        at, price = segment.arrays()
        return segment_value(at, price, t - 1)
