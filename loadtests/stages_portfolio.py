"""The portfolio stages of issue 12 that read a portfolio or load the bid path (the sale ->
portfolio event stage is `loadtests.stages_portfolio_push`).

* `portfolio_read`: a joined `ece serve` (ECE_ANALYTICS=0: nothing folds or rewrites the
  documents written here) whose SQLite store gets N sales and their `sale` / `candle`
  documents (`stages_analytics_server._fill`), then the portfolio projection's documents of
  U users written directly (`holdings` and `portfolio`, the latter built by the projection's
  own `market.portfolio.portfolio_view`: every panel, the risk one from a year of returns):
  one user signed up through the API holds H holdings, the others sizes drawn from a
  geometric distribution (mean ~20; a few template portfolios reused, keyed per user). Then
  `GET /api/portfolio` with that user's token: one request alone (cold), a light phase, then
  the goal's rate, open loop, latency from the intended send time. The route reads the
  persisted document on every request (no cache), so warm and cold differ only by the
  store's page cache.
* `portfolio_bidpath`: stage `e2e`'s saturating window on two joined gateways, both
  ECE_ANALYTICS=1, differing only in ECE_PORTFOLIOS; 0 first, then 1. Just before each load,
  the same work goes into the server's store: P holders minted A cards each (graded copies
  of the segments with the most sales in the batch below; `create_asset`, one ownership row
  each) and S simulated sales (`ece seed`'s way). With portfolios on, the portfolio actor
  folds the mints (a whole portfolio per holder) and, as the price projection values the
  new sales, revalues those holders, during the window; the sampled checkpoints and the
  portfolios' `computed_at` show how much it did. Between the two runs the off server's
  analytics are waited for until they are quiet, so they do not load the second window.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import sqlite3
import time
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import psutil

from loadtests import report
from loadtests.cpu_use import machine_busy, process_cpu, runq_wait
from loadtests.params import Params
from loadtests.report import goal
from loadtests.servers import bench_api
from loadtests.stages_analytics import DAY_MS, _catalog, _simulated, _today_end
from loadtests.stages_analytics_server import (
    _fill,
    _open_loop,
    _positions,
    _Sampler,
    _saturated,
    _seed_sales,
    server_db,
)
from testkit.processes import Managed

PORTFOLIO_STAGES = ("portfolio_read", "portfolio_bidpath")
READ_GOAL_MS = 50.0
BIDPATH_GOAL = 0.95
LIGHT_RATE = 5.0  # requests/s of the light phase
TEMPLATES = 64  # distinct small portfolios the other users' documents are drawn from
MEAN_SMALL = 20  # holdings of the other users: 1 + geometric, this mean
NO_LOGIN = "bench:no-login"  # password hash of users written directly (they never log in)
QUIET_S = 240.0  # waiting for a server's projections to finish folding, at most


# ---- documents as the portfolio projection writes them ------------------------------------

def _segments(sim: Any) -> list[str]:
    """The simulation's card x grader x grade keys, the most sold first."""
    from market.catalog import grade_text

    cards, _ = _catalog()
    ids = np.array([c.card_id for c in cards], dtype=object)
    graders = np.array(sim.graders, dtype=object)
    texts = np.array([grade_text(None if math.isnan(g) else g) for g in sim.grade.tolist()],
                     dtype=object)
    labels = (ids[sim.card_index] + "|" + graders[sim.grader] + "|" + texts).astype(str)
    keys, counts = np.unique(labels, return_counts=True)
    return [str(keys[i]) for i in np.argsort(-counts, kind="stable").tolist()]


