"""What the host-core tests share: a real SQLite store with funded bidders, an injected
clock, a store wrapper that injects failures, and helpers to add, run and close auctions.
The fixtures are registered for tests/unit by its conftest."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, cast

import pytest
import pytest_asyncio

from actors.config import ClusterConfig
from actors.host import AuctionHostCore
from actors.messages import PlaceBid
from market import ledger
from market.auction import Auction, AuctionSpec
from storage import Store, StoreError, open_store
from storage.records import EntryRecord
from testkit.client import wait_for

T0 = 1_700_000_000_000
HOUR = 3_600_000
HOST = "unit:host:0"
SELLER = "u_seller"

Hook = Callable[..., Awaitable[Any]]


class FailingStore:
    """Delegates every call to a real store; chosen calls of chosen methods fail instead.

    `fail("settle", 1, 2)` raises StoreError on the first and second settle calls;
    `on(method, hook)` replaces a method by `hook(n, real_method, *args)` (n counts from 1);
    `die()` makes every later call fail, as if the process lost its store for good.
    """

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.calls: Counter[str] = Counter()
        self.dead = False
        self._hooks: dict[str, Hook] = {}

    def fail(self, method: str, *calls: int) -> None:
        async def hook(n: int, real: Hook, *args: Any, **kwargs: Any) -> Any:
            if n in calls:
                raise StoreError(f"injected failure of {method} call {n}")
            return await real(*args, **kwargs)

        self.on(method, hook)

    def on(self, method: str, hook: Hook) -> None:
        self._hooks[method] = hook

    def die(self) -> None:
        self.dead = True

    def __getattr__(self, name: str) -> Any:
        real = getattr(self.inner, name)
        if name.startswith("_") or not callable(real):
            return real

        async def call(*args: Any, **kwargs: Any) -> Any:
            if self.dead:
                raise StoreError(f"injected: store gone ({name})")
            self.calls[name] += 1
            hook = self._hooks.get(name)
            if hook is not None:
                return await hook(self.calls[name], real, *args, **kwargs)
            return await real(*args, **kwargs)

        return call


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


BIDDERS = ("u1", "u2", "u9", "u_buyer")
FUNDS = 10**9


@pytest_asyncio.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    real = open_store(f"sqlite:///{tmp_path / 'host.db'}?synchronous=OFF")
    await real.open()
    for user in BIDDERS:  # funded, so that what they win settles
        await real.post_entry(cast(EntryRecord, ledger.deposit(user, FUNDS, "funds", 1).to_dict()))
    yield real
    await real.close()


@pytest.fixture
def clock() -> Clock:
    return Clock(T0 + 1)


@pytest.fixture
def released() -> list[str]:
    return []


@pytest_asyncio.fixture
async def cores() -> AsyncIterator[list[AuctionHostCore]]:
    """Every core a test starts; those still running at the end (a failed test) are closed."""
    started: list[AuctionHostCore] = []
    yield started
    for core in started:
        if not core._loop_task.done():
            await core.close()


async def add_auction(store: Store, auction_id: str = "a1", *, starts_at: int = T0,
                      ends_at: int = T0 + HOUR, soft_close_ms: int = 0) -> dict:
    asset_id = f"c_{auction_id}"
    await store.create_asset({"asset_id": asset_id, "owner_id": SELLER, "title": "t",
                              "metadata": {}, "created_at": T0 - 10})
    spec = AuctionSpec(auction_id=auction_id, asset_id=asset_id, seller_id=SELLER,
                       type="english", start_price=100, starts_at=starts_at, ends_at=ends_at,
                       created_at=T0 - 10, soft_close_ms=soft_close_ms)
    record = {"auction_id": auction_id, "asset_id": asset_id, "seller_id": SELLER,
              "host": HOST, "spec": spec.to_dict(), "view": Auction(spec).view(T0 - 10),
              "status": "scheduled", "seq": 0, "created_at": T0 - 10}
    await store.create_auction(record)
    return record


async def start(store: Any, clock: Clock, released: list[str],
                cores: list[AuctionHostCore]) -> AuctionHostCore:
    async def on_finished(auction_id: str) -> None:
        released.append(auction_id)

    core = AuctionHostCore(HOST, ClusterConfig(store_url="sqlite:///unused", instance="unit"),
                           store=store, clock=clock, on_finished=on_finished)
    cores.append(core)
    await core.ready()
    return core


async def live(core: AuctionHostCore, auction_id: str = "a1") -> None:
    await wait_for(lambda: auction_id in core.auctions
                   and core.auctions[auction_id].status == "live", message="auction live")


def bid(bidder: str, amount: int, req_id: str, auction_id: str = "a1") -> PlaceBid:
    return PlaceBid(auction_id, bidder, req_id, amount)


async def close_at_end(core: AuctionHostCore, clock: Clock, ends_at: int = T0 + HOUR) -> None:
    clock.now = ends_at + 5
    core.wake()
