"""The analytics part of the Store contract (storage.facts), run against every back end: the
fact feeds (sales, auction closings) the store's own writes append, projection results saved
with their fenced checkpoints, and the analytics log."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import itertools
import json
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storage import Store
from storage import facts as facts_module
from storage.base import offer_lock
from storage.facts import (
    ASSET_MOVED_OUTCOME,
    PAYMENT_FAILED_OUTCOME,
    SOLD,
    UNSOLD,
    auction_sale_key,
    offer_sale_key,
)
from storage.records import AnalyticsMessage, ClosingRecord, SaleRecord, TradeRecord
from storage.sqlite import SqliteStore
from tests.storage.conftest import Backend, tamper_asset
from tests.storage.test_contract import finish, listed
from tests.storage.test_offers_contract import handover
from tests.storage.test_provenance_contract import AT, listed_token, minted

SALE_KEYS = SaleRecord.__required_keys__ | SaleRecord.__optional_keys__


# -- builders ------------------------------------------------------------------------------
def sale(key: str, *, card: str = "card_1", grader: str = "PSA", grade: float | None = 9,
         price: int = 100, at: int = AT, source: str = "external", ref: str | None = None,
         seller: str | None = None, buyer: str | None = None) -> SaleRecord:
    return {"key": key, "card_id": card, "grader": grader, "grade": grade, "price": price,
            "at": at, "source": source, "ref": ref, "seller_id": seller, "buyer_id": buyer}


def unplaced(records: list[Any]) -> list[dict[str, Any]]:
    """The records without their store-set `pos`."""
    return [{k: v for k, v in r.items() if k != "pos"} for r in records]


def positions(records: list[Any]) -> list[int]:
    return [r["pos"] for r in records]


def increasing(pos: list[int]) -> bool:
    return all(a < b for a, b in itertools.pairwise(pos)) and all(p > 0 for p in pos)


def deal(auction_id: str, buyer: str = "u2", price: int = 250, seller: str = "u1",
         at: int = AT + 61_000) -> TradeRecord:
    """The trade of auction `auction_id` over asset `as-<auction_id>`."""
    return {"auction_id": auction_id, "asset_id": f"as-{auction_id}", "seller_id": seller,
            "buyer_id": buyer, "price": price, "at": at}


def auction_sale(t: TradeRecord) -> dict[str, Any]:
    """The sale a settle of `t` appends for a minted copy (card_1, PSA 9)."""
    return {"key": auction_sale_key(t["auction_id"]), "card_id": "card_1", "grader": "PSA",
            "grade": 9, "price": t["price"], "at": t["at"], "source": "auction",
            "ref": t["auction_id"], "seller_id": t["seller_id"], "buyer_id": t["buyer_id"]}


async def all_sales(store: Store) -> list[SaleRecord]:
    return await store.sales_feed(0, 1_000_000)


async def all_closings(store: Store) -> list[ClosingRecord]:
    return await store.closings_feed(0, 1_000_000)


async def outcomes(store: Store) -> list[tuple[str, str]]:
    return [(c["auction_id"], c["outcome"]) for c in await all_closings(store)]


def message(n: int, channel: str = "market", type_: str = "index") -> AnalyticsMessage:
    return {"channel": channel, "type": type_, "data": {"n": n, "nested": {"v": [n, "x"]}}}


def now_ms() -> int:
    return int(time.time() * 1000)


# -- the sales feed ------------------------------------------------------------------------
async def test_add_sales_is_idempotent_by_key(backend: Backend, store: Store) -> None:
    assert await store.sales_position() == 0
    assert await store.sales_feed(0) == []
    s1, s2 = sale("ext:1", grade=9), sale("ext:2", grade=9.5, price=12_345, ref="r2",
                                          seller="u1", buyer="u2")
    raw = sale("ext:3", grader="RAW", grade=None, at=AT + 5)
    # A key repeated within the batch is added once (the first); its count says so.
    assert await store.add_sales([s1, s2, {**s1, "price": 999}]) == 2
    assert await store.add_sales([s1, s2]) == 0
    assert await store.add_sales([{**s2, "price": 1}, raw]) == 1
    assert await store.add_sales([]) == 0
    got = await all_sales(store)
    assert unplaced(got) == [s1, s2, raw]
    assert all(set(r) == SALE_KEYS for r in got)
    # Grades keep their one form: a whole grade an int, a half a float, RAW None.
    assert [type(r["grade"]) for r in got] == [int, float, type(None)]
    assert increasing(positions(got))
    if backend.kind == "sqlite":  # a skipped duplicate takes no position (no gap)
        assert positions(got) == [1, 2, 3]
    assert await store.sales_position() == got[-1]["pos"]


async def test_sales_feed_pages_in_position_order(backend: Backend, store: Store) -> None:
    first = [sale(f"k{n:02}", price=100 + n, at=AT - n) for n in range(7)]
    later = [sale(f"a{n:02}", price=200 + n, card=f"card_{n}") for n in range(5)]
    assert await store.add_sales(first) == 7
    assert await store.add_sales(later) == 5
    feed = await all_sales(store)
    assert unplaced(feed) == first + later  # the order of addition, not of key or time
    pos = positions(feed)
    assert increasing(pos)
    if backend.kind == "sqlite":
        assert pos == list(range(1, 13))  # handed out in the writing transaction: no gaps
    assert await store.sales_position() == pos[-1]
    assert await store.sales_feed(pos[3]) == feed[4:]
    assert await store.sales_feed(pos[3], limit=2) == feed[4:6]
    assert await store.sales_feed(0, limit=1) == feed[:1]
    assert await store.sales_feed(pos[-1]) == []
    assert await store.sales_feed(0, limit=0) == []
    paged: list[SaleRecord] = []
    after = 0
    while page := await store.sales_feed(after, limit=5):
        paged += page
        after = page[-1]["pos"]
    assert paged == feed


async def test_an_instance_sees_the_sales_another_added(backend: Backend) -> None:
    one, two = await backend.open(), await backend.open()
    assert await one.add_sales([sale("k1")]) == 1
    assert await two.add_sales([sale("k1"), sale("k2")]) == 1
    assert unplaced(await one.sales_feed(0)) == [sale("k1"), sale("k2")]
    assert await one.sales_position() == await two.sales_position()


# -- facts of settlement ---------------------------------------------------------------------
async def test_settle_of_a_graded_copy_appends_one_sale_and_one_closing(store: Store) -> None:
    await listed_token(store, "x1")
    t = deal("x1")
    before = now_ms()
    assert await store.settle(t) is True
    after = now_ms()
    sales = await all_sales(store)
    assert unplaced(sales) == [auction_sale(t)]
    closings = await all_closings(store)
    assert [(c["auction_id"], c["outcome"]) for c in closings] == [("x1", SOLD)]
    assert before <= closings[0]["at"] <= after  # the store's clock, not the trade's
    assert await store.closings_position() == closings[0]["pos"] > 0
    # Retried: nothing more.
    assert await store.settle(t) is False
    assert await store.settle({**t, "price": 1, "buyer_id": "u3"}) is False
    assert await all_sales(store) == sales
    assert await all_closings(store) == closings


async def test_concurrent_settle_appends_its_facts_once(backend: Backend) -> None:
    stores = [await backend.open() for _ in range(4)]
    await listed_token(stores[0], "x1")
    t = deal("x1")
    results = await asyncio.gather(*(s.settle(t) for s in stores))
    assert sorted(results) == [False, False, False, True]
    assert unplaced(await all_sales(stores[1])) == [auction_sale(t)]
    assert await outcomes(stores[2]) == [("x1", SOLD)]


async def test_settle_of_a_legacy_asset_appends_a_closing_but_no_sale(store: Store) -> None:
    await listed(store, "x1")  # an asset without a catalog card
    await finish(store, "x1", "closed")
    assert await store.settle(deal("x1")) is True
    assert await all_sales(store) == []
    assert await store.sales_position() == 0
    assert await outcomes(store) == [("x1", SOLD)]


async def test_settle_of_a_moved_asset_closes_asset_moved(store: Store) -> None:
    await listed_token(store, "x1")
    await tamper_asset(store, "as-x1", owner_id="u3", listed_in=None)
    assert await store.settle(deal("x1")) is False
    assert await store.settle(deal("x1")) is False
    assert await all_sales(store) == []
    assert await outcomes(store) == [("x1", ASSET_MOVED_OUTCOME)]


async def test_a_sale_without_a_price_is_no_sale(store: Store) -> None:
    # SaleRecord.price is > 0: a zero hammer price moves the card but feeds no price.
    await listed_token(store, "x1")
    assert await store.settle(deal("x1", price=0)) is True
    assert await all_sales(store) == []
    assert await outcomes(store) == [("x1", SOLD)]


async def test_release_closes_unsold_once(store: Store) -> None:
    await listed_token(store, "x1")
    before = now_ms()
    assert await store.release("x1", "as-x1") is True
    assert await store.release("x1", "as-x1") is False
    closings = await all_closings(store)
    assert [(c["auction_id"], c["outcome"]) for c in closings] == [("x1", UNSOLD)]
    assert before <= closings[0]["at"] <= now_ms()
    # A settled auction released late (or a missing one): no closing.
    await listed_token(store, "x2")
    assert await store.settle(deal("x2")) is True
    assert await store.release("x2", "as-x2") is False
    await store.release("nope", "as-nope")
    assert await outcomes(store) == [("x1", UNSOLD), ("x2", SOLD)]
    assert len(await all_sales(store)) == 1


async def test_fail_payment_closes_payment_failed_once(store: Store) -> None:
    await listed_token(store, "x1")
    t = deal("x1")
    assert await store.fail_payment(t) is True
    assert await store.fail_payment(t) is False
    assert await store.settle(t) is False  # settled already: no sale either
    assert await store.release("x1", "as-x1") is False
    assert await all_sales(store) == []
    assert await outcomes(store) == [("x1", PAYMENT_FAILED_OUTCOME)]


async def test_closings_feed_pages_in_position_order(store: Store) -> None:
    for aid in ("c3", "c1", "c2", "c4"):
        await listed_token(store, aid)
    await store.settle(deal("c3"))
    await store.release("c1", "as-c1")
    await store.fail_payment(deal("c2"))
    await tamper_asset(store, "as-c4", listed_in=None)
    await store.settle(deal("c4"))
    feed = await all_closings(store)
    assert [(c["auction_id"], c["outcome"]) for c in feed] == [
        ("c3", SOLD), ("c1", UNSOLD), ("c2", PAYMENT_FAILED_OUTCOME),
        ("c4", ASSET_MOVED_OUTCOME)]
    pos = positions(feed)
    assert increasing(pos) and await store.closings_position() == pos[-1]
    assert await store.closings_feed(pos[1]) == feed[2:]
    assert await store.closings_feed(pos[0], limit=2) == feed[1:3]
    assert await store.closings_feed(pos[-1]) == []
    assert await store.closings_feed(0, limit=0) == []


# -- facts of offers -------------------------------------------------------------------------
async def test_a_priced_swap_move_appends_one_offer_sale(store: Store) -> None:
    token, m = await minted(store, "a1", "u1")
    lock = offer_lock("o1")
    await store.lock_assets(lock, [("a1", "u1")])
    rec = handover(token, m, "u1", "u2", "o1", price=700, at=AT + 5_000)
    assert await store.move_locked_asset(lock, "a1", "u1", "u2", rec) is True
    want = {"key": offer_sale_key("o1"), "card_id": "card_1", "grader": "PSA", "grade": 9,
            "price": 700, "at": AT + 5_000, "source": "offer", "ref": "o1",
            "seller_id": "u1", "buyer_id": "u2"}
    sales = await all_sales(store)
    assert unplaced(sales) == [want]
    assert await store.move_locked_asset(lock, "a1", "u1", "u2", rec) is False  # retried
    assert await all_sales(store) == sales
    assert await all_closings(store) == []  # offers have no closings


async def test_an_unpriced_swap_move_is_no_sale(store: Store) -> None:
    token, m = await minted(store, "a1", "u1")
    await minted(store, "a2", "u1")
    lock = offer_lock("o1")
    await store.lock_assets(lock, [("a1", "u1"), ("a2", "u1")])
    assert await store.move_locked_asset(lock, "a1", "u1", "u2",
                                         handover(token, m, "u1", "u2", "o1")) is True
    assert await store.move_locked_asset(lock, "a2", "u1", "u2") is True  # no record at all
    assert await all_sales(store) == []
    assert await store.sales_position() == 0


# -- projection results and checkpoints ------------------------------------------------------
async def test_save_projection_is_fenced_by_its_checkpoint(store: Store) -> None:
    assert await store.projection_checkpoint("p") == 0
    assert await store.analytics_log_position() == 0
    puts: list[tuple[str, str, dict[str, Any] | None]] = [("candle", "c|1", {"o": 1})]
    assert await store.save_projection("p", 0, 5, puts, [message(1)]) is True
    assert await store.projection_checkpoint("p") == 5
    assert await store.projection_checkpoint("other") == 0
    log = await store.analytics_log(0)
    # Wrong expect (behind, ahead, or what a fresh instance assumes): nothing written.
    for expect in (0, 4, 6):
        assert await store.save_projection(
            "p", expect, 9, [("candle", "c|1", {"o": 2}), ("candle", "c|2", {"o": 3}),
                             ("candle", "c|0", None)], [message(2)]) is False
        assert await store.projection_checkpoint("p") == 5
        assert await store.get_projection_doc("candle", "c|1") == {"o": 1}
        assert await store.get_projection_doc("candle", "c|2") is None
        assert await store.count_projection("candle") == 1
        assert await store.analytics_log(0) == log
    assert await store.save_projection("p", 5, 9, [("candle", "c|1", {"o": 2})]) is True
    assert await store.projection_checkpoint("p") == 9
    assert await store.get_projection_doc("candle", "c|1") == {"o": 2}
    # Another projection's checkpoint is its own; a save may also stay put (messages only).
    assert await store.save_projection("q", 0, 3, []) is True
    assert await store.save_projection("q", 3, 3, [], [message(3)]) is True
    assert (await store.projection_checkpoint("p"), await store.projection_checkpoint("q")) \
        == (9, 3)
    assert [m["data"]["n"] for m in await store.analytics_log(0)] == [1, 3]


async def test_puts_replace_whole_documents_and_none_deletes(store: Store) -> None:
    doc = {"o": 100, "h": 120, "l": 90, "c": 110, "v": 3, "grade": 9.5, "tags": ["a", "ü"],
           "inner": {"x": None, "y": True}}
    assert await store.save_projection("p", 0, 1, [
        ("candle", "k1", doc), ("candle", "k2", {"o": 1}), ("index", "k1", {"i": 1}),
        ("candle", "k3", {"o": 3})]) is True
    assert await store.get_projection_doc("candle", "k1") == doc
    # The same document as compact JSON bytes, for a route to answer without decoding it.
    raw = await store.get_projection_json("candle", "k1")
    assert raw is not None and json.loads(raw) == doc and b" " not in raw
    assert await store.get_projection_json("candle", "nope") is None
    assert await store.save_projection("p", 1, 2, [
        ("candle", "k1", {"c": 1}),  # replaced whole: no merge with what was stored
        ("candle", "k2", None), ("candle", "gone", None),  # deleting nothing is fine
        ("candle", "k4", {"o": 4}), ("candle", "k4", {"o": 44}),  # the last put wins
        ("candle", "k3", {"o": 33}), ("candle", "k3", None),
        ("index", "k9", None), ("index", "k9", {"i": 9})]) is True
    assert await store.get_projection_docs("candle", ["k1", "k2", "k3", "k4", "gone"]) == {
        "k1": {"c": 1}, "k4": {"o": 44}}
    assert await store.get_projection_docs("index", ["k1", "k9"]) == {"k1": {"i": 1},
                                                                      "k9": {"i": 9}}
    assert await store.get_projection_docs("candle", []) == {}
    assert await store.get_projection_docs("nope", ["k1"]) == {}
    assert await store.get_projection_doc("candle", "k2") is None
    assert await store.get_projection_doc("nope", "k1") is None
    assert [await store.count_projection(k) for k in ("candle", "index", "nope")] == [2, 2, 0]


async def test_scan_projection_ranges(store: Store) -> None:
    keys = ["s1|1d|0001", "s1|1d|0002", "s1|1d|0010", "s1|1h|0001", "s1|1w|0001",
            "s2|1d|0001", "s10|1d|0001", "s1|1d|00é", "s1|1d|"]
    puts: list[tuple[str, str, dict[str, Any] | None]] = [("candle", k, {"k": k}) for k in keys]
    await store.save_projection("p", 0, 1, [*puts, ("other", "s1|1d|0001", {"k": "other"})])
    everything = [(k, {"k": k}) for k in sorted(keys)]

    def between(lo: str, hi: str) -> list[tuple[str, dict[str, Any]]]:
        return [(k, d) for k, d in everything if lo <= k < hi]

    day = between("s1|1d|", "s1|1d}")
    assert await store.scan_projection("candle", "s1|1d|", "s1|1d}") == day
    assert len(day) == 5 and day[0][0] == "s1|1d|"  # start is in, end is out
    assert await store.scan_projection("candle", "s1|1d|0002", "s1|1d|0010") == [
        ("s1|1d|0002", {"k": "s1|1d|0002"})]
    assert await store.scan_projection("candle", "s1|1d|", "s1|1d}", limit=2) == day[:2]
    assert await store.scan_projection("candle", "s1|1d|", "s1|1d}", reverse=True) == day[::-1]
    assert await store.scan_projection("candle", "s1|1d|", "s1|1d}", limit=2,
                                       reverse=True) == day[::-1][:2]
    assert await store.scan_projection("candle", "s1|1d|", "s1|1d}", limit=0) == []
    assert await store.scan_projection("candle", "s1|1d|", "s1|1d}", limit=-1) == []
    assert await store.scan_projection("candle", "", "\U0010ffff") == everything
    assert await store.scan_projection("candle", "s1|1h|", "s1|1h|") == []
    assert await store.scan_projection("candle", "t", "s") == []
    assert await store.scan_projection("other", "", "z") == [("s1|1d|0001", {"k": "other"})]
    assert await store.scan_projection("nope", "", "z") == []


async def test_reset_projections_forgets_checkpoints_and_their_kinds(backend: Backend) -> None:
    running, admin = await backend.open(), await backend.open()
    await running.save_projection("candles", 0, 7, [("candle", "a", {"v": 1}),
                                                    ("candle", "b", {"v": 2}),
                                                    ("movers", "m", {"v": 3})])
    await running.save_projection("index", 0, 4, [("index", "i", {"v": 4})])
    await admin.reset_projections(["candles"], ["candle", "movers"])
    assert await admin.projection_checkpoint("candles") == 0
    assert await admin.projection_checkpoint("index") == 4
    assert [await admin.count_projection(k) for k in ("candle", "movers", "index")] == [0, 0, 1]
    assert await admin.get_projection_doc("index", "i") == {"v": 4}
    # The instance that was running is fenced: its next save expects 7.
    assert await running.save_projection("candles", 7, 9, [("candle", "a", {"v": 9})]) is False
    assert await admin.count_projection("candle") == 0
    # The rebuild starts from 0.
    assert await admin.save_projection("candles", 0, 2, [("candle", "a", {"v": 5})]) is True
    assert await running.get_projection_doc("candle", "a") == {"v": 5}
    await admin.reset_projections([], [])
    await admin.reset_projections(["nope"], ["nope"])
    assert await admin.projection_checkpoint("candles") == 2


async def test_concurrent_saves_with_one_expect_one_wins(backend: Backend) -> None:
    stores = [await backend.open() for _ in range(4)]
    await stores[0].save_projection("p", 0, 3, [("candle", "k", {"by": -1})])
    results = await asyncio.gather(*(
        s.save_projection("p", 3, 10 + i, [("candle", "k", {"by": i})], [message(i)])
        for i, s in enumerate(stores)))
    assert sorted(results) == [False, False, False, True]
    winner = results.index(True)
    assert await stores[1].projection_checkpoint("p") == 10 + winner
    if backend.kind == "sqlite":  # one transaction: a loser writes nothing at all
        assert await stores[2].get_projection_doc("candle", "k") == {"by": winner}
        assert [m["data"]["n"] for m in await stores[2].analytics_log(0)] == [winner]


# -- the analytics log -----------------------------------------------------------------------
async def test_analytics_log_is_in_position_order(store: Store) -> None:
    assert await store.analytics_log(0) == []
    sent = [message(n, channel=f"card:c{n % 2}", type_=("sale", "candle")[n % 2])
            for n in range(6)]
    await store.save_projection("p", 0, 1, [], sent[:2])
    await store.save_projection("q", 0, 1, [], sent[2:3])
    await store.save_projection("p", 1, 2, [], sent[3:])
    log = await store.analytics_log(0)
    assert unplaced(log) == sent
    pos = positions(log)
    assert increasing(pos) and await store.analytics_log_position() == pos[-1]
    assert await store.analytics_log(pos[2]) == log[3:]
    assert await store.analytics_log(pos[0], limit=2) == log[1:3]
    assert await store.analytics_log(pos[-1]) == []
    assert await store.analytics_log(0, limit=0) == []


def _patch_log_keep(monkeypatch: pytest.MonkeyPatch, keep: int) -> None:
    """LOG_KEEP = keep wherever a back end reads it (storage.facts, or a copy imported
    into its module)."""
    monkeypatch.setattr(facts_module, "LOG_KEEP", keep)
    for name in ("storage.sqlite_facts", "storage.mongo_facts"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if hasattr(module, "LOG_KEEP"):
            monkeypatch.setattr(module, "LOG_KEEP", keep)


async def test_analytics_log_is_trimmed_to_its_last_log_keep(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    _patch_log_keep(monkeypatch, 3)
    await store.save_projection("p", 0, 1, [], [message(1), message(2)])
    assert [m["data"]["n"] for m in await store.analytics_log(0)] == [1, 2]
    await store.save_projection("p", 1, 2, [], [message(3), message(4)])
    assert [m["data"]["n"] for m in await store.analytics_log(0)] == [2, 3, 4]
    await store.save_projection("p", 2, 3, [], [message(n) for n in range(5, 10)])
    log = await store.analytics_log(0)
    assert [m["data"]["n"] for m in log] == [7, 8, 9]
    assert await store.analytics_log_position() == log[-1]["pos"]
    # A fenced save appends (and trims) nothing.
    assert await store.save_projection("p", 0, 4, [], [message(10)]) is False
    assert await store.analytics_log(0) == log
    assert await store.save_projection("p", 3, 4, []) is True
    assert await store.analytics_log(0) == log


# -- property: only a matching expect moves a checkpoint ---------------------------------------
_save_op = st.tuples(st.integers(0, 1),  # which instance
                     st.booleans(),  # whether it saves with what it believes (else stale)
                     st.integers(0, 50),  # the stale expect / the new position's step
                     st.booleans())  # reload its belief from the store after a fenced save


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(_save_op, max_size=30))
async def test_checkpoints_move_only_by_a_matching_expect(backend: Backend,
                                                          ops: list[Any]) -> None:
    if backend.kind != "sqlite":
        pytest.skip("the property runs on SQLite (the contract tests cover both)")
    if len(backend.opened) < 2:
        await backend.open()
        await backend.open()
    one, two = backend.opened[:2]
    name = f"p{uuid.uuid4().hex[:8]}"  # one store for every example: a fresh projection
    instances = (one, two)
    believed = [0, 0]
    checkpoint, doc, logged = 0, None, 0
    log_at = await one.analytics_log_position()
    for who, honest, n, reload in ops:
        expect = believed[who] if honest else n
        pos = believed[who] + n + 1
        mine = {"by": who, "pos": pos}
        ok = await instances[who].save_projection(name, expect, pos, [("ck", name, mine)],
                                                  [message(pos, channel=name)])
        assert ok is (expect == checkpoint)
        if ok:
            checkpoint, doc, logged = pos, mine, logged + 1
            believed[who] = pos
        elif reload:
            believed[who] = await instances[who].projection_checkpoint(name)
        assert await instances[1 - who].projection_checkpoint(name) == checkpoint
        assert await instances[1 - who].get_projection_doc("ck", name) == doc
    mine_logged = [m for m in await one.analytics_log(log_at, 100_000) if m["channel"] == name]
    assert len(mine_logged) == logged


# -- SQLite specifics: an old file gains the tables, and a card's sales are one index range ---
async def test_sqlite_file_from_before_analytics_is_migrated(tmp_path: Path) -> None:
    path = str(tmp_path / "old.db")
    store = SqliteStore(path)
    await store.open()
    await listed_token(store, "x1")
    await store.close()
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        for table in ("sales", "closings", "projection_docs", "checkpoints", "analytics_log",
                      "watches"):
            conn.execute(f"DROP TABLE {table}")
    stores = [SqliteStore(path) for _ in range(3)]
    await asyncio.gather(*(s.open() for s in stores))  # several processes migrate it at once
    try:
        assert await stores[0].settle(deal("x1")) is True
        assert unplaced(await all_sales(stores[1])) == [auction_sale(deal("x1"))]
        assert await outcomes(stores[2]) == [("x1", SOLD)]
        assert await stores[0].save_projection("p", 0, 1, [("k", "a", {"v": 1})], [message(1)])
        assert await stores[1].projection_checkpoint("p") == 1
        await listed(stores[0], "w1")
        assert await stores[1].record_watch("u2", "w1", AT) is True
        assert await stores[2].auction_watchers("w1") == [("u2", AT)]
        plan = " | ".join(str(r[-1]) for r in stores[0]._db.execute(
            "EXPLAIN QUERY PLAN SELECT price, at FROM sales WHERE card_id=? AND grader=?"
            " AND grade=? AND at>=? ORDER BY at", ("card_1", "PSA", 9, 0)))
        assert "USING INDEX sales_card" in plan, plan
    finally:
        for s in stores:
            await s.close()
