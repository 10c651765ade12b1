"""The analytics stages: projection ingest, index rebuild, the history route, the bid path
with the projections running.

* `analytics_ingest` (in-process, no server): simulated sales (`market.simulate`, the demo
  catalog) folded in feed pages of `runner.PAGE` through `PriceProjection.apply` + `flush`
  and, separately, `MarketProjection.apply` + `flush` (the wall clock as `now` and `more` as
  the Runner says it while pages come full, so the market recomputes as in a catch-up: at
  its end; one more full recompute of the final book is timed on its own); then a `Runner`
  over a real SQLite file store
  (synchronous=FULL, the sales added untimed) for each of the two: feed reads and result
  saves included. Bids: auctions run through the real rules engine (`market.auction`), their
  logs read by `auction_facts` (timed on its own), then `UserBehaviour.add` + `flush` over
  all of them, and `ingest_bids` over all their bids at once.
* `analytics_index` (in-process): `build_index` over N simulated sales for the market, every
  category and every set with >= MIN_SET_SALES (1w and 1mo each), what the market
  projection computes on a recompute.
* `analytics_history`: a joined `ece serve` (ECE_ANALYTICS=0) whose store gets N sales (the
  feed, `add_sales`) and their `sale` and `candle` documents written directly with the pure
  functions (`sale_doc`, `market.segment_stats.candles`) through `save_projection` in big
  batches (the projections would take far longer to fold that many); then
  `GET /api/cards/{card}/history` for the card x grade with the most sales over two years,
  open loop with Poisson arrivals, latency from the intended send time, every answer counted.
* `analytics_bidpath`: the end-to-end saturating load (as stage `e2e`) on two joined gateways
  differing in ECE_ANALYTICS only, 0 first, then 1. After each workload's set-up and just
  before its load, the same N simulated sales are added to the server's store (as `ece seed`
  would): on the ECE_ANALYTICS=1 one its projections fold them during the window (their
  checkpoints are sampled to show it); on the other nobody reads them.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from loadtests import report
from loadtests.params import Params
from loadtests.report import goal

ANALYTICS_STAGES = ("analytics_ingest", "analytics_index", "analytics_history",
                    "analytics_bidpath")
DAY_MS = 86_400_000
INGEST_GOAL = 50_000  # facts/s
INDEX_GOAL_S = 5.0
HISTORY_GOAL_MS = 20.0
BIDPATH_GOAL = 0.95
FILL_BATCH = 50_000  # sales per add_sales / save_projection call when filling a store
HISTORY_DAYS = 730
HISTORY_ZIPF = 1.0  # the history requests' popularity: card x grade of rank r, 1 / r**1.0
LIGHT_RATE = 20.0  # history requests/s of the light phase before the goal's rate


# ---- simulated sales -----------------------------------------------------------------------

def _today_end() -> int:
    """Midnight UTC today, as `ece seed` anchors its history."""
    now = int(time.time() * 1000)
    return now - now % DAY_MS


@functools.lru_cache(maxsize=1)
def _catalog() -> tuple[list[Any], dict[tuple[str, str, float | None], int]]:
    from gateway.history import CATALOG_SEED, COPIES, population
    from market.catalog_demo import demo_catalog, demo_copies

    cards = demo_catalog(CATALOG_SEED)
    return cards, population(demo_copies(cards, CATALOG_SEED, COPIES))


@functools.lru_cache(maxsize=2)
def _simulated(n: int, end: int) -> Any:
    from gateway.history import SIM_SEED
    from market.simulate import simulate_sales

    cards, pop = _catalog()
    return simulate_sales(cards, end, seed=SIM_SEED, target_sales=n, population=pop)


def _records(sim: Any) -> Iterator[dict[str, Any]]:
    """The sales-feed records of a simulation, in time order (keys "sim:<seed>:<row>")."""
    from market.simulate import sale_records

    cards, _ = _catalog()
    return sale_records(cards, sim)


def _batches(sim: Any, size: int) -> Iterator[list[dict[str, Any]]]:
    records = _records(sim)
    while batch := list(itertools.islice(records, size)):
        yield batch


def _known_cards() -> Any:
    """`Cards` as the projections hold it once warm: every catalog card's name, category
    and set cached (no store reads in the in-core folds)."""
    from actors.analytics.cards import CardInfo, Cards

    cards = Cards(None)
    for card in _catalog()[0]:
        cards._known[card.card_id] = CardInfo(card.name, card.category, card.set)
    return cards


def _cpu() -> float:
    return time.process_time()


# ---- stage: projection ingest ---------------------------------------------------------------

async def _fold(projection: Any, rows: list[dict[str, Any]], page: int) -> dict[str, Any]:
    """apply + flush page by page, as `Runner.step` does (the wall clock as `now`); the last
    page's flush is told the feed ran dry, so the market recomputes then."""
    from actors.clock import now_ms

    flush_s = 0.0
    puts = messages = 0
    wall, cpu = time.perf_counter(), _cpu()
    for i in range(0, len(rows), page):
        now = now_ms()
        await projection.apply(rows[i:i + page], now)
        t = time.perf_counter()
        # `more`: a full page was read, as the Runner tells a projection that is catching up.
        found, said = await projection.flush(now, more=i + page < len(rows))
        flush_s += time.perf_counter() - t
        puts += len(found)
        messages += len(said)
    wall, cpu = time.perf_counter() - wall, _cpu() - cpu
    return {"sales": len(rows), "seconds": round(wall, 3), "cpu_s": round(cpu, 3),
            "sales_per_s": round(len(rows) / wall, 1),
            "sales_per_cpu_s": round(len(rows) / cpu, 1) if cpu > 0 else None,
            "flush_s": round(flush_s, 3), "puts": puts, "messages": messages,
            "page": page}


