"""Token provenance in the Store contract, run against every back end: each token's chain is
written atomically with the ownership it records, and verifies with market.provenance."""

from __future__ import annotations

import asyncio
import random
import sqlite3
from pathlib import Path
from typing import Any, cast

import pytest

from market.provenance import (
    Ed25519Signer,
    Record,
    mint_record,
    next_record,
    owner_of,
    public_key_b64,
    token_id_for,
    verify_chain,
)
from storage import SETTLE_ASSET_MOVED, Conflict, Store
from storage.mongo import MongoStore
from storage.records import AssetRecord, ProvenanceRecord
from storage.sqlite import SqliteStore
from tests.storage.conftest import Backend, tamper_asset
from tests.storage.test_contract import T0, asset, auction, finish, trade

SIGNER = Ed25519Signer.from_private_bytes(bytes(range(32)))
KEY = public_key_b64(SIGNER)
AT = 1_700_000_000_000


# -- builders ------------------------------------------------------------------------------
def copy(asset_id: str, owner: str, cert: str | None = None, **extra: Any) -> AssetRecord:
    """A graded copy (its token id derived from its id, as the gateway does)."""
    return cast(AssetRecord, {
        **asset(asset_id, owner), "card_id": "card_1", "grader": "PSA", "grade": 9,
        "cert": cert, "token_id": token_id_for(asset_id), **extra})


def mint(a: AssetRecord, at: int = AT) -> ProvenanceRecord:
    token = a.get("token_id") or token_id_for(a["asset_id"])
    return cast(ProvenanceRecord, mint_record(token, a["owner_id"], at, SIGNER))


def follow(token: str, tail: ProvenanceRecord | Record, kind: str, frm: str | None,
           to: str | None, **kw: Any) -> ProvenanceRecord:
    """The signed record after `tail` (reason admin for a transfer unless given)."""
    if kind == "transfer":
        kw.setdefault("reason", "admin")
    return cast(ProvenanceRecord, next_record(token, cast(Record, tail), kind, frm=frm, to=to,
                                              at=kw.pop("at", AT + 1), signer=SIGNER, **kw))


def sale(token: str, tail: ProvenanceRecord, auction_id: str, seller: str, buyer: str,
         price: int = 250) -> ProvenanceRecord:
    return follow(token, tail, "transfer", seller, buyer, reason="auction", ref=auction_id,
                  price=price, at=AT + 61_000)


async def verified(store: Store, token: str) -> list[ProvenanceRecord]:
    """The token's stored chain, checked to verify with the public key alone."""
    chain = await store.load_provenance(token)
    assert chain is not None
    assert verify_chain(token, cast(list[Record], chain), KEY) == []
    return chain


async def minted(store: Store, asset_id: str, owner: str = "u1",
                 cert: str | None = None) -> tuple[str, ProvenanceRecord]:
    a = copy(asset_id, owner, cert)
    m = mint(a)
    await store.create_asset(a, m)
    return token_id_for(asset_id), m


async def listed_token(store: Store, auction_id: str,
                       seller: str = "u1") -> tuple[str, ProvenanceRecord]:
    """A minted asset `as-<auction_id>` of `seller`, listed in a closed auction."""
    token, m = await minted(store, f"as-{auction_id}", seller)
    await store.create_auction(auction(auction_id, f"as-{auction_id}", seller))
    await finish(store, auction_id, "closed")
    return token, m


async def stored_rows(store: Store, token: str) -> int:
    """Records stored for the token, read behind the contract (a stray one would show)."""
    if isinstance(store, SqliteStore):
        def q() -> int:
            sql = "SELECT count(*) FROM provenance WHERE token_id=?"
            return int(store._db.execute(sql, (token,)).fetchone()[0])

        return await store._run(q)
    assert isinstance(store, MongoStore)
    doc = await store.assets.find_one({"token_id": token}, {"provenance": 1})
    return 0 if doc is None else len(doc.get("provenance") or [])


async def refused(code: str, write: Any) -> None:
    with pytest.raises(Conflict) as err:
        await write
    assert err.value.code == code, err.value


