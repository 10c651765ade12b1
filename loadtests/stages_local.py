"""The stages that need no ECE server: the rules engine alone, the bare WebSocket echo server,
and the close lag of one in-process auction host."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from loadtests.driver import run_load
from loadtests.params import Params
from loadtests.servers import start_echo
from loadtests.workload import load_job, split

# ---- stage 1: the limits -------------------------------------------------------------------

def rules_engine(seconds: float, auctions: int = 20, bidders: int = 5) -> dict[str, Any]:
    """`Auction.handle_bid` alone: every bid is min_bid from the next bidder (all accepted)."""
    from market.auction import Auction, AuctionSpec

    now = int(time.time() * 1000)
    books = []
    for i in range(auctions):
        spec = AuctionSpec(auction_id=f"a{i}", asset_id=f"c{i}", seller_id="seller",
                           type="english", start_price=100, starts_at=now,
                           ends_at=now + 3_600_000, created_at=now, soft_close_ms=0)
        auction = Auction(spec)
        auction.advance(now)
        books.append(auction)
    names = [f"u{j}" for j in range(bidders)]
    done = accepted = 0
    started = time.perf_counter()
    deadline = started + seconds
    batch = 1_000
    while time.perf_counter() < deadline and done < 5_000_000:
        for n in range(done, done + batch):
            auction = books[n % auctions]
            outcome = auction.handle_bid(names[(n // auctions) % bidders], f"r{n}",
                                         auction.min_bid(now), None, now)
            accepted += outcome.error is None
        done += batch
    elapsed = time.perf_counter() - started
    return {"figures": {"bids_per_s": round(done / elapsed, 1)},
            "details": {"bids": done, "accepted": accepted, "seconds": round(elapsed, 3),
                        "auctions": auctions, "bidders": bidders}}


def echo_limit(params: Params, tmp: Path) -> dict[str, Any]:
    echo = start_echo(tmp)
    try:
        echo.wait_ready(30)
        per_proc = split(range(params.auctions), params.procs)
        jobs = []
        for part in per_proc:
            bidders = [{"auction_id": f"echo{k}", "bidder_id": f"u{j}", "floor": 100}
                       for k in part for j in range(params.bidders)]
            jobs.append(load_job(params, echo.base, bidders, [], mode="closed"))
        result = run_load(jobs, {"echo_server": [echo.process()]})
    finally:
        echo.stop(grace=20)
    s = result.summary()
    return {"figures": {"messages_per_s": s["answered_per_s"]},
            "details": {"sockets": params.auctions * params.bidders, "window": params.window,
                        "rtt_ms": s["ack_ms"], "cpu_cores": s["cpu_cores"],
                        "counts": s["counts"]}}


# ---- stage 7: timers -----------------------------------------------------------------------

def close_lag_stage(params: Params, tmp: Path) -> dict[str, Any]:
    """N auctions closing in the same second on one host: how late each close is published
    (committed to the store, then on the host's event feed) after its ends_at.

    Two runs: the ends spread evenly over one second (the figures), and all at the same
    instant (the worst case: one batch; its lag is `burst_ms`). The host core runs in this
    process over a SQLite file at the default durability (synchronous=FULL), as a host
    recovering the auctions after a restart would: the timer path alone, without Ray or a
    gateway in between.
    """
    count = params.close_lag_auctions
    spread = asyncio.run(_close_lag(count, 1000, tmp / "close_lag.db"))
    burst = asyncio.run(_close_lag(count, 0, tmp / "close_lag_burst.db"))
    return {
        "figures": {"close_lag_p50_ms": round(spread["lag_ms"]["p50"], 2),
                    "close_lag_p99_ms": round(spread["lag_ms"]["p99"], 2),
                    "close_lag_max_ms": round(spread["lag_ms"]["max"], 2),
                    "close_lag_burst_max_ms": round(burst["lag_ms"]["max"], 2)},
        "details": {"auctions": count, "store": "sqlite synchronous=FULL",
                    "ends_within_1s": spread, "ends_at_once": burst},
    }


def _percentile(sorted_values: list[float], q: float) -> float:
    rank = max(0, min(len(sorted_values) - 1, round(q * len(sorted_values) + 0.5) - 1))
    return sorted_values[rank]


def _spread(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"p50": round(_percentile(ordered, 0.50), 2),
            "p99": round(_percentile(ordered, 0.99), 2), "max": round(ordered[-1], 2)}


async def _close_lag(count: int, window_ms: int, path: Path) -> dict[str, Any]:
    """`count` auctions on one host, their ends spread evenly over `window_ms`."""
    from actors.config import ClusterConfig
    from actors.host import AuctionHostCore
    from market.auction import Auction, AuctionSpec
    from storage import open_store

    config = ClusterConfig(store_url=f"sqlite:///{path}", instance="closelag")
    host = config.host_name(0)
    setup = open_store(f"sqlite:///{path}?synchronous=OFF")  # filling it is not measured
    await setup.open()
    started = time.monotonic()
    now = int(time.time() * 1000)
    # Room for the inserts and the host's recovery (both ~linear in count) before the ends.
    first_end = now + 1_000 + 2 * count
    ends: dict[str, int] = {}
    try:
        for i in range(count):
            asset_id, auction_id = f"c_lag{i}", f"a_lag{i}"
            ends[auction_id] = first_end + i * window_ms // count
            await setup.create_asset({"asset_id": asset_id, "owner_id": "u_seller",
                                      "title": "t", "metadata": {}, "created_at": now})
            spec = AuctionSpec(auction_id=auction_id, asset_id=asset_id, seller_id="u_seller",
                               type="english", start_price=100, starts_at=now,
                               ends_at=ends[auction_id], created_at=now, soft_close_ms=0)
            await setup.create_auction({
                "auction_id": auction_id, "asset_id": asset_id, "seller_id": "u_seller",
                "host": host, "spec": spec.to_dict(), "view": Auction(spec).view(now),
                "status": "scheduled", "seq": 0, "created_at": now,
            })
    finally:
        await setup.close()
    core = AuctionHostCore(host, config)
    try:
        await core.ready()
        setup_s = time.monotonic() - started
        spare_ms = first_end - int(time.time() * 1000)
        if spare_ms < 0:
            raise RuntimeError(f"setup overran the first end by {-spare_ms} ms")
        published: dict[str, float] = {}
        fired: dict[str, int] = {}

        async def watch() -> None:
            epoch, cursor = None, 0
            while len(published) < count:
                batch = await core.poll(epoch, cursor, 1.0)
                at = time.time() * 1000
                epoch, cursor = batch.epoch, batch.cursor
                for event in batch.events:
                    if event["type"] == "closed" and event["auction_id"] in ends:
                        published.setdefault(event["auction_id"], at)
                        fired.setdefault(event["auction_id"], event["at"])

        await asyncio.wait_for(watch(), timeout=60 + count / 50)
    finally:
        await core.close()
    lag = [published[a] - ends[a] for a in ends]
    fire = [float(fired[a] - ends[a]) for a in ends]
    if min(lag) < 0 or min(fire) < 0:
        raise RuntimeError(f"an auction closed before its end ({min(fire):.0f} ms)")
    return {"window_ms": window_ms, "lag_ms": _spread(lag), "timer_fired_ms": _spread(fire),
            "setup_s": round(setup_s, 2), "spare_before_first_end_ms": spare_ms}