def _lots(prefix: str, positions: list[str], n: int, rng: random.Random, now: int) -> list[Any]:
    from market.catalog import parse_segment_key
    from market.holdings import Lot
    from market.performance import MINT, PURCHASE

    lots = []
    for i in range(n):
        position = positions[min(int(rng.paretovariate(1.2)) - 1, len(positions) - 1)
                             if rng.random() < 0.5 else rng.randrange(len(positions))]
        card_id, grader, grade = parse_segment_key(position)
        bought = rng.random() < 0.8
        lots.append(Lot(f"{prefix}{i:05d}", position, card_id, grader, grade,
                        now - rng.randrange(1, 900) * DAY_MS, PURCHASE if bought else MINT,
                        rng.randrange(1_000, 500_000) if bought else 0))
    return lots


def _view(lots: list[Any], rng: random.Random, now: int) -> dict[str, Any]:
    """A `portfolio` document of `lots` (`portfolio_view`, as the projection computes it)."""
    from market.portfolio import Series, portfolio_view
    from market.valuation import Valuation

    cards = {c.card_id: c.to_dict() for c in _catalog()[0]}
    values: dict[str, Any] = {}
    for position in {lot.position for lot in lots}:
        if rng.random() < 0.05:
            values[position] = None  # no value (never 0)
            continue
        point = int(rng.lognormvariate(9.5, 1.2)) + 100
        values[position] = Valuation(point, int(point * 0.8), int(point * 1.25),
                                     rng.choice(("high", "medium", "medium", "low")),
                                     "sales" if rng.random() < 0.9 else "derived",
                                     rng.randrange(1, 11), now - rng.randrange(1, 365) * DAY_MS)
    today = now - now % DAY_MS
    days = np.arange(today - 365 * DAY_MS, today + DAY_MS, DAY_MS, dtype=np.int64)
    gen = np.random.default_rng(rng.randrange(2**32))
    series = Series(days, gen.normal(0.0005, 0.01, 365), gen.normal(0.0003, 0.008, 365))
    sales = {p: rng.randrange(0, 60) for p in values}
    view = portfolio_view(lots, values, cards, sales, rng.randrange(-50_000, 200_000),
                          rng.uniform(-0.2, 0.4), series)
    return {**view, "computed_at": now}


async def _write_portfolios(path: Path, measured: str, params: Params, positions: list[str],
                            seed: int = 17) -> dict[str, Any]:
    """The users (but the measured one, signed up already) and every user's `holdings` and
    `portfolio` documents, straight into the store at `path`."""
    from market.holdings import Account
    from storage import open_store

    rng = random.Random(seed)
    now = int(time.time() * 1000)
    t0 = time.monotonic()
    big_lots = _lots("a_pfread", positions, params.portfolio_holdings, rng, now)
    big = _view(big_lots, rng, now)
    templates = []
    for t in range(TEMPLATES):
        size = min(1 + int(rng.expovariate(1 / (MEAN_SMALL - 1))), 500)
        lots = _lots(f"a_pft{t:02d}_", positions, size, rng, now)
        templates.append((Account({lot.asset_id: lot for lot in lots}).to_doc(),
                          _view(lots, rng, now)))
    build_s = time.monotonic() - t0
    store = open_store(f"sqlite:///{path}?synchronous=OFF")  # filling is not measured
    await store.open()
    try:
        others = [f"u_pfread{i:06d}" for i in range(params.portfolio_users - 1)]
        for lo in range(0, len(others), 500):
            await asyncio.gather(*(store.create_user(
                {"user_id": u, "username": f"pfread{u[-6:]}", "password_hash": NO_LOGIN,
                 "created_at": now}) for u in others[lo:lo + 500]))
        puts: list[Any] = [("holdings", measured,
                            Account({lot.asset_id: lot for lot in big_lots}).to_doc()),
                           ("portfolio", measured, big)]
        for user in others:
            holdings, view = templates[rng.randrange(TEMPLATES)]
            puts += [("holdings", user, holdings), ("portfolio", user, view)]
        puts.sort(key=lambda p: (p[0], p[1]))
        done = await store.projection_checkpoint("bench.portfolios")
        for lo in range(0, len(puts), 5_000):
            if not await store.save_projection("bench.portfolios", done, done + 1,
                                               puts[lo:lo + 5_000]):
                raise RuntimeError("bench.portfolios checkpoint moved")
            done += 1
        docs = await store.count_projection("portfolio")
    finally:
        await store.close()
    return {"users": params.portfolio_users, "portfolio_docs": docs,
            "measured_holdings": len(big["holdings"]),
            "mean_other_holdings": round(np.mean([len(v["holdings"]) for _, v in templates]), 1),
            "build_s": round(build_s, 1), "write_s": round(time.monotonic() - t0 - build_s, 1)}


