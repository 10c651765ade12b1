"""The money ledger (market/ledger.py): properties over random histories, and every refusal."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from market.errors import ERRORS, INSUFFICIENT_FUNDS, INVALID, MarketError
from market.ledger import (
    DEPOSIT,
    EXTERNAL,
    FEE,
    FEES,
    OFFER,
    SETTLEMENT,
    WITHDRAWAL,
    Balances,
    Entry,
    Posting,
    buyer_total,
    deposit,
    entry_id_for,
    fee,
    settlement,
    user_account,
    user_key,
    withdrawal,
)
from market.money import MAX_AMOUNT

USERS = ("alice", "bob", "carol", "dave")
T0 = 1_700_000_000_000


def round_trip(entry: Entry) -> Entry:
    return Entry.from_dict(json.loads(json.dumps(entry.to_dict())))


def check_sound(balances: Balances) -> None:
    assert balances.total() == 0
    for account, amount in balances.accounts().items():
        if account != EXTERNAL:
            assert 0 <= amount <= MAX_AMOUNT, account


# --- random histories ------------------------------------------------------------------------
# Keys come from small pools, so requests collide and are retried (same key) by construction.
keys = st.sampled_from([f"r{i}" for i in range(6)])
auction_ids = st.sampled_from([f"a{i}" for i in range(4)])
bps = st.one_of(st.sampled_from((0, 1, 250, 500, 1_000, 10_000)), st.integers(0, 10_000))
op = st.one_of(
    st.tuples(st.just("deposit"), st.sampled_from(USERS), st.integers(1, 50_000), keys),
    st.tuples(st.just("withdraw"), st.sampled_from(USERS), st.integers(1, 30_000), keys),
    st.tuples(st.just("settle"), auction_ids, st.permutations(USERS), st.integers(0, 20_000),
              bps, bps),
    st.tuples(st.just("replay"), st.integers(0, 10_000)),
)


@settings(max_examples=300)
@given(st.lists(op, max_size=60), st.booleans())
def test_random_histories_keep_the_ledger_sound(ops: list[tuple[Any, ...]], funded: bool) -> None:
    if funded:  # else most purchases of an empty-handed buyer fail
        ops = [("deposit", user, 30_000, "seed") for user in USERS] + ops
    balances = Balances()
    # The model: a request (who, what, which key) moves money once; later ones are retries.
    expected: dict[str, int] = {}
    done: set[tuple[str, ...]] = set()
    applied: list[tuple[tuple[str, ...], Entry]] = []  # all offered to `apply`, retries too
    for at, (kind, *args) in enumerate(ops, start=T0):
        before = balances.accounts()
        try:
            if kind == "deposit":
                user, amount, key = args
                request: tuple[str, ...] = (kind, user, key)
                entry = deposit(user, amount, key, at)
            elif kind == "withdraw":
                user, amount, key = args
                request = (kind, user, key)
                available = balances.balance(user_account(user))
                entry = withdrawal(user, amount, key, at, available)
                assert amount <= available
            elif kind == "settle":
                auction_id, (buyer, seller, *_), price, fee_bps, premium_bps = args
                request = (kind, auction_id)
                available = balances.balance(user_account(buyer))
                entry = settlement(auction_id, buyer, seller, price, fee_bps, premium_bps, at,
                                   available)
                check_settlement(entry, buyer, seller, price, fee_bps, premium_bps)
                assert buyer_total(price, premium_bps) <= available
            else:
                if not applied:
                    continue
                request, entry = applied[args[0] % len(applied)]
                entry = round_trip(entry)  # as read back from a store
        except MarketError as exc:
            assert exc.code == INSUFFICIENT_FUNDS and kind in ("withdraw", "settle")
            assert exc.details["required"] > exc.details["available"] == available
            assert balances.accounts() == before
            event(f"{kind} refused")
            continue
        assert round_trip(entry) == entry
        known = request in done
        assert balances.apply(entry) is not known  # a retry is recognised ...
        applied.append((request, entry))
        event(f"{kind} {'retried' if known else 'applied'}")
        if known:
            assert balances.accounts() == before  # ... and changes nothing
        else:
            done.add(request)
            for account, amount in entry.postings:
                expected[account] = expected.get(account, 0) + amount
        assert balances.accounts() == {a: n for a, n in expected.items() if n}
        check_sound(balances)
    # Replaying what was written, duplicates and all, rebuilds the same balances.
    assert Balances(round_trip(e) for _, e in applied).accounts() == balances.accounts()


def check_settlement(entry: Entry, buyer: str, seller: str, price: int, fee_bps: int,
                     premium_bps: int) -> None:
    paid = -entry.amount_of(user_account(buyer))
    received = entry.amount_of(user_account(seller))
    fees = entry.amount_of(FEES)
    assert paid == received + fees  # money conserved
    assert paid == price + price * premium_bps // 10_000
    assert received == price - price * fee_bps // 10_000
    assert {p.account for p in entry.postings} <= {user_account(buyer), user_account(seller),
                                                   FEES}


@given(st.integers(0, MAX_AMOUNT), st.integers(0, 10_000))
def test_fees_round_down(amount: int, basis_points: int) -> None:
    charged = fee(amount, basis_points)
    assert 0 <= charged <= amount
    assert charged * 10_000 <= amount * basis_points < (charged + 1) * 10_000
    assert buyer_total(amount, basis_points) == amount + charged


@given(st.integers(0, MAX_AMOUNT // 2), bps, bps)
def test_a_settlement_conserves_money(price: int, fee_bps: int, premium_bps: int) -> None:
    entry = settlement("a1", "alice", "bob", price, fee_bps, premium_bps, T0, MAX_AMOUNT)
    check_settlement(entry, "alice", "bob", price, fee_bps, premium_bps)
    assert sum(p.amount for p in entry.postings) == 0
    assert all(p.amount != 0 for p in entry.postings)
    assert entry.entry_id == entry_id_for(SETTLEMENT, "a1")


accounts = st.one_of(st.just(FEES), st.sampled_from(USERS).map(user_account),
                     st.text(st.characters(exclude_characters=":"), min_size=1, max_size=20)
                     .map(lambda u: "user:" + u))


@given(st.sampled_from((DEPOSIT, WITHDRAWAL, SETTLEMENT, OFFER, FEE)),
       st.text(min_size=1, max_size=50), st.integers(0, 2**53),
       st.dictionaries(accounts, st.integers(-10**9, 10**9).filter(bool), max_size=5))
def test_entries_round_trip(cause: str, key: str, at: int, legs: dict[str, int]) -> None:
    postings = [*legs.items()]
    if sum(legs.values()):
        postings.append((EXTERNAL, -sum(legs.values())))
    entry = Entry(cause, key, at, tuple(Posting(a, n) for a, n in postings))
    data = json.loads(json.dumps(entry.to_dict()))
    assert Entry.from_dict(data) == entry
    assert data["entry_id"] == entry.entry_id == entry_id_for(cause, key)
    assert Entry.from_dict({k: v for k, v in data.items() if k != "entry_id"}) == entry


@given(st.integers(0, 1_000), st.integers(1, 1_000))
def test_no_entry_takes_a_user_below_zero(funds: int, spend: int) -> None:
    balances = Balances([deposit("bob", funds, "d", T0)] if funds else [])
    before = balances.accounts()
    move = Entry(OFFER, "o1", T0, (Posting(user_account("alice"), spend),
                                     Posting(user_account("bob"), -spend)))
    if spend > funds:
        with pytest.raises(MarketError) as info:
            balances.apply(move)
        assert info.value.code == INSUFFICIENT_FUNDS
        assert info.value.details == {"account": "user:bob", "available": funds,
                                      "required": spend}
        assert balances.accounts() == before and move.entry_id not in balances
    else:
        assert balances.apply(move)
        assert balances.balance("user:bob") == funds - spend
    check_sound(balances)


# --- examples --------------------------------------------------------------------------------
def refused(code: str, call: Any, *args: Any, **kwargs: Any) -> MarketError:
    with pytest.raises(MarketError) as info:
        call(*args, **kwargs)
    assert info.value.code == code, info.value
    return info.value


def test_insufficient_funds_is_a_registered_conflict() -> None:
    entry = ERRORS[INSUFFICIENT_FUNDS]
    assert (entry.status, entry.transient, entry.internal) == (409, False, False)


def test_deposit_and_withdrawal_postings() -> None:
    assert deposit("alice", 500, "r1", T0).postings == (("user:alice", 500), ("external", -500))
    out = withdrawal("alice", 500, "r1", T0, balance=500)  # exactly the balance: allowed
    assert out.postings == (("user:alice", -500), ("external", 500))
    assert out.cause == WITHDRAWAL and out.cause_key == "alice:r1" and out.at == T0


@pytest.mark.parametrize("amount", [0, -1, True, 1.5, "100", None, MAX_AMOUNT + 1])
def test_amounts_refused(amount: Any) -> None:
    assert refused(INVALID, deposit, "alice", amount, "r1", T0).details == {"field": "amount"}
    assert refused(INVALID, withdrawal, "alice", amount, "r1", T0, 10**6).details == {
        "field": "amount"}


@pytest.mark.parametrize("user", ["", "a:b", 5, None, "u" * 161])
def test_user_ids_refused(user: Any) -> None:
    refused(INVALID, deposit, user, 100, "r1", T0)
    refused(INVALID, user_account, user)
    refused(INVALID, settlement, "a1", user, "bob", 100, 0, 0, T0, 1_000)
    refused(INVALID, settlement, "a1", "bob", user, 100, 0, 0, T0, 1_000)


@pytest.mark.parametrize("key", ["", 5, None, "k" * 161])
def test_keys_refused(key: Any) -> None:
    refused(INVALID, deposit, "alice", 100, key, T0)
    refused(INVALID, withdrawal, "alice", 100, key, T0, 1_000)
    refused(INVALID, settlement, key, "alice", "bob", 100, 0, 0, T0, 1_000)


@pytest.mark.parametrize("at", [-1, True, 1.5, None, "now", 2**53 + 1])
def test_times_refused(at: Any) -> None:
    assert refused(INVALID, deposit, "alice", 100, "r1", at).details == {"field": "at"}


def test_withdrawal_beyond_the_balance_is_refused() -> None:
    error = refused(INSUFFICIENT_FUNDS, withdrawal, "alice", 501, "r1", T0, 500)
    assert error.details == {"available": 500, "required": 501}
    refused(INSUFFICIENT_FUNDS, withdrawal, "alice", 1, "r1", T0, 0)


def test_settlement_the_buyer_cannot_pay_is_refused() -> None:
    # price 10,000 + 2.5 % premium = 10,250 needed
    error = refused(INSUFFICIENT_FUNDS, settlement, "a1", "alice", "bob", 10_000, 500, 250, T0,
                    10_249)
    assert error.details == {"available": 10_249, "required": 10_250}
    entry = settlement("a1", "alice", "bob", 10_000, 500, 250, T0, 10_250)
    assert entry.postings == (("user:alice", -10_250), ("user:bob", 9_500), ("fees", 750))


@pytest.mark.parametrize("args", [
    ("a1", "alice", "alice", 100, 0, 0),  # buyer is the seller
    ("a1", "alice", "bob", -1, 0, 0),
    ("a1", "alice", "bob", 1.0, 0, 0),
    ("a1", "alice", "bob", 100, 10_001, 0),
    ("a1", "alice", "bob", 100, 0, -1),
    ("a1", "alice", "bob", 100, True, 0),
    ("a1", "alice", "bob", MAX_AMOUNT, 0, 1),  # price + premium above 2**53
])
def test_settlement_arguments_refused(args: tuple[Any, ...]) -> None:
    refused(INVALID, settlement, *args, T0, MAX_AMOUNT)


def test_settlement_leaves_out_zero_legs_and_takes_offers() -> None:
    assert settlement("a1", "alice", "bob", 0, 500, 500, T0, 0).postings == ()
    assert settlement("a1", "alice", "bob", 19, 500, 0, T0, 19).postings == (
        ("user:alice", -19), ("user:bob", 19))  # a fee under one cent rounds to nothing
    assert settlement("a1", "alice", "bob", 100, 10_000, 0, T0, 100).postings == (
        ("user:alice", -100), ("fees", 100))
    offer = settlement("o1", "alice", "bob", 100, 0, 0, T0, 100, cause=OFFER)
    assert offer.cause == OFFER and offer.entry_id != settlement(
        "o1", "alice", "bob", 100, 0, 0, T0, 100).entry_id
    refused(INVALID, settlement, "a1", "alice", "bob", 1, 0, 0, T0, 1, cause=DEPOSIT)


def test_entry_ids_are_deterministic_and_scoped() -> None:
    first = deposit("alice", 100, "r1", T0)
    assert deposit("alice", 999, "r1", T0 + 5).entry_id == first.entry_id  # a retry
    assert deposit("bob", 100, "r1", T0).entry_id != first.entry_id  # another user's req_id
    assert withdrawal("alice", 100, "r1", T0, 100).entry_id != first.entry_id
    assert first.entry_id == entry_id_for(DEPOSIT, user_key("alice", "r1"))
    assert len(first.entry_id) == 32 and int(first.entry_id, 16) >= 0


@pytest.mark.parametrize("postings", [
    [("user:alice", 5)],  # unbalanced
    [("user:alice", 0), ("external", 0)],  # zero amounts
    [("bank", 5), ("external", -5)],
    [("user:", 5), ("external", -5)],
    [("user:a:b", 5), ("external", -5)],
    [(5, 5), ("external", -5)],
    [("user:alice", 5), ("user:alice", -5)],  # an account twice
    [("user:alice", True), ("external", -1)],
    [("user:alice", 2.0), ("external", -2)],
    [("user:alice", MAX_AMOUNT + 1), ("external", -MAX_AMOUNT - 1)],
    [("user:alice", 5, 1), ("external", -5)],
    "user:alice",
])
def test_malformed_entries_refused(postings: Any) -> None:
    refused(INVALID, Entry, DEPOSIT, "alice:r1", T0, postings)
    data = {"cause": DEPOSIT, "cause_key": "alice:r1", "at": T0, "postings": postings}
    refused(INVALID, Entry.from_dict, data)


def test_entry_fields_refused() -> None:
    legs = (("user:alice", 5), ("external", -5))
    refused(INVALID, Entry, "gift", "k", T0, legs)
    refused(INVALID, Entry, DEPOSIT, "", T0, legs)
    refused(INVALID, Entry, DEPOSIT, "k", -1, legs)
    good = Entry(DEPOSIT, "k", T0, legs).to_dict()
    assert refused(INVALID, Entry.from_dict, {**good, "entry_id": "0" * 32}).details == {
        "field": "entry_id"}
    del good["at"]
    assert refused(INVALID, Entry.from_dict, good).details == {"field": "at"}


def test_balances_refusals_change_nothing() -> None:
    balances = Balances([deposit("alice", 100, "r1", T0)])
    assert not balances.apply(deposit("alice", 100, "r1", T0))  # applied twice: once
    assert balances.balance("user:alice") == 100 and balances.balance(EXTERNAL) == -100
    fees_refund = Entry(FEE, "refund-1", T0, (("fees", -1), ("user:alice", 1)))
    error = refused(INSUFFICIENT_FUNDS, balances.apply, fees_refund)
    assert error.details == {"account": "fees", "available": 0, "required": 1}
    too_much = deposit("alice", MAX_AMOUNT, "r2", T0)
    refused(INVALID, balances.apply, too_much)
    assert balances.accounts() == {"user:alice": 100, "external": -100}
    assert fees_refund.entry_id not in balances and too_much.entry_id not in balances
    assert balances.balance("user:nobody") == 0 and balances.total() == 0
