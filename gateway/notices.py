"""The user channel and the balance cache, both fed by one tail of the store's notice feed.

Every user-facing fact (outbid, won, sold, payment, ...) is stored as a notice with the
user's `seq` and a global `pos` (`Store.add_notices`, `Store.post_entry`). Each gateway
process tails the feed (`Store.notice_feed`) from where it stood when it started and:
- delivers each notice to its sockets subscribed to that user's channel (`me`), in seq
  order, after replaying what a resuming socket missed (`since`);
- keeps every user's balance from the `payment` notices (each carries the balance after it
  and the account's version, so a late or repeated one never moves it back). The bid path's
  buying-power check is then a dict lookup: no store read, no Ray call.

A gap in positions (a writer that allocated one and has not inserted yet) is waited for
up to GAP_WAIT_S, then passed: a notice that lands later still reaches a socket that
resumes with `since`, and a balance is corrected by the account's next payment.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from actors.tail import GapCursor, Tailer
from storage import Store
from storage.records import NoticeRecord

POLL_S = 0.05  # pause between reads of the feed when it had nothing new
PAGE = 1_000
GAP_WAIT_S = 2.0
RETRY_S = 1.0  # pause after a failed read of the feed
MAX_REPLAY = 1_000  # notices one resume replays at most (older ones: GET them again)


class Subscriber(Protocol):
    """A socket, as the user channel sees it."""

    closing: bool

    def current_user(self) -> str | None: ...

    def send(self, message: dict, cache: dict | None = None,
             encoding: str | None = None) -> None: ...


def notice_message(notice: NoticeRecord) -> dict[str, Any]:
    """The frame a subscriber gets: `{op: event, channel: me, seq, type, at, ...data}`."""
    return {**notice["data"], "op": "event", "channel": "me", "seq": notice["seq"],
            "type": notice["type"], "at": notice["at"]}


class Balances:
    """user_id -> (balance, version): the newest version seen wins."""

    def __init__(self) -> None:
        self._of: dict[str, tuple[int, int]] = {}

    def load(self, balances: dict[str, tuple[int, int]]) -> None:
        for user_id, (balance, version) in balances.items():
            self.update(user_id, balance, version)

    def update(self, user_id: str, balance: int, version: int) -> None:
        current = self._of.get(user_id)
        if current is None or version > current[1]:
            self._of[user_id] = (balance, version)

    def available(self, user_id: str) -> int:
        """What the user can spend: their balance (nothing holds money yet)."""
        found = self._of.get(user_id)
        return found[0] if found is not None else 0

    def __len__(self) -> int:
        return len(self._of)


@dataclass
class _Watch:
    """One socket's subscription: the last seq sent, and what arrived while replaying."""

    last_seq: int
    replaying: bool = True
    held: list[NoticeRecord] = field(default_factory=list)


