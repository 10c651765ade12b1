"""Mongo-specific ownership feed (storage.mongo_ownership): without transactions, a change's
row rides in the change's own single-document write (`ownership_pending`) and is placed in the
feed right after; a crash between any two writes leaves it pending, and the retry, the next
write to the asset or the next `open` places it, exactly once and in the asset's order."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import pytest_asyncio

from market.provenance import token_id_for
from storage.base import offer_lock
from storage.mongo import MongoStore
from storage.mongo_ownership import PENDING
from tests.storage.conftest import Backend
from tests.storage.mongo_faults import count_writes, crash_then
from tests.storage.test_facts_contract import deal
from tests.storage.test_offers_contract import handover
from tests.storage.test_ownership_contract import feed, moves
from tests.storage.test_provenance_contract import copy, follow, listed_token, mint, minted
from tests.storage.test_provenance_contract import sale as auction_transfer


@pytest_asyncio.fixture
async def stores(mongo_backend: Backend[MongoStore]) -> list[MongoStore]:
    """The store that crashes, and another (another process) that retries."""
    return [await mongo_backend.open() for _ in range(2)]


def hows(rows: list[Any]) -> list[tuple[str, str, str | None]]:
    return [(r["how"], r["asset_id"], r["to_user"]) for r in rows]


async def pending(store: MongoStore, asset_id: str) -> list[Any]:
    doc = await store.assets.find_one({"_id": asset_id}, {PENDING: 1})
    return list((doc or {}).get(PENDING) or [])


PLACE = ["counters.find_one_and_update", "ownership.update_one", "assets.update_one"]
CREATE_WRITES = ["assets.insert_one", *PLACE]


async def test_create_asset_takes_the_writes_the_crash_tests_cover(
        stores: list[MongoStore]) -> None:
    store = stores[0]
    a = copy("a1", "u1")
    assert await count_writes(store, lambda: store.create_asset(a, mint(a))) == CREATE_WRITES


@pytest.mark.parametrize("landed", [False, True], ids=["lost", "landed"])
@pytest.mark.parametrize("at", range(1, len(CREATE_WRITES) + 1))
async def test_a_crash_in_create_asset_leaves_its_row_to_the_next_open(
        mongo_backend: Backend[MongoStore], stores: list[MongoStore], at: int,
        landed: bool) -> None:
    store = stores[0]
    a = copy("a1", "u1")
    await crash_then(store, at, landed, lambda: store.create_asset(a, mint(a)))
    exists = at > 1 or landed
    reopened = await mongo_backend.open()  # a restarted process places what is pending
    assert hows(await feed(reopened)) == ([("mint", "a1", "u1")] if exists else [])
    assert await pending(reopened, "a1") == []
    again = await mongo_backend.open()  # opened again (another process): nothing more
    assert len(await feed(again)) == int(exists)


SETTLE_ROW = ["assets.update_one", *PLACE]  # the first writes of settle (test_mongo_facts)


@pytest.mark.parametrize("landed", [False, True], ids=["lost", "landed"])
@pytest.mark.parametrize("at", range(1, len(SETTLE_ROW) + 1))
async def test_a_crash_in_settle_then_a_retry_appends_its_row_once(
        stores: list[MongoStore], at: int, landed: bool) -> None:
    store, other = stores
    token, m = await listed_token(store, "x1")
    t = deal("x1")
    transfer = auction_transfer(token, m, "x1", "u1", "u2")
    await crash_then(store, at, landed, lambda: store.settle(t, transfer))
    assert await other.settle(t, transfer) is True
    assert await other.settle(t, transfer) is False
    rows = await feed(other)
    assert moves(rows) == [("mint", "as-x1", None, "u1", None, None, None, None),
                           ("auction", "as-x1", "u1", "u2", 250, 0, 0, "x1")]
    assert await pending(other, "as-x1") == []


@pytest.mark.parametrize("landed", [False, True], ids=["lost", "landed"])
@pytest.mark.parametrize("at", range(1, len(PLACE) + 2))
async def test_a_crash_in_a_move_then_the_swap_appends_its_row_once(
        stores: list[MongoStore], at: int, landed: bool) -> None:
    store, other = stores
    token, m = await minted(store, "a1", "u1")
    lock = offer_lock("o1")
    await store.lock_assets(lock, [("a1", "u1")])
    rec = handover(token, m, "u1", "u2", "o1", at=m["at"] + 5)
    await crash_then(store, at, landed,
                     lambda: store.move_locked_asset(lock, "a1", "u1", "u2", rec))
    moved = at > 1 or landed
    assert await other.move_locked_asset(lock, "a1", "u1", "u2", rec) is not moved
    assert hows(await feed(other)) == [("mint", "a1", "u1"), ("offer", "a1", "u2")]


@pytest.mark.parametrize("landed", [False, True], ids=["lost", "landed"])
@pytest.mark.parametrize("at", range(1, len(PLACE) + 2))
async def test_a_crash_in_append_provenance_then_a_retry_appends_its_row_once(
        stores: list[MongoStore], at: int, landed: bool) -> None:
    store, other = stores
    token, m = await minted(store, "a1", "u1")
    gift = follow(token, m, "transfer", "u1", "u2")
    await crash_then(store, at, landed, lambda: store.append_provenance(token, gift))
    await other.append_provenance(token, gift)
    await other.append_provenance(token, gift)
    assert hows(await feed(other)) == [("mint", "a1", "u1"), ("transfer", "a1", "u2")]


async def test_a_row_left_pending_is_placed_before_the_assets_next_change(
        stores: list[MongoStore]) -> None:
    store, other = stores
    token, m = await listed_token(store, "x1")
    t = deal("x1")
    transfer = auction_transfer(token, m, "x1", "u1", "u2")
    # The process dies right after the sale moved the asset: its row is pending.
    await crash_then(store, "counters.find_one_and_update", False,
                     lambda: store.settle(t, transfer))
    assert [c["how"] for c in await pending(other, "as-x1")] == ["auction"]
    # Before any retry, the buyer gives the card away: both rows, in order.
    await other.append_provenance(token, follow(token, transfer, "transfer", "u2", "u3"))
    assert hows(await feed(other)) == [("mint", "as-x1", "u1"), ("auction", "as-x1", "u2"),
                                       ("transfer", "as-x1", "u3")]
    assert await other.settle(t, transfer) is True  # the settle's retry: no second row
    assert len(await feed(other)) == 3


async def test_concurrent_placers_place_a_row_once(stores: list[MongoStore]) -> None:
    store, other = stores
    token, m = await listed_token(store, "x1")
    t = deal("x1")
    await crash_then(store, "counters.find_one_and_update", False,
                     lambda: store.settle(t, auction_transfer(token, m, "x1", "u1", "u2")))
    placed = await asyncio.gather(*(s._flush_ownership("as-x1") for s in (store, other,
                                                                         store, other)))
    assert sum(placed) == 1
    assert hows(await feed(other)) == [("mint", "as-x1", "u1"), ("auction", "as-x1", "u2")]
    assert token_id_for("as-x1") == (await feed(other))[1]["token_id"]


async def test_a_move_and_a_transfer_take_the_writes_the_crash_tests_cover(
        stores: list[MongoStore]) -> None:
    store = stores[0]
    token, m = await minted(store, "a1", "u1")
    gift = follow(token, m, "transfer", "u1", "u2")
    assert await count_writes(store, lambda: store.append_provenance(token, gift)) == \
        ["assets.update_one", *PLACE]
    lock = offer_lock("o1")
    await store.lock_assets(lock, [("a1", "u2")])
    rec = handover(token, gift, "u2", "u3", "o1", at=m["at"] + 5)
    assert await count_writes(
        store, lambda: store.move_locked_asset(lock, "a1", "u2", "u3", rec)) == \
        ["assets.update_one", *PLACE]
