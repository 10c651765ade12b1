"""A bounded, cursor-addressed buffer of published events that gateways long-poll.

One feed per auction host: every gateway reads the same events with its own cursor, so an
event batch crosses the Ray boundary once per gateway, not once per watcher.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import deque
from collections.abc import Sequence

from actors.messages import Event, FeedPage


class EventFeed:
    def __init__(self, capacity: int) -> None:
        # A new epoch after every (re)start tells readers their cursor means nothing here.
        self.epoch = uuid.uuid4().hex
        self._events: deque[Event] = deque(maxlen=capacity)
        self._head = 0  # cursor just past the newest event
        self._changed = asyncio.Condition()

    async def publish(self, events: list[Event]) -> None:
        if not events:
            return
        self._events.extend(events)
        self._head += len(events)
        async with self._changed:
            self._changed.notify_all()

    def read(
        self, epoch: str | None, cursor: int, limit: int, auction_id: str | None = None
    ) -> FeedPage:
        """Events after `cursor`; `reset` when the reader may have missed some (see read_ring)."""
        return read_ring(self._events, self._head, self.epoch, epoch, cursor, limit, auction_id)

    async def wait(self, epoch: str | None, cursor: int, timeout: float) -> None:
        """Return once something is readable after `cursor` (or at the timeout)."""
        if cursor < 0 or epoch != self.epoch or cursor != self._head:
            return
        async with self._changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._changed.wait_for(lambda: self._head != cursor), timeout
                )


def read_ring(
    events: Sequence[Event], head: int, epoch: str, reader_epoch: str | None, cursor: int,
    limit: int, auction_id: str | None = None,
) -> FeedPage:
    """A reader's next batch from a ring holding the newest events, `head` just past the last.

    Cursors count events since the feed (re)started: the ring holds `head - len(events)` up to
    `head`. A negative cursor means "from now on": the head and no events. A cursor of another
    epoch, fallen out of the ring or ahead of the head restarts at the oldest event held, with
    `reset` (the reader may have missed some). At most `limit` events, only `auction_id`'s when
    given; the cursor returned is just past the last event looked at (the head when none
    matched).
    """
    if cursor < 0:
        return FeedPage(epoch, head, False, [])
    oldest = head - len(events)
    reset = reader_epoch != epoch or cursor < oldest or cursor > head
    start = oldest if reset else cursor
    offset = start - oldest
    chosen: list[Event] = []
    end = start
    for index in range(offset, len(events)):
        if len(chosen) >= limit:
            break
        event = events[index]
        end = oldest + index + 1
        if auction_id is None or event["auction_id"] == auction_id:
            chosen.append(event)
    if not chosen and not reset:
        end = head
    return FeedPage(epoch, end, reset, chosen)
