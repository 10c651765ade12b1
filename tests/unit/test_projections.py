"""The analytics projections (actors.analytics) run by their Runner over a real SQLite store:
what they store is what a fresh projection computes in one go; crashes before and after a
save, and a rebuild's fence, change nothing (every fact counted once); live messages; vetting;
price shards; the behaviour projection over auctions run by the real rules engine.

The clock is injected and fixed (NOW), so results are comparable across runs. The market
projection recomputes at most every RECOMPUTE_MS of that clock (and, catching up, when the
feed is drained); most tests set RECOMPUTE_MS to 0 (`every_batch`) so that a later batch is
recomputed under the fixed clock as it is under a real one. Crashes are a BaseException
(`Crash`), as a dying process: the runner's own retry loop never sees them.
"""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest
import pytest_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors.analytics.behaviour import BehaviourProjection
from actors.analytics.book import sale_segment
from actors.analytics.cards import Cards
from actors.analytics.market import CATCH_UP_RECOMPUTE_MS, RECOMPUTE_MS, MarketProjection
from actors.analytics.prices import LIVE_MS, PriceProjection
from actors.analytics.runner import Projection, Put, Runner
from market.prices import bucket_of
from storage import Store
from storage.records import AnalyticsMessage, Json, SaleRecord
from storage.sqlite import SqliteStore
from tests.unit.projectionkit import (
    ALL_KINDS,
    BEHAVIOUR_KINDS,
    CARDS,
    DAY,
    EVERYTHING,
    HOUR,
    MARKET_KINDS,
    NAMES,
    NOW,
    PRICE_KINDS,
    Docs,
    MakeStore,
    add_facts,
    clock,
    history,
    live,
    sale,
)


# -- running projections -----------------------------------------------------------------------
def make(name: str, store: Store, shards: int = 1) -> Projection:
    """A fresh instance of projection `name` (as a newly started process has)."""
    cards = Cards(store)
    if name.startswith("prices."):
        return PriceProjection(cards, int(name.split(".")[1]), shards)
    if name == "market":
        return MarketProjection(cards)
    assert name.startswith("behaviour.")
    return BehaviourProjection(store, None, int(name.split(".")[1]), shards)


class Crash(BaseException):
    """The process dies: not an Exception, so the runner's retry loop does not catch it."""


class Crashing:
    """Delegates to a real store; save call n (counted from 1) dies as `plan[n]` says:
    "before" writing anything or "after" the real save wrote (its answer lost), raising
    `error` (a Crash unless given)."""

    def __init__(self, inner: Store, plan: dict[int, str] | None = None,
                 error: Callable[[], BaseException] = Crash) -> None:
        self.inner = inner
        self.plan = plan or {}
        self.error = error
        self.saves = 0
        self.answers: list[bool] = []
        self.hit: list[int] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def save_projection(self, name: str, expect: int, pos: int, puts: list[Put],
                              messages: list[AnalyticsMessage] | None = None) -> bool:
        self.saves += 1
        how = self.plan.get(self.saves)
        if how == "before":
            self.hit.append(self.saves)
            raise self.error()
        ok = await self.inner.save_projection(name, expect, pos, puts, messages)
        self.answers.append(ok)
        if how == "after":
            self.hit.append(self.saves)
            raise self.error()
        return ok


async def fold_through(store: Store, new: Callable[[], Projection], page: int,
                       plan: dict[int, str] | None = None) -> Crashing:
    """Run the projections `new` makes to the end of the feed; at each crash of `plan` a new
    instance (new projection, new runner: a new process) restores from the store and carries
    on."""
    wrapped = Crashing(store, plan)
    while True:
        runner = Runner(cast(Store, wrapped), new(), page=page, clock=clock)
        try:
            await runner.restore()
            await runner.catch_up()
            return wrapped
        except Crash:
            continue


async def fold(store: Store, name: str, page: int, plan: dict[int, str] | None = None,
               shards: int = 1) -> Crashing:
    """Run projection `name` to the end of the feed through the crashes of `plan`."""
    return await fold_through(store, lambda: make(name, store, shards), page, plan)


async def fold_all(store: Store, page: int,
                   plans: dict[str, dict[int, str]] | None = None) -> dict[str, Crashing]:
    return {name: await fold(store, name, page, (plans or {}).get(name)) for name in NAMES}


