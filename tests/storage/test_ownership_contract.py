"""The ownership feed (storage.ownership) in the Store contract, on every back end: each change
of an asset's owner appends exactly one row, written by the change itself; replaying the feed
gives every asset its store owner; a store file older than the feed is backfilled once."""

from __future__ import annotations

import sqlite3
import uuid
from typing import Any, cast

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from market import ledger
from market.holdings import Holdings
from market.offers import Offer
from market.provenance import token_id_for
from storage import Store
from storage.base import offer_lock
from storage.mongo import MongoStore
from storage.mongo_ownership import BACKFILLED, PENDING
from storage.ownership import OwnershipRecord
from storage.records import EntryRecord, OfferRecord, TradeRecord
from storage.sqlite import SqliteStore
from tests.storage.conftest import Backend
from tests.storage.test_contract import T0, auction, finish
from tests.storage.test_offers_contract import handover, offer
from tests.storage.test_provenance_contract import AT, copy, follow, minted, sale

FEE_BPS = 500


async def feed(store: Store) -> list[OwnershipRecord]:
    rows = await store.ownership_feed(0, 1_000_000)
    assert [r["pos"] for r in rows] == sorted({r["pos"] for r in rows})  # increasing
    return rows


def moves(rows: list[OwnershipRecord]) -> list[tuple[Any, ...]]:
    return [(r["how"], r["asset_id"], r["from_user"], r["to_user"], r["price"], r["premium"],
             r["fee"], r["ref"]) for r in rows]


async def store_owners(store: Store, asset_ids: list[str]) -> dict[str, str | None]:
    """Each asset's owner as the store holds it (None once redeemed: the token burned)."""
    out: dict[str, str | None] = {}
    for aid in asset_ids:
        a = await store.get_asset(aid)
        assert a is not None
        out[aid] = None if a.get("redeemed") else a["owner_id"]
    return out


def replayed(rows: list[OwnershipRecord]) -> dict[str, str | None]:
    """Each asset's owner after the feed, folded as the portfolio projection folds it."""
    fold = Holdings()
    seen: set[str] = set()
    for r in rows:
        fold.apply(r, lambda _position, _at: None)
        seen.add(r["asset_id"])
    return {aid: fold.owner.get(aid) for aid in seen}


async def mint(store: Store, asset_id: str, owner: str, signed: bool = True) -> None:
    """A graded copy of card_1; `signed`: with its mint record (else no chain at all)."""
    if signed:
        await minted(store, asset_id, owner)
    else:
        await store.create_asset(copy(asset_id, owner))


