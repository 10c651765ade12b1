"""Trade offers (fenced group commits, the user's boxes, the host's open set) and the asset
locks of their swaps, in the Store contract, run against every back end."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from market.provenance import Record, owner_of, token_id_for
from storage import Conflict, Store
from storage.base import offer_lock
from storage.records import OfferRecord, ProvenanceRecord
from tests.storage.conftest import Backend, tamper_asset
from tests.storage.test_contract import asset, auction
from tests.storage.test_provenance_contract import AT, follow, minted, refused, verified

DAY = 86_400_000
OFFER_KEYS = OfferRecord.__required_keys__ | OfferRecord.__optional_keys__


# -- builders ------------------------------------------------------------------------------
def offer(offer_id: str, frm: str = "u1", to: str = "u2", *, seq: int = 1,
          status: str = "active", at: int = AT, give: tuple[str, ...] = (),
          want: tuple[str, ...] = (), **extra: Any) -> OfferRecord:
    """An offer record at version `seq` (updated_at = at + seq), with every key."""
    rec = {"offer_id": offer_id, "thread_id": offer_id, "from_id": frm, "to_id": to,
           "give": {"assets": list(give), "cash": 0}, "want": {"assets": list(want), "cash": 500},
           "assets": [*give, *want], "message": "yours for mine", "expires_at": at + DAY,
           "parent_id": None, "child_id": None, "status": status, "reason": None,
           "acted": None, "created_at": at, "updated_at": at + seq, "seq": seq, "host": "h1",
           **extra}
    return cast(OfferRecord, rec)


def bump(rec: OfferRecord, **changes: Any) -> OfferRecord:
    """The record's next version."""
    return cast(OfferRecord, {**rec, "seq": rec["seq"] + 1,
                              "updated_at": rec["updated_at"] + 1, **changes})


def then(rec: OfferRecord, **changes: Any) -> list[OfferRecord]:
    """The record and its next version, to save in one batch."""
    return [rec, bump(rec, **changes)]


def as_stored(rec: OfferRecord, told_seq: int = 0) -> OfferRecord:
    return cast(OfferRecord, {**rec, "told_seq": told_seq})


def ids(offers: list[OfferRecord]) -> list[str]:
    return [o["offer_id"] for o in offers]


async def where(store: Store, *asset_ids: str) -> list[tuple[str, str | None] | None]:
    """(owner, listed_in) of each asset."""
    got = [await store.get_asset(aid) for aid in asset_ids]
    return [a and (a["owner_id"], a.get("listed_in")) for a in got]


def handover(token: str, tail: ProvenanceRecord, frm: str, to: str,
             offer_id: str = "o1", **kw: Any) -> ProvenanceRecord:
    """The swap's transfer record after `tail` (built as if `frm` owned it)."""
    return follow(token, cast(ProvenanceRecord, {**tail, "to": frm}), "transfer", frm, to,
                  reason="offer", ref=offer_id, **kw)


# -- save and get ----------------------------------------------------------------------------
async def test_an_offer_round_trips_with_every_key(store: Store) -> None:
    o1 = offer("o1", give=("a1",), want=("a2", "a3"), acted={"action": "x", "by": "u2",
                                                               "req_id": "r1"}, told_seq=99)
    assert await store.save_offers([o1]) == set()
    got = await store.get_offer("o1")
    assert got == as_stored(o1)  # told_seq is the store's: 0 on insert, whatever was given
    assert got is not None and set(got) == OFFER_KEYS
    bare = cast(OfferRecord, {k: v for k, v in offer("o2").items() if k != "host"})
    assert await store.save_offers([bare]) == set()
    assert await store.get_offer("o2") == {**bare, "host": None, "told_seq": 0}
    assert await store.get_offer("nope") is None
    assert await store.save_offers([]) == set()


