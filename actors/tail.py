"""Reading a feed with global positions in order: `GapCursor`.

The stores hand out feed positions (notices, sales, closings, the analytics log) before the
row is visible to readers; MongoDB takes them from a counter, so a position can be missing
for a moment (a writer between its `$inc` and its insert) or for ever (a writer that died
there). A reader applies rows in position order and stops at a gap, waiting up to `wait_s`
for it to fill before it passes it (logged): a row that lands even later is not applied by
this reader. SQLite positions are gap-free, so there nothing ever waits.

`Tailer` polls such a feed for ever in a task of its own (the gateway's notice feed and
analytics log).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

log = logging.getLogger("ece.tail")

GAP_WAIT_S = 2.0


class GapCursor:
    def __init__(self, pos: int = 0, wait_s: float = GAP_WAIT_S, name: str = "feed",
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.pos = pos  # the last position applied
        self.wait_s = wait_s
        self.name = name
        self._clock = clock
        self._gap_since: float | None = None

    def take[R: Mapping[str, Any]](self, rows: Sequence[R]) -> list[R]:
        """The rows (given in position order) to apply now, in order; moves `pos` past
        them. Rows at or before `pos` are skipped; a gap still worth waiting for ends the
        list."""
        taken: list[R] = []
        for row in rows:
            pos = int(row["pos"])
            if pos <= self.pos:
                continue
            if pos > self.pos + 1:
                now = self._clock()
                if self._gap_since is None:
                    self._gap_since = now
                if now - self._gap_since < self.wait_s:
                    break
                log.warning("%s: positions %d..%d never arrived; moving on",
                            self.name, self.pos + 1, pos - 1)
            self._gap_since = None
            self.pos = pos
            taken.append(row)
        return taken


class Tailer:
    """Runs `step` over and over in a task of its own, from `start()` until `close()`.

    `step` reads one page of a feed (at most `page` rows), applies it and returns how many
    rows it read: after a full page the next step follows at once, after a shorter one it
    waits `poll_s`. A step that raises is logged and tried again after `retry_s`; the tail
    goes on (a store that is down for a while stops nothing for good).
    """

    def __init__(self, step: Callable[[], Awaitable[int]], name: str, page: int,
                 poll_s: float, retry_s: float) -> None:
        self._step = step
        self.name = name
        self.page = page
        self.poll_s = poll_s
        self.retry_s = retry_s
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                n = await self._step()
            except Exception:
                log.warning("%s read failed; retrying", self.name, exc_info=True)
                await asyncio.sleep(self.retry_s)
                continue
            if n < self.page:
                await asyncio.sleep(self.poll_s)