# ---- stage: GET /api/portfolio -------------------------------------------------------------

def read_stage(params: Params, server: Managed | None) -> dict[str, Any]:
    if server is None:
        raise RuntimeError("the portfolio read server was not started")

    async def signup() -> Any:
        async with aiohttp.ClientSession() as http:
            return await bench_api(server.base, http).signup("pfread", funds=0)

    user = asyncio.run(signup())
    filled = asyncio.run(_fill(server_db(server), params.portfolio_sales))
    positions = filled.pop("ranked")
    filled.pop("ranked_sales")
    written = asyncio.run(_write_portfolios(server_db(server), user.user_id, params, positions))
    url, headers = server.base + "/api/portfolio", user.headers

    async def once() -> dict[str, Any]:
        async with aiohttp.ClientSession() as http:
            t = time.monotonic()
            async with http.get(url, headers=headers) as response:
                body = await response.read()
                took = time.monotonic() - t
            if response.status != 200:
                raise RuntimeError(f"portfolio answered {response.status}: {body[:300]!r}")
        doc = json.loads(body)
        if len(doc["holdings"]) != params.portfolio_holdings:
            raise RuntimeError(f"portfolio has {len(doc['holdings'])} holdings")
        return {"ms": round(took * 1000, 2), "bytes": len(body),
                "risk_shown": doc["risk"]["shown"], "totals": doc["totals"]}

    cold = asyncio.run(once())  # the first read of the document
    gateway = [server.process()]

    def timed(rate: float, seconds: float, warmup_s: float, seed: int) -> dict[str, Any]:
        cpu0, busy0, t0, waited0 = process_cpu(gateway), machine_busy(), time.monotonic(), \
            runq_wait(gateway)
        found = asyncio.run(_open_loop(url, rate, seconds, warmup_s, seed, headers=headers))
        elapsed = time.monotonic() - t0
        cpu, ok = process_cpu(gateway) - cpu0, found["ok_with_warmup"]
        found["cpu_cores_incl_warmup"] = {
            "gateway": round(cpu / elapsed, 2),
            "machine_busy": round((machine_busy() - busy0) / elapsed, 2)}
        found["gateway_cpu_ms_per_ok"] = round(cpu / ok * 1000, 2) if ok else None
        found["gateway_runq_wait_ms_per_ok"] = round(
            (runq_wait(gateway) - waited0) / ok * 1000, 2) if ok else None
        return found

    light = timed(LIGHT_RATE, max(3.0, params.portfolio_s / 3), 0.5, 3)
    result = timed(params.portfolio_rate, params.portfolio_s, 2.0, 9)
    latency, answers = result["latency_ms"], result["answers"]
    return {
        "figures": {"p99_ms": round(latency["p99"], 2), "p50_ms": round(latency["p50"], 2),
                    "light_p99_ms": round(light["latency_ms"]["p99"], 2),
                    "cold_ms": cold["ms"],
                    "answered_pct": round(100 * answers.get("200", 0) / max(1, result["sent"]),
                                          2),
                    "response_bytes": result["response_bytes_mean"],
                    "gateway_cpu_ms_per_ok": result["gateway_cpu_ms_per_ok"]},
        "details": {"store": {**filled, **written}, "cold": cold, **result, "light": light,
                    "loadavg": [round(x, 2) for x in psutil.getloadavg()]},
    }


# ---- stage: the bid path with portfolio actors running / stopped ----------------------------

