"""The sizes of one benchmark run (`Params`), from the command line and `--quick`."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import psutil

GiB = 1024**3


@dataclass
class Params:
    quick: bool
    auctions: int  # K
    bidders: int  # B per auction
    watchers: int  # W per auction
    window: int  # outstanding bids per bidder socket (closed loop)
    procs: int  # generator processes
    encoding: str
    warmup_s: float
    measure_s: float
    rules_s: float
    light_rate: float  # total bids/s of the light-load latency phase
    light_measure_s: float
    fanout_watchers: int
    fanout_bidders: int
    fanout_measure_s: float
    idle_connections: int
    auctions_default: int  # live auctions for the default-hosting footprint
    auctions_per_actor_max: int  # cap at ECE_AUCTIONS_PER_ACTOR=1
    per_actor_budget_s: float
    per_actor_memory_budget: int  # bytes of host RSS at which the 1-per-actor stage stops
    close_lag_auctions: int  # auctions closing in the same second on one host
    # The analytics stages (loadtests.stages_analytics).
    analytics_ingest_sales: int  # sales folded in-core through each projection
    analytics_runner_sales: int  # of those, folded by a Runner over a SQLite file
    analytics_auctions: int  # closed auctions (rules engine) for the behaviour maths
    analytics_index_sales: int  # sales the market indexes are rebuilt from
    analytics_history_sales: int  # sales in the store the history route reads
    analytics_history_rate: float  # history requests/s (Poisson arrivals)
    analytics_history_warmup_s: float
    analytics_history_s: float
    analytics_busy_sales: int  # sales added so the projections are busy during the bid load
    time_limit_s: float

    @classmethod
    def build(cls, args: argparse.Namespace) -> Params:
        quick = args.quick
        available = psutil.virtual_memory().available
        p = cls(
            quick=quick,
            auctions=args.k or (4 if quick else 20),
            bidders=args.b or (3 if quick else 5),
            watchers=args.w or (3 if quick else 5),
            window=args.window,
            procs=args.procs,
            encoding=args.encoding,
            warmup_s=1.0 if quick else 3.0,
            measure_s=args.measure or (3.0 if quick else 12.0),
            rules_s=0.5 if quick else 2.0,
            light_rate=50.0 if quick else 100.0,
            light_measure_s=3.0 if quick else 8.0,
            fanout_watchers=100 if quick else 1000,
            fanout_bidders=2,
            fanout_measure_s=3.0 if quick else 10.0,
            idle_connections=300 if quick else 5000,
            auctions_default=100 if quick else 2000,
            auctions_per_actor_max=3 if quick else 200,
            per_actor_budget_s=15.0 if quick else 75.0,
            per_actor_memory_budget=int(min(4 * GiB, available * 0.2)),
            close_lag_auctions=200 if quick else 2000,
            analytics_ingest_sales=10_000 if quick else 100_000,
            analytics_runner_sales=5_000 if quick else 50_000,
            analytics_auctions=500 if quick else 10_000,
            analytics_index_sales=100_000 if quick else 1_000_000,
            analytics_history_sales=100_000 if quick else 1_000_000,
            analytics_history_rate=200.0,
            analytics_history_warmup_s=1.0 if quick else 3.0,
            analytics_history_s=3.0 if quick else 30.0,
            analytics_busy_sales=50_000 if quick else 400_000,
            time_limit_s=300.0 if quick else 1200.0,
        )
        return p