async def sell(store: Store, asset_id: str, auction_id: str, seller: str, buyer: str,
               price: int = 250) -> TradeRecord:
    """List `asset_id` in a closed auction and settle it to `buyer` (a premium and a fee)."""
    await store.create_auction(auction(auction_id, asset_id, seller))
    await finish(store, auction_id, "closed")
    trade: TradeRecord = {"auction_id": auction_id, "asset_id": asset_id, "seller_id": seller,
                          "buyer_id": buyer, "price": price, "at": AT + 61_000,
                          "premium": price // 10, "seller_fee": price // 20}
    chain = await store.load_provenance(token_id_for(asset_id)) or []
    transfer = (sale(token_id_for(asset_id), chain[-1], auction_id, seller, buyer, price)
                if chain else None)  # a copy without a chain is sold without a record
    assert await store.settle(trade, transfer) is True
    assert await store.settle(trade, transfer) is False  # a retried step: no second row
    return trade


async def swap(store: Store, rec: OfferRecord) -> None:
    """Run an accepted offer's swap as actors.swap does: lock, cash entry, every move (each
    retried once)."""
    await store.save_offers([rec])
    o = Offer.from_dict(rec)
    lock = offer_lock(o.offer_id)
    await store.lock_assets(lock, [(a, frm) for a, frm, _ in o.moves()])
    leg = o.cash_leg()
    if leg is not None:
        await store.post_entry(cast(EntryRecord, ledger.deposit(leg[0], leg[2], o.offer_id,
                                                                AT).to_dict()))
        entry = o.cash_entry(FEE_BPS, o.updated_at)
        assert entry is not None
        await store.post_entry(cast(EntryRecord, entry.to_dict()))
    for aid, frm, to in o.moves():
        chain = await store.load_provenance(token_id_for(aid)) or []
        rec_ = (chain and handover(token_id_for(aid), chain[-1], frm, to, o.offer_id,
                                  price=o.sale_price(), at=o.updated_at)) or None
        assert await store.move_locked_asset(lock, aid, frm, to, rec_) is True
        assert await store.move_locked_asset(lock, aid, frm, to, rec_) is False


# -- each write's row ------------------------------------------------------------------------
async def test_every_owner_change_appends_its_row_once(store: Store) -> None:
    assert (await store.ownership_position(), await feed(store)) == (0, [])
    for aid, owner in (("a1", "u1"), ("a2", "u1"), ("a3", "u2"), ("a4", "u3")):
        await mint(store, aid, owner)
    await sell(store, "a1", "x1", "u1", "u2", price=1_000)
    card_for_cash = offer("o1", "u1", "u2", give=("a2",))  # u2 pays 500 for a2
    await swap(store, card_for_cash)
    card_for_card = offer("o2", "u2", "u3", give=("a3",), want=("a4",))
    card_for_card["want"]["cash"] = 0
    await swap(store, card_for_card)
    token = token_id_for("a4")
    chain = await store.load_provenance(token) or []
    gift = follow(token, chain[-1], "transfer", "u2", "u4", at=AT + 9)
    await store.append_provenance(token, gift)
    await store.append_provenance(token, gift)  # a retry: nothing more
    burn = follow(token, gift, "redeem", "u4", None, at=AT + 10)
    await store.append_provenance(token, burn)

    rows = await feed(store)
    assert moves(rows) == [
        ("mint", "a1", None, "u1", None, None, None, None),
        ("mint", "a2", None, "u1", None, None, None, None),
        ("mint", "a3", None, "u2", None, None, None, None),
        ("mint", "a4", None, "u3", None, None, None, None),
        ("auction", "a1", "u1", "u2", 1_000, 100, 50, "x1"),
        ("offer", "a2", "u1", "u2", 500, 0, ledger.fee(500, FEE_BPS), "o1"),
        ("offer", "a3", "u2", "u3", None, None, None, "o2"),
        ("offer", "a4", "u3", "u2", None, None, None, "o2"),
        ("transfer", "a4", "u2", "u4", None, None, None, None),
        ("redeem", "a4", "u4", None, None, None, None, None),
    ]
    assert await store.ownership_position() == rows[-1]["pos"]
    assert len({r["key"] for r in rows}) == len(rows)
    first = rows[0]
    assert (first["token_id"], first["card_id"], first["grader"], first["grade"],
            first["at"]) == (token_id_for("a1"), "card_1", "PSA", 9, AT)
    assert rows[4]["at"] == AT + 61_000
    assert rows[6]["legs"] == {"from_id": "u2", "to_id": "u3",
                               "give": {"assets": ["a3"], "cash": 0},
                               "want": {"assets": ["a4"], "cash": 0}}
    assert rows[9]["legs"] is None
    assert replayed(rows) == await store_owners(store, ["a1", "a2", "a3", "a4"])
    assert [r["pos"] for r in await store.ownership_feed(rows[2]["pos"], 2)] == [
        r["pos"] for r in rows[3:5]]
    assert await store.ownership_feed(0, 0) == []


async def test_a_refused_change_appends_nothing(store: Store) -> None:
    token, m = await minted(store, "a1", "u1")
    await store.create_auction(auction("x1", "a1", "u1"))
    stranger = follow(token, m, "transfer", "u1", "u2")
    before = await feed(store)
    for write in (store.append_provenance(token, stranger),  # listed: ASSET_LISTED
                  store.create_asset(cast(Any, {"asset_id": "a1", "owner_id": "u9",
                                                "title": "t", "metadata": {},
                                                "created_at": AT}))):
        try:
            await write
        except Exception as exc:
            assert getattr(exc, "code", None) in ("ASSET_LISTED", "ASSET_EXISTS"), exc
    assert await feed(store) == before


# -- property: one row per change, and the feed replays to the store's owners ----------------
_who = st.integers(min_value=0, max_value=2)
_op = st.one_of(
    st.tuples(st.just("sell"), st.integers(0, 2), _who),
    st.tuples(st.just("cash"), st.integers(0, 2), _who),
    st.tuples(st.just("swap"), st.integers(0, 2), st.integers(0, 2)),
    st.tuples(st.just("gift"), st.integers(0, 2), _who),
    st.tuples(st.just("redeem"), st.integers(0, 2)),
)


@settings(max_examples=20, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(_op, max_size=12))
async def test_the_feed_replays_to_every_assets_owner(store: Store, ops: list[Any]) -> None:
    run = uuid.uuid4().hex[:8]  # one store for every example: fresh ids each time
    users = [f"{run}u{i}" for i in range(3)]
    assets = [f"{run}a{i}" for i in range(3)]
    owner: dict[str, str] = {aid: users[i] for i, aid in enumerate(assets)}
    burned: set[str] = set()
    start = await store.ownership_position()
    for aid, u in owner.items():
        await mint(store, aid, u, signed=aid != assets[2])  # a2 has no chain
    changes = len(assets)
    for n, op in enumerate(ops):
        aid = assets[op[1]]
        if aid in burned:
            continue
        frm = owner[aid]
        if op[0] == "swap":  # two owners' cards for each other
            other = assets[op[2]]
            if other in burned or owner[other] == frm:
                continue
            rec = offer(f"{run}o{n}", frm, owner[other], give=(aid,), want=(other,))
            rec["want"]["cash"] = 0
            await swap(store, rec)
            owner[aid], owner[other] = owner[other], frm
            changes += 2
            continue
        if op[0] == "redeem":
            if aid == assets[2]:
                continue  # no chain to append a redeem to
            chain = await store.load_provenance(token_id_for(aid)) or []
            await store.append_provenance(token_id_for(aid), follow(
                token_id_for(aid), chain[-1], "redeem", frm, None))
            burned.add(aid)
            changes += 1
            continue
        to = users[op[2]]
        if to == frm or (op[0] == "gift" and aid == assets[2]):
            continue
        if op[0] == "sell":
            await sell(store, aid, f"{run}x{n}", frm, to)
        elif op[0] == "cash":
            await swap(store, offer(f"{run}o{n}", frm, to, give=(aid,)))
        else:
            chain = await store.load_provenance(token_id_for(aid)) or []
            await store.append_provenance(token_id_for(aid), follow(
                token_id_for(aid), chain[-1], "transfer", frm, to))
        owner[aid] = to
        changes += 1
    rows = await store.ownership_feed(start, 1_000_000)
    assert len(rows) == changes  # exactly one row per change of owner
    assert len({r["key"] for r in rows}) == changes
    assert replayed(rows) == await store_owners(store, assets)
    assert replayed(rows) == {aid: None if aid in burned else owner[aid] for aid in assets}


# -- a store older than the feed -------------------------------------------------------------
async def forget_feed(store: Store) -> None:
    """Make the store look as a version without the feed left it: no rows, no marker."""
    if isinstance(store, SqliteStore):
        def tx(conn: sqlite3.Connection) -> None:
            conn.execute("DROP TABLE ownership")

        await store._run(store._write, tx)
    else:
        assert isinstance(store, MongoStore)
        await store._coll("ownership").drop()
        await store._coll("counters").delete_one({"_id": BACKFILLED})
        await store.assets.update_many({}, {"$unset": {PENDING: ""}})


async def test_an_old_store_is_backfilled_once_a_fresh_one_not(backend: Backend) -> None:
    store = await backend.open()
    assert await feed(store) == []  # fresh: nothing to backfill
    await mint(store, "a1", "u1")
    await mint(store, "a2", "u1", signed=False)
    await mint(store, "a3", "u2")
    await sell(store, "a1", "x1", "u1", "u2")
    token = token_id_for("a3")
    chain = await store.load_provenance(token) or []
    await store.append_provenance(token, follow(token, chain[-1], "redeem", "u2", None))
    await forget_feed(store)
    await store.close()

    reopened = await backend.open()
    rows = await feed(reopened)
    assert moves(rows) == [("backfill", "a1", None, "u2", None, None, None, None),
                           ("backfill", "a2", None, "u1", None, None, None, None)]
    # The last record's time (a1: its sale), else created_at (a2 has no chain).
    assert [r["at"] for r in rows] == [AT + 61_000, int(T0)]
    owners = await store_owners(reopened, ["a1", "a2", "a3"])
    assert replayed(rows) | {"a3": None} == owners  # a3 was redeemed: no row
    await reopened.close()
    again = await backend.open()  # opened again (or by another process): nothing added
    await sell(again, "a2", "x2", "u1", "u3")
    assert moves(await feed(again))[2:] == [("auction", "a2", "u1", "u3", 250, 25, 12, "x2")]
