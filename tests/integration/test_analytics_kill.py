"""The analytics count every sale exactly once, whatever moment they are SIGKILLed at.

A real `ece serve` (SQLite store, no demo data, analytics on) runs while this test adds
external sales to its store file in batches (the simulator's history of a dozen demo cards,
every sale older than 200 days so that nothing time-dependent moves), throttled so that the
projections always have a backlog to chew on. Meanwhile either the analytics actor's worker
process is SIGKILLed a few times at random moments (Ray restarts the actor), or the whole
server is crashed once (testkit's `crash`) and restarted on the same data dir. Once every
projection reports 0 facts behind on `/healthz` and the market summary counts every fact,
the server is stopped and a copy of its store is rebuilt from scratch in this process
(`ece rebuild analytics`'s `rebuild`). The evidence of exactly once:

- the live `sale` documents are exactly the rebuild's: one per fact (every position once),
  each vetted the same way; the live `candle` documents are exactly the rebuild's;
- the live market summary counts every fact once (`sales_total`) and the suspect ones as
  the rebuild's sale documents flag them (`suspect_total`), as the rebuild's summary does.

A third, quick test checks that rebuild on its own: its market summary counts every fact.

The seed of the kill moments is printed in every assertion and with -s (set ECE_KILL_SEED
to replay them).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import random
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import psutil
import pytest

from actors.analytics.runner import Runner
from gateway import maintenance
from gateway.catalog import card_record
from gateway.config import Settings
from market.catalog_demo import demo_catalog
from market.simulate import sale_records, simulate_sales
from storage.records import SaleRecord
from storage.sqlite import SqliteStore
from testkit.client import wait_for
from testkit.processes import Managed, crash

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow,
              pytest.mark.timeout(300)]

DAY_MS = 86_400_000
CARDS = 12  # demo cards the history is of
SALES = 20_000
BATCH = 1_000  # sales per add_sales
MAX_BACKLOG = 4_000  # the ingest waits while the slowest sales projection is this far behind
AGE_DAYS = 210  # the newest simulated sale is at least this old
HISTORY_DAYS = 365
SIM_SEED = 23
SALES_PROJECTIONS = ("prices.0", "market")  # the projections of the sales feed (1 price shard)
ACTOR = "ray::Analytics"  # the analytics actor's worker process title
ACTOR_KILLS = (2, 3)  # how many times the actor is killed (at random, inclusive)
KILL_SPAN = (0.1, 0.8)  # kills land after this share of the facts was added
WORKER_WAIT_S = 90  # for Ray to start the restarted actor's worker
RESUME_WAIT_S = 45  # for a restarted actor to fold facts again (it takes seconds)
CATCH_UP_S = 120  # for every projection to reach the head once the ingest is done
SUMMARY_WAIT_S = 60  # for the market summary to count every fact (it is recomputed every 5 s)
SECRET = "analytics-kill-test-secret-of-32-bytes-at-least"
REBUILD_SALES = 5_000  # the history of the rebuild-only test


# ---- the history -------------------------------------------------------------------------

def history() -> tuple[list, list[SaleRecord]]:
    """The demo cards and SALES simulated external sales of them, all older than AGE_DAYS
    (deterministic: the same on every run)."""
    cards = demo_catalog(1, n=CARDS)
    end = int(time.time() * 1000) - AGE_DAYS * DAY_MS
    end -= end % DAY_MS
    sim = simulate_sales(cards, end, seed=SIM_SEED, days=HISTORY_DAYS, target_sales=SALES)
    return cards, [SaleRecord(**r) for r in sale_records(cards, sim)]  # type: ignore[typeddict-item]


@dataclass
class Ingest:
    """Adds the sales to the server's store file from this process, in batches, never more
    than MAX_BACKLOG ahead of the slowest sales projection."""

    db_path: Path
    sales: list[SaleRecord]
    added: int = 0
    store: SqliteStore | None = None

    async def open(self, cards: list) -> None:
        self.store = SqliteStore(str(self.db_path))
        await self.store.open()
        now = int(time.time() * 1000)
        for card in cards:
            await self.store.create_card(card_record(card, now))

    async def close(self) -> None:
        if self.store is not None:
            await self.store.close()

    async def checkpoints(self) -> dict[str, int]:
        assert self.store is not None
        return {name: await self.store.projection_checkpoint(name)
                for name in SALES_PROJECTIONS}

    async def backlog(self) -> int:
        assert self.store is not None
        return await self.store.sales_position() - min((await self.checkpoints()).values())

    async def run(self) -> None:
        assert self.store is not None
        for i in range(0, len(self.sales), BATCH):
            async def room() -> bool:
                return await self.backlog() <= MAX_BACKLOG

            await wait_for(room, timeout=CATCH_UP_S, interval=0.1,
                           message=f"the projections to fold a backlog (after {self.added}"
                                   f" sales added: {await self.checkpoints()})")
            self.added += await self.store.add_sales(self.sales[i:i + BATCH])


# ---- the server, its actor, its store ------------------------------------------------------

def analytics_worker(server: Managed) -> psutil.Process | None:
    """The analytics actor's worker process among the server's descendants (None if there
    is none right now)."""
    for proc in server.descendants():
        with contextlib.suppress(psutil.Error):
            if proc.cmdline()[:1] == [ACTOR] and proc.status() != psutil.STATUS_ZOMBIE:
                return proc
    return None


async def healthz(http: aiohttp.ClientSession, server: Managed) -> dict | None:
    try:
        async with http.get(server.base + "/healthz",
                            timeout=aiohttp.ClientTimeout(total=10)) as response:
            return await response.json() if response.status == 200 else None
    except (aiohttp.ClientError, TimeoutError):
        return None


async def caught_up(http: aiohttp.ClientSession, server: Managed) -> dict | None:
    """The server's lag once every projection is at the head of the whole history."""
    health = await healthz(http, server)
    if health is None:
        return None
    lag = health["analytics"]
    done = (all(p["facts_behind"] == 0 for p in lag.values())
            and all(lag[name]["checkpoint"] == SALES for name in SALES_PROJECTIONS))
    return lag if done else None


