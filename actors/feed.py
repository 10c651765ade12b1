"""A bounded, cursor-addressed buffer of published events that gateways long-poll.

One feed per auction host: every gateway reads the same events with its own cursor, so an
event batch crosses the Ray boundary once per gateway, not once per watcher.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import deque


class EventFeed:
    def __init__(self, capacity: int) -> None:
        # A new epoch after every (re)start tells readers their cursor means nothing here.
        self.epoch = uuid.uuid4().hex
        self._events: deque[dict] = deque(maxlen=capacity)
        self._head = 0  # cursor just past the newest event
        self._changed = asyncio.Condition()

    @property
    def head(self) -> int:
        return self._head

    async def publish(self, events: list[dict]) -> None:
        if not events:
            return
        self._events.extend(events)
        self._head += len(events)
        async with self._changed:
            self._changed.notify_all()

    def read(
        self, epoch: str | None, cursor: int, limit: int, auction_id: str | None = None
    ) -> dict:
        """Events after `cursor`; `reset` when the reader may have missed some.

        A negative cursor means "from now on": the reader gets the head and no events.
        """
        if cursor < 0:
            return {"epoch": self.epoch, "cursor": self._head, "events": [], "reset": False}
        oldest = self._head - len(self._events)
        reset = epoch != self.epoch or cursor < oldest or cursor > self._head
        start = oldest if reset else cursor
        offset = start - oldest
        chosen: list[dict] = []
        end = start
        for index in range(offset, len(self._events)):
            if len(chosen) >= limit:
                break
            event = self._events[index]
            end = oldest + index + 1
            if auction_id is None or event["auction_id"] == auction_id:
                chosen.append(event)
        if not chosen and not reset:
            end = self._head
        return {"epoch": self.epoch, "cursor": end, "events": chosen, "reset": reset}

    async def wait(self, epoch: str | None, cursor: int, timeout: float) -> None:
        """Return once something is readable after `cursor` (or at the timeout)."""
        if cursor < 0 or epoch != self.epoch or cursor != self._head:
            return
        async with self._changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._changed.wait_for(lambda: self._head != cursor), timeout
                )
