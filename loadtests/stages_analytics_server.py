"""The analytics stages that need a server (loadtests.stages_analytics has the rest and the
report): the card history route at a fixed rate against a store of N sales, and the bid path
with the projections busy versus stopped."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import random
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import psutil
from hdrh.histogram import HdrHistogram

from loadtests.cpu_use import cpu_stall, machine_busy, process_cpu, runq_wait
from loadtests.driver import percentiles_ms, run_load
from loadtests.params import Params
from loadtests.servers import cpu_groups, instance_hosts
from loadtests.stages_analytics import (
    DAY_MS,
    FILL_BATCH,
    HISTORY_DAYS,
    HISTORY_ZIPF,
    LIGHT_RATE,
    _batches,
    _catalog,
    _simulated,
    _today_end,
)
from loadtests.usage import host_processes, ray_processes
from loadtests.workload import bid_jobs, setup_workload
from testkit.processes import Managed

# ---- stage: the history route ----------------------------------------------------------------

def server_db(server: Managed) -> Path:
    """The SQLite file of a server started by `loadtests.servers.start_server`."""
    return server.log_path.parent / "data" / "ece.db"


async def _fill(path: Path, n: int) -> dict[str, Any]:
    """N simulated sales into the store at `path` (the feed), and their `sale` and `candle`
    documents computed with the pure functions and saved in big batches; the card x grade
    with the most sales."""
    from actors.analytics.prices import CANDLE_FIELDS, sale_doc
    from gateway.seed import seed_catalog
    from market.catalog import grade_text
    from market.prices import INTERVALS
    from market.segment_stats import candles
    from storage import open_store

    t0 = time.monotonic()
    end = _today_end()
    sim = _simulated(n, end)
    cards, _ = _catalog()
    store = open_store(f"sqlite:///{path}?synchronous=OFF")  # filling is not measured
    await store.open()
    timings: dict[str, float] = {}
    try:
        await seed_catalog(store)
        base = await store.sales_position()
        t = time.monotonic()
        for batch in _batches(sim, FILL_BATCH):
            await store.add_sales(batch)  # type: ignore[arg-type]
        timings["sales_s"] = time.monotonic() - t
        if await store.sales_position() != base + n:
            raise RuntimeError("the store's sales feed is not the filled sales alone")

        t = time.monotonic()
        card_ids = np.array([c.card_id for c in cards], dtype=object)
        graders = np.array(sim.graders, dtype=object)
        grades = [None if math.isnan(g) else (int(g) if g % 1 == 0 else g)
                  for g in sim.grade.tolist()]
        texts = np.array([grade_text(g) for g in grades], dtype=object)
        labels = (card_ids[sim.card_index] + "|" + graders[sim.grader] + "|" + texts).astype(str)
        keys, ids = np.unique(labels, return_inverse=True)
        ids = ids.ravel()
        pos = np.arange(base + 1, base + n + 1)
        order = np.lexsort((pos, sim.at, ids))  # key order: segment, time, pos
        saved = await store.projection_checkpoint("bench.sales")
        for lo in range(0, n, FILL_BATCH):
            puts: list[Any] = []
            for i in order[lo:lo + FILL_BATCH].tolist():
                sale = {"card_id": card_ids[sim.card_index[i]],
                        "grader": graders[sim.grader[i]], "grade": grades[i],
                        "price": int(sim.price[i]), "at": int(sim.at[i]),
                        "source": "external", "ref": None, "pos": base + i + 1}
                key = f"{keys[ids[i]]}|{sale['at']:013d}|{sale['pos']:012d}"  # as prices.py
                puts.append(("sale", key, sale_doc(sale, None)))  # type: ignore[arg-type]
            if not await store.save_projection("bench.sales", saved, saved + len(puts), puts):
                raise RuntimeError("bench.sales checkpoint moved")
            saved += len(puts)
        timings["sale_docs_s"] = time.monotonic() - t

        t = time.monotonic()
        s_ids, s_at, s_price = ids[order], sim.at[order], sim.price[order]
        puts = []  # the candles
        for interval in INTERVALS:
            found = {k: v.tolist() for k, v in candles(s_ids, s_at, s_price, interval).items()}
            for row, (seg, when) in enumerate(zip(found["id"], found["t"], strict=True)):
                puts.append(("candle", f"{keys[seg]}|{interval}|{when:013d}",
                             {k: found[k][row] for k in CANDLE_FIELDS}))
        puts.sort(key=lambda p: p[1])
        done = await store.projection_checkpoint("bench.candles")
        for lo in range(0, len(puts), FILL_BATCH):
            if not await store.save_projection("bench.candles", done, done + 1,
                                               puts[lo:lo + FILL_BATCH]):
                raise RuntimeError("bench.candles checkpoint moved")
            done += 1
        timings["candle_docs_s"] = time.monotonic() - t

        # The `segment` documents, as the price projection writes them, with the one field
        # the history route reads from them: `version`, the feed position of the newest sale
        # in the segment (the other figures are no part of this stage).
        newest = np.zeros(len(keys), dtype=np.int64)
        np.maximum.at(newest, ids, pos)
        puts = [("segment", str(key), {"version": int(v)})
                for key, v in zip(keys.tolist(), newest.tolist(), strict=True)]
        done = await store.projection_checkpoint("bench.segments")
        if not await store.save_projection("bench.segments", done, done + 1, puts):
            raise RuntimeError("bench.segments checkpoint moved")
        sale_docs = await store.count_projection("sale")
        candle_docs = await store.count_projection("candle")
    finally:
        await store.close()
    counts = np.bincount(ids)
    ranked = np.argsort(-counts, kind="stable")  # the busiest segment first
    return {"sales": n, "sale_docs": sale_docs, "candle_docs": candle_docs,
            "segments": len(keys), "ranked": [str(keys[i]) for i in ranked.tolist()],
            "ranked_sales": counts[ranked].tolist(), "end_ms": end,
            "db_bytes": path.stat().st_size,
            "fill_s": round(time.monotonic() - t0, 1),
            **{k: round(v, 1) for k, v in timings.items()}}


async def _open_loop(url: str | Sequence[str], rate: float, seconds: float, warmup_s: float,
                     seed: int = 5, weights: Sequence[float] | None = None,
                     headers: dict[str, str] | None = None) -> dict[str, Any]:
    """GET `url` (or one of several, drawn by `weights`) with Poisson arrivals at `rate`/s for
    warmup_s + seconds; every answer of the measured part counted (status, or the
    exception's name), its latency taken from the intended send time (a late send or a
    queue in the client counts in full), also apart by the answer's `X-Cache` (the history
    cache's hit or miss); the client's own CPU. `headers` go with every request (auth)."""
    urls = [url] if isinstance(url, str) else list(url)
    cum = list(itertools.accumulate(weights or [1.0] * len(urls)))
    rng = random.Random(seed)
    pick = random.Random(seed + 1)  # the URLs: the same sequence whatever the timing
    hist = HdrHistogram(1, 60_000_000, 3)  # µs
    by_cache: dict[str, HdrHistogram] = {}
    answers: dict[str, int] = {}
    sizes: list[int] = []  # bytes of each counted 200 answer
    loop = asyncio.get_running_loop()
    connector = aiohttp.TCPConnector(limit=1024)
    timeout = aiohttp.ClientTimeout(total=30)
    late = 0.0  # the client's worst lateness in starting a send
    ok_total = 0  # 200 answers, warm-up included
    client_cpu = process_cpu([psutil.Process()])
    t0 = time.monotonic()

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        async def one(target: str, intended: float, counted: bool) -> None:
            nonlocal ok_total
            cache = None
            try:
                async with http.get(target, headers=headers) as response:
                    body = await response.read()
                    key = str(response.status)
                    cache = response.headers.get("X-Cache")
                    ok_total += response.status == 200
                    if counted and response.status == 200:
                        sizes.append(len(body))
            except Exception as exc:  # every answer counts, failures too
                key = type(exc).__name__
            if counted:
                took = max(1, int((loop.time() - intended) * 1e6))
                hist.record_value(took)
                if cache is not None:
                    by_cache.setdefault(cache, HdrHistogram(1, 60_000_000, 3)).record_value(took)
                answers[key] = answers.get(key, 0) + 1

        tasks = []
        start = loop.time() + 0.05
        t = start
        sent = 0
        while True:
            t += rng.expovariate(rate)
            if t - start >= warmup_s + seconds:
                break
            delay = t - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            late = max(late, loop.time() - t)
            counted = t - start >= warmup_s
            sent += counted
            target = pick.choices(urls, cum_weights=cum)[0]
            tasks.append(asyncio.create_task(one(target, t, counted)))
        await asyncio.gather(*tasks)
    client_cores = (process_cpu([psutil.Process()]) - client_cpu) / (time.monotonic() - t0)
    latency = percentiles_ms(hist)
    ok = answers.get("200", 0)
    answered = sum(answers.values())
    return {"rate_target_per_s": rate, "measure_s": seconds, "warmup_s": warmup_s,
            "sent": sent, "sent_with_warmup": len(tasks), "ok_with_warmup": ok_total,
            "answers": answers, "answered_per_s": round(answered / seconds, 1),
            "ok_per_s": round(ok / seconds, 1), "latency_ms": latency,
            "latency_ms_by_cache": {k: percentiles_ms(h) for k, h in sorted(by_cache.items())},
            "client_max_send_lateness_ms": round(late * 1000, 2),
            "client_cores": round(client_cores, 2),
            "response_bytes_mean": round(sum(sizes) / len(sizes)) if sizes else None,
            "response_bytes_max": max(sizes, default=None)}


def _history_query(segment: str, end: int) -> str:
    """The goal's request for one card x grade: daily candles over two years."""
    card_id, grader, grade = segment.split("|")
    graded = "" if grade == "-" else f"&grade={grade}"
    return (f"/api/cards/{card_id}/history?grader={grader}{graded}"
            f"&interval=1d&from={end - HISTORY_DAYS * DAY_MS}&to={end}")