async def test_saves_are_fenced_by_seq(store: Store) -> None:
    v1 = offer("o1", give=("a1",))
    assert await store.save_offers([v1]) == set()
    other = offer("o1", frm="u9", at=AT + 5)  # another seq 1: the offer exists
    assert await store.save_offers([other]) == {"o1"}
    assert await store.save_offers([v1]) == set()  # a retry
    # seq, status and updated_at as stored: a retry, which changes nothing.
    assert await store.save_offers([{**v1, "message": "changed"}]) == set()
    assert await store.get_offer("o1") == as_stored(v1)
    v2 = bump(v1, status="accepted")
    assert await store.save_offers([bump(v2)]) == {"o1"}  # seq 3 after 1
    assert await store.get_offer("o1") == as_stored(v1)
    await store.mark_offer_told("o1", 1)
    assert await store.save_offers([v2]) == set()
    assert await store.get_offer("o1") == as_stored(v2, told_seq=1)  # told_seq kept
    assert await store.save_offers([v2]) == set()
    stale = [bump(v1, status="declined"), bump(v1, updated_at=v2["updated_at"] + 7), v1, other]
    for rec in stale:
        assert await store.save_offers([rec]) == {"o1"}
    assert await store.get_offer("o1") == as_stored(v2, told_seq=1)
    v3 = bump(v2, status="settled")
    assert await store.save_offers([v3]) == set()
    assert await store.get_offer("o1") == as_stored(v3, told_seq=1)


async def test_a_fenced_offer_does_not_hold_back_the_batch(store: Store) -> None:
    a1 = offer("a1")
    await store.save_offers([a1])
    b1, c1 = offer("b1"), offer("c1", frm="u3")
    got = await store.save_offers([b1, bump(bump(a1)), c1, bump(b1)])
    assert got == {"a1"}
    assert await store.get_offer("a1") == as_stored(a1)
    assert await store.get_offer("b1") == as_stored(bump(b1))  # two versions in one batch
    assert await store.get_offer("c1") == as_stored(c1)
    # Our seq 1 lost to theirs: our seq 2, built on it, is not ours to write either.
    mine = offer("a1", frm="u7", at=AT + 1)
    assert await store.save_offers([mine, bump(mine, status="cancelled")]) == {"a1"}
    assert await store.get_offer("a1") == as_stored(a1)


# -- queries ---------------------------------------------------------------------------------
async def test_list_and_count_offers(store: Store) -> None:
    await store.save_offers([
        offer("o1", "u1", "u2", at=AT + 1), offer("o2", "u2", "u1", at=AT + 2),
        offer("o3", "u3", "u1", at=AT + 3, status="declined"), offer("o4", "u1", "u3", at=AT + 4),
        offer("o5", "u2", "u3", at=AT + 5)])
    assert ids(await store.list_offers("u1", "in")) == ["o3", "o2"]
    assert ids(await store.list_offers("u1", "out")) == ["o4", "o1"]
    assert ids(await store.list_offers("u1")) == ["o4", "o3", "o2", "o1"]
    assert ids(await store.list_offers("u1", None, "active")) == ["o4", "o2", "o1"]
    assert ids(await store.list_offers("u1", "in", "declined")) == ["o3"]
    assert ids(await store.list_offers("u1", limit=2)) == ["o4", "o3"]
    assert await store.list_offers("u1", limit=0) == []
    assert await store.list_offers("u9") == []
    counts = [await store.count_offers(u, status) for u, status in (
        ("u1", "active"), ("u2", "active"), ("u3", "declined"), ("u3", "active"), ("u9", "x"))]
    assert counts == [2, 2, 1, 0, 0]
    assert (await store.list_offers("u3", "in"))[0] == as_stored(offer("o5", "u2", "u3",
                                                                        at=AT + 5))