# -- minting -------------------------------------------------------------------------------
async def test_mint_is_stored_with_its_asset_and_verifies(store: Store) -> None:
    token, m = await minted(store, "c1", "u1", cert="100")
    assert await verified(store, token) == [m]
    got = await store.get_asset("c1")
    assert got == {**copy("c1", "u1", "100"), "listed_in": None}
    assert "redeemed" not in got
    assert await store.get_asset_by_token(token) == got
    assert owner_of(cast(list[Record], await store.load_provenance(token))) == "u1"


async def test_a_refused_create_leaves_neither_asset_nor_record(store: Store) -> None:
    token, m = await minted(store, "c1", "u1", cert="100")
    # Same certificate: CERT_EXISTS, and the second mint is nowhere.
    twin = copy("c2", "u2", cert="100")
    await refused("CERT_EXISTS", store.create_asset(twin, mint(twin)))
    twin_token = token_id_for("c2")
    assert await store.get_asset("c2") is None
    assert await store.get_asset_by_token(twin_token) is None
    assert await store.load_provenance(twin_token) is None
    assert await stored_rows(store, twin_token) == 0
    # Same asset id (so the same token): ASSET_EXISTS, the first chain untouched.
    again = copy("c1", "u2", cert="101")
    await refused("ASSET_EXISTS", store.create_asset(again, mint(again, at=AT + 5)))
    assert await verified(store, token) == [m]
    assert (await store.get_asset("c1") or {})["owner_id"] == "u1"
    # Another asset claiming the first one's token id.
    thief = copy("c3", "u2", token_id=token)
    await refused("ASSET_EXISTS", store.create_asset(thief))
    assert await store.get_asset("c3") is None
    assert await stored_rows(store, token) == 1


async def test_a_mint_that_cannot_start_the_chain_is_refused(store: Store) -> None:
    a = copy("c1", "u1")
    good = mint(a)
    other_owner = cast(ProvenanceRecord, mint_record(token_id_for("c1"), "u2", AT, SIGNER))
    not_first = follow(token_id_for("c1"), good, "transfer", "u1", "u2")
    for bad in (other_owner, not_first, {**good, "prev_hash": "1" * 64}):
        await refused("PROVENANCE_CONFLICT", store.create_asset(a, cast(ProvenanceRecord, bad)))
        assert await store.get_asset("c1") is None
        assert await stored_rows(store, token_id_for("c1")) == 0


async def test_assets_without_a_mint_have_an_empty_chain(store: Store) -> None:
    await store.create_asset(asset("old", "u1"))  # as before tokens: no token id given
    token = token_id_for("old")
    assert await store.load_provenance(token) == []
    assert (await store.get_asset_by_token(token) or {})["asset_id"] == "old"
    # Such a token may be minted later; a chain still starts with its mint.
    await refused("PROVENANCE_CONFLICT", store.append_provenance(
        token, cast(ProvenanceRecord, {**mint(asset("old", "u1")), "kind": "transfer"})))
    await refused("PROVENANCE_CONFLICT", store.append_provenance(
        token, mint(asset("old", "u2"))))  # to someone else than the owner
    m = mint(asset("old", "u1"))
    await store.append_provenance(token, m)
    assert await verified(store, token) == [m]
    assert (await store.get_asset("old") or {})["owner_id"] == "u1"


async def test_unknown_tokens(store: Store) -> None:
    await minted(store, "c1")
    for token in ("0", "1", str(2**256 - 1), token_id_for("c2")):
        assert await store.get_asset_by_token(token) is None
        assert await store.load_provenance(token) is None
    m = mint(copy("c2", "u1"))
    await refused("TOKEN_NOT_FOUND", store.append_provenance(token_id_for("c2"), m))


