"""The analytics channels: `card:<card_id>` and `market`, fed by one tail of the store's
analytics log per gateway process (the projections write their live messages there with
their results), fanned out to the sockets subscribed here; and the portfolio projections'
per-user events, handed to the user channel (`me`).

No resume: these are live views of persisted results; a client that reconnects subscribes
again and reads the routes. The tail also refreshes the projection-lag metrics.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any, Protocol

from actors.portfolio.projection import CHANNEL as USERS_CHANNEL  # {users: {id: data}}
from actors.tail import GapCursor, Tailer
from storage import Store
from storage.records import AnalyticsMessage

POLL_S = 0.1
PAGE = 1_000
RETRY_S = 1.0
MAX_CHANNELS = 20  # analytics channels one socket may follow at once

_CARD_CHANNEL = re.compile(r"card:[A-Za-z0-9_-]{1,64}")


class Subscriber(Protocol):
    def send(self, message: dict, cache: dict | None = None,
             encoding: str | None = None) -> None: ...


def is_channel(name: object) -> bool:
    return isinstance(name, str) and (name == "market" or bool(_CARD_CHANNEL.fullmatch(name)))


def event_of(message: AnalyticsMessage) -> dict[str, Any]:
    return {"op": "event", "channel": message["channel"], "type": message["type"],
            **message["data"]}


class Channels:
    def __init__(self, store: Store, on_tick: Callable[[], Any] | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 to_user: Callable[[str, dict[str, Any]], None] | None = None) -> None:
        self.store = store
        self._to_user = to_user  # where a user's part of a `portfolios` message goes
        self._subs: dict[str, set[Subscriber]] = {}
        self._of: dict[Subscriber, set[str]] = {}
        self._cursor = GapCursor(0, name="analytics log", clock=clock)
        self._on_tick = on_tick
        self._ticked = 0.0
        self._tail = Tailer(self._step, "analytics log", PAGE, POLL_S, RETRY_S)

    async def start(self) -> None:
        self._cursor.pos = await self.store.analytics_log_position()
        self._tail.start()

    async def close(self) -> None:
        await self._tail.close()

    def subscribe(self, conn: Subscriber, channel: str) -> bool:
        """False when the socket follows MAX_CHANNELS channels already."""
        mine = self._of.setdefault(conn, set())
        if channel not in mine and len(mine) >= MAX_CHANNELS:
            return False
        mine.add(channel)
        self._subs.setdefault(channel, set()).add(conn)
        return True

    def unsubscribe(self, conn: Subscriber, channel: str) -> None:
        self._of.get(conn, set()).discard(channel)
        subs = self._subs.get(channel)
        if subs is not None:
            subs.discard(conn)
            if not subs:
                del self._subs[channel]

    def drop(self, conn: Subscriber) -> None:
        for channel in self._of.pop(conn, set()):
            self.unsubscribe(conn, channel)

    def subscribers(self) -> int:
        return sum(len(s) for s in self._subs.values())

    def deliver(self, messages: list[AnalyticsMessage]) -> None:
        for message in self._cursor.take(messages):
            if message["channel"] == USERS_CHANNEL and self._to_user is not None:
                for user_id, data in message["data"]["users"].items():
                    self._to_user(user_id, {"op": "event", "channel": "me",
                                            "type": message["type"], **data})
                continue
            subs = self._subs.get(message["channel"])
            if subs:
                cache: dict = {}
                frame = event_of(message)
                for conn in list(subs):
                    conn.send(frame, cache)

    async def _step(self) -> int:
        rows = await self.store.analytics_log(self._cursor.pos, PAGE)
        self.deliver(rows)
        if self._on_tick is not None and time.monotonic() - self._ticked >= 1.0:
            self._ticked = time.monotonic()
            await self._on_tick()
        return len(rows)
