"""Mongo-specific behaviour: recovery of half-done multi-step writes (no transactions)."""

from __future__ import annotations

import contextlib
import datetime
import time
from collections.abc import Iterator
from typing import Any, cast

import pytest
import pytest_asyncio
from pymongo.errors import PyMongoError

import storage.mongo
from market.provenance import token_id_for
from storage import CommitBatch, Conflict, StoreError
from storage.mongo import MongoStore
from tests.storage.conftest import Backend, RawDb
from tests.storage.mongo_faults import crashing
from tests.storage.test_contract import T0, asset, auction, event, finish, listed, trade, view
from tests.storage.test_provenance_contract import listed_token, mint, sale, verified

type Mongo = tuple[MongoStore, RawDb]


@pytest_asyncio.fixture
async def mongo(mongo_backend: Backend[MongoStore], mongo_db: RawDb) -> Mongo:
    """A store on a fresh database, and the database through a plain client."""
    return await mongo_backend.open(), mongo_db


async def half_written_commit(store: MongoStore, batch: CommitBatch) -> None:
    """Commit `batch` with its event insert succeeding and its view/snapshot write failing."""
    with crashing(store, "auctions.bulk_write"), pytest.raises(StoreError):
        await store.commit(batch)


# -- create_auction: orphan claims, judged by the server's clock ---------------------------
async def age_claim(raw: RawDb, aid: str, s: float) -> None:
    """Backdate asset `aid`'s listing claim by `s` seconds of the clock that stamped it."""
    assets = raw["assets"]
    doc = await assets.find_one({"_id": aid})
    assert doc is not None and doc["listed_in"] is not None
    at = doc["listed_at"]
    older = at - datetime.timedelta(seconds=s) if isinstance(at, datetime.datetime) else at - s
    res = await assets.update_one({"_id": aid, "listed_at": at}, {"$set": {"listed_at": older}})
    assert res.modified_count == 1


async def test_orphan_claim_is_reclaimed_only_when_stale(mongo: Mongo) -> None:
    store, raw = mongo
    orphan_s = storage.mongo.ORPHAN_CLAIM_S
    await store.create_asset(asset("a1", "u1"))
    # A create_auction that crashed after claiming the asset but before inserting "ghost".
    assert await store._claim("a1", "u1", "ghost") is True
    with pytest.raises(Conflict) as err:  # recent claim: may still be in flight
        await store.create_auction(auction("x1", "a1", "u1"))
    assert err.value.code == "ASSET_LISTED"
    await age_claim(raw, "a1", orphan_s - 2)
    with pytest.raises(Conflict) as err:
        await store.create_auction(auction("x1", "a1", "u1"))
    assert err.value.code == "ASSET_LISTED"
    await age_claim(raw, "a1", 3)  # now older than ORPHAN_CLAIM_S
    await store.create_auction(auction("x1", "a1", "u1"))
    assert (await store.get_asset("a1") or {})["listed_in"] == "x1"
    # However old, a claim whose auction exists is a live listing, never an orphan.
    await age_claim(raw, "a1", 10 * orphan_s)
    with pytest.raises(Conflict) as err:
        await store.create_auction(auction("x2", "a1", "u1"))
    assert err.value.code == "ASSET_LISTED"
    # The crashed attempt, retried late, finds the asset taken.
    with pytest.raises(Conflict) as err:
        await store.create_auction(auction("ghost", "a1", "u1"))
    assert err.value.code == "ASSET_LISTED"
    assert (await store.get_asset("a1") or {})["listed_in"] == "x1"


async def test_claim_stamped_by_an_older_version_counts_as_stale(mongo: Mongo) -> None:
    # Earlier versions stamped listed_at with the claiming process's time.time().
    store, raw = mongo
    await store.create_asset(asset("a1", "u1"))
    await raw["assets"].update_one(
        {"_id": "a1"}, {"$set": {"listed_in": "ghost", "listed_at": time.time()}}
    )
    await store.create_auction(auction("x1", "a1", "u1"))
    assert (await store.get_asset("a1") or {})["listed_in"] == "x1"