async def test_a_78_digit_token_id(store: Store) -> None:
    big = str(2**256 - 1)
    assert len(big) == 78
    a = copy("c1", "u1", token_id=big)
    m = mint(a)
    await store.create_asset(a, m)
    assert (await store.get_asset_by_token(big) or {})["asset_id"] == "c1"
    assert await store.get_asset_by_token(big[:-1]) is None
    t = follow(big, m, "transfer", "u1", "u2")
    await store.append_provenance(big, t)
    assert await verified(store, big) == [m, t]


# -- settle --------------------------------------------------------------------------------
async def test_settle_appends_the_transfer_exactly_once(store: Store) -> None:
    token, m = await listed_token(store, "x1")
    t = trade("x1", "u2", 250, T0 + 61)
    transfer = sale(token, m, "x1", "u1", "u2")
    results = [await store.settle(t, transfer) for _ in range(3)]
    assert results == [True, False, False]
    chain = await verified(store, token)
    assert chain == [m, transfer]
    got = await store.get_asset("as-x1")
    assert got is not None and (got["owner_id"], got["listed_in"]) == ("u2", None)
    assert owner_of(cast(list[Record], chain)) == "u2" == got["owner_id"]
    assert await store.get_trade("x1") == t
    # A retry that built its record again (same fields, so the very same record) or none.
    assert await store.settle(t, sale(token, m, "x1", "u1", "u2")) is False
    assert await store.settle(t) is False
    assert await verified(store, token) == [m, transfer]


async def test_concurrent_settles_append_once(backend: Backend) -> None:
    stores = [await backend.open() for _ in range(4)]
    token, m = await listed_token(stores[0], "x1")
    t = trade("x1", "u2", 250, T0 + 61)
    transfer = sale(token, m, "x1", "u1", "u2")
    results = await asyncio.gather(*(s.settle(t, transfer) for s in stores * 2))
    assert sorted(results) == [False] * 7 + [True]
    chain = await verified(stores[1], token)
    assert chain == [m, transfer]
    assert owner_of(cast(list[Record], chain)) == (
        await stores[2].get_asset("as-x1") or {})["owner_id"] == "u2"
    assert await stores[3].list_trades() == [t]


@pytest.mark.parametrize(
    ("owner", "listed_in"),
    [("u3", None), ("u1", "x9"), ("u1", None)],
    ids=["given-to-another-user", "listed-in-another-auction", "unlisted"],
)
async def test_settle_on_a_moved_asset_appends_nothing(
    store: Store, owner: str, listed_in: str | None
) -> None:
    token, m = await listed_token(store, "x1")
    await tamper_asset(store, "as-x1", owner_id=owner, listed_in=listed_in)
    t = trade("x1", "u2", 250, T0 + 61)
    assert await store.settle(t, sale(token, m, "x1", "u1", "u2")) is False
    rec = await store.get_auction("x1")
    assert rec is not None and (rec["settled"], rec["settle_error"]) == (True, SETTLE_ASSET_MOVED)
    assert await verified(store, token) == [m]
    assert await stored_rows(store, token) == 1
    assert (await store.get_asset("as-x1") or {})["owner_id"] == owner
    assert await store.list_trades() == []


async def test_settle_with_a_transfer_that_does_not_extend_the_chain(store: Store) -> None:
    token, m = await listed_token(store, "x1")
    t = trade("x1", "u2", 250, T0 + 61)
    before = (await store.get_asset("as-x1"), await store.get_auction("x1"))
    wrong_seq = follow(token, {**m, "seq": 2}, "transfer", "u1", "u2", reason="auction",
                       ref="x1", price=250)
    wrong_prev = follow(token, {**m, "hash": "ab" * 32}, "transfer", "u1", "u2",
                        reason="auction", ref="x1", price=250)
    to_another = sale(token, m, "x1", "u1", "u3")  # not this trade's buyer
    for bad in (wrong_seq, wrong_prev, to_another):
        await refused("PROVENANCE_CONFLICT", store.settle(t, bad))
        # Nothing moved and the auction is still to settle.
        assert (await store.get_asset("as-x1"), await store.get_auction("x1")) == before
        assert await store.list_trades() == []
        assert await verified(store, token) == [m]
    good = sale(token, m, "x1", "u1", "u2")
    assert await store.settle(t, good) is True
    assert await verified(store, token) == [m, good]