@pytest.mark.parametrize("box", ["in", "out", None])
async def test_list_offers_pages_newest_first(store: Store, box: str | None) -> None:
    # Seven offers each way, some created in the same ms: (created_at, offer_id) orders them.
    times = {"k": AT, "c": AT, "x": AT + 1, "b": AT + 1, "m": AT + 1, "a": AT + 2, "z": AT + 3}
    recs = [offer(f"{d}{k}", *(("u1", "u2") if d == "o" else ("u2", "u1")), at=t)
            for k, t in times.items() for d in ("o", "i")]
    await store.save_offers(recs)
    mine = [r for r in recs if box is None or r["offer_id"][0] == ("o" if box == "out" else "i")]
    expected = sorted(mine, key=lambda r: (r["created_at"], r["offer_id"]), reverse=True)
    pages: list[list[OfferRecord]] = []
    before: tuple[int, str] | None = None
    while page := await store.list_offers("u1", box, limit=3, before=before):
        pages.append(page)
        before = (page[-1]["created_at"], page[-1]["offer_id"])
    assert [len(p) for p in pages[:-1]] == [3] * (len(pages) - 1)
    assert [o for p in pages for o in p] == [as_stored(r) for r in expected]


async def test_open_offers_are_live_or_untold(store: Store) -> None:
    await store.save_offers([
        offer("o1"), *then(offer("o2", host="h2"), status="accepted"),
        *then(offer("o3"), status="declined"), *then(offer("o4"), status="expired"),
        *then(offer("o5", host="h2"), status="settled"), offer("o6", host=None)])
    await store.mark_offer_told("o4", 2)
    await store.mark_offer_told("o5", 1)  # a notice of seq 2 still to store
    await store.mark_offer_told("o2", 2)  # live all the same
    assert sorted(ids(await store.open_offers())) == ["o1", "o2", "o3", "o5", "o6"]
    assert sorted(ids(await store.open_offers("h1"))) == ["o1", "o3"]
    assert sorted(ids(await store.open_offers("h2"))) == ["o2", "o5"]
    assert await store.open_offers("h9") == []
    for offer_id, seq in (("o3", 2), ("o5", 2), ("o5", 1), ("nope", 3)):
        await store.mark_offer_told(offer_id, seq)  # told_seq only ever rises
    assert sorted(ids(await store.open_offers())) == ["o1", "o2", "o6"]
    assert [o["told_seq"] for o in await store.open_offers("h2")] == [2]
    assert (await store.get_offer("o5") or {}).get("told_seq") == 2
    assert await store.get_offer("nope") is None


async def test_offers_with_assets_follow_each_version(store: Store) -> None:
    o1 = offer("o1", give=("a1",), want=("a2",))
    o2 = offer("o2", "u3", "u1", give=("a3",), want=("a2",))
    o3 = offer("o3", give=("a1",), status="declined")
    await store.save_offers([o1, o2, o3])
    assert ids(await store.offers_with_assets(["a1"])) == ["o1"]
    assert sorted(ids(await store.offers_with_assets(["a2"]))) == ["o1", "o2"]
    assert sorted(ids(await store.offers_with_assets(["a1", "a3", "zz"]))) == ["o1", "o2"]
    assert ids(await store.offers_with_assets(["a1"], "declined")) == ["o3"]
    assert await store.offers_with_assets([]) == []
    assert await store.offers_with_assets(["zz"]) == []
    # A new version names other assets, or leaves the status: the index follows it.
    o1b = bump(o1, give={"assets": ["a4"], "cash": 0}, want={"assets": [], "cash": 9},
               assets=["a4"])
    await store.save_offers([o1b, bump(o2, status="cancelled")])
    assert await store.offers_with_assets(["a1", "a2"]) == []
    assert await store.offers_with_assets(["a4"]) == [as_stored(o1b)]
    assert ids(await store.offers_with_assets(["a2", "a3"], "cancelled")) == ["o2"]


# -- locks -------------------------------------------------------------------------------------
async def _lockable(store: Store) -> None:
    """a1, a2, a3 of u1 (minted); b1 of u2; r1 of u1 redeemed; x1 of u1 in auction x1;
    l1 of u1 locked by offer o9."""
    for aid in ("a1", "a2", "a3", "x1", "l1"):
        await minted(store, aid, "u1")
    await minted(store, "b1", "u2")
    token, m = await minted(store, "r1", "u1")
    await store.append_provenance(token, follow(token, m, "redeem", "u1", None))
    await store.create_auction(auction("x1", "x1", "u1"))
    await store.lock_assets(offer_lock("o9"), [("l1", "u1")])


