"""gateway.watches: a subscribe's watch is written off its path, at most MAX_IN_FLIGHT writes
at once (beyond, dropped), and a failing store is logged, never raised; every watch is counted
in the gateway's metrics by outcome (stored, unchanged, dropped, failed)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

import pytest

from gateway.state import Metrics
from gateway.watches import OUTCOMES, Watches
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
    return Watches(cast(Store, store), Metrics().watch_writes, clock=lambda: 1234, limit=limit)


def outcomes(watches: Watches) -> dict[str, int]:
    return {outcome: watches.counted(outcome) for outcome in OUTCOMES}


async def finished(watches: Watches) -> None:
    await asyncio.gather(*list(watches._tasks))


async def test_writes_are_bounded_and_the_rest_dropped() -> None:
    store = SlowStore()
    watches = recorder(store)
    for n in range(10):
        watches.note("u1", f"a{n}")  # returns at once: nothing waits for the store
    assert watches.in_flight == 4
    assert outcomes(watches) == {"stored": 0, "unchanged": 0, "dropped": 6, "failed": 0}
    store.go.set()
    await finished(watches)
    assert store.asked == [("u1", f"a{n}", 1234) for n in range(4)]
    assert watches.in_flight == 0
    assert outcomes(watches) == {"stored": 4, "unchanged": 0, "dropped": 6, "failed": 0}
    watches.note("u2", "old")  # room again; the store says it is not new
    await finished(watches)
    assert store.asked[-1] == ("u2", "old", 1234)
    assert outcomes(watches) == {"stored": 4, "unchanged": 1, "dropped": 6, "failed": 0}


async def test_a_store_that_never_answers_leaves_every_later_watch_dropped(
        caplog: pytest.LogCaptureFixture) -> None:
    store = SlowStore()  # `go` is never set: the first writes hang for ever
    watches = recorder(store, limit=2)
    with caplog.at_level(logging.WARNING, logger="ece.watches"):
        for n in range(1_002):
            watches.note("u1", f"a{n}")
    assert watches.in_flight == 2
    assert outcomes(watches) == {"stored": 0, "unchanged": 0, "dropped": 1_000, "failed": 0}
    assert caplog.text.count("watches dropped") == 1  # the first, not each one
    await watches.close()


async def test_a_failing_store_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    store = SlowStore(fail=True)
    store.go.set()
    watches = recorder(store)
    with caplog.at_level(logging.WARNING, logger="ece.watches"):
        watches.note("u1", "a1")
        await finished(watches)
    assert watches.in_flight == 0
    assert outcomes(watches) == {"stored": 0, "unchanged": 0, "dropped": 0, "failed": 1}
    assert "could not record a watch" in caplog.text


async def test_close_cancels_the_writes_in_flight() -> None:
    store = SlowStore()
    watches = recorder(store)
    watches.note("u1", "a1")
    watches.note("u1", "a2")
    await watches.close()
    assert watches.in_flight == 0 and outcomes(watches)["stored"] == 0