async def test_resales_extend_one_chain(store: Store) -> None:
    token, m = await listed_token(store, "x1")
    first = sale(token, m, "x1", "u1", "u2")
    assert await store.settle(trade("x1", "u2", 250, T0 + 61), first)
    await store.create_auction(auction("x2", "as-x1", "u2"))
    await finish(store, "x2", "closed")
    second = sale(token, first, "x2", "u2", "u3", price=400)
    t2 = {**trade("x2", "u3", 400, T0 + 200, seller="u2"), "asset_id": "as-x1"}
    assert await store.settle(cast(Any, t2), second)
    chain = await verified(store, token)
    assert chain == [m, first, second]
    assert owner_of(cast(list[Record], chain)) == (
        await store.get_asset("as-x1") or {})["owner_id"] == "u3"


async def test_settle_without_a_record_still_works(store: Store) -> None:
    token, m = await listed_token(store, "x1")
    assert await store.settle(trade("x1", "u2", 250, T0 + 61)) is True
    assert (await store.get_asset("as-x1") or {})["owner_id"] == "u2"
    assert await verified(store, token) == [m]


# -- append_provenance ---------------------------------------------------------------------
async def test_append_moves_the_owner_with_the_record(store: Store) -> None:
    token, m = await minted(store, "c1", "u1")
    t = follow(token, m, "transfer", "u1", "u2")
    await store.append_provenance(token, t)
    await store.append_provenance(token, t)  # a retry of an applied append: no-op
    chain = await verified(store, token)
    assert chain == [m, t]
    assert owner_of(cast(list[Record], chain)) == (
        await store.get_asset("c1") or {})["owner_id"] == "u2"
    assert [a["asset_id"] for a in await store.list_assets("u2")] == ["c1"]
    assert await store.list_assets("u1") == []


async def test_append_fencing_refuses_and_changes_nothing(store: Store) -> None:
    token, m = await minted(store, "c1", "u1")
    t1 = follow(token, m, "transfer", "u1", "u2")
    await store.append_provenance(token, t1)
    before = (await store.get_asset("c1"), await store.load_provenance(token))
    cases = {
        # Built on the stale tail (the mint): seq 2 is taken by another record.
        "stale seq": follow(token, m, "transfer", "u1", "u3"),
        # A seq beyond the end.
        "gap": follow(token, {**t1, "seq": 3}, "transfer", "u2", "u3"),
        # From someone who is not the owner (u2 is).
        "wrong from": follow(token, {**t1, "to": "u9"}, "transfer", "u9", "u3"),
        # The right seq, another chain's prev_hash.
        "wrong prev_hash": follow(token, {**t1, "hash": "cd" * 32}, "transfer", "u2", "u3"),
        # A second mint.
        "mint": cast(ProvenanceRecord, {**mint(copy("c1", "u2")), "seq": 3,
                                        "prev_hash": t1["hash"]}),
    }
    for what, bad in cases.items():
        await refused("PROVENANCE_CONFLICT", store.append_provenance(token, bad))
        assert (await store.get_asset("c1"), await store.load_provenance(token)) == before, what
    await verified(store, token)


async def test_append_refuses_a_listed_asset(store: Store) -> None:
    token, m = await minted(store, "c1", "u1")
    await store.create_auction(auction("x1", "c1", "u1"))
    for kind, to in (("transfer", "u2"), ("redeem", None)):
        await refused("ASSET_LISTED", store.append_provenance(
            token, follow(token, m, kind, "u1", to)))
    assert await verified(store, token) == [m]
    assert (await store.get_asset("c1") or {})["listed_in"] == "x1"