async def stored(store: Store, kinds: tuple[str, ...] = ALL_KINDS) -> Docs:
    out: Docs = {}
    for kind in kinds:
        for key, doc in await store.scan_projection(kind, "", EVERYTHING, limit=10**7):
            out[kind, key] = doc
    return out


def as_docs(puts: list[Put]) -> Docs:
    out: Docs = {}
    for kind, key, doc in puts:
        if doc is None:
            out.pop((kind, key), None)
        else:
            out[kind, key] = doc
    return out


async def one_go(projection: Projection, rows: list[Any], now: int = NOW) -> Docs:
    """What a fresh projection computes from every row at once."""
    projection.reset()
    await projection.apply(rows, now)
    puts, _ = await projection.flush(now)
    return as_docs(puts)


def without(doc: Json, *fields: str) -> Json:
    return {k: v for k, v in doc.items() if k not in fields}


def unplaced(messages: list[AnalyticsMessage]) -> list[dict[str, Any]]:
    return [{k: v for k, v in m.items() if k != "pos"} for m in messages]


async def log(store: Store) -> list[AnalyticsMessage]:
    return await store.analytics_log(0, 1_000_000)


async def checkpoints(store: Store) -> dict[str, int]:
    return {name: await store.projection_checkpoint(name) for name in NAMES}


async def assert_counted_once(store: Store, sales: list[SaleRecord]) -> None:
    docs = await stored(store)
    sale_docs = [d for (kind, _), d in docs.items() if kind == "sale"]
    assert len(sale_docs) == len(sales)
    assert sorted(d["pos"] for d in sale_docs) == list(range(1, len(sales) + 1))
    clean = sum(not d["suspect"] for d in sale_docs)
    for interval in ("1d", "1w"):
        assert sum(d["count"] for (kind, key), d in docs.items()
                   if kind == "candle" and f"|{interval}|" in key) == clean
    assert sum(d["count"] + d["suspect_count"] for (kind, _), d in docs.items()
               if kind == "segment") == len(sales)
    summary = docs["market", "summary"]
    assert summary["sales_total"] == len(sales)
    assert summary["suspect_total"] == len(sales) - clean
    assert await checkpoints(store) == {"prices.0": len(sales), "market": len(sales),
                                        "behaviour.0": 0}


