"""Mongo-specific fact feeds (storage.mongo_facts): without transactions, a write path appends
its facts in idempotent steps before the step that decides its answer, so a crash between
any two writes and a retry append each fact exactly once; positions come from counters, so
a position taken but never written is a gap readers see, and later ones still come in order.
"""

from __future__ import annotations

from typing import Any

import pytest
import pytest_asyncio

import storage.mongo_facts
from storage import Conflict, StoreError
from storage.base import offer_lock
from storage.facts import ASSET_MOVED_OUTCOME, PAYMENT_FAILED_OUTCOME, SOLD, UNSOLD
from storage.mongo import MongoStore
from storage.mongo_facts import CLOSINGS_POS, SALES_POS
from tests.storage.conftest import Backend, tamper_asset
from tests.storage.mongo_faults import count_writes, crash_then, crashing, interposing
from tests.storage.test_facts_contract import (
    all_closings,
    all_sales,
    auction_sale,
    deal,
    message,
    outcomes,
    positions,
    sale,
    unplaced,
)
from tests.storage.test_offers_contract import handover
from tests.storage.test_provenance_contract import AT, listed_token, minted, verified
from tests.storage.test_provenance_contract import sale as auction_transfer


@pytest_asyncio.fixture
async def stores(mongo_backend: Backend[MongoStore]) -> list[MongoStore]:
    """Two independent store instances on a fresh database: the one that crashes, and the
    one (another process) that retries."""
    return [await mongo_backend.open() for _ in range(2)]


async def counter(store: MongoStore, name: str) -> int:
    doc = await store._coll("counters").find_one({"_id": name})
    return 0 if doc is None else int(doc["n"])


# -- settle: the facts before `settled` ------------------------------------------------------
SETTLE_WRITES = [
    "assets.update_one",  # the asset moves, its transfer and ownership row appended
    "trades.insert_one",
    "counters.find_one_and_update", "ownership.update_one",  # the row placed in the feed
    "assets.update_one",  # and pulled off the asset's pending list (storage.mongo_ownership)
    "sales.bulk_write", "counters.find_one_and_update", "sales.bulk_write",  # the sale:
    # stored unplaced, a position, placed
    "counters.find_one_and_update", "closings.bulk_write",  # the closing
    "auctions.update_one",  # settled: decides the answer
]


async def test_settle_takes_the_writes_the_crash_tests_cover(
        stores: list[MongoStore]) -> None:
    store = stores[0]
    token, m = await listed_token(store, "x1")
    transfer = auction_transfer(token, m, "x1", "u1", "u2")
    assert await count_writes(store, lambda: store.settle(deal("x1"), transfer)) == \
        SETTLE_WRITES


@pytest.mark.parametrize("landed", [False, True], ids=["lost", "landed"])
@pytest.mark.parametrize("at", range(1, len(SETTLE_WRITES) + 1))
async def test_a_crash_anywhere_in_settle_then_a_retry_appends_each_fact_once(
        stores: list[MongoStore], at: int, landed: bool) -> None:
    store, other = stores
    token, m = await listed_token(store, "x1")
    t = deal("x1")
    transfer = auction_transfer(token, m, "x1", "u1", "u2")
    await crash_then(store, at, landed, lambda: store.settle(t, transfer))
    # The retry (the saga, maybe in another process) reports the sale unless the crashed
    # call's last write, `settled`, landed: its True was lost with the reply.
    decided = landed and at == len(SETTLE_WRITES)
    assert await other.settle(t, transfer) is not decided
    assert await other.settle(t, transfer) is False
    assert unplaced(await all_sales(other)) == [auction_sale(t)]
    assert await outcomes(other) == [("x1", SOLD)]
    assert await other.get_trade("x1") == t
    assert await verified(other, token) == [m, transfer]


@pytest.mark.parametrize("landed", [False, True], ids=["lost", "landed"])
@pytest.mark.parametrize("at", [1, 2, 3])  # closing position, closing row, `settled`
async def test_a_crash_in_an_asset_moved_settle_then_a_retry_closes_it_once(
        stores: list[MongoStore], at: int, landed: bool) -> None:
    store, other = stores
    await listed_token(store, "x1")
    await tamper_asset(store, "as-x1", owner_id="u3", listed_in=None)
    t = deal("x1")
    await crash_then(store, at, landed, lambda: store.settle(t))
    assert await other.settle(t) is False
    assert await other.settle(t) is False
    assert await all_sales(other) == []
    assert await outcomes(other) == [("x1", ASSET_MOVED_OUTCOME)]
    rec = await other.get_auction("x1")
    assert rec is not None and (rec["settled"], rec["settle_error"]) == (True, "ASSET_MOVED")