async def test_redeem_burns_the_token(store: Store) -> None:
    token, m = await minted(store, "c1", "u1", cert="1")
    await minted(store, "c2", "u1", cert="2")
    assert await store.population("card_1") == [{"grader": "PSA", "grade": 9, "count": 2}]
    r = follow(token, m, "redeem", "u1", None)
    await store.append_provenance(token, r)
    await store.append_provenance(token, r)  # retried: no-op
    chain = await verified(store, token)
    assert chain == [m, r] and owner_of(cast(list[Record], chain)) is None
    got = await store.get_asset("c1")
    assert got is not None and got.get("redeemed") is True and got["owner_id"] == "u1"
    assert await store.get_asset_by_token(token) == got
    assert [a.get("redeemed", False) for a in await store.list_assets("u1")] == [True, False]
    assert await store.population("card_1") == [{"grader": "PSA", "grade": 9, "count": 1}]
    # Burned: nothing follows, and it cannot be listed.
    after = cast(ProvenanceRecord, {**follow(token, m, "transfer", "u1", "u2"), "seq": 3,
                                    "prev_hash": r["hash"]})
    await refused("ASSET_REDEEMED", store.append_provenance(token, after))
    await refused("ASSET_REDEEMED", store.create_auction(auction("x1", "c1", "u1")))
    assert await verified(store, token) == [m, r]


async def test_settle_of_an_asset_redeemed_behind_its_auction(store: Store) -> None:
    token, m = await listed_token(store, "x1")
    await tamper_asset(store, "as-x1", redeemed=True)
    assert await store.settle(trade("x1", "u2", 250, T0 + 61),
                              sale(token, m, "x1", "u1", "u2")) is False
    assert (await store.get_auction("x1") or {})["settle_error"] == SETTLE_ASSET_MOVED
    assert await stored_rows(store, token) == 1


async def test_concurrent_appends_one_wins(backend: Backend) -> None:
    stores = [await backend.open() for _ in range(4)]
    token, m = await minted(stores[0], "c1", "u1")
    rivals = [follow(token, m, "transfer", "u1", f"u{i + 2}") for i in range(4)]
    outcomes = await asyncio.gather(*(s.append_provenance(token, r)
                                      for s, r in zip(stores, rivals, strict=True)),
                                    return_exceptions=True)
    won = [r for r, o in zip(rivals, outcomes, strict=True) if o is None]
    assert len(won) == 1
    assert all(isinstance(o, Conflict) and o.code == "PROVENANCE_CONFLICT"
               for o in outcomes if o is not None)
    chain = await verified(stores[1], token)
    assert chain == [m, won[0]]
    assert (await stores[2].get_asset("c1") or {})["owner_id"] == won[0]["to"]


async def test_concurrent_mints_of_an_old_asset_one_wins(backend: Backend) -> None:
    # The owner does not change, so only the chain fence (seq, prev_hash) separates them.
    stores = [await backend.open() for _ in range(4)]
    await stores[0].create_asset(asset("old", "u1"))
    token = token_id_for("old")
    rivals = [mint(asset("old", "u1"), at=AT + i) for i in range(4)]
    outcomes = await asyncio.gather(*(s.append_provenance(token, r)
                                      for s, r in zip(stores, rivals, strict=True)),
                                    return_exceptions=True)
    assert sum(o is None for o in outcomes) == 1, outcomes
    assert await stored_rows(stores[1], token) == 1
    await verified(stores[2], token)