async def _cache_counts(base: str) -> dict[str, float]:
    """The gateway's history-cache counters (`ece_history_cache_total` by result) from its
    /metrics; empty if it has none."""
    async with aiohttp.ClientSession() as http, http.get(base + "/metrics") as response:
        text = await response.text()
    found: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("ece_history_cache_total{"):
            labels, _, value = line.rpartition(" ")
            found[labels.split('result="', 1)[1].split('"', 1)[0]] = float(value)
    return found


def history_stage(params: Params, server: Managed | None) -> dict[str, Any]:
    if server is None:
        raise RuntimeError("the history server was not started")
    filled = asyncio.run(_fill(server_db(server), params.analytics_history_sales))
    end = filled["end_ms"]
    ranked = filled.pop("ranked")
    counts = filled.pop("ranked_sales")
    # Popularity: Zipf over every card x grade of the store, ranked by its number of sales
    # (the busiest is the most asked for): rank r is asked with weight 1 / r**HISTORY_ZIPF.
    urls = [server.base + _history_query(segment, end) for segment in ranked]
    weights = [1 / r ** HISTORY_ZIPF for r in range(1, len(urls) + 1)]
    filled.update(busiest=ranked[0], busiest_sales=counts[0],
                  median_segment_sales=counts[len(counts) // 2],
                  zipf_exponent=HISTORY_ZIPF,
                  top_10_share=round(sum(weights[:10]) / sum(weights), 3))

    async def sample() -> dict[str, Any]:
        async with aiohttp.ClientSession() as http, http.get(urls[0]) as response:
            body = await response.json()
            if response.status != 200:
                raise RuntimeError(f"history answered {response.status}: {body}")
            return {"candles": len(body["candles"]), "sales": len(body["sales"]),
                    "more": body["cursor"] is not None}

    shape = asyncio.run(sample())
    gateway = [server.process()]

    def timed(rate: float, seconds: float, warmup_s: float, seed: int) -> dict[str, Any]:
        cpu0, busy0, t0 = process_cpu(gateway), machine_busy(), time.monotonic()
        waited0, stall0 = runq_wait(gateway), cpu_stall()
        cache0 = asyncio.run(_cache_counts(server.base))
        found = asyncio.run(_open_loop(urls, rate, seconds, warmup_s, seed, weights))
        cache = asyncio.run(_cache_counts(server.base))
        elapsed = time.monotonic() - t0
        cpu = process_cpu(gateway) - cpu0
        ok = found["ok_with_warmup"]
        found["cpu_cores_incl_warmup"] = {
            "gateway": round(cpu / elapsed, 2),
            "machine_busy": round((machine_busy() - busy0) / elapsed, 2),
            # The share of the time some task of the machine waited for a CPU.
            "machine_cpu_pressure": round((cpu_stall() - stall0) / elapsed, 2)}
        # The gateway's CPU per 200 answer (an upper bound when requests time out unanswered).
        found["gateway_cpu_ms_per_ok"] = round(cpu / ok * 1000, 2) if ok else None
        # ... and the time its threads waited for a CPU meanwhile, per 200 answer.
        waited = runq_wait(gateway) - waited0
        found["gateway_runq_wait_ms_per_ok"] = round(waited / ok * 1000, 2) if ok else None
        # Warm-up included; None when the gateway has no history cache.
        delta = {k: v - cache0.get(k, 0.0) for k, v in cache.items()}
        looked = sum(delta.values())
        found["cache"] = {**delta, "hit_rate": round(delta.get("hit", 0) / looked, 3)
                          if looked else None}
        return found

    # First at a light rate (the route's own latency), then at the goal's rate; other draws
    # of the same popularity, so the light phase warms the cache as real traffic would.
    light = timed(LIGHT_RATE, max(2.0, params.analytics_history_s / 6), 0.5, 5)
    result = timed(params.analytics_history_rate, params.analytics_history_s,
                   params.analytics_history_warmup_s, 7)
    latency = result["latency_ms"]
    return {
        "figures": {"p99_ms": round(latency["p99"], 2), "p50_ms": round(latency["p50"], 2),
                    "answered_per_s": result["answered_per_s"],
                    "light_p99_ms": round(light["latency_ms"]["p99"], 2),
                    "cache_hit_rate": result["cache"]["hit_rate"],
                    # The same latencies apart for the cache's hits and misses, and what a
                    # request costs the gateway (a shared machine's load moves the first).
                    **{f"{k}_p99_ms": round(v["p99"], 2)
                       for k, v in result["latency_ms_by_cache"].items()},
                    "gateway_cpu_ms_per_ok": result["gateway_cpu_ms_per_ok"],
                    "gateway_runq_wait_ms_per_ok": result["gateway_runq_wait_ms_per_ok"]},
        "details": {"store": filled, "busiest_query": urls[0], "busiest_answer": shape,
                    **result, "light": light,
                    "loadavg": [round(x, 2) for x in psutil.getloadavg()]},
    }


# ---- stage: the bid path with the projections running / stopped ------------------------------

async def _seed_sales(path: Path, n: int) -> dict[str, Any]:
    """Into a running server's store, as `ece seed` does: the catalog, then the sales
    (FILL_BATCH per transaction)."""
    from gateway.seed import seed_catalog
    from storage import open_store

    store = open_store(f"sqlite:///{path}?synchronous=OFF")
    await store.open()
    t = time.monotonic()
    try:
        await seed_catalog(store)
        sim = _simulated(n, _today_end())
        for batch in _batches(sim, FILL_BATCH):
            await store.add_sales(batch)  # type: ignore[arg-type]
        head = await store.sales_position()
    finally:
        await store.close()
    return {"sales": n, "head": head, "seed_s": round(time.monotonic() - t, 1)}


def _positions(path: Path) -> dict[str, int]:
    """The projections' checkpoints and the sales feed's head, read-only."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        found = dict(conn.execute("SELECT name, pos FROM checkpoints").fetchall())
        found["sales_head"] = conn.execute("SELECT COALESCE(MAX(pos), 0) FROM sales").fetchone()[0]
        return {k: int(v) for k, v in found.items()}
    finally:
        conn.close()


class _Sampler(threading.Thread):
    """Samples a store's projection checkpoints every `every` seconds (its own thread)."""

    def __init__(self, path: Path, every: float = 0.25) -> None:
        super().__init__(daemon=True, name="analytics-sampler")
        self.path, self.every = path, every
        self.samples: list[tuple[float, dict[str, int]]] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            with contextlib.suppress(sqlite3.Error):
                self.samples.append((time.monotonic(), _positions(self.path)))
            self.stopping.wait(self.every)

    def at(self, when: float) -> dict[str, int]:
        """The last sample taken at or before `when` (else the first)."""
        best = self.samples[0][1] if self.samples else {}
        for t, sample in self.samples:
            if t > when:
                break
            best = sample
        return best


def _analytics_procs(ray_root: Managed, prefix: str = "ray::Analytics") -> list[psutil.Process]:
    out = []
    for proc in ray_processes(ray_root):
        with contextlib.suppress(psutil.Error):
            cmd = proc.cmdline()
            if cmd and cmd[0].startswith(prefix):
                out.append(proc)
    return out


def _saturated(params: Params, server: Managed, ray_root: Managed,
               before_load: Any, sampler: _Sampler | None) -> dict[str, Any]:
    """Stage `e2e`'s saturating window (closed loop) on `server`, with the CPU of the
    analytics actors (every instance's) apart from the rest of Ray. `before_load()` runs
    after the workload's set-up, just before the load starts."""
    before = set(host_processes(ray_root))
    work = asyncio.run(setup_workload(server.base, params.auctions, params.bidders))
    hosts = instance_hosts(ray_root, before)
    groups = cpu_groups(server, ray_root, hosts)
    analytics = _analytics_procs(ray_root)
    portfolios = _analytics_procs(ray_root, "ray::Portfolio")  # every instance's, too
    ids = {p.pid for p in analytics + portfolios}
    groups["ray_other"] = [p for p in groups["ray_other"] if p.pid not in ids]
    groups["analytics"] = analytics
    groups["portfolio"] = portfolios
    prepared = before_load()
    window: dict[str, float] = {}

    def on_window(seconds: float) -> None:
        window["start"], window["seconds"] = time.monotonic(), seconds

    result = run_load(bid_jobs(params, server.base, work, "closed"), groups,
                      on_window=on_window)
    s = result.summary()
    out: dict[str, Any] = {"bids_per_s": s["answered_per_s"], "saturated": s,
                           "setup_s": round(work.setup_s, 2), "hosts": len(hosts),
                           "before_load": prepared}
    if sampler is not None and window:
        start = sampler.at(window["start"])
        stop = sampler.at(window["start"] + window["seconds"])
        folded = {name: stop.get(name, 0) - start.get(name, 0)
                  for name in ("prices.0", "market")}
        out["projections"] = {
            "at_window_start": start, "at_window_end": stop,
            "folded_in_window": folded,
            "fold_per_s_in_window": {k: round(v / window["seconds"], 1)
                                     for k, v in folded.items()},
            # The price projection still had sales to fold when the window closed.
            "busy_through_window": stop.get("sales_head", 0) > stop.get("prices.0", 0),
        }
    return out


def bidpath_stage(params: Params, on: Managed | None, off: Managed | None,
                  ray_root: Managed) -> dict[str, Any]:
    if on is None or off is None:
        raise RuntimeError("the analytics on/off servers were not started")
    n = params.analytics_busy_sales
    off_db, on_db = server_db(off), server_db(on)
    # The same sales go into both stores, after each workload's set-up and just before its
    # load: on the ECE_ANALYTICS=1 one its projections start folding them at once.
    without = _saturated(params, off, ray_root,
                         lambda: asyncio.run(_seed_sales(off_db, n)), None)
    sampler = _Sampler(on_db)
    sampler.start()
    try:
        with_ = _saturated(params, on, ray_root,
                           lambda: asyncio.run(_seed_sales(on_db, n)), sampler)
    finally:
        sampler.stopping.set()
        sampler.join(timeout=5)
    ratio = round(with_["bids_per_s"] / without["bids_per_s"], 3) if without[
        "bids_per_s"] else None
    return {
        "figures": {"on_bids_per_s": with_["bids_per_s"],
                    "off_bids_per_s": without["bids_per_s"],
                    "on_over_off": ratio,
                    "on_ack_p99_ms": with_["saturated"]["ack_ms"]["p99"],
                    "off_ack_p99_ms": without["saturated"]["ack_ms"]["p99"]},
        "details": {"order": "ECE_ANALYTICS=0 first, then 1", "seeded_sales": n,
                    "off": without, "on": with_, "positions_after": _positions(on_db)},
    }