# -- release and fail_payment: the closing before `settled` ----------------------------------
@pytest.mark.parametrize("landed", [False, True], ids=["lost", "landed"])
@pytest.mark.parametrize("at", [1, 2, 3, 4])  # unlist, closing position, closing, `settled`
async def test_a_crash_anywhere_in_release_then_a_retry_closes_it_once(
        stores: list[MongoStore], at: int, landed: bool) -> None:
    store, other = stores
    await listed_token(store, "x1")
    await crash_then(store, at, landed, lambda: store.release("x1", "as-x1"))
    decided = landed and at == 4
    assert await other.release("x1", "as-x1") is not decided
    assert await other.release("x1", "as-x1") is False
    assert await outcomes(other) == [("x1", UNSOLD)]
    got = await other.get_asset("as-x1")
    assert got is not None and got["listed_in"] is None


@pytest.mark.parametrize("landed", [False, True], ids=["lost", "landed"])
@pytest.mark.parametrize("at", [1, 2, 3, 4])  # unlist, closing position, closing, `settled`
async def test_a_crash_anywhere_in_fail_payment_then_a_retry_closes_it_once(
        stores: list[MongoStore], at: int, landed: bool) -> None:
    store, other = stores
    await listed_token(store, "x1")
    t = deal("x1")
    await crash_then(store, at, landed, lambda: store.fail_payment(t))
    decided = landed and at == 4
    assert await other.fail_payment(t) is not decided
    assert await other.fail_payment(t) is False
    assert await other.settle(t) is False
    assert await all_sales(other) == []
    assert await outcomes(other) == [("x1", PAYMENT_FAILED_OUTCOME)]


async def test_the_closing_steps_are_the_ones_the_crash_tests_cover(
        stores: list[MongoStore]) -> None:
    store = stores[0]
    for aid in ("x1", "x2", "x3"):
        await listed_token(store, aid)
    closing = ["counters.find_one_and_update", "closings.bulk_write", "auctions.update_one"]
    assert await count_writes(store, lambda: store.release("x1", "as-x1")) == [
        "assets.update_one", *closing]
    assert await count_writes(store, lambda: store.fail_payment(deal("x2"))) == [
        "assets.update_one", *closing]
    await tamper_asset(store, "as-x3", listed_in=None)
    assert await count_writes(store, lambda: store.settle(deal("x3"))) == [
        "assets.update_one", *closing]


# -- move_locked_asset: the sale just before the move ----------------------------------------
MOVE_WRITES = ["sales.bulk_write", "counters.find_one_and_update", "sales.bulk_write",
               "assets.update_one",
               # its ownership row placed and pulled off the pending list
               "counters.find_one_and_update", "ownership.update_one", "assets.update_one"]


@pytest.mark.parametrize("landed", [False, True], ids=["lost", "landed"])
@pytest.mark.parametrize("at", range(1, len(MOVE_WRITES) + 1))
async def test_a_crash_anywhere_in_a_priced_move_then_the_swap_appends_its_sale_once(
        stores: list[MongoStore], at: int, landed: bool) -> None:
    store, other = stores
    token, m = await minted(store, "a1", "u1")
    lock = offer_lock("o1")
    await store.lock_assets(lock, [("a1", "u1")])
    rec = handover(token, m, "u1", "u2", "o1", price=700, at=AT + 5_000)
    await crash_then(store, at, landed,
                     lambda: store.move_locked_asset(lock, "a1", "u1", "u2", rec))
    # The swap's retry (actors.swap) moves the asset again only if its chain does not show
    # the move: the sale must be in the feed either way.
    chain = await other.load_provenance(token) or []
    if not any(r["kind"] == "transfer" and r["ref"] == "o1" for r in chain):
        assert await other.move_locked_asset(lock, "a1", "u1", "u2", rec) is True
    assert await other.move_locked_asset(lock, "a1", "u1", "u2", rec) is False
    assert [(s["key"], s["price"], s["buyer_id"]) for s in await all_sales(other)] == [
        ("offer:o1", 700, "u2")]
    assert await verified(other, token) == [m, rec]
    got = await other.get_asset("a1")
    assert got is not None and got["owner_id"] == "u2"