# -- property: random transfers keep the chain and the owner in step ------------------------
async def _random_history(store: Store, rng: random.Random, asset_id: str) -> None:
    users = [f"u{i}" for i in range(5)]
    owner = rng.choice(users)
    token, m = await minted(store, asset_id, owner)
    chain: list[ProvenanceRecord] = [m]
    for step in range(rng.randint(1, 25)):
        tail = chain[-1]
        to = rng.choice([u for u in users if u != owner])
        move = rng.random()
        at = AT + step
        if move < 0.6:  # a good transfer, sometimes retried
            record = follow(token, tail, "transfer", owner, to, at=at,
                            reason=rng.choice(["admin", "offer"]), ref=f"o{step}")
            for _ in range(rng.choice([1, 1, 2])):
                await store.append_provenance(token, record)
            chain.append(record)
            owner = to
        elif move < 0.75 and len(chain) > 1:  # built on a stale tail
            stale = rng.randrange(len(chain) - 1)
            then = chain[stale]["to"]
            to = rng.choice([u for u in users if u != then])
            record = follow(token, chain[stale], "transfer", then, to, at=at)
            await refused("PROVENANCE_CONFLICT", store.append_provenance(token, record))
        elif move < 0.9:  # from someone who does not own it
            thief = rng.choice([u for u in users if u != owner])
            record = follow(token, {**tail, "to": thief}, "transfer", thief, owner, at=at)
            await refused("PROVENANCE_CONFLICT", store.append_provenance(token, record))
        elif move < 0.95 and len(chain) > 1:  # replaying an earlier record
            await store.append_provenance(token, rng.choice(chain[1:]))
        else:  # redeemed: the end of the token
            record = follow(token, tail, "redeem", owner, None, at=at)
            await store.append_provenance(token, record)
            chain.append(record)
            break
        stored = await verified(store, token)
        assert stored == chain
        assert owner_of(cast(list[Record], stored)) == (
            await store.get_asset(asset_id) or {})["owner_id"] == owner
    stored = await verified(store, token)
    assert stored == chain
    got = await store.get_asset(asset_id)
    assert got is not None and got["owner_id"] == owner
    assert owner_of(cast(list[Record], stored)) == (None if got.get("redeemed") else owner)


@pytest.mark.parametrize("seed", range(6))
async def test_random_transfers_keep_chain_and_owner_in_step(store: Store, seed: int) -> None:
    rng = random.Random(seed)
    for n in range(4):
        await _random_history(store, rng, f"c{n}")


# -- what the back ends hold -----------------------------------------------------------------
async def test_the_chain_lives_where_documented(store: Store) -> None:
    token, m = await listed_token(store, "x1")
    t = sale(token, m, "x1", "u1", "u2")
    assert await store.settle(trade("x1", "u2", 250, T0 + 61), t)
    if isinstance(store, SqliteStore):
        def q() -> list[tuple[Any, ...]]:
            return store._db.execute(
                "SELECT token_id, seq, record FROM provenance ORDER BY seq").fetchall()

        rows = await store._run(q)
        assert [(r[0], r[1]) for r in rows] == [(token, 1), (token, 2)]
    else:
        assert isinstance(store, MongoStore)
        doc = await store.assets.find_one({"_id": "as-x1"})
        assert doc is not None and doc["provenance"] == [m, t]
    # ... and never leaks into the asset records.
    got = await store.get_asset("as-x1")
    assert got is not None and set(got) == {
        "asset_id", "owner_id", "title", "metadata", "created_at", "listed_in", "card_id",
        "grader", "grade", "cert", "token_id"}


# -- SQLite: the record and its change share one transaction --------------------------------
async def test_sqlite_a_failing_record_rolls_its_change_back(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "p.db"))
    await store.open()
    try:
        stray = sqlite3.connect(store.path, isolation_level=None)
        # A stray record where the mint goes: the asset row was inserted first, then undone.
        token = token_id_for("c1")
        stray.execute("INSERT INTO provenance VALUES (?, 1, '{}')", (token,))
        a = copy("c1", "u1")
        await refused("PROVENANCE_CONFLICT", store.create_asset(a, mint(a)))
        assert await store.get_asset("c1") is None
        stray.execute("DELETE FROM provenance")
        # A stray record where the sale's transfer goes: the asset had moved, then undone.
        token, m = await listed_token(store, "x1")
        stray.execute("INSERT INTO provenance VALUES (?, 2, '{}')", (token,))
        t = trade("x1", "u2", 250, T0 + 61)
        await refused("PROVENANCE_CONFLICT", store.settle(t, sale(token, m, "x1", "u1", "u2")))
        got = await store.get_asset("as-x1")
        assert got is not None and (got["owner_id"], got["listed_in"]) == ("u1", "x1")
        assert (await store.get_auction("x1") or {})["settled"] is False
        assert await store.get_trade("x1") is None
        stray.close()
    finally:
        await store.close()