async def _mint_holders(path: Path, tag: str, holders: int, per: int,
                        positions: list[str]) -> dict[str, Any]:
    """`holders` users, each minted `per` graded copies of `positions` (one ownership row
    each), straight into a running server's store."""
    from market.catalog import parse_segment_key
    from storage import open_store

    rng = random.Random(23)
    now = int(time.time() * 1000)
    store = open_store(f"sqlite:///{path}?synchronous=OFF")
    await store.open()
    t = time.monotonic()
    try:
        users = [f"u_pfb{tag}{i:05d}" for i in range(holders)]
        await asyncio.gather(*(store.create_user(
            {"user_id": u, "username": f"pfb{tag}{u[-5:]}", "password_hash": NO_LOGIN,
             "created_at": now}) for u in users))
        assets = []
        for u in users:
            for j in range(per):
                card_id, grader, grade = parse_segment_key(positions[rng.randrange(len(positions))])
                assets.append({"asset_id": f"a_{u}_{j:03d}", "owner_id": u, "title": card_id,
                               "metadata": {}, "created_at": now, "card_id": card_id,
                               "grader": grader, "grade": grade, "cert": None})
        for lo in range(0, len(assets), 500):
            await asyncio.gather(*(store.create_asset(a) for a in assets[lo:lo + 500]))
        head = await store.ownership_position()
    finally:
        await store.close()
    return {"holders": holders, "assets": len(assets), "ownership_head": head,
            "positions": len(positions), "mint_s": round(time.monotonic() - t, 1)}


def _portfolios_written(path: Path, since_ms: int) -> int:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        return int(conn.execute(
            "SELECT COUNT(*) FROM projection_docs WHERE kind='portfolio'"
            " AND json_extract(data, '$.computed_at') >= ?", (since_ms,)).fetchone()[0])
    finally:
        conn.close()


def _wait_quiet(path: Path) -> dict[str, Any]:
    """Until the store's projections stop moving (two samples 2 s apart alike, the price
    projection at the sales head), at most QUIET_S."""
    t0, last = time.monotonic(), _positions(path)
    while time.monotonic() - t0 < QUIET_S:
        time.sleep(2.0)
        now = _positions(path)
        if now == last and now.get("prices.0", 0) >= now.get("sales_head", 0):
            return {"waited_s": round(time.monotonic() - t0, 1), "quiet": True}
        last = now
    return {"waited_s": round(time.monotonic() - t0, 1), "quiet": False, "positions": last}


def bidpath_stage(params: Params, on: Managed | None, off: Managed | None,
                  ray_root: Managed) -> dict[str, Any]:
    if on is None or off is None:
        raise RuntimeError("the portfolios on/off servers were not started")
    p = params
    positions = _segments(_simulated(p.portfolio_busy_sales, _today_end()))[:200]
    marks: dict[str, int] = {}

    def busy(name: str, server: Managed) -> Any:
        def before_load() -> dict[str, Any]:
            minted = asyncio.run(_mint_holders(server_db(server), name, p.portfolio_busy_holders,
                                               p.portfolio_busy_assets, positions))
            seeded = asyncio.run(_seed_sales(server_db(server), p.portfolio_busy_sales))
            marks[name] = int(time.time() * 1000)
            return {**minted, **seeded}
        return before_load

    without = _saturated(p, off, ray_root, busy("off", off), None)
    quiet = _wait_quiet(server_db(off))  # its analytics fold the same sales: let them finish
    sampler = _Sampler(server_db(on))
    sampler.start()
    try:
        with_ = _saturated(p, on, ray_root, busy("on", on), sampler)
    finally:
        sampler.stopping.set()
        sampler.join(timeout=5)
    written = _portfolios_written(server_db(on), marks["on"])
    # Left folding, the on server's actors would load the stages after this one.
    quiet_after = _wait_quiet(server_db(on))
    off_after, on_after = _positions(server_db(off)), _positions(server_db(on))
    if any(k.startswith("portfolio.") for k in off_after):
        raise RuntimeError(f"a portfolio projection ran with ECE_PORTFOLIOS=0: {off_after}")
    window = with_.get("projections", {})
    start, stop = window.get("at_window_start", {}), window.get("at_window_end", {})
    with_["portfolio"] = {
        "mint_rows_folded_in_window": stop.get("portfolio.0", 0) - start.get("portfolio.0", 0),
        "checkpoint_at_window_end": stop.get("portfolio.0", 0),
        "portfolios_written_load_start_to_end": written,
        "cpu_cores_in_window": with_["saturated"].get("cpu_cores", {}).get("portfolio")}
    ratio = round(with_["bids_per_s"] / without["bids_per_s"], 3) if without[
        "bids_per_s"] else None
    return {
        "figures": {"on_bids_per_s": with_["bids_per_s"],
                    "off_bids_per_s": without["bids_per_s"], "on_over_off": ratio},
        "details": {"order": "ECE_PORTFOLIOS=0 first, then 1 (both ECE_ANALYTICS=1)",
                    "busy_holders": p.portfolio_busy_holders,
                    "busy_assets_each": p.portfolio_busy_assets,
                    "seeded_sales": p.portfolio_busy_sales, "off": without,
                    "off_quiet_before_on": quiet, "on": with_,
                    "on_quiet_after": quiet_after,
                    "positions_after": {"on": on_after, "off": off_after},
                    "loadavg": [round(x, 2) for x in psutil.getloadavg()]},
    }