class _SkewedTime:
    """The `time` module as storage.mongo sees it, with the wall clock off by `skew` s."""

    def __init__(self, skew: float) -> None:
        self.skew = skew

    def time(self) -> float:
        return time.time() + self.skew

    def time_ns(self) -> int:
        return time.time_ns() + int(self.skew * 1e9)

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


@contextlib.contextmanager
def wall_clock_skew(skew: float) -> Iterator[None]:
    """Skew the local wall clock for the storage.mongo calls made inside the block only.

    The reference clock - the MongoDB server's (mongoeco reads its own) - is unaffected.
    """
    with pytest.MonkeyPatch.context() as mp:
        # raising=False: storage.mongo is not supposed to read a local clock at all.
        mp.setattr(storage.mongo, "time", _SkewedTime(skew), raising=False)
        yield


HOUR = 3600.0


@pytest.mark.parametrize("skew", [HOUR, -HOUR], ids=["ahead", "behind"])
@pytest.mark.parametrize("skewed", ["claimer", "observer"])
async def test_claim_takeover_ignores_skewed_host_clocks(
    mongo: Mongo, mongo_backend: Backend[MongoStore], skewed: str, skew: float
) -> None:
    store, raw = mongo
    other = await mongo_backend.open()  # another process, same database
    claimer_skew, observer_skew = (skew, 0.0) if skewed == "claimer" else (0.0, skew)
    await store.create_asset(asset("a1", "u1"))
    # store's create_auction("x1") is in flight: asset claimed, auction not inserted yet.
    with wall_clock_skew(claimer_skew):
        assert await store._claim("a1", "u1", "x1") is True
    with wall_clock_skew(observer_skew), pytest.raises(Conflict) as err:
        await other.create_auction(auction("y1", "a1", "u1"))
    assert err.value.code == "ASSET_LISTED"
    assert (await other.get_asset("a1") or {})["listed_in"] == "x1"

    # x1's creator died. Once the claim is older than ORPHAN_CLAIM_S by the reference
    # clock, the other process reclaims it, whatever its own clock says.
    await age_claim(raw, "a1", storage.mongo.ORPHAN_CLAIM_S + 1)
    with wall_clock_skew(observer_skew):
        await other.create_auction(auction("y1", "a1", "u1"))
    assert (await other.get_asset("a1") or {})["listed_in"] == "y1"
    with wall_clock_skew(claimer_skew), pytest.raises(Conflict) as err:
        await store.create_auction(auction("x1", "a1", "u1"))
    assert err.value.code == "ASSET_LISTED"
    assert [r["auction_id"] for r in await store.open_auctions()] == ["y1"]


async def test_retried_create_auction_completes_own_claim(mongo: Mongo) -> None:
    store, _ = mongo
    await store.create_asset(asset("a1", "u1"))
    assert await store._claim("a1", "u1", "x1") is True  # the first attempt died here
    await store.create_auction(auction("x1", "a1", "u1"))
    assert (await store.get_auction("x1") or {})["asset_id"] == "a1"
    with pytest.raises(Conflict) as err:
        await store.create_auction(auction("x1", "a1", "u1"))
    assert err.value.code == "AUCTION_EXISTS"


# -- settle: a retry after a crash at any step converges -----------------------------------
@pytest.mark.parametrize("write", ["trades.insert_one", "auctions.update_one"],
                         ids=["after-asset-moved", "after-trade-recorded"])
@pytest.mark.parametrize("resold", [False, True], ids=["retry", "retry-after-resale"])
async def test_settle_retry_after_crash_records_trade_once(
    mongo: Mongo, write: str, resold: bool
) -> None:
    store, _ = mongo
    await listed(store, "x1")
    await finish(store, "x1", "closed")
    t = trade("x1", "u2", 250, T0 + 61)
    with crashing(store, write), pytest.raises(PyMongoError):
        await store.settle(t)
    assert (await store.get_asset("as-x1") or {})["owner_id"] == "u2"
    assert (await store.get_auction("x1") or {})["settled"] is False
    if resold:  # the buyer already owns it, so may relist and sell it before the retry
        await store.create_auction(auction("x2", "as-x1", "u2"))
        await finish(store, "x2", "closed")
        t2 = {**trade("x2", "u3", 300, T0 + 200, seller="u2"), "asset_id": "as-x1"}
        assert await store.settle(t2) is True

    assert await store.settle(t) is True
    assert await store.settle(t) is False
    assert await store.get_trade("x1") == t
    assert [x["auction_id"] for x in await store.list_trades(user_id="u1")] == ["x1"]
    rec = await store.get_auction("x1")
    assert rec is not None and (rec["settled"], rec["settle_error"]) == (True, None)
    assert (await store.get_asset("as-x1") or {})["owner_id"] == ("u3" if resold else "u2")