async def test_a_priced_move_takes_the_writes_the_crash_tests_cover(
        stores: list[MongoStore]) -> None:
    store = stores[0]
    token, m = await minted(store, "a1", "u1")
    lock = offer_lock("o1")
    await store.lock_assets(lock, [("a1", "u1")])
    rec = handover(token, m, "u1", "u2", "o1", price=700, at=AT + 5_000)
    assert await count_writes(
        store, lambda: store.move_locked_asset(lock, "a1", "u1", "u2", rec)) == MOVE_WRITES


async def test_a_refused_move_appends_no_sale(stores: list[MongoStore]) -> None:
    store = stores[0]
    token, m = await minted(store, "a1", "u1")
    lock = offer_lock("o1")
    await store.lock_assets(lock, [("a1", "u1")])
    rec = handover(token, m, "u1", "u2", "o1", price=700, at=AT + 5_000)
    stale = {**rec, "seq": 3}  # does not extend the chain
    with pytest.raises(Conflict) as refused:
        await store.move_locked_asset(lock, "a1", "u1", "u2", stale)  # type: ignore[arg-type]
    assert refused.value.code == "PROVENANCE_CONFLICT"
    with pytest.raises(Conflict) as refused:
        await store.move_locked_asset(offer_lock("o2"), "a1", "u1", "u2", rec)
    assert refused.value.code == "ASSET_MOVED"
    assert await all_sales(store) == []
    assert await counter(store, SALES_POS) == 0  # refused before a position was taken


# -- positions: gaps, and order after them ----------------------------------------------------
async def test_a_position_taken_but_never_written_is_a_gap_readers_pass(
        stores: list[MongoStore]) -> None:
    store, other = stores
    assert await store.add_sales([sale("k1"), sale("k2")]) == 2
    # A writer dies between taking positions 3..5 and placing its rows (stored unplaced).
    lost = [sale(f"lost{n}") for n in range(3)]
    await crash_then(store, 3, False, lambda: store.add_sales(lost))
    assert await counter(store, SALES_POS) == 5
    assert await other.add_sales([sale("k3"), sale("k4")]) == 2
    feed = await other.sales_feed(0)
    assert positions(feed) == [1, 2, 6, 7]  # the gap is visible: 3..5 never come
    assert [s["key"] for s in feed] == ["k1", "k2", "k3", "k4"]
    assert await other.sales_feed(2) == feed[2:]  # a reader past the gap
    assert await other.sales_position() == 7
    # The dead writer's rows, retried, come after everything before them.
    assert await store.add_sales(lost) == 3
    assert positions(await other.sales_feed(7)) == [8, 9, 10]
    assert await store.add_sales(lost) == 0


async def test_a_row_placed_by_another_call_meanwhile_leaves_a_gap(
        stores: list[MongoStore]) -> None:
    store, other = stores
    assert await store.add_sales([sale("k1")]) == 1
    # Stored unplaced by a call that died before taking its position ...
    await crash_then(store, 2, False, lambda: store.add_sales([sale("k2", price=1)]))
    assert await other.sales_feed(1) == []
    # ... then added again by two calls: both store it (matching the unplaced row, whose
    # values stand) and take a position; the first to place it wins, the other's position
    # stays unused.
    placed_by_other: list[int] = []

    async def other_call() -> None:
        placed_by_other.append(await other.add_sales([sale("k2", price=2)]))

    with interposing(store, 2, other_call) as hook:  # before this call takes positions
        assert await store.add_sales([sale("k2", price=3), sale("k3")]) == 1
    assert hook.fired and placed_by_other == [1]
    feed = await other.sales_feed(0)
    assert [(s["key"], s["price"], s["pos"]) for s in feed] == [
        ("k1", 100, 1), ("k2", 1, 2), ("k3", 100, 4)]  # position 3 (k2's here) a gap


async def test_a_closing_position_taken_by_a_dead_writer_is_a_gap(
        stores: list[MongoStore]) -> None:
    store, other = stores
    for aid in ("x1", "x2"):
        await listed_token(store, aid)
    # release("x1") dies after taking the closing's position (write 2 landed: the reply of
    # the $inc is lost), so its retry takes another.
    await crash_then(store, 2, True, lambda: store.release("x1", "as-x1"))
    assert await other.release("x1", "as-x1") is True
    assert await other.release("x2", "as-x2") is True
    feed = await all_closings(other)
    assert [(c["auction_id"], c["pos"]) for c in feed] == [("x1", 2), ("x2", 3)]
    assert await counter(other, CLOSINGS_POS) == 3