# ---- figures and goals for the report --------------------------------------------------------

# (key, stage, figure, unit, description)
FIGURES = (
    ("portfolio_read_p99_ms", "portfolio_read", "p99_ms", "ms", "GET /api/portfolio p99"),
    ("portfolio_read_p50_ms", "portfolio_read", "p50_ms", "ms", "  GET /api/portfolio p50"),
    ("portfolio_read_light_p99_ms", "portfolio_read", "light_p99_ms", "ms",
     "  GET /api/portfolio p99 at 5/s"),
    ("portfolio_read_bytes", "portfolio_read", "response_bytes", "B",
     "  GET /api/portfolio answer size"),
    ("portfolio_read_cpu_ms", "portfolio_read", "gateway_cpu_ms_per_ok", "ms",
     "  gateway CPU per portfolio answer"),
    ("portfolio_on_bids_per_s", "portfolio_bidpath", "on_bids_per_s", "bids/s",
     "end to end, portfolio actors busy"),
    ("portfolio_off_bids_per_s", "portfolio_bidpath", "off_bids_per_s", "bids/s",
     "end to end, portfolio actors off"),
)


def add_portfolio_report(result: dict[str, Any], stages: dict[str, Any], wanted: set[str],
                         params: Params) -> None:
    """These stages' figures, ratio and goals into the bench's result (in place)."""
    mine = [s for s in PORTFOLIO_STAGES if s in wanted]
    if not mine:
        return
    p = params
    result["figures"].update(report.figure_rows(stages, FIGURES, wanted))
    if "portfolio_bidpath" in wanted:
        result["ratios"]["portfolio_on_over_off"] = report.fig(stages, "portfolio_bidpath",
                                                               "on_over_off")
    goals = (
        ("portfolio_read", "portfolio read p99", "p99_ms", READ_GOAL_MS, "<=", "ms",
         f"{p.portfolio_rate:g}/s open loop, {p.portfolio_holdings:,} holdings, "
         f"{p.portfolio_users:,} users, {p.portfolio_sales:,} sales"),
        ("portfolio_bidpath", "bid path portfolios on / off", "on_over_off", BIDPATH_GOAL,
         ">=", "x", "two joined gateways differing in ECE_PORTFOLIOS, back to back"),
    )
    result["goals"] += [goal(name, report.fig(stages, stage, figure), target, op, unit, note)
                        for stage, name, figure, target, op, unit, note in goals
                        if stage in wanted]
    for stage in mine:
        report.mark_missing(result, stages, stage)