async def test_settle_retry_after_crash_when_asset_moved(mongo: Mongo) -> None:
    store, _ = mongo
    await listed(store, "x1")
    await finish(store, "x1", "closed")
    await store.assets.update_one({"_id": "as-x1"}, {"$set": {"owner_id": "u9"}})
    t = trade("x1", "u2", 250, T0 + 61)
    with crashing(store, "auctions.update_one"), pytest.raises(PyMongoError):
        await store.settle(t)
    assert await store.settle(t) is False
    rec = await store.get_auction("x1")
    assert rec is not None and (rec["settled"], rec["settle_error"]) == (True, "ASSET_MOVED")
    assert await store.list_trades() == []
    assert (await store.get_asset("as-x1") or {})["owner_id"] == "u9"


@pytest.mark.parametrize("write", ["trades.insert_one", "auctions.update_one"],
                         ids=["after-asset-moved", "after-trade-recorded"])
@pytest.mark.parametrize("resold", [False, True], ids=["retry", "retry-after-resale"])
async def test_settle_retry_after_crash_appends_the_transfer_once(
    mongo: Mongo, write: str, resold: bool
) -> None:
    """The transfer is pushed by the update that moves the asset; whatever a retry passes
    (the same record, or none as the host does once it sees it in the chain), it is there
    exactly once."""
    store, _ = mongo
    token, m = await listed_token(store, "x1")
    t = trade("x1", "u2", 250, T0 + 61)
    transfer = sale(token, m, "x1", "u1", "u2")
    with crashing(store, write), pytest.raises(PyMongoError):
        await store.settle(t, transfer)
    assert await store.load_provenance(token) == [m, transfer]
    chain = [m, transfer]
    if resold:  # the buyer relists and sells it before the retry
        await store.create_auction(auction("x2", "as-x1", "u2"))
        await finish(store, "x2", "closed")
        resale = sale(token, transfer, "x2", "u2", "u3", price=300)
        t2 = {**trade("x2", "u3", 300, T0 + 200, seller="u2"), "asset_id": "as-x1"}
        assert await store.settle(t2, resale) is True
        chain.append(resale)
    assert await store.settle(t, transfer) is True
    assert await store.settle(t, transfer) is False
    assert await store.settle(t) is False
    assert await verified(store, token) == chain
    assert (await store.get_asset("as-x1") or {})["owner_id"] == chain[-1]["to"]
    assert await store.get_trade("x1") == t


async def test_a_chain_fenced_settle_raises_and_leaves_the_sale_to_do(mongo: Mongo) -> None:
    store, raw = mongo
    token, m = await listed_token(store, "x1")
    # Someone appended behind the store's back: the sale's record no longer extends it.
    extra = {**m, "seq": 2}
    await raw["assets"].update_one({"_id": "as-x1"},
                                                   {"$push": {"provenance": extra}})
    with pytest.raises(Conflict) as err:
        await store.settle(trade("x1", "u2", 250, T0 + 61), sale(token, m, "x1", "u1", "u2"))
    assert err.value.code == "PROVENANCE_CONFLICT"
    got = await store.get_asset("as-x1")
    assert got is not None and (got["owner_id"], got["listed_in"]) == ("u1", "x1")
    assert (await store.get_auction("x1") or {})["settled"] is False


