"""Stage `hot_auction`: one auction, many bidders (200 in a full run) — the serial limit of
one auction.

Every command of an auction runs in order on its host (`actors.host`), so one auction cannot
use more than what its host's loop does serially; this stage measures that ceiling.

Closed loop, one bid outstanding per bidder socket (the generator's `mode="closed"`,
`window=1`: a bidder bids again as soon as it is answered, at the smallest amount it knows to
be acceptable). Closed rather than open loop because the question is a throughput limit, not a
latency at a given rate (that is the capacity sweep's question): with 200 bids always
outstanding the auction's queue never runs dry, so the rate measured is what one auction can
process, whatever the generator's timing. The latency at that rate then follows from
Little's law (200 outstanding / rate): it is reported, and it is not a target. Most of the
bids are refused (BID_TOO_LOW): 200 bidders racing for the same minimum is what a hot auction
is; accepted and refused rates are reported apart, with the server CPU per answered bid.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from loadtests.driver import run_load
from loadtests.params import Params
from loadtests.servers import BENCH_AUCTION, bench_api, cpu_groups
from loadtests.usage import host_processes
from loadtests.workload import load_job, split
from testkit.client import User
from testkit.processes import Managed

STAGE = "hot_auction"
# Each bidder's deposit: the largest the wallet takes (gateway.wallet.MAX_DEPOSIT). Past
# 500,000 cents every raise is 10,000, so a few thousand accepted bids a second for the whole
# run would outgrow the default deposit and turn into buying-power refusals.
HOT_FUNDS = 10_000_000_000
SERVER_GROUPS = ("gateway", "hosts", "ray_other")

# (key, stage, figure, unit, description)
FIGURES = (
    ("hot_auction_bids_per_s", STAGE, "bids_per_s", "bids/s",
     "hot auction: one auction, closed loop (answered)"),
    ("hot_auction_accepted_per_s", STAGE, "accepted_per_s", "bids/s", "  of which accepted"),
    ("hot_auction_refused_per_s", STAGE, "refused_per_s", "bids/s",
     "  of which refused (BID_TOO_LOW)"),
    ("hot_auction_ack_p50_ms", STAGE, "ack_p50_ms", "ms", "  bid->ack p50, hot auction"),
    ("hot_auction_ack_p99_ms", STAGE, "ack_p99_ms", "ms", "  bid->ack p99, hot auction"),
    ("hot_auction_server_cpu_cores", STAGE, "server_cpu_cores", "cores",
     "  server CPU (gateway, hosts, rest of Ray)"),
    ("hot_auction_server_cpu_us_per_bid", STAGE, "server_cpu_us_per_bid", "us",
     "  server CPU per answered bid, hot auction"),
)


async def setup_hot(base: str, bidders: int) -> tuple[dict, list[User]]:
    """A seller's auction (the benchmark's English hour) and `bidders` funded accounts."""
    async with aiohttp.ClientSession() as http:
        api = bench_api(base, http)
        seller = await api.signup("hotseller-")
        view = await api.auction(seller, **BENCH_AUCTION)
        accounts = await asyncio.gather(*(api.signup(f"hot{i}-", funds=HOT_FUNDS)
                                          for i in range(bidders)))
    return view, list(accounts)


def hot_jobs(params: Params, base: str, view: dict, bidders: list[User]) -> list[dict]:
    """The generator jobs: the bidders and `params.watchers` watchers of the one auction,
    split between the generator processes; one bid outstanding per bidder."""
    auction_id = view["auction_id"]
    floor = view.get("min_bid") or BENCH_AUCTION["start_price"]
    specs = [{"auction_id": auction_id, "token": acct.token, "bidder_id": acct.user_id,
              "floor": floor} for acct in bidders]
    watchers = [{"auction_id": auction_id} for _ in range(params.watchers)]
    jobs = []
    for bid_part, watch_part in zip(split(specs, params.procs), split(watchers, params.procs),
                                    strict=True):
        job = load_job(params, base, bid_part, watch_part, "closed", window=1)
        job["connect_concurrency"] = 50
        jobs.append(job)
    return jobs


def figures_of(summary: dict[str, Any]) -> dict[str, Any]:
    """The stage's figures from the load window's summary (`LoadResult.summary()`)."""
    cores = summary["cpu_cores"]
    server = round(sum(cores.get(group, 0.0) for group in SERVER_GROUPS), 2)
    answered = summary["answered_per_s"]
    return {
        "bids_per_s": answered,
        "accepted_per_s": summary["accepted_per_s"],
        "refused_per_s": summary["rejected_per_s"],
        "ack_p50_ms": summary["ack_ms"]["p50"],
        "ack_p99_ms": summary["ack_ms"]["p99"],
        "event_p99_ms": summary["event_ms"]["p99"],
        "server_cpu_cores": server,
        "server_cpu_us_per_bid": round(server / answered * 1e6, 1) if answered else None,
    }


def hot_auction_stage(params: Params, server: Managed, ray_root: Managed) -> dict[str, Any]:
    view, bidders = asyncio.run(setup_hot(server.base, params.hot_bidders))
    hosts = list(host_processes(ray_root).values())
    result = run_load(hot_jobs(params, server.base, view, bidders),
                      cpu_groups(server, ray_root, hosts))
    summary = result.summary()
    return {
        "figures": figures_of(summary),
        "saturated": summary,
        "details": {"bidders": params.hot_bidders, "watchers": params.watchers,
                    "bidders_connected": sum(r["bidders"] for r in result.ready),
                    "outstanding_per_bidder": 1, "loop": "closed"},
    }


