"""Tailer: a feed polled in a task of its own; a failing step is retried, never the end."""

from __future__ import annotations

import asyncio
from typing import Any

from actors.tail import Tailer
from gateway.notices import Notices
from storage import Store
from storage.records import NewNotice
from testkit.client import wait_for

LONG_S = 3600.0  # a pause no test waits out: reaching a step after it would time out


class Steps:
    """A step that returns the given page sizes in turn (an exception is raised), then 0."""

    def __init__(self, *results: int | Exception) -> None:
        self.results = list(results)
        self.calls = 0

    async def __call__(self) -> int:
        self.calls += 1
        if not self.results:
            return 0
        result = self.results.pop(0)
        if isinstance(result, Exception):
            raise result
        return result


async def test_full_pages_are_followed_at_once_and_a_short_one_pauses() -> None:
    steps = Steps(10, 10, 3)
    tail = Tailer(steps, "feed", page=10, poll_s=LONG_S, retry_s=LONG_S)
    tail.start()
    try:
        await wait_for(lambda: steps.calls == 3, message="the steps after two full pages")
        await asyncio.sleep(0)  # the loop turns: the short page's pause holds the fourth step
        assert steps.calls == 3
    finally:
        await tail.close()


async def test_a_failing_step_is_retried_and_the_tail_goes_on() -> None:
    steps = Steps(OSError("store down"), RuntimeError("bad row"), 10, 0)
    tail = Tailer(steps, "feed", page=10, poll_s=LONG_S, retry_s=0.0)
    tail.start()
    try:
        await wait_for(lambda: steps.calls == 4, message="the steps after two failures")
    finally:
        await tail.close()


async def test_close_ends_the_task_and_a_tail_never_started_closes() -> None:
    steps = Steps()
    tail = Tailer(steps, "feed", page=10, poll_s=0.0, retry_s=0.0)
    await Tailer(steps, "unstarted", page=10, poll_s=0.0, retry_s=0.0).close()
    tail.start()
    await wait_for(lambda: steps.calls >= 2, message="the tail polling")
    await tail.close()
    calls = steps.calls
    for _ in range(3):
        await asyncio.sleep(0)
    assert steps.calls == calls


class Socket:
    closing = False

    def __init__(self, user_id: str) -> None:
        self.user_id = user_id
        self.sent: list[dict[str, Any]] = []

    def current_user(self) -> str | None:
        return self.user_id

    def send(self, message: dict, cache: dict | None = None,
             encoding: str | None = None) -> None:
        self.sent.append(message)


def notice(n: int) -> NewNotice:
    return {"user_id": "u1", "key": f"k{n}", "type": "outbid", "at": n, "data": {"n": n}}


async def test_the_user_channel_outlives_a_notice_it_could_not_enrich(store: Store) -> None:
    """A failure applying a notice (the store read that names its card) is retried like a
    failed read: later notices still reach the socket. (The failed one is passed; a socket
    that resumes with `since` gets it.)"""
    failures = [RuntimeError("title lookup failed")]

    async def enrich(data: dict[str, Any]) -> dict[str, Any]:
        if failures:
            raise failures.pop()
        return data

    notices = Notices(store, enrich)
    await notices.start()
    try:
        conn = Socket("u1")
        assert await notices.subscribe(conn, "u1", None, lambda: True) is not None
        await store.add_notices([notice(1)])
        await wait_for(lambda: not failures, message="the failing enrich")
        await store.add_notices([notice(2)])
        got = await wait_for(lambda: [m for m in conn.sent if m.get("n") == 2],
                             message="the notice after the failure")
        assert got[0]["op"] == "event" and got[0]["channel"] == "me"
    finally:
        await notices.close()