class Notices:
    """One per gateway process: the tail, the balances and the `me` subscriptions."""

    def __init__(self, store: Store, enrich: Callable[[dict[str, Any]], Any] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.balances = Balances()
        self._cursor = GapCursor(0, GAP_WAIT_S, "notice feed", clock)
        self._enrich = enrich
        self._watches: dict[str, dict[Subscriber, _Watch]] = {}
        self._tail = Tailer(self._step, "notice feed", PAGE, POLL_S, RETRY_S)
        self._caught_up = asyncio.Event()

    async def start(self) -> None:
        """Load every balance, then tail the feed from its current end."""
        self._cursor.pos = await self.store.notice_position()
        self.balances.load(await self.store.user_balances())
        self._tail.start()

    async def close(self) -> None:
        await self._tail.close()

    async def caught_up(self) -> None:
        """Wait for the next read of the feed that found nothing new (tests, seeding)."""
        self._caught_up.clear()
        await self._caught_up.wait()

    # ---- the tail ---------------------------------------------------------------------

    async def _step(self) -> int:
        taken = await self.take(await self.store.notice_feed(self.cursor, PAGE))
        if taken < PAGE:
            self._caught_up.set()
        return taken

    async def take(self, rows: list[NoticeRecord]) -> int:
        """Apply feed rows in position order, stopping at a gap still worth waiting for;
        returns how many were applied."""
        taken = self._cursor.take(rows)
        for row in taken:
            await self._apply(row)
        return len(taken)

    @property
    def cursor(self) -> int:
        return self._cursor.pos

    async def _apply(self, notice: NoticeRecord) -> None:
        data = notice["data"]
        if notice["type"] == "payment":
            self.balances.update(notice["user_id"], int(data["balance"]), int(data["version"]))
        watches = self._watches.get(notice["user_id"])
        if not watches:
            return
        if self._enrich is not None:
            notice = {**notice, "data": await self._enrich(dict(data))}
        cache: dict = {}
        for conn, watch in list(watches.items()):
            if conn.current_user() != notice["user_id"]:  # signed out, or the token expired
                self.unsubscribe(conn, notice["user_id"])
                continue
            if watch.replaying:
                watch.held.append(notice)
            elif notice["seq"] > watch.last_seq:
                watch.last_seq = notice["seq"]
                conn.send(notice_message(notice), cache)

    def push(self, user_id: str, message: dict[str, Any]) -> None:
        """A live event that is not a stored notice (no `seq`; e.g. `portfolio`), sent to
        the user's sockets following `me` now (not replayed on a resume: it is a live view of
        `GET /api/portfolio`)."""
        cache: dict = {}
        for conn in list(self._watches.get(user_id, {})):
            if conn.current_user() == user_id:
                conn.send(message, cache)

    # ---- subscriptions ------------------------------------------------------------------

    async def subscribe(self, conn: Subscriber, user_id: str, since: int | None,
                        wanted: Callable[[], bool], encoding: str | None = None,
                        req_id: Any = None) -> int | None:
        """Register `conn` for `user_id`'s notices; with `since`, first replay those after
        it. Returns the seq the ack carries (the user's latest when the subscribe began), or
        None when, by the time it was answered, `wanted()` said the socket no longer wants
        it (an unsubscribe, a newer subscribe, a close): then nothing stays registered."""
        if not wanted():
            return None
        watches = self._watches.setdefault(user_id, {})
        watch = watches[conn] = _Watch(last_seq=since or 0)
        try:
            latest = await self.store.last_notice_seq(user_id)
            if since is None or since > latest:  # nothing to replay (a bogus since: neither)
                watch.last_seq = latest
                missed: list[NoticeRecord] = []
            else:
                missed = await self.store.load_notices(user_id, since, MAX_REPLAY)
            if self._enrich is not None:
                missed = [{**n, "data": await self._enrich(dict(n["data"]))} for n in missed]
        except BaseException:
            self._forget(conn, user_id, watch)
            raise
        if not wanted() or conn.current_user() != user_id:
            self._forget(conn, user_id, watch)
            return None
        return self._release(conn, watch, missed, latest, encoding, req_id)

    def _forget(self, conn: Subscriber, user_id: str, watch: _Watch) -> None:
        """Remove `watch`, unless a newer subscribe of the same socket replaced it."""
        if self._watches.get(user_id, {}).get(conn) is watch:
            self.unsubscribe(conn, user_id)

    def _release(self, conn: Subscriber, watch: _Watch, missed: list[NoticeRecord],
                 latest: int, encoding: str | None, req_id: Any) -> int:
        ack = max(latest, watch.last_seq)
        frame: dict[str, Any] = {"op": "ack", "channel": "me", "seq": ack}
        if req_id is not None:
            frame["req_id"] = req_id
        conn.send(frame, encoding=encoding)
        for notice in sorted([*missed, *watch.held], key=lambda n: n["seq"]):
            if notice["seq"] > watch.last_seq:
                watch.last_seq = notice["seq"]
                conn.send(notice_message(notice), encoding=encoding)
        watch.held.clear()
        watch.replaying = False
        return ack

    def unsubscribe(self, conn: Subscriber, user_id: str) -> None:
        watches = self._watches.get(user_id)
        if watches is not None:
            watches.pop(conn, None)
            if not watches:
                del self._watches[user_id]

    def subscribers(self) -> int:
        return sum(len(w) for w in self._watches.values())
