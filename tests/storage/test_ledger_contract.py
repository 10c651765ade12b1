"""The money part of the Store contract: accounts, the journal, payment notices
(market.ledger builds the entries), run against every back end."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from market.errors import INSUFFICIENT_FUNDS, MarketError
from market.ledger import (
    EXTERNAL,
    FEES,
    WITHDRAWAL,
    Balances,
    Entry,
    Posting,
    deposit,
    settlement,
    user_account,
    user_key,
    withdrawal,
)
from storage import Conflict, Store, StoreError
from storage.records import EntryRecord
from tests.storage.conftest import Backend, tamper_account

AT = 1_700_000_000_000
RICH = 1 << 52  # an "available" balance that lets market.ledger build any entry


def rec(entry: Entry) -> EntryRecord:
    return cast(EntryRecord, entry.to_dict())


async def post(store: Store, entry: Entry) -> EntryRecord:
    return await store.post_entry(rec(entry))


def overdraw(user: str, amount: int, key: str) -> Entry:
    """A withdrawal the store must check itself (built as if the funds were there)."""
    return withdrawal(user, amount, key, AT, RICH)


async def balances(store: Store, *accounts: str) -> list[tuple[int, int]]:
    got = [await store.get_account(a) for a in accounts]
    return [(a["balance"], a["version"]) for a in got]


async def money_state(store: Store, *accounts: str) -> tuple[Any, ...]:
    return (await balances(store, *accounts), await store.user_balances(),
            [await store.list_postings(a) for a in accounts])


# -- entries and accounts --------------------------------------------------------------------
async def test_deposit_credits_the_user_from_external(store: Store) -> None:
    d = deposit("u1", 500, "r1", AT)
    got = await post(store, d)
    assert got == {**d.to_dict(), "after": {"user:u1": 500, EXTERNAL: -500}}
    assert await store.get_entry(d.entry_id) == got
    assert await store.get_entry("nope") is None
    assert await store.get_account("user:u1") == {"account": "user:u1", "balance": 500,
                                                  "version": 1}
    assert await store.get_account(EXTERNAL) == {"account": EXTERNAL, "balance": -500,
                                                 "version": 1}
    assert await store.get_account("user:nobody") == {"account": "user:nobody", "balance": 0,
                                                      "version": 0}
    assert await store.user_balances() == {"u1": (500, 1)}
    assert await store.check_ledger() == []


async def test_withdrawal_beyond_the_balance_is_refused_changing_nothing(store: Store) -> None:
    await post(store, deposit("u1", 500, "r1", AT))
    accounts = ("user:u1", EXTERNAL)
    before = await money_state(store, *accounts)
    notices = await store.load_notices("u1")
    w = overdraw("u1", 501, "w1")
    with pytest.raises(Conflict) as err:
        await post(store, w)
    assert err.value.code == INSUFFICIENT_FUNDS
    assert await store.get_entry(w.entry_id) is None
    assert await money_state(store, *accounts) == before
    assert await store.load_notices("u1") == notices
    assert await store.check_ledger() == []

    ok = withdrawal("u1", 500, "w2", AT + 1, 500)
    assert (await post(store, ok))["after"] == {"user:u1": 0, EXTERNAL: 0}
    assert await balances(store, *accounts) == [(0, 2), (0, 2)]
    assert await store.user_balances() == {"u1": (0, 2)}


async def test_settlement_pays_the_seller_and_the_fees(store: Store) -> None:
    await post(store, deposit("buyer", 10_000, "r1", AT))
    # price 5000, seller fee 5 % (250), buyer's premium 3 % (150).
    s = settlement("x1", "buyer", "seller", 5000, 500, 300, AT + 1, 10_000)
    got = await post(store, s)
    assert got["after"] == {"user:buyer": 4850, "user:seller": 4750, FEES: 400}
    assert await balances(store, "user:buyer", "user:seller", FEES, EXTERNAL) == [
        (4850, 2), (4750, 1), (400, 1), (-10_000, 1)]
    assert await store.user_balances() == {"buyer": (4850, 2), "seller": (4750, 1)}
    assert await store.check_ledger() == []

    short = settlement("x2", "buyer", "seller", 5000, 500, 300, AT + 2, RICH)
    with pytest.raises(Conflict) as err:
        await post(store, short)
    assert err.value.code == INSUFFICIENT_FUNDS
    assert await store.get_entry(short.entry_id) is None
    assert await balances(store, "user:buyer", "user:seller", FEES) == [
        (4850, 2), (4750, 1), (400, 1)]


async def test_a_sale_at_zero_is_an_entry_without_postings(store: Store) -> None:
    s = settlement("x1", "buyer", "seller", 0, 500, 300, AT, 0)
    assert await post(store, s) == {**s.to_dict(), "after": {}}
    assert await store.get_entry(s.entry_id) == {**s.to_dict(), "after": {}}
    assert await store.user_balances() == {}
    assert await store.check_ledger() == []


async def test_reposting_an_entry_returns_the_first_outcome(store: Store) -> None:
    d = deposit("u1", 500, "r1", AT)
    first = await post(store, d)
    await post(store, deposit("u1", 100, "r2", AT + 1))
    state = await money_state(store, "user:u1", EXTERNAL)
    assert await post(store, d) == first  # `after` as of the first post
    # Same id (same cause and key), other postings: still the stored entry, nothing applied.
    assert await post(store, deposit("u1", 999, "r1", AT + 2)) == first
    assert await money_state(store, "user:u1", EXTERNAL) == state
    assert len(await store.load_notices("u1")) == 2
    assert await store.check_ledger() == []


async def test_two_guarded_debits_in_one_entry_are_refused(store: Store) -> None:
    await post(store, deposit("a", 10, "r", AT))
    await post(store, deposit("b", 10, "r", AT))
    two = Entry(WITHDRAWAL, user_key("a", "w"), AT,
                (Posting(user_account("a"), -10), Posting(user_account("b"), -10),
                 Posting(EXTERNAL, 20)))
    before = await money_state(store, "user:a", "user:b", EXTERNAL)
    with pytest.raises(StoreError):
        await post(store, two)
    assert await store.get_entry(two.entry_id) is None
    assert await money_state(store, "user:a", "user:b", EXTERNAL) == before


async def test_list_postings_newest_first_in_pages(store: Store) -> None:
    for i in range(1, 6):
        await post(store, deposit("u1", 100 * i, f"r{i}", AT + i))
    w = withdrawal("u1", 700, "w", AT + 9, 1500)
    await post(store, w)
    got = await store.list_postings("user:u1")
    assert [p["version"] for p in got] == [6, 5, 4, 3, 2, 1]
    assert got[0] == {"account": "user:u1", "version": 6, "entry_id": w.entry_id,
                      "cause": WITHDRAWAL, "cause_key": w.cause_key, "at": AT + 9,
                      "amount": -700, "balance": 800}
    assert [p["balance"] for p in got] == [800, 1500, 1000, 600, 300, 100]
    pages: list[list[int]] = []
    before: int | None = None
    while page := await store.list_postings("user:u1", before_version=before, limit=4):
        pages.append([p["version"] for p in page])
        before = page[-1]["version"]
    assert pages == [[6, 5, 4, 3], [2, 1]]
    assert [p["amount"] for p in await store.list_postings(EXTERNAL, limit=2)] == [700, -500]
    assert await store.list_postings("user:nobody") == []


async def test_check_ledger_reports_a_tampered_balance(store: Store) -> None:
    await post(store, deposit("u1", 500, "r1", AT))
    await post(store, settlement("x1", "u1", "u2", 300, 1000, 0, AT + 1, 500))
    assert await store.check_ledger() == []
    assert await store.recover_ledger() == 0
    await tamper_account(store, "user:u1", 10_000)
    problems = await store.check_ledger()
    assert problems and all(isinstance(p, str) and p for p in problems)
    assert any("user:u1" in p for p in problems), problems


async def test_check_ledger_reports_a_negative_balance(store: Store) -> None:
    await post(store, deposit("u1", 500, "r1", AT))
    await tamper_account(store, "user:u1", -1)
    assert await store.check_ledger() != []


async def test_payment_notices_carry_the_balance_after(store: Store) -> None:
    d = deposit("buyer", 1000, "r1", AT)
    await post(store, d)
    s = settlement("x1", "buyer", "seller", 500, 1000, 200, AT + 1, 1000)
    await post(store, s)
    await post(store, s)  # a retry adds no notice

    def shape(n: dict[str, Any]) -> tuple[Any, ...]:
        return n["user_id"], n["seq"], n["key"], n["type"], n["at"], n["data"]

    def data(entry: Entry, amount: int, balance: int, version: int) -> dict[str, Any]:
        return {"entry_id": entry.entry_id, "cause": entry.cause, "ref": entry.cause_key,
                "amount": amount, "balance": balance, "version": version}

    buyer = [shape(cast(dict[str, Any], n)) for n in await store.load_notices("buyer")]
    assert buyer == [
        ("buyer", 1, f"payment:{d.entry_id}", "payment", AT, data(d, 1000, 1000, 1)),
        ("buyer", 2, f"payment:{s.entry_id}", "payment", AT + 1, data(s, -510, 490, 2)),
    ]
    seller = [shape(cast(dict[str, Any], n)) for n in await store.load_notices("seller")]
    assert seller == [
        ("seller", 1, f"payment:{s.entry_id}", "payment", AT + 1, data(s, 450, 450, 1))]
    feed = await store.notice_feed(0)
    assert len(feed) == 3  # none for `fees` or `external`
    assert [n["pos"] for n in feed] == sorted({n["pos"] for n in feed})


async def test_concurrent_withdrawals_never_overdraw(backend: Backend) -> None:
    stores = [await backend.open() for _ in range(2)]
    await post(stores[0], deposit("u1", 100, "r1", AT))
    results = await asyncio.gather(*(post(s, overdraw("u1", 80, f"w{i}"))
                                     for i, s in enumerate(stores)), return_exceptions=True)
    refused = [r for r in results if isinstance(r, BaseException)]
    assert len(refused) == 1, results
    assert isinstance(refused[0], Conflict) and refused[0].code == INSUFFICIENT_FUNDS
    assert await balances(stores[1], "user:u1", EXTERNAL) == [(20, 2), (-20, 2)]
    assert await stores[1].check_ledger() == []


# -- property: the store agrees with market.ledger.Balances -----------------------------------
_amount = st.integers(min_value=1, max_value=5000)
_user = st.integers(min_value=0, max_value=2)
_bps = st.sampled_from([0, 250, 1000])
_op = st.one_of(
    st.tuples(st.just("deposit"), _user, _amount),
    st.tuples(st.just("withdraw"), _user, _amount),
    st.tuples(st.just("settle"), _user, _user, _amount, _bps, _bps),
    st.tuples(st.just("repost"), st.integers(min_value=0, max_value=30)),
)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(_op, max_size=25))
async def test_store_balances_follow_the_ledger_rules(store: Store, ops: list[Any]) -> None:
    # One store for every example: fresh user ids each time; fees/external compared as deltas.
    run = uuid.uuid4().hex[:8]
    users = [f"{run}u{i}" for i in range(3)]
    start = await balances(store, FEES, EXTERNAL)
    base = {FEES: start[0][0], EXTERNAL: start[1][0]}
    model = Balances()
    accepted: list[Entry] = []
    versions: dict[str, int] = {}
    for i, op in enumerate(ops):
        if op[0] == "repost":
            if not accepted:
                continue
            entry = accepted[op[1] % len(accepted)]
        elif op[0] == "deposit":
            entry = deposit(users[op[1]], op[2], f"k{i}", AT + i)
        elif op[0] == "withdraw":
            entry = overdraw(users[op[1]], op[2], f"k{i}")
        elif op[1] == op[2]:
            continue  # market.ledger refuses a buyer who is the seller
        else:
            entry = settlement(f"{run}a{i}", users[op[1]], users[op[2]], op[3], op[4], op[5],
                               AT + i, RICH)
        try:
            applied = model.apply(entry)
        except MarketError as exc:
            assert exc.code == INSUFFICIENT_FUNDS
            with pytest.raises(Conflict) as err:
                await post(store, entry)
            assert err.value.code == INSUFFICIENT_FUNDS
            continue
        got = await post(store, entry)
        if applied:
            accepted.append(entry)
            for account, _ in entry.postings:
                versions[account] = versions.get(account, 0) + 1
            assert got["after"] == {a: base.get(a, 0) + model.balance(a)
                                    for a, _ in entry.postings}
        else:
            assert got == await store.get_entry(entry.entry_id)

    for u in users:
        account = user_account(u)
        assert await store.get_account(account) == {
            "account": account, "balance": model.balance(account),
            "version": versions.get(account, 0)}
    end = await balances(store, FEES, EXTERNAL)
    for (b0, v0), (b1, v1), account in zip(start, end, (FEES, EXTERNAL), strict=True):
        assert (b1 - b0, v1 - v0) == (model.balance(account), versions.get(account, 0))
    everyone = await store.user_balances()
    assert all(b >= 0 for b, _ in everyone.values())
    assert sum(b for b, _ in everyone.values()) + end[0][0] + end[1][0] == 0
    assert await store.check_ledger() == []
