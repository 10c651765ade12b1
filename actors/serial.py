"""The machinery every entity host shares (auctions, trade offers): one queue of commands, one
loop that drains it with the entities' timers, background steps retried until they succeed.

A subclass recovers its entities from the store (`_recover`) and runs one pass over the queued
commands and due timers (`_process`): every command of a pass runs in arrival order, so each
entity is strictly serial, and the pass answers (`_Pending.future`) once its changes are
durable. Like Orleans grains of different classes in one silo: the same loop serves both.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from actors.clock import Clock
from actors.retry import retry
from actors.timers import Timers
from storage import Store


@dataclass
class Pending[C, R]:
    command: C
    future: asyncio.Future[R] = field(repr=False)


class SerialLoop[C, R]:
    """`kind` names the loop in logs ("host", "offer desk")."""

    kind = "loop"

    def __init__(self, name: str, store: Store, clock: Clock, log: logging.Logger,
                 opened: Callable[[], Awaitable[object]] | None = None) -> None:
        """`opened`: awaited before recovery; by default it opens the store (a loop that
        shares another's store waits for that one instead, so the store opens once)."""
        self.name = name
        self.store = store
        self._opened = opened or store.open
        self.clock = clock
        self.log = log
        self.timers = Timers()
        self._queue: list[Pending[C, R]] = []
        self._wake = asyncio.Event()
        self._ready = asyncio.Event()
        self._failed: BaseException | None = None
        self._background: set[asyncio.Future[Any]] = set()
        self._loop_task = asyncio.get_running_loop().create_task(self._run())

    async def submit(self, commands: list[C]) -> list[R]:
        """Run commands and answer each once its pass is durable."""
        await self._wait_ready()
        loop = asyncio.get_running_loop()
        pending = [Pending[C, R](command, loop.create_future()) for command in commands]
        self._queue.extend(pending)
        self._wake.set()
        return list(await asyncio.gather(*(p.future for p in pending)))

    async def ready(self) -> None:
        """Return once recovery is done; raise if the loop failed to start."""
        await self._wait_ready()

    def wake(self) -> None:
        """Look at the timers now (after an injected clock jumped forward)."""
        self._wake.set()

    async def close(self) -> None:
        """Stop the loop and every background step."""
        tasks: list[asyncio.Future[Any]] = [self._loop_task, *self._background]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # ---- for subclasses ------------------------------------------------------------------

    async def _recover(self) -> None:
        raise NotImplementedError

    async def _process(self) -> None:
        raise NotImplementedError

    def _enqueue(self, commands: list[C]) -> None:
        """Queue commands nobody waits for (the loop's own: timers' follow-ups, repairs)."""
        loop = asyncio.get_running_loop()
        self._queue.extend(Pending[C, R](c, loop.create_future()) for c in commands)
        self._wake.set()

    def _spawn(self, coroutine: Awaitable[object]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _retry(self, what: str, step: Callable[[], Awaitable[object]]) -> bool:
        return await retry(f"{self.kind} {self.name}: {what}", step, self.log)

    # ---- the loop ------------------------------------------------------------------------

    async def _wait_ready(self) -> None:
        await self._ready.wait()
        if self._failed is not None:
            raise RuntimeError(f"{self.kind} {self.name} failed to start: {self._failed!r}")

    async def _run(self) -> None:
        try:
            await self._opened()
            await self._recover()
        except BaseException as exc:
            self.log.exception("%s %s failed to start", self.kind, self.name)
            self._failed = exc
            self._ready.set()
            raise
        self._ready.set()
        while True:
            deadline = self.timers.next()
            timeout = None if deadline is None else max(0.0, (deadline - self.clock()) / 1000)
            if not self._queue:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)
            self._wake.clear()
            try:
                await self._process()
            except Exception:  # keep serving: one bad pass must not stop the loop
                self.log.exception("%s %s: batch failed", self.kind, self.name)
