"""Mongo-specific ledger behaviour: an entry is applied in idempotent steps without
transactions, so a crash between any two of them, a retry, `recover_ledger` and concurrent
callers must all end with the entry applied exactly once (storage.mongo_ledger)."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest
import pytest_asyncio
from pymongo.errors import AutoReconnect

from market.errors import INSUFFICIENT_FUNDS
from market.ledger import EXTERNAL, FEES, Entry, deposit, settlement, withdrawal
from storage import Conflict
from storage.mongo import MongoStore
from storage.mongo_ledger import Books
from storage.records import EntryRecord
from tests.storage.conftest import Backend
from tests.storage.mongo_faults import count_writes, crash_then, crashing

AT = 1_700_000_000_000


@pytest_asyncio.fixture
async def stores(mongo_backend: Backend[MongoStore]) -> list[MongoStore]:
    """Four independent store instances (clients) on one database, as in four processes."""
    return [await mongo_backend.open() for _ in range(4)]


def rec(entry: Entry) -> EntryRecord:
    return cast(EntryRecord, entry.to_dict())


async def raw_entry(store: MongoStore, entry_id: str) -> dict[str, Any] | None:
    return await store._coll("entries").find_one({"_id": entry_id})


async def state(store: MongoStore, *accounts: str) -> list[tuple[int, int]]:
    got = [await store.get_account(a) for a in accounts]
    return [(a["balance"], a["version"]) for a in got]


# -- a crash at every step, then a retry or recovery ------------------------------------------
SALE = settlement("x1", "buyer", "seller", 5000, 500, 300, AT + 1, 10_000)
SALE_AFTER = {"user:buyer": 4850, "user:seller": 4750, FEES: 400}
ACCOUNTS = ("user:buyer", "user:seller", FEES, EXTERNAL)
SALE_WRITES = 9  # entry, 3 postings, account cache, notice counter, 2 notices, applied


async def test_the_sale_takes_the_writes_the_crash_tests_cover(
        mongo_backend: Backend[MongoStore]) -> None:
    store = await mongo_backend.open()
    await store.post_entry(rec(deposit("buyer", 10_000, "r1", AT)))
    assert len(await count_writes(store, lambda: store.post_entry(rec(SALE)))) == SALE_WRITES


@pytest.mark.parametrize("heal", ["retry", "recover"])
@pytest.mark.parametrize("landed", [False, True], ids=["lost", "landed"])
@pytest.mark.parametrize("at", range(1, SALE_WRITES + 1))
async def test_a_crash_anywhere_in_post_entry_is_finished_exactly_once(
        stores: list[MongoStore], at: int, landed: bool, heal: str) -> None:
    store, other = stores[0], stores[1]
    await store.post_entry(rec(deposit("buyer", 10_000, "r1", AT)))
    await crash_then(store, at, landed, lambda: store.post_entry(rec(SALE)))

    half = await raw_entry(other, SALE.entry_id)
    if half is not None and half["state"] == "pending":
        assert await other.get_entry(SALE.entry_id) is None  # not yet: half-applied
        assert any("half-applied" in p for p in await other.check_ledger())
    if heal == "recover":
        pending = half is not None and half["state"] == "pending"
        assert await other.recover_ledger() == int(pending)
        assert await other.recover_ledger() == 0
        if half is None:  # died before storing anything: the caller's retry does it all
            await other.post_entry(rec(SALE))
    else:
        got = await other.post_entry(rec(SALE))
        assert got == {**SALE.to_dict(), "after": SALE_AFTER}

    assert await other.get_entry(SALE.entry_id) == {**SALE.to_dict(), "after": SALE_AFTER}
    assert await other.post_entry(rec(SALE)) == {**SALE.to_dict(), "after": SALE_AFTER}
    assert await state(other, *ACCOUNTS) == [(4850, 2), (4750, 1), (400, 1), (-10_000, 1)]
    assert await other.user_balances() == {"buyer": (4850, 2), "seller": (4750, 1)}
    assert [p["version"] for p in await other.list_postings("user:buyer")] == [2, 1]
    assert [(n["seq"], n["key"]) for n in await other.load_notices("seller")] == [
        (1, f"payment:{SALE.entry_id}")]
    assert [n["seq"] for n in await other.load_notices("buyer")] == [1, 2]
    assert await other.check_ledger() == []
    assert await other.recover_ledger() == 0


async def test_a_stale_resumer_changes_nothing(stores: list[MongoStore]) -> None:
    # A caller that read the pending entry, then stalled while another finished it.
    store, other = stores[0], stores[1]
    await store.post_entry(rec(deposit("buyer", 10_000, "r1", AT)))
    with crashing(store, 3, landed=True), pytest.raises(AutoReconnect):
        await store.post_entry(rec(SALE))  # entry and debit stored, then the crash
    stale = await raw_entry(store, SALE.entry_id)
    assert stale is not None and stale["state"] == "pending"
    await other.post_entry(rec(SALE))
    before = await state(other, *ACCOUNTS)
    assert await Books(store).finish(stale) == {**SALE.to_dict(), "after": SALE_AFTER}
    assert await state(other, *ACCOUNTS) == before
    assert await other.check_ledger() == []


# -- a debit whose planned slot another entry took -------------------------------------------
async def pending_with_dead_plan(store: MongoStore, entry: Entry) -> None:
    """Store `entry` pending, its debit planned for slot 1 of the user (which the deposit
    took): as left by a caller that died right after inserting it."""
    doc = {"_id": entry.entry_id, **{k: v for k, v in entry.to_dict().items()
                                     if k != "entry_id"},
           "state": "pending", "plan": {"version": 1, "balance": 0}}
    await store._coll("entries").insert_one(doc)


async def test_a_dead_plan_is_replanned_when_funds_suffice(stores: list[MongoStore]) -> None:
    store = stores[0]
    await store.post_entry(rec(deposit("u1", 100, "r1", AT)))
    w = withdrawal("u1", 80, "w1", AT + 1, 100)
    await pending_with_dead_plan(store, w)
    assert await store.recover_ledger() == 1
    got = await store.get_entry(w.entry_id)
    assert got is not None and got.get("after") == {"user:u1": 20, EXTERNAL: -20}
    assert await state(store, "user:u1", EXTERNAL) == [(20, 2), (-20, 2)]
    assert await store.check_ledger() == []


@pytest.mark.parametrize("heal", ["retry", "recover"])
async def test_a_half_applied_entry_refused_now_is_removed(
        stores: list[MongoStore], heal: str) -> None:
    store = stores[0]
    await store.post_entry(rec(deposit("u1", 100, "r1", AT)))
    w = withdrawal("u1", 150, "w1", AT + 1, 150)
    await pending_with_dead_plan(store, w)
    if heal == "retry":
        with pytest.raises(Conflict) as err:
            await store.post_entry(rec(w))
        assert err.value.code == INSUFFICIENT_FUNDS
    else:
        assert await store.recover_ledger() == 1
    assert await raw_entry(store, w.entry_id) is None
    assert await state(store, "user:u1", EXTERNAL) == [(100, 1), (-100, 1)]
    assert [n["seq"] for n in await store.load_notices("u1")] == [1]
    assert await store.check_ledger() == []
    assert await store.recover_ledger() == 0


# -- concurrency ------------------------------------------------------------------------------
async def test_one_entry_posted_concurrently_is_applied_once(stores: list[MongoStore]) -> None:
    await stores[0].post_entry(rec(deposit("buyer", 10_000, "r1", AT)))
    results = await asyncio.gather(*(s.post_entry(rec(SALE)) for s in stores * 2))
    assert all(r == {**SALE.to_dict(), "after": SALE_AFTER} for r in results)
    assert await state(stores[0], *ACCOUNTS) == [(4850, 2), (4750, 1), (400, 1), (-10_000, 1)]
    assert len(await stores[0].load_notices("buyer")) == 2
    assert await stores[0].check_ledger() == []


async def test_concurrent_entries_on_shared_accounts_chain_up(stores: list[MongoStore]) -> None:
    # Every sale credits `fees` and every deposit debits `external`: slot races on both.
    buyers = [f"b{i}" for i in range(8)]
    await asyncio.gather(*(stores[i % 4].post_entry(rec(deposit(b, 1000, "r", AT)))
                           for i, b in enumerate(buyers)))
    sales = [settlement(f"x{i}", b, "seller", 500, 1000, 200, AT + 1, 1000)
             for i, b in enumerate(buyers)]
    # Each sale twice, from different instances, with an overdrawing withdrawal racing it.
    racing = [withdrawal(b, 600, "w", AT + 2, 1000) for b in buyers]
    outcome = await asyncio.gather(
        *(stores[i % 4].post_entry(rec(s)) for i, s in enumerate(sales)),
        *(stores[(i + 1) % 4].post_entry(rec(s)) for i, s in enumerate(sales)),
        *(stores[(i + 2) % 4].post_entry(rec(w)) for i, w in enumerate(racing)),
        return_exceptions=True)
    sold = {r["entry_id"] for r in outcome[:16] if isinstance(r, dict)}
    took = [r for r in outcome[16:] if isinstance(r, dict)]
    refused = [r for r in outcome if isinstance(r, BaseException)]
    assert all(isinstance(r, Conflict) and r.code == INSUFFICIENT_FUNDS for r in refused)
    # A buyer's 1000 covers the sale (510: 500 + 10 premium) or the withdrawal, not both.
    assert len(sold) + len(took) == len(buyers)
    fees = await stores[0].list_postings(FEES, limit=100)
    assert [p["version"] for p in fees] == list(range(len(sold), 0, -1))
    assert fees[0]["balance"] == 60 * len(sold)  # 50 seller fee + 10 premium each
    assert await stores[0].get_account(EXTERNAL) == {
        "account": EXTERNAL, "balance": -8000 + 600 * len(took), "version": 8 + len(took)}
    assert await stores[0].check_ledger() == []
    assert await stores[0].recover_ledger() == 0
