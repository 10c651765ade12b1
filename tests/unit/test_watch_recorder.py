"""gateway.watches: a subscribe's watch is written off its path, at most MAX_IN_FLIGHT writes
at once (beyond, dropped and counted), and a failing store is logged, never raised."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

import pytest

from gateway.watches import Watches
from storage import Store


class SlowStore:
    """record_watch waits for `go`; remembers what it was asked."""

    def __init__(self, fail: bool = False) -> None:
        self.go = asyncio.Event()
        self.asked: list[tuple[str, str, int]] = []
        self.fail = fail

    async def record_watch(self, user_id: str, auction_id: str, at: int) -> bool:
        self.asked.append((user_id, auction_id, at))
        await self.go.wait()
        if self.fail:
            raise RuntimeError("store down")
        return auction_id != "old"


def recorder(store: Any, limit: int = 4) -> Watches:
    return Watches(cast(Store, store), clock=lambda: 1234, limit=limit)


async def finished(watches: Watches) -> None:
    await asyncio.gather(*list(watches._tasks))


async def test_writes_are_bounded_and_the_rest_dropped() -> None:
    store = SlowStore()
    watches = recorder(store)
    for n in range(10):
        watches.note("u1", f"a{n}")  # returns at once: nothing waits for the store
    assert watches.in_flight == 4 and watches.dropped == 6
    store.go.set()
    await finished(watches)
    assert store.asked == [("u1", f"a{n}", 1234) for n in range(4)]
    assert watches.in_flight == 0 and watches.recorded == 4
    watches.note("u2", "old")  # room again; the store says it is not new
    await finished(watches)
    assert watches.recorded == 4 and store.asked[-1] == ("u2", "old", 1234)


async def test_a_failing_store_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    store = SlowStore(fail=True)
    store.go.set()
    watches = recorder(store)
    with caplog.at_level(logging.WARNING, logger="ece.watches"):
        watches.note("u1", "a1")
        await finished(watches)
    assert watches.recorded == 0 and watches.in_flight == 0
    assert "could not record a watch" in caplog.text


async def test_close_cancels_the_writes_in_flight() -> None:
    store = SlowStore()
    watches = recorder(store)
    watches.note("u1", "a1")
    watches.note("u1", "a2")
    await watches.close()
    assert watches.in_flight == 0 and watches.recorded == 0