async def market_summary(http: aiohttp.ClientSession, server: Managed) -> dict | None:
    try:
        async with http.get(server.base + "/api/analytics/market",
                            timeout=aiohttp.ClientTimeout(total=10)) as response:
            return await response.json() if response.status == 200 else None
    except (aiohttp.ClientError, TimeoutError):
        return None


def copy_store(db_path: Path, to_dir: Path) -> Path:
    """A consistent copy of a store file (sqlite3's backup API) in `to_dir`."""
    to_dir.mkdir(parents=True, exist_ok=True)
    target = to_dir / "ece.db"
    with (contextlib.closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)) as src,
          contextlib.closing(sqlite3.connect(target)) as dst):
        src.backup(dst)
    return target


@dataclass(frozen=True)
class Results:
    sales: list[tuple[str, dict]]
    candles: list[tuple[str, dict]]
    summary: dict | None
    head: int


async def results(db_path: Path) -> Results:
    store = SqliteStore(str(db_path))
    await store.open()
    try:
        return Results(
            await store.scan_projection("sale", "", "\U0010ffff", limit=10 * SALES),
            await store.scan_projection("candle", "", "\U0010ffff", limit=10 * SALES),
            await store.get_projection_doc("market", "summary"),
            await store.sales_position())
    finally:
        await store.close()


async def rebuilt(db_path: Path, work: Path) -> Results:
    """`ece rebuild analytics` of a copy of the store file, in this process."""
    data_dir = work / "rebuild"
    copy = copy_store(db_path, data_dir)
    settings = Settings(data_dir=data_dir, seed=False, instance="rebuild", secret=SECRET)
    assert await maintenance.rebuild(settings, resume=False) == 0
    return await results(copy)


