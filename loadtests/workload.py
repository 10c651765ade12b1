"""The load of a stage: accounts and auctions made through the API, and the generator jobs
(`loadtests.gen`) that bid on and watch them."""

from __future__ import annotations

import time
from dataclasses import dataclass

import aiohttp

from loadtests.params import Params
from loadtests.servers import BENCH_AUCTION, bench_api
from testkit.client import User


def split(items, parts: int) -> list[list]:
    items = list(items)
    return [items[i::parts] for i in range(parts)]


def load_job(params: Params, url: str, bidders: list[dict], watchers: list[dict], mode: str,
             rate_per_bidder: float = 0.0, warmup_s: float | None = None,
             measure_s: float | None = None, window: int | None = None) -> dict:
    return {
        "kind": "load", "url": url, "bidders": bidders, "watchers": watchers, "mode": mode,
        "window": params.window if window is None else window, "encoding": params.encoding,
        "rate_per_bidder": rate_per_bidder,
        "warmup_s": params.warmup_s if warmup_s is None else warmup_s,
        "measure_s": params.measure_s if measure_s is None else measure_s,
        "drain_s": 3.0,
    }


@dataclass
class Workload:
    seller: User
    bidders: list[User]
    auctions: list[dict]
    setup_s: float


async def setup_workload(base: str, k: int, b: int) -> Workload:
    started = time.monotonic()
    async with aiohttp.ClientSession() as http:
        api = bench_api(base, http)
        accounts = await api.signups("bench", b + 1)
        seller, bidders = accounts[0], accounts[1:]
        auctions, _ = await api.auctions(seller, k, concurrency=8, **BENCH_AUCTION)
    return Workload(seller, bidders, auctions, time.monotonic() - started)


async def refresh(base: str, auctions: list[dict]) -> list[dict]:
    async with aiohttp.ClientSession() as http:
        api = bench_api(base, http)
        return [await api.get(view["auction_id"]) for view in auctions]


def bid_jobs(params: Params, base: str, work: Workload, mode: str,
             rate_per_bidder: float = 0.0) -> list[dict]:
    jobs = []
    for part in split(work.auctions, params.procs):
        bidders = [{"auction_id": v["auction_id"], "token": acct.token,
                    "bidder_id": acct.user_id, "floor": v.get("min_bid") or 100}
                   for v in part for acct in work.bidders]
        watchers = [{"auction_id": v["auction_id"]} for v in part
                    for _ in range(params.watchers)]
        jobs.append(load_job(params, base, bidders, watchers, mode, rate_per_bidder))
    return jobs


def poisson_jobs(params: Params, base: str, work: Workload, rate: float, watchers: int,
                 cpus: list[int] | None, seed: int) -> list[dict]:
    """Open-loop jobs (`loadtests.gen_poisson`): `rate` bids/s in all, Poisson per process,
    the auctions split between the processes with their bidders and watchers."""
    jobs = []
    parts = split(work.auctions, params.procs)
    for i, part in enumerate(parts):
        bidders = [{"auction_id": v["auction_id"], "token": acct.token,
                    "bidder_id": acct.user_id, "floor": v.get("min_bid") or 100}
                   for v in part for acct in work.bidders]
        watching = [{"auction_id": v["auction_id"]} for v in part for _ in range(watchers)]
        job = load_job(params, base, bidders, watching, "poisson",
                       warmup_s=params.capacity_warmup_s, measure_s=params.capacity_measure_s)
        job.update(rate=rate * len(part) / len(work.auctions), drain_s=params.capacity_drain_s,
                   cpus=cpus, seed=seed * 1000 + i)
        jobs.append(job)
    return jobs
