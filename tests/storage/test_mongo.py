"""Mongo-specific behaviour: recovery of half-done create_auction (no transactions)."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from pymongo import AsyncMongoClient

from storage import CommitBatch, Conflict
from storage.mongo import ORPHAN_CLAIM_S, MongoStore
from tests.storage.test_contract import asset, auction, event


@pytest_asyncio.fixture
async def mongo(mongo_uri: str) -> AsyncIterator[tuple[MongoStore, AsyncMongoClient[dict]]]:
    db_name = f"ece_test_{uuid.uuid4().hex[:12]}"
    store = MongoStore(mongo_uri, db_name=db_name)
    raw: AsyncMongoClient[dict] = AsyncMongoClient(mongo_uri)
    await store.open()
    try:
        yield store, raw
    finally:
        await store.close()
        await raw.drop_database(db_name)
        await raw.close()


async def test_orphan_claim_is_reclaimed_only_when_stale(
    mongo: tuple[MongoStore, AsyncMongoClient[dict]],
) -> None:
    store, raw = mongo
    assets = raw[store.db_name]["assets"]
    await store.create_asset(asset("a1", "u1"))
    # A create_auction that crashed after claiming the asset but before inserting "ghost".
    await assets.update_one(
        {"_id": "a1"}, {"$set": {"listed_in": "ghost", "listed_at": time.time()}}
    )
    with pytest.raises(Conflict) as err:  # recent claim: may still be in flight
        await store.create_auction(auction("x1", "a1", "u1"))
    assert err.value.code == "ASSET_LISTED"
    await assets.update_one(
        {"_id": "a1"}, {"$set": {"listed_at": time.time() - ORPHAN_CLAIM_S - 1}}
    )
    await store.create_auction(auction("x1", "a1", "u1"))
    assert (await store.get_asset("a1") or {})["listed_in"] == "x1"


async def test_retried_create_auction_completes_own_claim(
    mongo: tuple[MongoStore, AsyncMongoClient[dict]],
) -> None:
    store, raw = mongo
    await store.create_asset(asset("a1", "u1"))
    await raw[store.db_name]["assets"].update_one(
        {"_id": "a1"}, {"$set": {"listed_in": "x1", "listed_at": time.time()}}
    )
    await store.create_auction(auction("x1", "a1", "u1"))
    assert (await store.get_auction("x1") or {})["asset_id"] == "a1"
    with pytest.raises(Conflict) as err:
        await store.create_auction(auction("x1", "a1", "u1"))
    assert err.value.code == "AUCTION_EXISTS"


async def test_fenced_events_leave_no_trace_in_collection(
    mongo: tuple[MongoStore, AsyncMongoClient[dict]],
) -> None:
    store, raw = mongo
    await store.commit(CommitBatch(events=[event("x1", 1)]))
    fenced = await store.commit(CommitBatch(events=[event("x1", s) for s in (1, 2, 3)]))
    assert fenced == {"x1"}
    stored = raw[store.db_name]["events"].find({"auction_id": "x1"}, {"seq": 1, "_id": 0})
    assert [d["seq"] async for d in stored] == [1]


async def test_relaxed_write_concern(mongo_uri: str) -> None:
    db_name = f"ece_test_{uuid.uuid4().hex[:12]}"
    store = MongoStore(mongo_uri, db_name=db_name, write_concern=1, journal=False)
    await store.open()
    try:
        assert await store.commit(CommitBatch(events=[event("x1", 1)])) == set()
        assert await store.load_events("x1") == [event("x1", 1)]
    finally:
        await store.close()
        raw: AsyncMongoClient[dict] = AsyncMongoClient(mongo_uri)
        await raw.drop_database(db_name)
        await raw.close()
