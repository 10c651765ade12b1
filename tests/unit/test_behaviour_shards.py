"""Behaviour shards (actors.analytics.behaviour, `ECE_BEHAVIOUR_SHARDS`): three shards store
exactly what one does, each shard writes its own users only and shard 0 the market summary,
each closing is loaded once for all the shards of a process (`ClosingFacts`), crashes change
nothing, and `ece rebuild analytics` forgets the unsharded projection's checkpoint.

The closings are auctions run by the real rules engine in a real SQLite store
(test_projections_more's `run_auction`), with watches recorded while they are open."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any, cast

import pytest

from actors.analytics.actor import projections
from actors.analytics.behaviour import BehaviourProjection
from actors.analytics.closings import ClosingFacts
from actors.analytics.prices import shard_of
from actors.analytics.runner import Projection, Put, Runner, read_lag
from actors.config import ClusterConfig
from gateway import maintenance
from gateway.config import Settings
from storage import CommitBatch, Store
from storage.records import AnalyticsMessage
from tests.unit.test_projections import BEHAVIOUR_KINDS, MakeStore, clock, fold_through, stored
from tests.unit.test_projections_more import S, run_auction, value_sales

USERS = [f"u{i}" for i in range(12)]
N_AUCTIONS = 14
MINUTE = 60_000


class Watching:
    """Delegates to a store; records `watches` on the auction just before its close commits."""

    def __init__(self, inner: Store, auction_id: str, watches: list[tuple[str, int]]) -> None:
        self.inner, self.auction_id, self.watches = inner, auction_id, watches

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def commit(self, batch: CommitBatch) -> Any:
        for user, at in self.watches:
            assert await self.inner.record_watch(user, self.auction_id, at) is True
        return await self.inner.commit(batch)


async def closings(store: Store) -> None:
    """N_AUCTIONS closed auctions (english and sealed, some unsold) among USERS' bids and
    watches, over cards 0-3 (card 0's value is known: overpay)."""
    rng = random.Random(11)
    for n in range(N_AUCTIONS):
        kind = "sealed" if n % 3 == 2 else "english"
        bidders = rng.sample(USERS, rng.randint(0, 4))
        if kind == "english":
            bids = [(user, 1_000 + 1_000 * j, None if j % 2 else 1_000 + 1_000 * j + 400,
                     S + (5 + 7 * j) * MINUTE) for j, user in enumerate(bidders)]
        else:
            bids = [(user, 1_000 + 300 * j, None, S + (3 + j) * MINUTE)
                    for j, user in enumerate(bidders)]
        watches = [(user, S + (1 + j) * MINUTE)
                   for j, user in enumerate(rng.sample(USERS, rng.randint(0, 5)))]
        auction_id = f"A{n:02d}"
        await run_auction(cast(Store, Watching(store, auction_id, watches)), auction_id, n % 4,
                          kind, bids)


async def fold_market(store: Store, found: list[Projection]) -> list[Projection]:
    """Fold the sales projections (the value at the close); returns the behaviour shards."""
    for projection in found:
        if not projection.name.startswith("behaviour."):
            runner = Runner(store, projection, clock=clock)
            await runner.restore()
            await runner.catch_up()
    return [p for p in found if p.name.startswith("behaviour.")]


class Recording:
    """Delegates to a store; remembers which projection saved which (kind, key)."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.saved: dict[str, set[tuple[str, str]]] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def save_projection(self, name: str, expect: int, pos: int, puts: list[Put],
                              messages: list[AnalyticsMessage] | None = None) -> bool:
        self.saved.setdefault(name, set()).update((kind, key) for kind, key, _ in puts)
        return await self.inner.save_projection(name, expect, pos, puts, messages)


async def test_three_shards_store_what_one_does_and_load_each_closing_once(
        stores: MakeStore, every_batch: None) -> None:
    one, three = await stores(value_sales()), await stores(value_sales())
    for store in (one, three):
        await closings(store)
    assert await three.closings_position() == N_AUCTIONS
    single = await fold_market(one, projections(one, ClusterConfig("sqlite:///-")))
    assert [p.name for p in single] == ["behaviour.0"]
    runner = Runner(one, single[0], page=4, clock=clock)
    await runner.restore()
    await runner.catch_up()
    want = await stored(one, BEHAVIOUR_KINDS)
    assert ("behaviour_market", "summary") in want
    users = {key for kind, key in want if kind == "behaviour"}
    assert {shard_of(user, 3) for user in users} == {0, 1, 2}
    assert any(doc.get("overpay_auctions") for doc in want.values())  # the book was read
    assert any(doc.get("auctions_watched") for doc in want.values())

    shards = await fold_market(three, projections(three, ClusterConfig("sqlite:///-",
                                                                       behaviour_shards=3)))
    assert [p.name for p in shards] == ["behaviour.0", "behaviour.1", "behaviour.2"]
    recording = Recording(three)
    runners = [Runner(cast(Store, recording), p, page=4, clock=clock) for p in shards]
    for r in runners:
        await r.restore()
    await asyncio.gather(*(r.catch_up() for r in runners))  # side by side, as in the actor
    assert await stored(three, BEHAVIOUR_KINDS) == want
    for i, shard in enumerate(shards):
        assert await three.projection_checkpoint(shard.name) == N_AUCTIONS
        written = recording.saved[shard.name]
        assert {key for kind, key in written if kind == "behaviour"} == {
            user for user in users if shard_of(user, 3) == i}
        assert (("behaviour_market", "summary") in written) == (i == 0)
        assert set(shard.kinds) == ({"behaviour", "behaviour_market"} if i == 0
                                    else {"behaviour"})
    closing_facts = cast(BehaviourProjection, shards[0]).closings
    assert all(cast(BehaviourProjection, s).closings is closing_facts for s in shards)
    assert closing_facts.loads == N_AUCTIONS  # once each, for the three shards

    lag = await read_lag(three, 1, 3, clock())
    assert [name for name in lag if name.startswith("behaviour")] == [
        "behaviour.0", "behaviour.1", "behaviour.2"]
    assert all(lag[f"behaviour.{i}"]["facts_behind"] == 0 for i in range(3))


async def test_shards_crashing_alone_store_the_same(
        stores: MakeStore, every_batch: None) -> None:
    reference, store = await stores(value_sales()), await stores(value_sales())
    for s in (reference, store):
        await closings(s)
    for name in ("behaviour.0", "behaviour.1", "behaviour.2"):
        runner = Runner(reference, BehaviourProjection(reference, None, int(name[-1]), 3),
                        page=3, clock=clock)
        await runner.restore()
        await runner.catch_up()
    want = await stored(reference, BEHAVIOUR_KINDS)
    plans = [{1: "after", 2: "before"}, {3: "after"}, {2: "before", 4: "after"}]
    for i, plan in enumerate(plans):
        # A new shard (a new process) after each crash; nothing shared.
        wrapped = await fold_through(
            store, lambda i=i: BehaviourProjection(store, None, i, 3), 3, plan)
        assert wrapped.hit == sorted(plan)
    assert await stored(store, BEHAVIOUR_KINDS) == want


async def test_rebuild_forgets_the_unsharded_checkpoint_and_rewrites_its_results(
        stores: MakeStore, every_batch: None, tmp_path: Path) -> None:
    store = await stores(value_sales())
    await closings(store)
    # The unsharded projection's results as an older version left them (stale here).
    old = {"user_id": "u0", "bids": 999}
    assert await store.save_projection("behaviour", 0, N_AUCTIONS,
                                       [("behaviour", "u0", old),
                                        ("behaviour_market", "summary", {"auctions": 999})])
    settings = Settings(data_dir=tmp_path / "data", store_url_override=f"sqlite:///{store.path}",
                        behaviour_shards=3)
    assert await maintenance.rebuild(settings, resume=False) == 0
    assert await store.projection_checkpoint("behaviour") == 0
    for i in range(3):
        assert await store.projection_checkpoint(f"behaviour.{i}") == N_AUCTIONS
    docs = await stored(store, BEHAVIOUR_KINDS)
    assert docs["behaviour_market", "summary"]["auctions"] == N_AUCTIONS
    assert docs.get(("behaviour", "u0")) != old


# -- ClosingFacts ------------------------------------------------------------------------------
class Loads:
    """A store whose auction loads wait for `go`, counted; `fail` makes the next one raise."""

    def __init__(self) -> None:
        self.go = asyncio.Event()
        self.calls = 0
        self.fail = False

    async def get_auction(self, auction_id: str) -> dict[str, Any] | None:
        self.calls += 1
        await self.go.wait()
        if self.fail:
            self.fail = False
            raise OSError("store down")
        return None  # no such auction: nothing more is read


async def test_closing_facts_loads_once_for_waiting_shards_retries_failures_and_is_bounded(
        ) -> None:
    store = Loads()
    facts = ClosingFacts(cast(Store, store), takers=3, capacity=2)
    row = {"pos": 1, "auction_id": "A"}
    waiting = [asyncio.ensure_future(facts.get(row)) for _ in range(3)]
    await asyncio.sleep(0)
    store.go.set()
    assert await asyncio.gather(*waiting) == [None, None, None]
    assert store.calls == 1 and facts.loads == 1
    assert await facts.get(row) is None and store.calls == 2  # taken by all three: dropped
    # A failed load is not kept: the next shard to ask loads again.
    store.fail = True
    other = {"pos": 2, "auction_id": "B"}
    with pytest.raises(OSError, match="store down"):
        await facts.get(other)
    assert await facts.get(other) is None and store.calls == 4
    # At most `capacity` entries: the oldest go first.
    for pos in (3, 4, 5):
        await facts.get({"pos": pos, "auction_id": "C"})
    assert store.calls == 7
    await facts.get({"pos": 3, "auction_id": "C"})  # evicted: loaded again
    assert store.calls == 8
    await facts.get({"pos": 5, "auction_id": "C"})  # still there
    assert store.calls == 8


def test_one_shard_is_the_unsharded_projection() -> None:
    projection = BehaviourProjection(cast(Store, None))
    assert (projection.name, projection.kinds) == ("behaviour.0",
                                                   ("behaviour", "behaviour_market"))
    assert projection.behaviour.owns is None  # keeps every user