# -- commit --------------------------------------------------------------------------------
async def test_half_written_commit_keeps_events_and_a_view_commit_repairs_it(
    mongo: Mongo,
) -> None:
    store, _ = mongo
    await listed(store, "x1")
    evs = [event("x1", 1), event("x1", 2)]
    fresh, snap = view("x1", "closed", 2), {"seq": 2}
    await half_written_commit(
        store, CommitBatch(events=evs, views={"x1": fresh}, snapshots={"x1": snap})
    )
    assert await store.load_events("x1") == evs  # durable, as documented
    stale = await store.get_auction("x1")
    assert stale is not None
    assert (stale["status"], stale["seq"], stale["snapshot"]) == ("scheduled", 0, None)

    # What the host does after recovery: re-commit the view (and snapshot) alone.
    assert await store.commit(CommitBatch(views={"x1": fresh}, snapshots={"x1": snap})) == set()
    rec = await store.get_auction("x1")
    assert rec is not None
    assert (rec["view"], rec["status"], rec["seq"], rec["snapshot"]) == (fresh, "closed", 2, snap)
    assert await store.load_events("x1") == evs


async def test_fenced_events_leave_no_trace_in_collection(
    mongo: Mongo,
) -> None:
    store, raw = mongo
    await store.commit(CommitBatch(events=[event("x1", 1)]))
    fenced = await store.commit(CommitBatch(events=[event("x1", s) for s in (1, 2, 3)]))
    assert fenced == {"x1"}
    stored = raw["events"].find({"auction_id": "x1"}, {"seq": 1, "_id": 0})
    assert [d["seq"] async for d in stored] == [1]


async def test_relaxed_write_concern(mongo_uri: str, mongo_db: RawDb) -> None:
    store = MongoStore(mongo_uri, db_name=mongo_db.name, write_concern=1, journal=False)
    await store.open()
    try:
        assert await store.commit(CommitBatch(events=[event("x1", 1)])) == set()
        assert await store.load_events("x1") == [event("x1", 1)]
    finally:
        await store.close()


# -- the catalog on a database written before it -------------------------------------------
async def test_assets_written_before_the_catalog(
        mongo_db: RawDb, mongo_backend: Backend[MongoStore]) -> None:
    """Asset documents of an older version (no graded fields at all) are read with those
    fields None, never collide on the (grader, cert) index, and the index built on a
    database full of them still refuses a duplicate certificate."""
    await mongo_db["assets"].insert_many([
        {"_id": f"a_old{i}", "asset_id": f"a_old{i}", "owner_id": "u1", "title": "Old",
         "metadata": {}, "created_at": i, "listed_in": None, "listed_at": None}
        for i in range(3)])
    store = await mongo_backend.open()
    old = await store.get_asset("a_old0")
    assert old == {"asset_id": "a_old0", "owner_id": "u1", "title": "Old", "metadata": {},
                   "created_at": 0, "listed_in": None, "card_id": None, "grader": None,
                   "grade": None, "cert": None, "token_id": token_id_for("a_old0")}
    assert [a["asset_id"] for a in await store.list_assets("u1")] == [
        "a_old0", "a_old1", "a_old2"]
    copy: Any = {**asset("a_new", "u2"), "card_id": "card_1", "grader": "PSA",
                 "grade": 10, "cert": "77", "token_id": "1"}
    await store.create_asset(copy)
    with pytest.raises(Conflict) as err:
        await store.create_asset({**copy, "asset_id": "a_dup"})
    assert err.value.code == "CERT_EXISTS"
    assert await store.population("card_1") == [{"grader": "PSA", "grade": 10, "count": 1}]
    indexes = await mongo_db["assets"].index_information()
    assert indexes["grader_cert"]["unique"] is True
    assert indexes["token_id"]["unique"] is True
    # Their tokens (derived when the store opened) have empty chains, which a mint can
    # start even though the documents have no `provenance` field at all.
    token = token_id_for("a_old1")
    assert (await store.get_asset_by_token(token) or {})["asset_id"] == "a_old1"
    assert await store.load_provenance(token) == []
    first = mint(cast(Any, {"asset_id": "a_old1", "owner_id": "u1"}))
    await store.append_provenance(token, first)
    assert await verified(store, token) == [first]