async def check_exactly_once(live: Results, again: Results, live_summary: dict,
                             why: Callable[[str], str]) -> None:
    assert live.head == again.head == SALES, why(f"feed head {live.head} / {again.head}")
    positions = sorted(doc["pos"] for _, doc in again.sales)
    assert positions == list(range(1, SALES + 1)), why("the rebuild has not one sale per fact")
    live_positions = sorted(doc["pos"] for _, doc in live.sales)
    missing = sorted(set(range(1, SALES + 1)) - set(live_positions))
    doubled = len(live_positions) - len(set(live_positions))
    assert not missing and not doubled and len(live_positions) == SALES, why(
        f"live sale documents: {len(live_positions)} for {SALES} facts, {len(missing)} facts"
        f" missing (first {missing[:10]}), {doubled} counted twice")
    differ = [k for (k, d), (k2, d2) in zip(live.sales, again.sales, strict=True)
              if (k, d) != (k2, d2)]
    assert not differ, why(f"{len(differ)} live sale documents differ from the rebuild's,"
                           f" e.g. {differ[:5]}")
    live_candles, again_candles = dict(live.candles), dict(again.candles)
    assert live_candles.keys() == again_candles.keys(), why(
        f"candles: {len(live_candles)} live, {len(again_candles)} rebuilt; only live:"
        f" {sorted(live_candles.keys() - again_candles.keys())[:5]}, only rebuilt:"
        f" {sorted(again_candles.keys() - live_candles.keys())[:5]}")
    wrong = [k for k in live_candles if live_candles[k] != again_candles[k]]
    assert not wrong, why(f"{len(wrong)} live candles differ from the rebuild's, e.g. "
                          + "; ".join(f"{k}: {live_candles[k]} vs {again_candles[k]}"
                                      for k in wrong[:3]))
    suspect = sum(1 for _, doc in again.sales if doc["suspect"])
    assert 0 < suspect < SALES, why(f"{suspect} suspect sales: the vetting saw no variety")
    assert live.summary is not None, why("no market summary stored")
    got = (live.summary["sales_total"], live.summary["suspect_total"])
    assert got == (SALES, suspect), why(
        f"live market summary counts (sales, suspect) {got}, the facts say {(SALES, suspect)}")
    assert (live_summary["sales_total"], live_summary["suspect_total"]) == got, why(
        f"the route's summary {live_summary} is not the stored one {live.summary}")
    assert again.summary is not None, why("the rebuild stored no market summary")
    rebuilt_counts = (again.summary["sales_total"], again.summary["suspect_total"])
    assert got == rebuilt_counts, why(
        f"live market summary counts (sales, suspect) {got}, the rebuild's {rebuilt_counts}")