# -- folding the feed ------------------------------------------------------------------------
@pytest.mark.parametrize("page", [1_000, 23])
async def test_runner_stores_what_a_fresh_projection_computes_in_one_go(
        stores: MakeStore, every_batch: None, page: int) -> None:
    sales = history(400) + live(12)
    store = await stores(sales)
    wrapped = await fold_all(store, page)
    assert len(wrapped["prices.0"].answers) == -(-len(sales) // page)  # one save per batch
    assert wrapped["behaviour.0"].answers == []  # no closings: nothing to save
    docs = await stored(store)
    rows = await store.sales_feed(0, 1_000_000)
    prices = await one_go(make("prices.0", store), rows)
    market = await one_go(make("market", store), rows)
    assert {k: d for k, d in docs.items() if k[0] in PRICE_KINDS} == prices
    got_market = {k: d for k, d in docs.items() if k[0] in MARKET_KINDS}
    assert set(got_market) == set(market)
    for key, doc in market.items():
        assert without(got_market[key], "computed_at") == without(doc, "computed_at"), key
    assert not any(kind in BEHAVIOUR_KINDS for kind, _ in docs)
    # Every kind is there, and each fact is counted once.
    assert {kind for kind, _ in docs} == {*PRICE_KINDS, *MARKET_KINDS}
    assert ("index", "1w|market") in docs and ("movers", "7d") in docs
    assert ("index", "1mo|category:pokemon") in docs
    await assert_counted_once(store, sales)
    # A restart with nothing new (which refreshes what it computed) changes nothing.
    before = await stored(store), await log(store), await checkpoints(store)
    await fold_all(store, page)
    assert (await stored(store), await log(store), await checkpoints(store)) == before


# -- exactly once under crashes --------------------------------------------------------------
PAGE = 17
CRASH_SALES = 300


def crash_sales() -> list[SaleRecord]:
    return history(CRASH_SALES - 20) + live(20)


@pytest_asyncio.fixture
async def clean(stores: MakeStore, every_batch: None) -> tuple[Docs, list[Any], dict[str, int]]:
    """Docs, log and checkpoints of an uncrashed run over crash_sales()."""
    store = await stores(crash_sales())
    await fold_all(store, PAGE)
    return await stored(store), unplaced(await log(store)), await checkpoints(store)


async def assert_same_as_clean(store: Store, clean: tuple[Docs, list[Any], dict[str, int]]
                               ) -> None:
    docs, messages, points = clean
    got = await stored(store)
    assert set(got) == set(docs)
    for key, doc in docs.items():
        assert got[key] == doc, key
    assert await checkpoints(store) == points
    assert unplaced(await log(store)) == messages
    await assert_counted_once(store, crash_sales())


@pytest.mark.parametrize("plans", [
    {"prices.0": {1: "before"}, "market": {1: "before"}},
    {"prices.0": {1: "after"}, "market": {1: "after", 2: "before"}},
    {"prices.0": {3: "before", 4: "after", 9: "before"}, "market": {5: "after", 6: "before"}},
    {"prices.0": {2: "after", 3: "after", 4: "after"}, "market": {3: "after", 4: "before"}},
    {"prices.0": {17: "before", 18: "after"}, "market": {18: "after"}},  # the last batches
], ids=["first", "second", "mixed", "in-a-row", "last"])
async def test_crashes_before_and_after_saving_change_nothing(
        stores: MakeStore, every_batch: None, clean: tuple[Docs, list[Any], dict[str, int]],
        plans: dict[str, dict[int, str]]) -> None:
    store = await stores(crash_sales())
    wrapped = await fold_all(store, PAGE, plans)
    for name, plan in plans.items():
        assert wrapped[name].hit == sorted(plan), name  # every planned crash happened
    await assert_same_as_clean(store, clean)


@settings(max_examples=6, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prices=st.dictionaries(st.integers(1, 19), st.sampled_from(["before", "after"]),
                              max_size=4),
       market=st.dictionaries(st.integers(1, 19), st.sampled_from(["before", "after"]),
                              max_size=4))
async def test_any_crash_points_change_nothing(
        every_batch: None, clean: tuple[Docs, list[Any], dict[str, int]],
        prices: dict[int, str], market: dict[int, str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(str(Path(tmp) / "crash.db"))
        await store.open()
        try:
            await add_facts(store, crash_sales())
            await fold_all(store, PAGE, {"prices.0": prices, "market": market})
            await assert_same_as_clean(store, clean)
        finally:
            await store.close()


async def test_a_save_whose_answer_is_lost_is_retried_fenced_and_restored(
        stores: MakeStore, every_batch: None, no_backoff: None,
        clean: tuple[Docs, list[Any], dict[str, int]]) -> None:
    # The save wrote, then failed (an Exception: the runner retries it in place). The retry
    # expects the old checkpoint: fenced, so the runner restores from the store and goes on.
    store = await stores(crash_sales())
    for name in NAMES:
        wrapped = Crashing(store, {3: "after", 7: "after"}, error=lambda: OSError("lost"))
        runner = Runner(cast(Store, wrapped), make(name, store), page=PAGE, clock=clock)
        await runner.restore()
        await runner.catch_up()
        if name != "behaviour.0":
            assert wrapped.hit == [3, 7]
            assert wrapped.answers[2:5] == [True, False, True]  # wrote, fenced, went on
    await assert_same_as_clean(store, clean)


# -- fencing ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["prices.0", "market"])
async def test_a_reset_fences_a_running_runner_which_rebuilds_the_same_docs(
        stores: MakeStore, every_batch: None, name: str) -> None:
    sales = history(200) + live(10)
    reference = await stores(sales)
    await fold(reference, name, 20)
    kinds = PRICE_KINDS if name.startswith("prices") else MARKET_KINDS
    want = await stored(reference, kinds)
    want_log = unplaced(await log(reference))

    store = await stores(sales[:100])
    wrapped = Crashing(store)
    runner = Runner(cast(Store, wrapped), make(name, store), page=20, clock=clock)
    await runner.restore()
    await runner.catch_up()  # results of the first 100 sales stored...
    assert runner.checkpoint == 100 and await store.count_projection(kinds[0]) > 0
    assert await store.add_sales(sales[100:]) == len(sales) - 100
    for _ in range(2):  # ...and the runner goes on with the next ones
        assert await runner.step() == 20
    assert runner.checkpoint == 140
    rebuild = SqliteStore(store.path)  # `ece rebuild` from another process
    await rebuild.open()
    try:
        await rebuild.reset_projections([name], list(kinds))
    finally:
        await rebuild.close()
    assert all([await store.count_projection(kind) == 0 for kind in kinds])
    assert await runner.step() == 20
    assert wrapped.answers[-1] is False  # refused...
    assert runner.checkpoint == 0 and runner.cursor.pos == 0  # ...so it restored from 0
    assert all([await store.count_projection(kind) == 0 for kind in kinds])  # wrote nothing
    await runner.catch_up()
    assert runner.checkpoint == len(sales)
    assert await stored(store, kinds) == want
    if name.startswith("prices"):  # the live sales are the last: pushed once, by the rebuild
        assert unplaced(await log(store)) == want_log


# -- live messages ---------------------------------------------------------------------------
async def test_only_sales_of_the_last_day_are_pushed_live(
        stores: MakeStore, every_batch: None) -> None:
    old = history(150)
    fresh = [sale("l1", 0, 7_000, NOW - HOUR), sale("l2", 1, 8_000, NOW - DAY + 1),
             sale("l3", 0, 7_500, NOW)]
    edge = [sale("e1", 2, 9_000, NOW - LIVE_MS)]  # exactly a day old: history
    store = await stores(old + fresh + edge)
    await fold(store, "prices.0", 50)  # the last batch: the live sales and the edge one
    messages = await log(store)
    live_keys = {s["key"] for s in fresh}
    by_pos = {r["pos"]: r for r in await store.sales_feed(0, 1_000_000)}
    pushed = [m for m in messages if m["type"] == "sale"]
    assert all(by_pos[m["data"]["sale"]["pos"]]["key"] in live_keys for m in pushed)
    for s in fresh:
        card = f"card:{s['card_id']}"
        on_card = [m for m in pushed if m["channel"] == card and m["data"]["sale"]["at"] == s["at"]]
        on_market = [m for m in pushed if m["channel"] == "market"
                     and m["data"]["sale"]["at"] == s["at"]]
        assert len(on_card) == len(on_market) == 1
        assert on_card[0]["data"]["sale"]["price"] == s["price"]
        assert on_market[0]["data"]["sale"]["name"] == next(
            c.name for c in CARDS if c.card_id == s["card_id"])
    assert len(pushed) == 2 * len(fresh)
    # Candles of the live sales' buckets (a suspect sale is in no candle).
    clean = [s for s in fresh if not next(
        m for m in pushed if m["data"]["sale"]["at"] == s["at"])["data"]["sale"]["suspect"]]
    assert clean
    candles = [m for m in messages if m["type"] == "candle"]
    assert {m["channel"] for m in candles} == {f"card:{s['card_id']}" for s in clean}
    for m in candles:
        data = m["data"]
        assert data["grader"] == "PSA" and data["grade"] == 9
        assert data["interval"] in ("1d", "1w")
        key = (f"{m['channel'][5:]}|PSA|9|{data['interval']}|{data['candle']['t']:013d}")
        assert await store.get_projection_doc("candle", key) == data["candle"]
        # Only the buckets of the live sales.
        assert data["candle"]["t"] in {bucket_of(s["at"], data["interval"]) for s in clean
                                       if f"card:{s['card_id']}" == m["channel"]}
    assert {m["type"] for m in messages} == {"sale", "candle"}
    assert {m["channel"] for m in messages} <= {"market", *(f"card:{c.card_id}" for c in CARDS)}


async def test_history_alone_pushes_nothing(stores: MakeStore, every_batch: None) -> None:
    store = await stores(history(200))
    await fold(store, "prices.0", 30)
    assert await log(store) == []


async def test_an_old_sale_in_a_live_batch_pushes_no_candle(
        stores: MakeStore, every_batch: None) -> None:
    old = sale("old", 0, 7_000, NOW - 60 * DAY)
    store = await stores([old, sale("new", 0, 7_100, NOW - HOUR)])  # one batch, one segment
    await fold(store, "prices.0", 100)
    old_buckets = {bucket_of(old["at"], i) for i in ("1d", "1w")}
    pushed = [m["data"]["candle"]["t"] for m in await log(store) if m["type"] == "candle"]
    assert pushed and not old_buckets & set(pushed)


async def test_market_first_computation_is_not_news_but_later_changes_are(
        stores: MakeStore, every_batch: None) -> None:
    store = await stores(history(300))
    await fold(store, "market", 10_000)  # the whole history in one batch: one computation
    assert await log(store) == []
    # A restart computes again on restore: still no news.
    await fold(store, "market", 10_000)
    assert await log(store) == []
    # New sales in a running instance: the index's latest point and the movers change.
    runner = Runner(store, make("market", store), page=10_000, clock=clock)
    await runner.restore()
    assert await runner.step() == 0
    assert await log(store) == []
    base = await store.sales_position()
    assert await store.add_sales(live(30)) == 30
    assert await runner.step() == 30
    messages = await log(store)
    assert {m["type"] for m in messages} == {"index", "movers"}
    assert all(m["channel"] == "market" for m in messages)
    movers = [m for m in messages if m["type"] == "movers"]
    assert {m["data"]["window"] for m in movers} == {"7d", "30d"}
    for m in movers:
        assert m["data"] == await store.get_projection_doc("movers", m["data"]["window"])
    for m in (m for m in messages if m["type"] == "index"):
        segment, interval = m["data"]["segment"], m["data"]["interval"]
        assert segment == "market" or segment.startswith("category:")
        doc = await store.get_projection_doc("index", f"{interval}|{segment}")
        assert doc is not None and m["data"]["point"] == doc["points"][-1]
    assert (await store.get_projection_doc("market", "summary") or {})["sales_total"] == \
        base + 30
    # Nothing new: nothing more to say.
    assert await runner.step() == 0
    assert len(await log(store)) == len(messages)


async def test_unchanged_movers_are_not_pushed_again(stores: MakeStore, every_batch: None) -> None:
    # Every sale within the last day: a day later the same sales are in both windows and
    # nothing before them, so the movers are the same.
    store = await stores(live(20))
    now = [NOW]
    runner = Runner(store, make("market", store), page=1_000, clock=lambda: now[0])
    await runner.restore()
    await runner.catch_up()
    first = await store.get_projection_doc("movers", "7d")
    sent = len(await log(store))
    now[0] = NOW + DAY  # a new day: the market projection recomputes
    await runner.step()
    second = await store.get_projection_doc("movers", "7d")
    assert first is not None and second is not None
    assert without(first, "computed_at") == without(second, "computed_at")
    assert second["computed_at"] == NOW + DAY  # it did recompute
    assert [m for m in (await log(store))[sent:] if m["type"] == "movers"] == []


# -- the market's recompute throttle -----------------------------------------------------------
@pytest.mark.parametrize("n", [300, 310])  # the last page full (a final empty read) or not
async def test_a_fast_catch_up_leaves_the_market_docs_complete(stores: MakeStore,
                                                              n: int) -> None:
    # No `every_batch`: the real throttle, on a fast machine (a millisecond per batch), as
    # `ece rebuild analytics` runs it - its docs must still count every sale at the end.
    sales = history(n)
    store = await stores(sales)
    ticks = itertools.count(NOW)
    runner = Runner(store, make("market", store), page=50, clock=lambda: next(ticks))
    await runner.restore()
    await runner.catch_up()
    assert runner.checkpoint == n
    summary = await store.get_projection_doc("market", "summary")
    assert summary is not None and summary["sales_total"] == n
    # A restart recomputes once (and only once), with nothing new to fold.
    restarted = Runner(store, make("market", store), page=50,
                       clock=lambda: NOW + 10 * RECOMPUTE_MS)
    await restarted.restore()
    assert await restarted.step() == 0
    summary = await store.get_projection_doc("market", "summary")
    assert summary is not None and summary["computed_at"] == NOW + 10 * RECOMPUTE_MS
    assert summary["sales_total"] == n
    assert await restarted.step() == 0
    again = await store.get_projection_doc("market", "summary")
    assert again == summary


async def test_a_long_catch_up_shows_progress_every_minute(stores: MakeStore) -> None:
    store = await stores(history(400))
    ticks = itertools.count(NOW, CATCH_UP_RECOMPUTE_MS + 1_000)  # a minute per batch
    runner = Runner(store, make("market", store), page=50, clock=lambda: next(ticks))
    await runner.restore()
    for _ in range(4):
        assert await runner.step() == 50
    summary = await store.get_projection_doc("market", "summary")
    assert summary is not None and summary["sales_total"] >= 50


# -- vetting inside the projections ----------------------------------------------------------
async def test_suspect_sales_are_stored_flagged_and_left_out_of_prices(
        stores: MakeStore, every_batch: None) -> None:
    base = NOW - 40 * DAY
    peers = [sale(f"p{i}", 0, p, base + i * DAY, grade=10)
             for i, p in enumerate([10_000, 10_100, 9_900, 10_050, 9_950, 10_000])]
    outlier = sale("x10", 0, 100_000, base + 6 * DAY + HOUR, grade=10)
    shill = [sale(f"w{i}", 1, 5_000, base + (10 + i) * DAY, grader="RAW", grade=None,
                  seller=("shill:a", "shill:b")[i % 2], buyer=("shill:b", "shill:a")[i % 2])
             for i in range(4)]
    after = sale("p6", 0, 10_020, base + 7 * DAY, grade=10)
    sales = [*peers, outlier, *shill, after]
    store = await stores(sales)
    await fold_all(store, 3)
    docs = await stored(store)
    sale_docs = {d["pos"]: d for (kind, _), d in docs.items() if kind == "sale"}
    assert len(sale_docs) == len(sales)
    reasons = [sale_docs[i + 1]["reason"] for i in range(len(sales))]
    # The pair's third and fourth trades (either way) are linked; the x10 sale an outlier.
    assert reasons == [None] * 6 + ["outlier", None, None, "linked", "linked", None]
    assert [sale_docs[i + 1]["suspect"] for i in range(len(sales))] == \
        [r is not None for r in reasons]
    # Stored under their segment and time, with the sale's fields.
    seg0 = sale_segment(outlier)
    key = f"{seg0}|{outlier['at']:013d}|{7:012d}"
    assert docs["sale", key] == {
        "card_id": outlier["card_id"], "grader": "PSA", "grade": 10, "price": 100_000,
        "at": outlier["at"], "source": "external", "ref": None, "suspect": True,
        "reason": "outlier", "pos": 7}
    # Left out of candles and segment figures.
    day = bucket_of(outlier["at"], "1d")
    assert ("candle", f"{seg0}|1d|{day:013d}") not in docs  # it was that day's only sale
    seg1 = sale_segment(shill[0])
    for i, s in enumerate(shill):
        candle = docs.get(("candle", f"{seg1}|1d|{bucket_of(s['at'], '1d'):013d}"))
        assert (candle is not None) is (i < 2)
    week = [d for (kind, k), d in docs.items() if kind == "candle" and k.startswith(f"{seg1}|1w|")]
    assert sum(d["count"] for d in week) == 2
    assert docs["segment", seg0]["count"] == 7 and docs["segment", seg0]["suspect_count"] == 1
    assert docs["segment", seg0]["last_price"] == 10_020
    assert docs["segment", seg1]["count"] == 2 and docs["segment", seg1]["suspect_count"] == 2
    summary = docs["market", "summary"]
    assert (summary["sales_total"], summary["suspect_total"]) == (len(sales), 3)
    tape = docs["market", "tape"]["sales"]
    assert [t["reason"] for t in tape] == reasons[::-1]
    assert tape[0]["name"] == CARDS[0].name


async def test_the_first_index_point_of_a_fresh_market_is_news(stores: MakeStore,
                                                               every_batch: None) -> None:
    # A market with no sale yet computes empty indexes; its first sale's point is pushed
    # live (a market page opened on an empty exchange draws it without a reload).
    store = await stores([])
    runner = Runner(store, make("market", store), page=10_000, clock=clock)
    await runner.restore()
    await runner.step()
    assert await log(store) == []
    assert await store.add_sales(live(1)) == 1
    assert await runner.step() == 1
    points = [m["data"] for m in await log(store) if m["type"] == "index"]
    assert {(p["segment"], p["interval"]) for p in points} >= {("market", "1w"), ("market", "1mo")}