@pytest.mark.parametrize(("bad", "code"), [
    ("nope", "ASSET_NOT_FOUND"), ("b1", "NOT_OWNER"), ("r1", "ASSET_REDEEMED"),
    ("x1", "ASSET_LISTED"), ("l1", "ASSET_LISTED")])
async def test_lock_assets_takes_all_or_none(store: Store, bad: str, code: str) -> None:
    await _lockable(store)
    lock = offer_lock("o1")
    await store.lock_assets(lock, [("a3", "u1")])  # taken before: stays taken
    before = await store.get_asset(bad)
    for claims in ([("a1", "u1"), (bad, "u1"), ("a2", "u1")],
                   [("a3", "u1"), ("a1", "u1"), ("a2", "u1"), (bad, "u1")]):
        with pytest.raises(Conflict) as err:
            await store.lock_assets(lock, claims)
        assert err.value.code == code and bad in err.value.message, err.value
        assert await where(store, "a1", "a2", "a3") == [("u1", None), ("u1", None),
                                                       ("u1", lock)]
        assert await store.get_asset(bad) == before


async def test_a_lock_is_idempotent_and_keeps_the_asset_out_of_reach(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    await _lockable(store)
    lock = offer_lock("o1")
    await store.lock_assets(lock, [("a1", "u1"), ("a2", "u1")])
    await store.lock_assets(lock, [("a1", "u1"), ("a2", "u1")])  # a retried step
    await store.lock_assets(lock, [("a2", "u1"), ("a3", "u1")])
    assert await where(store, "a1", "a2", "a3") == [("u1", lock)] * 3
    await refused("ASSET_LISTED", store.lock_assets(offer_lock("o2"), [("a1", "u1")]))
    # However old, a lock is no orphaned auction claim (MongoDB reclaims those).
    monkeypatch.setattr("storage.mongo.ORPHAN_CLAIM_S", -1.0)
    await refused("ASSET_LISTED", store.create_auction(auction("x2", "a1", "u1")))
    assert await store.get_auction("x2") is None
    token = token_id_for("a1")
    chain = await verified(store, token)
    for kind, to in (("transfer", "u2"), ("redeem", None)):
        await refused("ASSET_LISTED", store.append_provenance(
            token, follow(token, chain[-1], kind, "u1", to)))
    await store.release("x1", "a1")  # another listing's release: not ours to clear
    assert await where(store, "a1") == [("u1", lock)]
    assert await verified(store, token) == chain


async def test_unlock_clears_only_its_own_lock(store: Store) -> None:
    await _lockable(store)
    mine, theirs = offer_lock("o1"), offer_lock("o9")
    await store.lock_assets(mine, [("a1", "u1"), ("a2", "u1")])
    await store.unlock_assets(mine, ["a1", "l1", "x1", "a3", "nope"])
    await store.unlock_assets(mine, [])
    assert await where(store, "a1", "a2", "l1", "x1") == [
        ("u1", None), ("u1", mine), ("u1", theirs), ("u1", "x1")]
    await store.create_auction(auction("x2", "a1", "u1"))  # free again
    await store.unlock_assets(mine, ["a1", "a2"])
    assert await where(store, "a1", "a2") == [("u1", "x2"), ("u1", None)]


# -- moving a locked asset -------------------------------------------------------------------
async def test_move_locked_asset_hands_it_over_with_its_record(store: Store) -> None:
    token, m = await minted(store, "a1", "u1")
    lock, rec = offer_lock("o1"), handover(token, m, "u1", "u2")
    await store.lock_assets(lock, [("a1", "u1")])
    assert await store.move_locked_asset(lock, "a1", "u1", "u2", rec) is True
    assert await where(store, "a1") == [("u2", None)]
    chain = await verified(store, token)
    assert chain == [m, rec] and owner_of(cast(list[Record], chain)) == "u2"
    # Retried: already moved (the same record is in the chain already).
    assert await store.move_locked_asset(lock, "a1", "u1", "u2", rec) is False
    assert await store.move_locked_asset(lock, "a1", "u1", "u2") is False
    assert await verified(store, token) == [m, rec]
    # A legacy asset (no chain) moves without a record.
    await store.create_asset(cast(Any, asset("old", "u2")))
    await store.lock_assets(lock, [("old", "u2")])
    assert await store.move_locked_asset(lock, "old", "u2", "u1") is True
    assert await where(store, "old") == [("u1", None)]


async def test_move_locked_asset_refuses_what_it_does_not_hold(store: Store) -> None:
    await _lockable(store)
    token, lock = token_id_for("a1"), offer_lock("o1")
    await store.lock_assets(lock, [("a1", "u1")])
    m = (await verified(store, token))[0]
    cases = [("wrong lock", offer_lock("o2"), "a1", "u1"), ("wrong owner", lock, "a1", "u3"),
             ("unlocked", lock, "a2", "u1"), ("other lock", lock, "l1", "u1"),
             ("auction", lock, "x1", "u1"), ("missing", lock, "nope", "u1")]
    for what, lk, aid, frm in cases:
        before = await store.get_asset(aid)
        for rec in (None, handover(token_id_for(aid), m, frm, "u2")):
            await refused("ASSET_MOVED", store.move_locked_asset(lk, aid, frm, "u2", rec))
            assert await store.get_asset(aid) == before, what
    await tamper_asset(store, "a1", redeemed=True)
    await refused("ASSET_MOVED", store.move_locked_asset(lock, "a1", "u1", "u2"))
    assert await verified(store, token) == [m]


async def test_move_locked_asset_with_a_bad_record_changes_nothing(store: Store) -> None:
    token, m = await minted(store, "a1", "u1")
    lock = offer_lock("o1")
    await store.lock_assets(lock, [("a1", "u1")])
    good = handover(token, m, "u1", "u2")
    bad = {
        "wrong seq": handover(token, cast(ProvenanceRecord, {**m, "seq": 2}), "u1", "u2"),
        "wrong prev_hash": handover(token, cast(ProvenanceRecord, {**m, "hash": "ab" * 32}),
                                    "u1", "u2"),
        "to another": handover(token, m, "u1", "u3"),
        "from another": handover(token, m, "u4", "u2"),
        "a redeem": follow(token, m, "redeem", "u1", None),
        "a second mint": cast(ProvenanceRecord, {**m, "seq": 2, "prev_hash": m["hash"]}),
    }
    for what, rec in bad.items():
        await refused("PROVENANCE_CONFLICT", store.move_locked_asset(lock, "a1", "u1", "u2", rec))
        assert await where(store, "a1") == [("u1", lock)], what
        assert await verified(store, token) == [m], what
    assert await store.move_locked_asset(lock, "a1", "u1", "u2", good) is True
    assert await verified(store, token) == [m, good]


# -- concurrency: stores in many processes --------------------------------------------------
async def test_concurrent_writers_one_wins(backend: Backend) -> None:
    stores = [await backend.open() for _ in range(4)]
    v1 = offer("o1")
    await stores[0].save_offers([v1])
    rivals = [bump(v1, updated_at=AT + 10 + i) for i in range(4)]
    fenced = await asyncio.gather(*(s.save_offers([r]) for s, r in zip(stores, rivals,
                                                                      strict=True)))
    assert sorted(map(len, fenced)) == [0, 1, 1, 1]
    assert await stores[1].get_offer("o1") == as_stored(rivals[fenced.index(set())])
    for aid in ("a1", "a2"):
        await minted(stores[0], aid, "u1")
    claims = [("a1", "u1"), ("a2", "u1")]
    outcomes = await asyncio.gather(
        *(s.lock_assets(offer_lock(f"o{i}"), claims[:: 1 if i % 2 else -1])
          for i, s in enumerate(stores)), return_exceptions=True)
    won = [offer_lock(f"o{i}") for i, o in enumerate(outcomes) if o is None]
    assert len(won) <= 1 and all(isinstance(o, Conflict) and o.code == "ASSET_LISTED"
                                 for o in outcomes if o is not None), outcomes
    assert await where(stores[2], "a1", "a2") == [("u1", won[0] if won else None)] * 2


# -- property: locks and moves keep one owner and only their own locks -----------------------
_asset = st.integers(min_value=0, max_value=3)  # 3: an asset that does not exist
_lock = st.integers(min_value=0, max_value=1)
_who = st.one_of(st.just(-1), st.integers(min_value=0, max_value=2))  # -1: the owner
_op = st.one_of(
    st.tuples(st.just("lock"), _lock, st.lists(st.tuples(_asset, _who), min_size=1,
                                                  max_size=3)),
    st.tuples(st.just("unlock"), _lock, st.lists(_asset, max_size=3)),
    st.tuples(st.just("move"), _lock, _asset, _who, _who),
)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(_op, max_size=25))
async def test_locks_and_moves_keep_one_owner(store: Store, ops: list[Any]) -> None:
    # One store for every example: fresh ids each time.
    run = uuid.uuid4().hex[:8]
    users = [f"{run}u{i}" for i in range(3)]
    assets = [f"{run}a{i}" for i in range(4)]
    locks = [offer_lock(f"{run}o{i}") for i in range(2)]
    owner = {aid: users[i] for i, aid in enumerate(assets[:3])}
    held: dict[str, str | None] = dict.fromkeys(owner)
    taken: dict[str, set[str]] = {aid: set() for aid in owner}  # the locks that locked it
    for aid, u in owner.items():
        await minted(store, aid, u)

    def who(aid: str, w: int) -> str:
        return owner.get(aid, users[0]) if w < 0 else users[w]

    for op in ops:
        if op[0] == "lock":
            lock, claims = locks[op[1]], [(assets[a], who(assets[a], w)) for a, w in op[2]]
            codes = {"ASSET_NOT_FOUND" if a not in owner else "NOT_OWNER" if owner[a] != u
                     else "ASSET_LISTED" for a, u in claims
                     if a not in owner or owner[a] != u or held[a] not in (None, lock)}
            if codes:
                with pytest.raises(Conflict) as err:
                    await store.lock_assets(lock, claims)
                assert err.value.code in codes
            else:
                await store.lock_assets(lock, claims)
                for aid, _ in claims:
                    held[aid] = lock
                    taken[aid].add(lock)
        elif op[0] == "unlock":
            lock = locks[op[1]]
            await store.unlock_assets(lock, [assets[a] for a in op[2]])
            for aid in (assets[a] for a in op[2] if a < 3):
                if held[aid] == lock:
                    held[aid], taken[aid] = None, set()
        else:
            lock, aid = locks[op[1]], assets[op[2]]
            frm, to = who(aid, op[3]), who(aid, op[4])
            if frm == to:
                continue
            rec = None  # the token's record, so that its chain follows every move
            if aid in owner:
                chain = await store.load_provenance(token_id_for(aid)) or []
                rec = handover(token_id_for(aid), chain[-1], frm, to, lock)
            if aid in owner and held[aid] == lock and owner[aid] == frm:
                assert await store.move_locked_asset(lock, aid, frm, to, rec) is True
                owner[aid], held[aid], taken[aid] = to, None, set()
            elif aid in owner and owner[aid] == to and held[aid] != lock:
                assert await store.move_locked_asset(lock, aid, frm, to, rec) is False
            else:
                await refused("ASSET_MOVED", store.move_locked_asset(lock, aid, frm, to, rec))
        for aid in owner:
            chain = await verified(store, token_id_for(aid))
            got = await store.get_asset(aid)
            assert got is not None
            assert (got["owner_id"], got.get("listed_in")) == (owner[aid], held[aid])
            assert owner_of(cast(list[Record], chain)) == owner[aid]
            assert got.get("listed_in") is None or got.get("listed_in") in taken[aid]
    mine = [a["asset_id"] for u in users for a in await store.list_assets(u)]
    assert sorted(mine) == sorted(owner)  # each asset has exactly one owner