async def together(*coros) -> None:
    """Run these side by side; the first failure cancels the others and is raised."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        for done in asyncio.as_completed(tasks):
            await done
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


RAY_START_TIMEOUT = "The current node timed out during startup"


def start(start_server, story: Story) -> Managed:
    """`start_server()`, once more if Ray's own start-up gave up (its raylet has a fixed 30 s
    to register, which an overloaded machine can miss): that is not what is tested here."""
    try:
        return start_server()
    except RuntimeError as exc:
        if RAY_START_TIMEOUT not in str(exc):
            raise
        story.add("Ray timed out starting its node: starting the server once more")
        return start_server()


class Story:
    def __init__(self) -> None:
        self.seed = int(os.environ.get("ECE_KILL_SEED") or time.time_ns() % 2**32)
        self.rng = random.Random(self.seed)
        self.started = time.monotonic()
        self.lines = [f"seed {self.seed} (ECE_KILL_SEED={self.seed} replays the kill moments)"]
        print(self.lines[0], flush=True)

    def clock(self) -> str:
        return f"+{time.monotonic() - self.started:.1f}s"

    def add(self, line: str) -> None:
        self.lines.append(f"{self.clock()} {line}")
        print(self.lines[-1], flush=True)  # with -s: as it happens, even if the test fails

    def why(self, extra: str = "") -> str:
        return "\n".join([extra, *self.lines])

    def kill_points(self, n: int) -> list[int]:
        lo, hi = (int(SALES * share) for share in KILL_SPAN)
        return sorted(self.rng.sample(range(lo, hi), n))


async def finish(story: Story, server: Managed, http: aiohttp.ClientSession,
                 ingest: Ingest, tmp_path: Path) -> None:
    """Wait for the projections to count every fact, stop the server, compare with a
    rebuild."""
    await ingest.close()
    try:
        lag = await wait_for(lambda: caught_up(http, server), timeout=CATCH_UP_S,
                             interval=0.5, message="every projection at the head")
        story.add(f"caught up: {lag}")

        async def counted() -> dict | None:
            summary = await market_summary(http, server)
            return summary if summary and summary.get("sales_total") == SALES else None

        summary = await wait_for(counted, timeout=SUMMARY_WAIT_S, interval=0.5,
                                 message=f"the market summary to count {SALES} sales")
    except AssertionError as exc:
        raise AssertionError(story.why(f"{exc}: {await healthz(http, server)}, summary"
                                       f" {await market_summary(http, server)}\n"
                                       f"{server.log_tail()}")) from None
    story.add(f"summary: {summary['sales_total']} sales, {summary['suspect_total']} suspect")
    assert server.stop() == 0, story.why(server.log_tail())
    db_path = ingest.db_path
    live = await results(db_path)
    started = time.monotonic()
    again = await rebuilt(db_path, tmp_path)
    story.add(f"rebuilt in {time.monotonic() - started:.1f}s: {len(again.sales)} sales,"
              f" {len(again.candles)} candles (live: {len(live.sales)}, {len(live.candles)})")
    await check_exactly_once(live, again, summary, story.why)
    story.add("exactly once: every sale and candle as rebuilt, the summaries agree")


# ---- the tests -----------------------------------------------------------------------------

async def test_sigkilled_analytics_actor_counts_every_sale_once(start_server, tmp_path):
    story = Story()
    cards, sales = history()
    server = start(start_server, story)
    story.add(f"server ready in {server.ready_s:.1f}s")
    ingest = Ingest(tmp_path / "data" / "ece.db", sales)
    await ingest.open(cards)
    kills = story.kill_points(story.rng.randint(*ACTOR_KILLS))
    delays = [story.rng.uniform(0.0, 1.0) for _ in kills]
    story.add(f"kills planned after {kills} sales added, then {[round(d, 2) for d in delays]}s")

    async def killer() -> None:
        for n, (point, delay) in enumerate(zip(kills, delays, strict=True)):
            await wait_for(lambda point=point: ingest.added >= point, timeout=CATCH_UP_S,
                           interval=0.05, message=f"{point} sales added")
            await asyncio.sleep(delay)  # a random moment of the actor's fold-and-save cycle
            worker = await wait_for(lambda: analytics_worker(server), timeout=WORKER_WAIT_S,
                                    interval=0.1, message="the analytics worker")
            before = await ingest.checkpoints()
            head = await ingest.store.sales_position()
            worker.kill()
            killed_at = time.monotonic()
            psutil.wait_procs([worker], timeout=10)
            story.add(f"kill {n + 1}: pid {worker.pid} at {ingest.added} sales added, feed"
                      f" head {head}, checkpoints {before}")
            back = await wait_for(
                lambda old=worker.pid: (w := analytics_worker(server)) and w.pid != old and w,
                timeout=WORKER_WAIT_S, interval=0.1, message="a new analytics worker")
            server.remember_descendants()  # stopped with the server at the end
            worker_s = time.monotonic() - killed_at

            async def resumed(before: dict[str, int] = before) -> dict[str, int] | None:
                now = await ingest.checkpoints()
                return now if all(now[k] > before[k] or now[k] == SALES for k in now) else None

            moved = await wait_for(resumed, timeout=RESUME_WAIT_S, interval=0.1,
                                   message=f"the restarted actor (pid {back.pid}) to fold"
                                           f" facts again (checkpoints {before})")
            story.add(f"  new worker pid {back.pid} after {worker_s:.1f}s, folding again after"
                      f" {time.monotonic() - killed_at:.1f}s: {moved}")

    async with aiohttp.ClientSession() as http:
        try:
            await together(ingest.run(), killer())
        except AssertionError as exc:
            await ingest.close()
            raise AssertionError(story.why(f"{exc}\n{await healthz(http, server)}\n"
                                           f"{server.log_tail()}")) from None
        finally:
            story.add(f"{ingest.added} sales added")
        await finish(story, server, http, ingest, tmp_path)


async def test_crashed_server_counts_every_sale_once_after_restart(start_server, tmp_path):
    story = Story()
    cards, sales = history()
    servers = [start(start_server, story)]
    story.add(f"server 0 ready in {servers[0].ready_s:.1f}s")
    ingest = Ingest(tmp_path / "data" / "ece.db", sales)
    await ingest.open(cards)
    [point] = story.kill_points(1)
    delay = story.rng.uniform(0.0, 1.0)
    story.add(f"crash planned after {point} sales added, then {delay:.2f}s")

    async def crasher() -> None:
        await wait_for(lambda: ingest.added >= point, timeout=CATCH_UP_S, interval=0.05,
                       message=f"{point} sales added")
        await asyncio.sleep(delay)  # a random moment of the projections' cycle
        before = await ingest.checkpoints()
        head = await ingest.store.sales_position()
        known = servers[0].descendants()
        assert analytics_worker(servers[0]) is not None, "no analytics worker to crash"
        killed = crash(servers[0], known)
        alive = [p for p in killed if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        assert not alive, f"the crashed server lives on: {alive}"
        story.add(f"crash at {ingest.added} sales added, feed head {head}, checkpoints"
                  f" {before}")
        # The ingest goes on while the server is down and starting (up to its backlog).
        servers.append(await asyncio.to_thread(start, start_server, story))
        story.add(f"server 1 ready in {servers[1].ready_s:.1f}s; checkpoints"
                  f" {await ingest.checkpoints()}, feed head"
                  f" {await ingest.store.sales_position()}")

    async with aiohttp.ClientSession() as http:
        try:
            await together(ingest.run(), crasher())
        except AssertionError as exc:
            await ingest.close()
            raise AssertionError(story.why(f"{exc}\n{servers[-1].log_tail()}")) from None
        finally:
            story.add(f"{ingest.added} sales added")
        assert len(servers) == 2, story.why("the crash never came")
        await finish(story, servers[1], http, ingest, tmp_path)


async def test_a_rebuild_stores_a_market_summary_of_every_fact(tmp_path, monkeypatch):
    """The rebuild the kill tests compare with, on its own: its market summary counts every
    fact. Its clock stands still (as for any rebuild quicker than the market's recompute
    interval: the last recompute must not be skipped as "not due yet"), so that the outcome
    does not depend on the machine's speed."""
    cards, sales = history()
    sales = sales[:REBUILD_SALES]
    data_dir = tmp_path / "rebuild"
    data_dir.mkdir()
    store = SqliteStore(str(data_dir / "ece.db"))
    await store.open()
    try:
        now = int(time.time() * 1000)
        for card in cards:
            await store.create_card(card_record(card, now))
        for i in range(0, len(sales), BATCH):
            await store.add_sales(sales[i:i + BATCH])
    finally:
        await store.close()
    monkeypatch.setattr(maintenance, "Runner", functools.partial(Runner, clock=lambda: now))
    settings = Settings(data_dir=data_dir, seed=False, instance="rebuild", secret=SECRET)
    assert await maintenance.rebuild(settings, resume=False) == 0
    got = await results(data_dir / "ece.db")
    suspect = sum(1 for _, doc in got.sales if doc["suspect"])
    assert len(got.sales) == got.head == REBUILD_SALES and suspect > 0
    assert got.summary is not None, "the rebuild stored no market summary"
    assert (got.summary["sales_total"], got.summary["suspect_total"]) == (
        REBUILD_SALES, suspect), got.summary
