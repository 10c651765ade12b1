"""Runs one projection: tail its fact feed, fold rows in batches, save results + checkpoint.

Exactly once: results are written with the checkpoint they correspond to
(`Store.save_projection`, fenced by the checkpoint it expects), so a crash before the save
redoes the batch from the old checkpoint and a crash after it starts past the batch. State
lost with a crash is rebuilt on start: the state is the fold of the feed, replayed up
to the checkpoint without writing. A failed save is retried with the same results; a
fenced one (another instance, or `ece rebuild`, moved the checkpoint) restarts the
projection from the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from actors.clock import now_ms
from actors.retry import backoff_delays
from actors.tail import GapCursor
from storage import Store
from storage.facts import SOURCE_EXTERNAL
from storage.records import AnalyticsMessage, Json

log = logging.getLogger("ece.analytics")

PAGE = 20_000  # feed rows per batch
POLL_S = 0.2  # pause between reads of a feed that had nothing new
Put = tuple[str, str, Json | None]
Feed = Callable[[int, int], Awaitable[Sequence[Any]]]


class Projection(Protocol):
    name: str
    kinds: tuple[str, ...]  # the result kinds it owns (a rebuild deletes them)
    replays: bool  # restore state by replaying the feed up to the checkpoint

    def feed(self, store: Store) -> Feed: ...

    def position(self, store: Store) -> Awaitable[int]: ...

    def reset(self) -> None: ...

    def replayed(self) -> None:
        """The feed was replayed up to the checkpoint: drop the results pending from it."""

    async def apply(self, rows: Sequence[Any], now: int) -> None: ...

    async def flush(self, now: int, more: bool = False) -> tuple[list[Put],
                                                                 list[AnalyticsMessage]]:
        """The results changed since the last flush, and live messages; `more`: the feed
        has more right now (catching up), so costly whole-book work may wait."""


class Runner:
    def __init__(self, store: Store, projection: Projection, *, page: int = PAGE,
                 clock: Callable[[], int] = now_ms) -> None:
        self.store = store
        self.projection = projection
        self.page = page
        self.clock = clock
        self.checkpoint = 0
        self.cursor = GapCursor(0, name=f"{projection.name} feed")
        self.folded = 0  # rows folded since start (progress, metrics)
        self._woken = asyncio.Event()

    @property
    def name(self) -> str:
        return self.projection.name

    def wake(self) -> None:
        """Step now rather than after the idle pause: the projection has work that comes from
        outside its feed (a portfolio told that values changed)."""
        self._woken.set()

    async def restore(self) -> None:
        """Load the checkpoint and rebuild in-memory state as of it."""
        p = self.projection
        p.reset()
        self.checkpoint = await self.store.projection_checkpoint(p.name)
        self.cursor = GapCursor(0, name=f"{p.name} feed")
        if p.replays:
            read = p.feed(self.store)
            while self.cursor.pos < self.checkpoint:
                rows = [r for r in await read(self.cursor.pos, self.page)
                        if r["pos"] <= self.checkpoint]
                if not rows:
                    break
                self.cursor.pos = int(rows[-1]["pos"])
                await p.apply(rows, self.clock())
                p.replayed()  # state only: the results of these rows are stored already
        self.cursor.pos = self.checkpoint

    async def step(self) -> int:
        """Fold the next page of the feed and save; returns how many rows were folded."""
        read = await self.projection.feed(self.store)(self.cursor.pos, self.page)
        rows = self.cursor.take(read)
        now = self.clock()
        if rows:
            await self.projection.apply(rows, now)
        puts, messages = await self.projection.flush(now, more=len(read) == self.page)
        if rows or puts or messages:
            await self._save(self.cursor.pos, puts, messages)
        self.folded += len(rows)
        return len(rows)

    async def _save(self, pos: int, puts: list[Put], messages: list[AnalyticsMessage]) -> None:
        delays = backoff_delays()
        while True:
            try:
                saved = await self.store.save_projection(self.name, self.checkpoint, pos,
                                                         puts, messages)
            except Exception:
                log.warning("%s: saving results failed; retrying", self.name, exc_info=True)
                await asyncio.sleep(next(delays))
                continue
            if saved:
                self.checkpoint = pos
            else:
                log.warning("%s: checkpoint moved by someone else; restoring", self.name)
                await self.restore()
            return

    async def catch_up(self, progress: Callable[[int], None] | None = None) -> None:
        """Step until the feed has nothing more (rebuilds, tests)."""
        while True:
            n = await self.step()
            if progress is not None and n:
                progress(n)
            if n == 0 and self.cursor.pos >= await self.projection.position(self.store):
                return

    async def run(self) -> None:
        """Forever: restore, then tail the feed. After any failure (the store down, a batch
        half folded) the projection is restored from the store before it goes on."""
        delays = backoff_delays()
        restored = False
        while True:
            try:
                if not restored:
                    await self.restore()
                    restored = True
                n = await self.step()
            except Exception:
                restored = False
                log.warning("%s: failed; restoring from the store", self.name, exc_info=True)
                await asyncio.sleep(next(delays))
                continue
            delays = backoff_delays()
            if n < self.page:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._woken.wait(), POLL_S)
                self._woken.clear()


async def read_lag(store: Store, price_shards: int, behaviour_shards: int,
                   now: int, portfolio_shards: int = 0) -> dict[str, dict[str, Any]]:
    """Every projection's checkpoint and lag, from the store alone (gateways, `ece status`):
    facts behind, and seconds behind = the age of the oldest fact not folded yet (a sale of
    simulated history has no age: 0). The portfolio shards' too when `portfolio_shards`."""
    out: dict[str, dict[str, Any]] = {}
    feeds: dict[str, tuple[Feed, int]] = {
        "sales": (store.sales_feed, await store.sales_position()),
        "closings": (store.closings_feed, await store.closings_position())}
    if portfolio_shards:
        feeds["ownership"] = (store.ownership_feed, await store.ownership_position())
    for name, feed_name in [*((f"prices.{i}", "sales") for i in range(price_shards)),
                            ("market", "sales"), ("valuations", "sales"),
                            *((f"behaviour.{i}", "closings") for i in range(behaviour_shards)),
                            *((f"portfolio.{i}", "ownership") for i in range(portfolio_shards))]:
        feed, head = feeds[feed_name]
        checkpoint = await store.projection_checkpoint(name)
        behind = max(0, head - checkpoint)
        seconds = 0.0
        if behind:
            rows = await feed(checkpoint, 1)
            if rows and rows[0].get("source") != SOURCE_EXTERNAL:  # history has no age
                seconds = max(0.0, (now - int(rows[0]["at"])) / 1000)
        out[name] = {"checkpoint": checkpoint, "facts_behind": behind,
                     "seconds_behind": round(seconds, 3)}
    return out
