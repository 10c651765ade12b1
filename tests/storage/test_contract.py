"""The Store contract, run against every back end (see conftest.backend)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from market.provenance import token_id_for
from storage import SETTLE_ASSET_MOVED, CommitBatch, Conflict, Store
from tests.storage.conftest import Backend, tamper_asset

T0 = 1_700_000_000.0


# -- builders ------------------------------------------------------------------------------
def user(user_id: str, username: str) -> dict[str, Any]:
    return {
        "user_id": user_id,
        "username": username,
        "password_hash": f"hash-{user_id}",
        "created_at": T0,
        "portfolio_public": False,  # what the store answers for a new user
    }


def asset(asset_id: str, owner_id: str, created_at: float = T0) -> dict[str, Any]:
    return {
        "asset_id": asset_id,
        "owner_id": owner_id,
        "title": f"Card {asset_id}",
        "metadata": {"rarity": "mythic", "set": {"code": "LEA", "n": 7}, "tags": ["a", "b"]},
        "created_at": created_at,
    }


def view(
    auction_id: str, status: str = "scheduled", seq: int = 0, ends_at: float = T0 + 60
) -> dict[str, Any]:
    return {
        "auction_id": auction_id,
        "status": status,
        "seq": seq,
        "ends_at": ends_at,
        "best": None,
    }


def auction(
    auction_id: str,
    asset_id: str,
    seller_id: str,
    host: str = "h1",
    ends_at: float = T0 + 60,
) -> dict[str, Any]:
    return {
        "auction_id": auction_id,
        "asset_id": asset_id,
        "seller_id": seller_id,
        "host": host,
        "spec": {"kind": "english", "reserve": 100, "ends_at": ends_at},
        "view": view(auction_id, ends_at=ends_at),
        "status": "scheduled",
        "seq": 0,
        "created_at": T0,
    }


def event(auction_id: str, seq: int, **fields: Any) -> dict[str, Any]:
    return {"auction_id": auction_id, "seq": seq, "type": "bid", **fields}


async def listed(
    store: Store, auction_id: str, seller: str = "u1", ends_at: float = T0 + 60, host: str = "h1"
) -> None:
    """Create an asset owned by `seller` and list it in a fresh auction."""
    asset_id = f"as-{auction_id}"
    await store.create_asset(asset(asset_id, seller))
    await store.create_auction(auction(auction_id, asset_id, seller, host=host, ends_at=ends_at))


async def finish(store: Store, auction_id: str, status: str, seq: int = 1) -> None:
    """Drive an auction to a final status through the normal commit path."""
    await store.commit(
        CommitBatch(
            events=[event(auction_id, seq, type=status)],
            views={auction_id: view(auction_id, status=status, seq=seq)},
        )
    )


# -- users ---------------------------------------------------------------------------------
async def test_users_roundtrip_and_case_insensitive_uniqueness(store: Store) -> None:
    alice = user("u1", "Alice")
    await store.create_user(alice)
    assert await store.get_user("u1") == alice
    assert await store.get_user_by_username("alice") == alice
    assert await store.get_user_by_username("ALICE") == alice
    assert await store.get_user("nope") is None
    assert await store.get_user_by_username("bob") is None

    with pytest.raises(Conflict) as err:
        await store.create_user(user("u2", "aLiCe"))
    assert err.value.code == "USERNAME_TAKEN"
    assert await store.get_user("u2") is None

    await store.create_user(user("u3", "Bob"))
    assert (await store.get_user_by_username("BOB") or {})["user_id"] == "u3"


# -- assets --------------------------------------------------------------------------------
async def test_assets_roundtrip_and_listing_by_owner(store: Store) -> None:
    await store.create_asset(asset("a1", "u1", T0))
    await store.create_asset(asset("a2", "u1", T0 + 1))
    await store.create_asset(asset("a3", "u2"))
    got = await store.get_asset("a1")
    # An asset without a catalog card: the graded-copy keys are there, all None; its token
    # id, not given, is derived from its id.
    ungraded = dict.fromkeys(("card_id", "grader", "grade", "cert"))
    assert got == {**asset("a1", "u1"), "listed_in": None, **ungraded,
                   "token_id": token_id_for("a1")}
    assert await store.get_asset("missing") is None
    assert [a["asset_id"] for a in await store.list_assets("u1")] == ["a1", "a2"]
    assert [a["asset_id"] for a in await store.list_assets("u2")] == ["a3"]
    assert await store.list_assets("nobody") == []
    with pytest.raises(Conflict) as err:
        await store.create_asset(asset("a1", "u2"))
    assert err.value.code == "ASSET_EXISTS"
    assert (await store.get_asset("a1") or {})["owner_id"] == "u1"


async def test_list_assets_by_id_in_pages(store: Store) -> None:
    for asset_id, at in (("b", T0), ("d", T0 - 5), ("a", T0 + 9), ("c", T0), ("e", T0 + 1)):
        await store.create_asset(asset(asset_id, "u1", at))
    await store.create_asset(asset("bb", "u2"))
    assert [a["asset_id"] for a in await store.list_assets("u1")] == ["a", "b", "c", "d", "e"]
    pages: list[list[str]] = []
    after: str | None = None
    while page := await store.list_assets("u1", limit=2, after=after):
        pages.append([a["asset_id"] for a in page])
        after = page[-1]["asset_id"]
    assert pages == [["a", "b"], ["c", "d"], ["e"]]
    assert [a["asset_id"] for a in await store.list_assets("u1", after="bb")] == ["c", "d", "e"]
    assert await store.list_assets("u1", limit=0) == []


# -- create_auction ------------------------------------------------------------------------
async def test_create_auction_lists_asset_and_returns_full_record(store: Store) -> None:
    await store.create_asset(asset("a1", "u1"))
    rec = auction("x1", "a1", "u1")
    await store.create_auction(rec)
    assert (await store.get_asset("a1") or {})["listed_in"] == "x1"
    got = await store.get_auction("x1")
    assert got == {**rec, "snapshot": None, "settled": False, "settle_error": None}
    assert await store.get_auction("nope") is None


@pytest.mark.parametrize(
    ("asset_id", "seller", "code"),
    [("missing", "u1", "ASSET_NOT_FOUND"), ("a1", "u2", "NOT_OWNER"), ("a1", "u1", "ASSET_LISTED")],
)
async def test_create_auction_conflicts(
    store: Store, asset_id: str, seller: str, code: str
) -> None:
    await store.create_asset(asset("a1", "u1"))
    await store.create_auction(auction("first", "a1", "u1"))
    with pytest.raises(Conflict) as err:
        await store.create_auction(auction("second", asset_id, seller))
    assert err.value.code == code
    assert await store.get_auction("second") is None
    assert (await store.get_asset("a1") or {})["listed_in"] == "first"


async def test_create_auction_duplicate_id_leaves_other_asset_unlisted(store: Store) -> None:
    await store.create_asset(asset("a1", "u1"))
    await store.create_asset(asset("a2", "u1"))
    await store.create_auction(auction("x1", "a1", "u1"))
    with pytest.raises(Conflict) as err:
        await store.create_auction(auction("x1", "a2", "u1"))
    assert err.value.code == "AUCTION_EXISTS"
    assert (await store.get_asset("a2") or {})["listed_in"] is None
    assert (await store.get_auction("x1") or {})["asset_id"] == "a1"


async def test_concurrent_create_auction_exactly_one_wins(backend: Backend) -> None:
    # Independent store instances (own connection/client each) race for one asset.
    stores = [await backend.open() for _ in range(8)]
    await stores[0].create_asset(asset("a1", "u1"))
    results = await asyncio.gather(
        *(s.create_auction(auction(f"x{i}", "a1", "u1")) for i, s in enumerate(stores)),
        return_exceptions=True,
    )
    winners = [f"x{i}" for i, r in enumerate(results) if r is None]
    losers = [r for r in results if r is not None]
    assert len(winners) == 1, results
    assert all(isinstance(r, Conflict) and r.code == "ASSET_LISTED" for r in losers), losers
    assert (await stores[0].get_asset("a1") or {})["listed_in"] == winners[0]
    assert [r["auction_id"] for r in await stores[0].open_auctions()] == winners


# -- commit / event log --------------------------------------------------------------------
async def test_commit_is_durable_across_store_instances(backend: Backend) -> None:
    writer = await backend.open()
    await listed(writer, "x1")
    await listed(writer, "x2")
    evs1 = [event("x1", s, amount=100 + s, nested={"k": [s, None, 1.5]}) for s in (1, 2, 3)]
    evs2 = [event("x2", s, amount=7) for s in (1, 2)]
    v1, v2 = view("x1", "live", 3), view("x2", "live", 2)
    snap1 = {"seq": 3, "book": {"u9": [103, 1.25]}, "bidders": ["u9"]}
    conflicts = await writer.commit(
        CommitBatch(events=evs1 + evs2, views={"x1": v1, "x2": v2}, snapshots={"x1": snap1})
    )
    assert conflicts == set()
    await writer.close()

    reader = await backend.open()
    assert await reader.load_events("x1") == evs1
    assert await reader.load_events("x2") == evs2
    rec1, rec2 = await reader.get_auction("x1"), await reader.get_auction("x2")
    assert rec1 is not None and rec2 is not None
    assert (rec1["view"], rec1["status"], rec1["seq"], rec1["snapshot"]) == (v1, "live", 3, snap1)
    assert (rec2["view"], rec2["status"], rec2["seq"], rec2["snapshot"]) == (v2, "live", 2, None)


async def test_empty_commit_is_a_noop(store: Store) -> None:
    assert await store.commit(CommitBatch()) == set()


async def test_conflicting_seq_fences_whole_auction_but_not_others(backend: Backend) -> None:
    owner = await backend.open()
    stale = await backend.open()  # a second writer that still believes it owns x1
    await listed(owner, "x1")
    await listed(owner, "x2")
    await listed(owner, "x3", seller="u2")
    good = [event("x1", 1, by="owner"), event("x1", 2, by="owner")]
    good_snap = {"seq": 2, "by": "owner"}
    assert (
        await owner.commit(
            CommitBatch(
                events=good, views={"x1": view("x1", "live", 2)}, snapshots={"x1": good_snap}
            )
        )
        == set()
    )

    # x1: seq 2 exists (conflict) while seq 3 is new - neither may survive, nor the view
    # and snapshot. x2 and x3 in the same batch must land.
    batch = CommitBatch(
        events=[
            event("x1", 2, by="stale"),
            event("x2", 1, by="stale"),
            event("x1", 3, by="stale"),
            event("x3", 1, by="stale"),
        ],
        views={
            "x1": view("x1", "closed", 3),
            "x2": view("x2", "live", 1),
            "x3": view("x3", "live", 1),
        },
        snapshots={"x1": {"seq": 3, "by": "stale"}, "x2": {"seq": 1, "by": "stale"}},
    )
    assert await stale.commit(batch) == {"x1"}

    check = await backend.open()
    assert await check.load_events("x1") == good
    x1 = await check.get_auction("x1")
    assert x1 is not None
    assert (x1["status"], x1["seq"], x1["snapshot"]) == ("live", 2, good_snap)
    assert await check.load_events("x2") == [event("x2", 1, by="stale")]
    assert await check.load_events("x3") == [event("x3", 1, by="stale")]
    x2 = await check.get_auction("x2")
    assert x2 is not None
    assert (x2["status"], x2["seq"], x2["snapshot"]) == ("live", 1, {"seq": 1, "by": "stale"})

    # The rightful owner keeps appending after the fenced attempt.
    assert await owner.commit(CommitBatch(events=[event("x1", 3, by="owner")])) == set()
    assert [e["by"] for e in await check.load_events("x1")] == ["owner"] * 3


async def test_duplicate_seq_inside_one_batch_fences_that_auction(store: Store) -> None:
    await listed(store, "x1")
    await listed(store, "x2")
    batch = CommitBatch(
        events=[event("x1", 1, n=1), event("x2", 1), event("x1", 1, n=2)],
        views={"x1": view("x1", "live", 1), "x2": view("x2", "live", 1)},
    )
    assert await store.commit(batch) == {"x1"}
    assert await store.load_events("x1") == []
    assert (await store.get_auction("x1") or {})["status"] == "scheduled"
    assert await store.load_events("x2") == [event("x2", 1)]


async def test_many_auctions_in_one_commit(store: Store) -> None:
    ids = [f"x{i:03d}" for i in range(60)]
    for aid in ids:
        await listed(store, aid)
    events = [event(aid, s) for s in (1, 2) for aid in ids]
    views = {aid: view(aid, "live", 2) for aid in ids}
    snaps = {aid: {"seq": 2, "n": i} for i, aid in enumerate(ids)}
    assert await store.commit(CommitBatch(events, views, snaps)) == set()
    for i, aid in enumerate(ids):
        assert [e["seq"] for e in await store.load_events(aid)] == [1, 2]
        rec = await store.get_auction(aid)
        assert rec is not None and rec["snapshot"] == {"seq": 2, "n": i}


async def test_views_and_snapshots_never_move_backwards(store: Store) -> None:
    await listed(store, "x1")
    new = view("x1", "live", 5)
    await store.commit(CommitBatch(views={"x1": new}, snapshots={"x1": {"seq": 5}}))
    await store.commit(
        CommitBatch(views={"x1": view("x1", "live", 4)}, snapshots={"x1": {"seq": 4}})
    )
    rec = await store.get_auction("x1")
    assert rec is not None and (rec["view"], rec["snapshot"]) == (new, {"seq": 5})


async def test_view_only_commit_repairs_a_stale_view(store: Store) -> None:
    # The state a half-written Mongo commit leaves (events stored, view and snapshot not):
    # a later commit carrying only the view and snapshot brings the record up to date.
    await listed(store, "x1")
    evs = [event("x1", s) for s in (1, 2, 3)]
    await store.commit(CommitBatch(events=evs))
    stale = await store.get_auction("x1")
    assert stale is not None and (stale["status"], stale["seq"]) == ("scheduled", 0)

    fresh, snap = view("x1", "closed", 3), {"seq": 3, "winner": "u2"}
    assert await store.commit(CommitBatch(views={"x1": fresh}, snapshots={"x1": snap})) == set()
    rec = await store.get_auction("x1")
    assert rec is not None
    assert (rec["view"], rec["status"], rec["seq"], rec["snapshot"]) == (fresh, "closed", 3, snap)
    assert [r["auction_id"] for r in await store.unsettled_finished()] == ["x1"]
    assert await store.list_auctions("closed") == [fresh]

    # A view-only commit that is not newer changes nothing; the log is never touched.
    assert await store.commit(CommitBatch(views={"x1": view("x1", "live", 2)})) == set()
    assert await store.get_auction("x1") == rec
    assert await store.load_events("x1") == evs


async def test_load_events_after_seq_and_limit(store: Store) -> None:
    await listed(store, "x1")
    await listed(store, "x2")
    # Deliberately out of order within the batch; reads must come back by seq.
    evs = [event("x1", s) for s in (3, 1, 5, 2, 4)] + [event("x2", 1)]
    await store.commit(CommitBatch(events=evs))
    seqs = [
        [e["seq"] for e in got]
        for got in [
            await store.load_events("x1"),
            await store.load_events("x1", after_seq=2),
            await store.load_events("x1", after_seq=1, limit=2),
            await store.load_events("x1", after_seq=5),
            await store.load_events("x1", limit=0),
            await store.load_events("nope"),
        ]
    ]
    assert seqs == [[1, 2, 3, 4, 5], [3, 4, 5], [2, 3], [], [], []]


# -- queries -------------------------------------------------------------------------------
async def test_list_auctions_by_status_seller_and_limit(store: Store) -> None:
    await listed(store, "late", ends_at=T0 + 300)
    await listed(store, "early", ends_at=T0 + 100)
    await listed(store, "mid", ends_at=T0 + 200, seller="u2")
    await listed(store, "done1", ends_at=T0 + 10)
    await listed(store, "done2", ends_at=T0 + 20)
    await listed(store, "gone", ends_at=T0 + 30)
    statuses = {"mid": "live", "late": "live", "early": "live", "done1": "closed"}
    statuses |= {"done2": "closed", "gone": "cancelled"}
    await store.commit(
        CommitBatch(views={a: view(a, st, 1, ends_at=_ends(a)) for a, st in statuses.items()})
    )

    def ids(views: list[dict[str, Any]]) -> list[str]:
        return [v["auction_id"] for v in views]

    assert ids(await store.list_auctions("live")) == ["early", "mid", "late"]
    assert ids(await store.list_auctions("live", limit=2)) == ["early", "mid"]
    assert ids(await store.list_auctions("live", seller_id="u2")) == ["mid"]
    # Finished auctions are history: most recently ended first.
    assert ids(await store.list_auctions("closed")) == ["done2", "done1"]
    assert ids(await store.list_auctions("cancelled")) == ["gone"]
    assert await store.list_auctions("scheduled") == []
    everything = await store.list_auctions()
    assert ids(everything) == ["done1", "done2", "gone", "early", "mid", "late"]
    assert everything[0] == {**view("done1", "closed", 1), "ends_at": T0 + 10}


_ENDS = {"late": 300, "early": 100, "mid": 200, "done1": 10, "done2": 20, "gone": 30}


def _ends(aid: str) -> float:
    return T0 + _ENDS[aid]


async def test_open_auctions_by_host(store: Store) -> None:
    await listed(store, "s1", host="h1")
    await listed(store, "l1", host="h1")
    await listed(store, "l2", host="h2")
    await listed(store, "c1", host="h1")
    await store.commit(
        CommitBatch(views={"l1": view("l1", "live", 1), "l2": view("l2", "live", 1)})
    )
    await finish(store, "c1", "closed")

    def ids(recs: list[dict[str, Any]]) -> set[str]:
        return {r["auction_id"] for r in recs}

    assert ids(await store.open_auctions()) == {"s1", "l1", "l2"}
    assert ids(await store.open_auctions("h1")) == {"s1", "l1"}
    assert ids(await store.open_auctions("h3")) == set()
    rec = next(r for r in await store.open_auctions("h1") if r["auction_id"] == "l1")
    assert (rec.get("host"), rec["status"], rec["seq"], rec.get("settled")) == (
        "h1", "live", 1, False)


# -- settlement ----------------------------------------------------------------------------
def trade(auction_id: str, buyer: str, price: int, at: float, seller: str = "u1") -> dict[str, Any]:
    return {
        "auction_id": auction_id,
        "asset_id": f"as-{auction_id}",
        "seller_id": seller,
        "buyer_id": buyer,
        "price": price,
        "at": at,
    }


async def _state(store: Store, auction_id: str) -> tuple[Any, ...]:
    return (
        await store.get_asset(f"as-{auction_id}"),
        await store.get_auction(auction_id),
        await store.get_trade(auction_id),
        await store.list_trades(),
    )


async def test_settle_transfers_once_and_is_idempotent(store: Store) -> None:
    await listed(store, "x1")
    await finish(store, "x1", "closed")
    t = trade("x1", "u2", 250, T0 + 61)
    assert await store.settle(t) is True
    a = await store.get_asset("as-x1")
    assert a is not None and (a["owner_id"], a["listed_in"]) == ("u2", None)
    rec = await store.get_auction("x1")
    assert rec is not None and (rec["settled"], rec["settle_error"]) == (True, None)
    assert await store.get_trade("x1") == t
    assert await store.get_trade("nope") is None
    assert [a["asset_id"] for a in await store.list_assets("u2")] == ["as-x1"]

    before = await _state(store, "x1")
    assert await store.settle(t) is False
    assert await store.settle({**t, "buyer_id": "u3", "price": 1}) is False
    assert await _state(store, "x1") == before
    assert await store.list_trades() == [t]


@pytest.mark.parametrize(
    ("owner", "listed_in"),
    [("u3", None), ("u1", "x9"), ("u1", None)],
    ids=["given-to-another-user", "listed-in-another-auction", "unlisted"],
)
async def test_settle_records_no_trade_when_asset_moved(
    store: Store, caplog: pytest.LogCaptureFixture, owner: str, listed_in: str | None
) -> None:
    await listed(store, "x1")
    await finish(store, "x1", "closed")
    # The asset is no longer the seller's through this listing when the auction settles.
    await tamper_asset(store, "as-x1", owner_id=owner, listed_in=listed_in)
    asset_before = await store.get_asset("as-x1")
    t = trade("x1", "u2", 250, T0 + 61)

    with caplog.at_level(logging.WARNING, logger="storage"):
        assert await store.settle(t) is False
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert "x1" in caplog.text and SETTLE_ASSET_MOVED in caplog.text
    assert await store.get_trade("x1") is None
    assert await store.list_trades() == []
    assert await store.get_asset("as-x1") == asset_before
    rec = await store.get_auction("x1")
    assert rec is not None and (rec["settled"], rec["settle_error"]) == (True, SETTLE_ASSET_MOVED)
    # The saga comes back only to tell the users, once, then never again.
    assert [r["auction_id"] for r in await store.unsettled_finished()] == ["x1"]
    await store.mark_told("x1")
    assert await store.unsettled_finished() == []

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="storage"):
        assert await store.settle(t) is False  # a no-op, warned about once
    assert caplog.records == []
    assert await store.list_trades() == []
    assert await store.get_asset("as-x1") == asset_before


async def test_concurrent_settle_applies_once(backend: Backend) -> None:
    stores = [await backend.open() for _ in range(4)]
    await listed(stores[0], "x1")
    await finish(stores[0], "x1", "closed")
    t = trade("x1", "u2", 250, T0 + 61)
    results = await asyncio.gather(*(s.settle(t) for s in stores))
    assert sorted(results) == [False, False, False, True]
    assert (await stores[0].get_asset("as-x1") or {})["owner_id"] == "u2"
    assert await stores[0].list_trades() == [t]


async def test_buyer_can_relist_and_resell(store: Store) -> None:
    await listed(store, "x1")
    await finish(store, "x1", "closed")
    assert await store.settle(trade("x1", "u2", 250, T0 + 61))
    await store.create_auction(auction("x2", "as-x1", "u2"))
    await finish(store, "x2", "closed")
    t2 = {**trade("x2", "u3", 300, T0 + 200, seller="u2"), "asset_id": "as-x1"}
    assert await store.settle(t2) is True
    assert (await store.get_asset("as-x1") or {})["owner_id"] == "u3"
    assert [t["auction_id"] for t in await store.list_trades(asset_id="as-x1")] == ["x2", "x1"]


async def test_release_unlists_and_is_idempotent(store: Store) -> None:
    await listed(store, "x1")
    await finish(store, "x1", "cancelled")
    assert await store.release("x1", "as-x1") is True
    a = await store.get_asset("as-x1")
    assert a is not None and (a["owner_id"], a["listed_in"]) == ("u1", None)
    assert (await store.get_auction("x1") or {})["settled"] is True
    # The seller relists; a late duplicate release of x1 must not unlist x2.
    await store.create_auction(auction("x2", "as-x1", "u1"))
    assert await store.release("x1", "as-x1") is False
    assert (await store.get_asset("as-x1") or {})["listed_in"] == "x2"
    assert await store.get_trade("x1") is None


async def test_unsettled_finished(store: Store) -> None:
    for aid in ("open", "closed_sold", "closed_unsold", "cancelled", "done"):
        await listed(store, aid)
    await finish(store, "closed_sold", "closed")
    await finish(store, "closed_unsold", "closed")
    await finish(store, "cancelled", "cancelled")
    await finish(store, "done", "closed")
    await store.mark_told("done")  # not settled yet: nothing to mark
    await store.settle(trade("done", "u2", 10, T0))
    await store.mark_told("done")
    await store.mark_told("open")  # not finished: nothing changes
    got = {r["auction_id"]: r for r in await store.unsettled_finished()}
    assert set(got) == {"closed_sold", "closed_unsold", "cancelled"}
    assert got["cancelled"]["status"] == "cancelled" and got["cancelled"]["settled"] is False
    await store.settle(trade("closed_sold", "u3", 10, T0))
    await store.release("closed_unsold", "as-closed_unsold")
    await store.release("cancelled", "as-cancelled")
    # Settled, but the saga's last step (telling the users) is still to come.
    got = {r["auction_id"]: r for r in await store.unsettled_finished()}
    assert set(got) == {"closed_sold", "closed_unsold", "cancelled"}
    assert all(r["settled"] for r in got.values())
    for auction_id in got:
        await store.mark_told(auction_id)
        await store.mark_told(auction_id)  # idempotent
    assert await store.unsettled_finished() == []


async def test_list_trades_filters_and_order(store: Store) -> None:
    plan = [("t1", "u1", "u2", 10), ("t2", "u2", "u3", 30), ("t3", "u1", "u3", 20)]
    for aid, seller, buyer, when in plan:
        await listed(store, aid, seller=seller)
        await finish(store, aid, "closed")
        assert await store.settle(trade(aid, buyer, 100, T0 + when, seller=seller))

    def ids(trades: list[dict[str, Any]]) -> list[str]:
        return [t["auction_id"] for t in trades]

    assert ids(await store.list_trades()) == ["t2", "t3", "t1"]
    assert ids(await store.list_trades(limit=2)) == ["t2", "t3"]
    assert ids(await store.list_trades(user_id="u2")) == ["t2", "t1"]  # buyer or seller
    assert ids(await store.list_trades(user_id="u3")) == ["t2", "t3"]
    assert ids(await store.list_trades(asset_id="as-t3")) == ["t3"]
    assert ids(await store.list_trades(asset_id="as-t3", user_id="u2")) == []
    assert (await store.list_trades(user_id="u1"))[0] == trade("t3", "u3", 100, T0 + 20)