async def _run_runner(store: Any, projection: Any) -> dict[str, Any]:
    from actors.analytics.runner import Runner

    runner = Runner(store, projection)
    await runner.restore()
    wall, cpu = time.perf_counter(), _cpu()
    await runner.catch_up()
    wall, cpu = time.perf_counter() - wall, _cpu() - cpu
    docs = {kind: await store.count_projection(kind) for kind in projection.kinds}
    return {"sales": runner.folded, "seconds": round(wall, 3), "cpu_s": round(cpu, 3),
            "sales_per_s": round(runner.folded / wall, 1),
            "sales_per_cpu_s": round(runner.folded / cpu, 1) if cpu > 0 else None,
            "checkpoint": runner.checkpoint, "docs": docs}


async def _runners(path: Path, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Both projections through a Runner over one SQLite file store (synchronous=FULL)."""
    from actors.analytics.cards import Cards
    from actors.analytics.market import MarketProjection
    from actors.analytics.prices import PriceProjection
    from gateway.seed import seed_catalog
    from storage import open_store

    store = open_store(f"sqlite:///{path}")
    await store.open()
    try:
        await seed_catalog(store)
        for i in range(0, len(rows), FILL_BATCH):
            batch: list[Any] = [{k: v for k, v in r.items() if k != "pos"}
                                for r in rows[i:i + FILL_BATCH]]
            await store.add_sales(batch)
        price = await _run_runner(store, PriceProjection(Cards(store)))
        market = await _run_runner(store, MarketProjection(Cards(store)))
    finally:
        await store.close()
    return {"store": "sqlite file, synchronous=FULL", "prices": price, "market": market}


def _auction_logs(n: int, seed: int = 11) -> list[tuple[dict, dict, list[dict]]]:
    """`n` auctions run through the rules engine: (stored spec, final view, event log).

    Mostly English (soft close 60 s, a third with a reserve, proxies, snipes in the last
    minute), a tenth sealed; 5-40 bid attempts each by bidders drawn from a pool with a
    heavy-tailed activity; attempts the rules refuse are dropped (only accepted bids log)."""
    from market.auction import Auction
    from market.spec import parse_spec

    rng = random.Random(seed)
    users = [f"u{i}" for i in range(max(50, n // 4))]
    weights = [1.0 / (i + 1) ** 0.8 for i in range(len(users))]
    t0 = _today_end() - 30 * DAY_MS
    logs = []
    for a in range(n):
        start = t0 + rng.randrange(0, 20 * DAY_MS)
        ends = start + rng.choice((1, 3, 7)) * DAY_MS
        kind = "sealed" if a % 10 == 9 else "english"
        raw: dict[str, Any] = {"type": kind, "start_price": rng.choice((500, 1000, 5000)),
                               "ends_at": ends}
        if kind == "english":
            raw["soft_close_ms"] = 60_000
            if a % 3 == 0:
                raw["reserve_price"] = raw["start_price"] * 4
        spec = parse_spec(raw, auction_id=f"a{a}", asset_id=f"c{a}", seller_id="seller",
                          now=start)
        auction = Auction(spec)
        events = auction.advance(start)
        attempts = rng.randint(5, 40)
        times = sorted(rng.randrange(start + 1, ends - 1000) for _ in range(attempts))
        times[-min(3, attempts):] = [ends - rng.randrange(1000, 50_000)
                                     for _ in range(min(3, attempts))]  # snipes
        bidders = rng.choices(users, weights, k=attempts)
        for j, (at, who) in enumerate(zip(sorted(times), bidders, strict=True)):
            floor = auction.min_bid(at)
            if floor is None:
                break
            amount = floor + rng.choice((0, 0, 0, 100, 500))
            ceiling = amount * rng.choice((2, 3)) if rng.random() < 0.3 else None
            outcome = auction.handle_bid(who, f"r{j}", amount, ceiling, at)
            events.extend(outcome.events)
        events.extend(auction.advance(auction.ends_at + 1_000))
        logs.append((spec.to_dict(), auction.view(auction.ends_at + 1_000), events))
    return logs


def _behaviour(n_auctions: int) -> dict[str, Any]:
    from market.behaviour import UserBehaviour, auction_facts

    t = time.perf_counter()
    logs = _auction_logs(n_auctions)
    build_s = time.perf_counter() - t

    t = time.perf_counter()
    facts = [auction_facts(spec, view, events) for spec, view, events in logs]
    facts_s = time.perf_counter() - t
    bids = sum(len(f.bids) for f in facts)
    rng = random.Random(3)
    values = [int(f.price * rng.uniform(0.7, 1.3)) if f.price else None for f in facts]

    users = UserBehaviour()
    wall, cpu = time.perf_counter(), _cpu()
    for f, value in zip(facts, values, strict=True):
        users.add(f, value)
    users.flush()
    add_s, add_cpu = time.perf_counter() - wall, _cpu() - cpu

    t = time.perf_counter()
    for user in users.users:
        users.summary(user)
    users.market_summary()
    summaries_s = time.perf_counter() - t

    # The vectorised core alone, over every bid at once (columns built untimed).
    core = UserBehaviour()
    codes: list[int] = []
    at: list[int] = []
    deadline: list[int] = []
    window: list[int] = []
    proxy: list[bool] = []
    for f in facts:
        cols = f.columns
        codes.extend(core.codes(cols.bidder).tolist())
        at.extend(cols.at)
        deadline.extend(cols.deadline)
        window.extend([f.soft_close_ms or 60_000] * len(cols.at))
        proxy.extend(cols.is_proxy)
    arrays = (np.array(codes, np.int64), np.array(at, np.int64),
              np.array(deadline, np.int64), np.array(window, np.int64),
              np.array(proxy, dtype=np.bool_))
    t = time.perf_counter()
    core.ingest_bids(*arrays)
    ingest_s = time.perf_counter() - t
    return {
        "auctions": len(facts), "bids": bids, "users": len(users),
        "rules_engine_build_s": round(build_s, 3),
        "auction_facts_s": round(facts_s, 3),
        "auction_facts_bids_per_s": round(bids / facts_s, 1),
        "add_s": round(add_s, 4), "add_cpu_s": round(add_cpu, 4),
        "add_bids_per_s": round(bids / add_s, 1),
        "ingest_bids_s": round(ingest_s, 5),
        "ingest_bids_per_s": round(bids / ingest_s, 1),
        "summaries_s": round(summaries_s, 3),
        "summaries_per_s": round(len(users) / summaries_s, 1) if summaries_s else None,
    }


def ingest_stage(params: Params, tmp: Path) -> dict[str, Any]:
    from actors.analytics.market import MarketProjection
    from actors.analytics.prices import PriceProjection
    from actors.analytics.runner import PAGE
    from actors.clock import now_ms

    load = [round(x, 2) for x in psutil.getloadavg()]
    end = _today_end()
    sim = _simulated(params.analytics_ingest_sales, end)
    rows = list(_records(sim))
    for pos, row in enumerate(rows, 1):
        row["pos"] = pos
    segments = len({(r["card_id"], r["grader"], r["grade"]) for r in rows})
    price = asyncio.run(_fold(PriceProjection(_known_cards()), rows, PAGE))
    market_projection = MarketProjection(_known_cards())
    market = asyncio.run(_fold(market_projection, rows, PAGE))
    now = now_ms()
    t = time.perf_counter()
    indexes = market_projection.indexes(now)
    market_projection.movers(now)
    market_projection.summary(now)
    market["full_recompute_s"] = round(time.perf_counter() - t, 3)
    market["indexes"] = len(indexes)
    valuations = _valuations(market_projection, indexes, now)

    runner_rows = rows[:params.analytics_runner_sales]
    runners = asyncio.run(_runners(tmp / "analytics_runner.db", runner_rows))
    behaviour = _behaviour(params.analytics_auctions)
    return {
        "figures": {
            "price_sales_per_s": price["sales_per_s"],
            "market_sales_per_s": market["sales_per_s"],
            "runner_price_sales_per_s": runners["prices"]["sales_per_s"],
            "runner_market_sales_per_s": runners["market"]["sales_per_s"],
            "behaviour_bids_per_s": behaviour["add_bids_per_s"],
            "behaviour_ingest_bids_per_s": behaviour["ingest_bids_per_s"],
            "valuations_segments_per_s": valuations["segments_per_s"],
        },
        "details": {"sales": len(rows), "segments": segments, "page": PAGE,
                    "prices": price, "market": market, "runner": runners,
                    "valuations": valuations,
                    "behaviour": behaviour, "loadavg_before": load,
                    "loadavg_after": [round(x, 2) for x in psutil.getloadavg()]},
    }


def _valuations(market: Any, indexes: Any, now: int) -> dict[str, Any]:
    """A full pass of the valuations projection over the market's book: every segment's
    value with its bootstrap interval (what a start, or the 15-minute pass, costs)."""
    from actors.analytics.valuations import Valuations

    cpu, t = _cpu(), time.perf_counter()
    puts, _ = Valuations().compute(market.book, market.info, indexes, now)
    wall, cpu = time.perf_counter() - t, _cpu() - cpu
    n = len(market.book.segments)
    return {"segments": n, "docs": len(puts), "wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
            "segments_per_s": round(n / wall, 1) if wall > 0 else None}


# ---- stage: index rebuild --------------------------------------------------------------------

def index_stage(params: Params) -> dict[str, Any]:
    from actors.analytics.market import INDEX_INTERVALS, MIN_SET_SALES
    from market.repeat_sales import build_index

    n = params.analytics_index_sales
    sim = _simulated(n, _today_end())
    cards, _ = _catalog()
    grade = np.nan_to_num(sim.grade, nan=0.0)
    segment = (sim.card_index.astype(np.int64) * 64 + sim.grader.astype(np.int64)) * 32 + (
        grade * 2).astype(np.int64)  # card x grader x grade, one number
    # Category and set as small integers per sale (masks are cheap; build_index is timed).
    category_names = sorted({c.category for c in cards})
    set_names = sorted({c.set for c in cards})
    category = np.array([category_names.index(c.category) for c in cards])[sim.card_index]
    sets = np.array([set_names.index(c.set) for c in cards])[sim.card_index]
    at, price = sim.at, sim.price

    def build(groups: list[tuple[str, Any]]) -> tuple[float, list[dict[str, Any]]]:
        t = time.perf_counter()
        out = []
        for name, mask in groups:
            for interval in INDEX_INTERVALS:
                doc = build_index(segment[mask], at[mask], price[mask], interval)
                out.append({"segment": name, "interval": interval, "method": doc["method"],
                            "points": len(doc["points"])})
        return time.perf_counter() - t, out

    cpu = _cpu()
    market_s, market_docs = build([("market", np.ones(len(at), dtype=bool))])
    category_s, category_docs = build([(f"category:{c}", category == i)
                                       for i, c in enumerate(category_names)])
    per_set = np.bincount(sets, minlength=len(set_names))
    set_s, set_docs = build([(f"set:{s}", sets == i) for i, s in enumerate(set_names)
                             if per_set[i] >= MIN_SET_SALES])
    cpu = _cpu() - cpu
    return {
        "figures": {"market_and_categories_s": round(market_s + category_s, 3),
                    "all_s": round(market_s + category_s + set_s, 3),
                    "market_s": round(market_s, 3)},
        "details": {"sales": n, "intervals": list(INDEX_INTERVALS),
                    "market_s": round(market_s, 3), "categories_s": round(category_s, 3),
                    "sets_s": round(set_s, 3), "categories": len(category_docs) // 2,
                    "sets": len(set_docs) // 2, "market": market_docs, "cpu_s": round(cpu, 3),
                    "loadavg": [round(x, 2) for x in psutil.getloadavg()]},
    }


# ---- figures, ratios and goals for the report ------------------------------------------------

# (key, stage, figure, unit, description)
FIGURES = (
    ("analytics_price_sales_per_s", "analytics_ingest", "price_sales_per_s", "sales/s",
     "price projection apply+flush (in-core)"),
    ("analytics_market_sales_per_s", "analytics_ingest", "market_sales_per_s", "sales/s",
     "market projection apply+flush (in-core)"),
    ("analytics_runner_price_sales_per_s", "analytics_ingest", "runner_price_sales_per_s",
     "sales/s", "price projection, Runner + SQLite file"),
    ("analytics_runner_market_sales_per_s", "analytics_ingest", "runner_market_sales_per_s",
     "sales/s", "market projection, Runner + SQLite file"),
    ("analytics_valuations_segments_per_s", "analytics_ingest", "valuations_segments_per_s",
     "segments/s", "valuations: a full pass (bootstrap interval each)"),
    ("analytics_behaviour_bids_per_s", "analytics_ingest", "behaviour_bids_per_s", "bids/s",
     "behaviour: UserBehaviour.add+flush"),
    ("analytics_behaviour_ingest_bids_per_s", "analytics_ingest",
     "behaviour_ingest_bids_per_s", "bids/s", "  behaviour: ingest_bids alone"),
    ("analytics_index_s", "analytics_index", "market_and_categories_s", "s",
     "index rebuild: market + categories"),
    ("analytics_index_all_s", "analytics_index", "all_s", "s",
     "  index rebuild: market + categories + sets"),
    ("analytics_history_p99_ms", "analytics_history", "p99_ms", "ms",
     "card history p99, open loop"),
    ("analytics_history_per_s", "analytics_history", "answered_per_s", "req/s",
     "  card history answered"),
    ("analytics_history_light_p99_ms", "analytics_history", "light_p99_ms", "ms",
     "  card history p99 at 20/s"),
    ("analytics_history_p50_ms", "analytics_history", "p50_ms", "ms",
     "  card history p50, open loop"),
    ("analytics_history_cache_hit_rate", "analytics_history", "cache_hit_rate", "",
     "  card history cache hits / lookups"),
    ("analytics_on_bids_per_s", "analytics_bidpath", "on_bids_per_s", "bids/s",
     "end to end, projections busy (ANALYTICS=1)"),
    ("analytics_off_bids_per_s", "analytics_bidpath", "off_bids_per_s", "bids/s",
     "end to end, projections off (ANALYTICS=0)"),
)


def add_to_report(result: dict[str, Any], stages: dict[str, Any], wanted: set[str],
                  params: Params) -> None:
    """The analytics stages' figures, ratio and goals into the bench's result (in place)."""
    mine = [s for s in ANALYTICS_STAGES if s in wanted]
    if not mine:
        return
    result["figures"].update(report.figure_rows(stages, FIGURES, wanted))
    if "analytics_bidpath" in wanted:
        result["ratios"]["analytics_on_over_off"] = report.fig(stages, "analytics_bidpath",
                                                               "on_over_off")
    p = params
    in_core = f"apply+flush in-core, {p.analytics_ingest_sales:,} sales"
    # (stage, goal, figure, target, op, unit, note)
    goals = (
        ("analytics_ingest", "price projection ingest", "price_sales_per_s", INGEST_GOAL,
         ">=", "sales/s", in_core),
        ("analytics_ingest", "market projection ingest", "market_sales_per_s", INGEST_GOAL,
         ">=", "sales/s", in_core),
        ("analytics_ingest", "price projection via Runner", "runner_price_sales_per_s",
         INGEST_GOAL, ">=", "sales/s",
         f"SQLite file store, {p.analytics_runner_sales:,} sales"),
        ("analytics_ingest", "behaviour ingest", "behaviour_bids_per_s", INGEST_GOAL, ">=",
         "bids/s", "UserBehaviour.add+flush"),
        ("analytics_index", "index rebuild", "market_and_categories_s", INDEX_GOAL_S, "<=",
         "s", f"{p.analytics_index_sales:,} sales, market + categories"),
        ("analytics_history", "card history p99", "p99_ms", HISTORY_GOAL_MS, "<=", "ms",
         f"{p.analytics_history_rate:g}/s open loop, {p.analytics_history_sales:,} sales "
         f"stored, Zipf({HISTORY_ZIPF:g}) over its card x grades"),
        ("analytics_bidpath", "bid path analytics on / off", "on_over_off", BIDPATH_GOAL,
         ">=", "x", "two joined gateways differing in ECE_ANALYTICS, back to back"),
    )
    result["goals"] += [goal(name, report.fig(stages, stage, figure), target, op, unit, note)
                        for stage, name, figure, target, op, unit, note in goals
                        if stage in wanted]
    for stage in mine:
        report.mark_missing(result, stages, stage)
