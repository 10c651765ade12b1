"""Reading a feed with global positions in order: `GapCursor`.

The stores hand out feed positions (notices, sales, closings, the analytics log) before the
row is visible to readers; MongoDB takes them from a counter, so a position can be missing
for a moment (a writer between its `$inc` and its insert) or for ever (a writer that died
there). A reader applies rows in position order and stops at a gap, waiting up to `wait_s`
for it to fill before it passes it (logged): a row that lands even later is not applied by
this reader. SQLite positions are gap-free, so there nothing ever waits.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
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