async def test_many_batches_each_take_their_own_positions(
        stores: list[MongoStore], monkeypatch: pytest.MonkeyPatch) -> None:
    store, other = stores
    monkeypatch.setattr(storage.mongo_facts, "FIRST_BATCH", 3)
    monkeypatch.setattr(storage.mongo_facts, "MIN_BATCH", 2)
    monkeypatch.setattr(storage.mongo_facts, "BATCH", 4)
    assert await other.add_sales([sale("k04"), sale("k09")]) == 2
    rows = [sale(f"k{n:02}", price=100 + n) for n in range(15)]
    with crashing(store, 0) as crash:
        assert await store.add_sales([*rows, rows[0]]) == 13
    assert crash.writes.count("sales.bulk_write") >= 2 * 4  # two per batch
    feed = await other.sales_feed(0)
    assert [s["key"] for s in feed] == ["k04", "k09", *(r["key"] for r in rows
                                                       if r["key"] not in ("k04", "k09"))]
    assert positions(feed) == list(range(1, 16))  # duplicates take no position: no gaps


async def test_a_counter_behind_its_feed_is_refused(stores: list[MongoStore]) -> None:
    store = stores[0]
    for aid in ("x1", "x2"):
        await listed_token(store, aid)
    assert await store.release("x1", "as-x1") is True
    await store._coll("counters").update_one({"_id": CLOSINGS_POS}, {"$set": {"n": 0}})
    with pytest.raises(StoreError, match="positions given twice"):
        await store.release("x2", "as-x2")
    assert await outcomes(store) == [("x1", UNSOLD)]  # nothing overwritten
    got = await store.get_auction("x2")
    assert got is not None and got["settled"] is False


# -- save_projection: a crash before the checkpoint moves -------------------------------------
@pytest.mark.parametrize("landed", [False, True], ids=["lost", "landed"])
@pytest.mark.parametrize("at", [1, 2, 3, 4])  # docs, log position, messages, checkpoint
async def test_a_crash_in_save_projection_then_a_retry_saves_once(
        stores: list[MongoStore], at: int, landed: bool) -> None:
    store, other = stores
    assert await store.save_projection("p", 0, 3, [("candle", "k", {"v": 0})]) is True
    puts: list[tuple[str, str, dict[str, Any] | None]] = [
        ("candle", "k", {"v": 1}), ("candle", "k2", {"v": 2})]
    await crash_then(store, at, landed,
                     lambda: store.save_projection("p", 3, 7, puts, [message(1)]))
    # Results may be ahead of the checkpoint: the retry writes the same values again.
    moved = landed and at == 4
    assert await other.projection_checkpoint("p") == (7 if moved else 3)
    assert await other.save_projection("p", 3, 7, puts, [message(1)]) is not moved
    assert await other.projection_checkpoint("p") == 7
    assert await other.get_projection_docs("candle", ["k", "k2"]) == {"k": {"v": 1},
                                                                     "k2": {"v": 2}}
    # The message is in the log at least once (a retry after it landed appends it again).
    assert [m["data"] for m in await other.analytics_log(0)].count(message(1)["data"]) >= 1


async def test_save_projection_takes_the_writes_the_crash_tests_cover(
        stores: list[MongoStore]) -> None:
    store = stores[0]
    assert await store.save_projection("p", 0, 3, []) is True
    writes = await count_writes(store, lambda: store.save_projection(
        "p", 3, 7, [("candle", "k", {"v": 1})], [message(1)]))
    assert writes == ["projection_docs.bulk_write", "counters.find_one_and_update",
                      "analytics_log.bulk_write", "checkpoints.update_one"]


async def test_projection_documents_are_one_id_range_per_kind(stores: list[MongoStore]) -> None:
    store = stores[0]
    await store.save_projection("p", 0, 1, [("a", "x", {"v": 1}), ("ab", "", {"v": 2}),
                                            ("a", "", {"v": 3}), ("b", "a", {"v": 4})])
    assert await store.scan_projection("a", "", "\U0010ffff") == [("", {"v": 3}),
                                                                  ("x", {"v": 1})]
    assert [await store.count_projection(k) for k in ("a", "ab", "b")] == [2, 1, 1]
    await store.reset_projections([], ["a"])
    assert [await store.count_projection(k) for k in ("a", "ab", "b")] == [0, 1, 1]
    with pytest.raises(StoreError):
        await store.save_projection("p", 1, 2, [("bad\x00kind", "k", {"v": 0})])
    assert await store.projection_checkpoint("p") == 1
