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
    hot_bidders: int  # bidder sockets on the one auction of stage hot_auction
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
    # Stage portfolio_push (loadtests.stages_portfolio_push).
    push_holders: int  # users holding the card, written into the store
    push_sockets: int  # signed-up holders of it with a socket on `me`
    push_sales: int  # sales of the card measured
    # Stages portfolio_read and portfolio_bidpath (loadtests.stages_portfolio).
    portfolio_sales: int  # sales in the store the portfolio route's server holds
    portfolio_users: int  # users with a portfolio in that store
    portfolio_holdings: int  # holdings of the user whose portfolio is read
    portfolio_rate: float  # GET /api/portfolio per second (Poisson arrivals)
    portfolio_s: float  # seconds measured at that rate
    portfolio_busy_holders: int  # users minted cards just before the bid load
    portfolio_busy_assets: int  # cards each of them holds
    portfolio_busy_sales: int  # sales seeded then, of the cards they hold among others
    # The capacity sweep (loadtests.stages_capacity): open-loop Poisson steps.
    capacity_auctions: int
    capacity_bidders: int  # bidder sockets per auction
    capacity_watchers: int  # watcher sockets per auction
    capacity_warmup_s: float
    capacity_measure_s: float
    capacity_drain_s: float  # how long a step waits for answers owed after its window
    capacity_start_rate: float  # bids/s of the first step
    capacity_factor: float  # each step offers this much more than the last
    capacity_max_steps: int
    capacity_pin: bool  # servers and generators on separate CPUs (loadtests.stages_capacity)
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
            hot_bidders=50 if quick else 200,
            analytics_ingest_sales=10_000 if quick else 100_000,
            analytics_runner_sales=5_000 if quick else 50_000,
            analytics_auctions=500 if quick else 10_000,
            analytics_index_sales=100_000 if quick else 1_000_000,
            analytics_history_sales=100_000 if quick else 1_000_000,
            analytics_history_rate=200.0,
            analytics_history_warmup_s=1.0 if quick else 3.0,
            analytics_history_s=3.0 if quick else 30.0,
            analytics_busy_sales=50_000 if quick else 400_000,
            push_holders=1_000 if quick else 10_000,
            push_sockets=5 if quick else 20,
            push_sales=5 if quick else 30,
            portfolio_sales=100_000 if quick else 1_000_000,
            portfolio_users=1_000 if quick else 10_000,
            portfolio_holdings=1_000,
            portfolio_rate=50.0,
            portfolio_s=3.0 if quick else 30.0,
            portfolio_busy_holders=200 if quick else 5_000,
            portfolio_busy_assets=10 if quick else 20,
            portfolio_busy_sales=5_000 if quick else 50_000,
            capacity_auctions=40 if quick else 200,
            capacity_bidders=3,
            capacity_watchers=1 if quick else 2,
            capacity_warmup_s=1.0 if quick else 2.0,
            capacity_measure_s=2.0 if quick else 6.0,
            capacity_drain_s=3.0 if quick else 5.0,
            capacity_start_rate=100.0,
            capacity_factor=2.0 if quick else 1.5,
            capacity_max_steps=3 if quick else 14,
            capacity_pin=not getattr(args, "no_pin", False),
            time_limit_s=420.0 if quick else 1800.0,
        )
        return p
