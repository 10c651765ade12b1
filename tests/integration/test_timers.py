"""Timers at scale: thousands of auctions on one host start and close, in order, none early.

How late they close on a given machine is a benchmark figure (`close_lag` in
loadtests/stages_local.py), not a pass/fail bound: here lateness is only bounded generously,
so a loaded machine passes.
"""

from __future__ import annotations

import time

import pytest
import ray

from actors.config import ClusterConfig
from actors.directory import get_or_create_directory
from market.auction import Auction, AuctionSpec
from storage import open_store
from testkit.client import unique, wait_for

pytestmark = pytest.mark.asyncio(loop_scope="session")

COUNT = 2_000
# Far above the lateness of an idle machine (~100 ms), to catch only a timer left behind.
MAX_LATENESS_MS = 10_000


async def test_two_thousand_auctions_on_one_host_start_and_close_in_order(ray_cluster, tmp_path):
    # The store is filled directly (as a restart would find it); the directory then starts
    # the host that owns them all, which rebuilds them and runs their timers.
    url = f"sqlite:///{tmp_path / 'timers.db'}?synchronous=OFF"
    config = ClusterConfig(store_url=url, instance=unique("timers"), auctions_per_actor=COUNT)
    store = open_store(url)
    await store.open()
    now = int(time.time() * 1000)
    starts_at, ends_at = now + 4_000, now + 7_000
    host = config.host_name(0)
    for i in range(COUNT):
        asset_id, auction_id = f"c_t{i}", f"a_t{i}"
        await store.create_asset({"asset_id": asset_id, "owner_id": "u_seller", "title": "t",
                                  "metadata": {}, "created_at": now})
        spec = AuctionSpec(auction_id=auction_id, asset_id=asset_id, seller_id="u_seller",
                           type="english", start_price=100, starts_at=starts_at,
                           ends_at=ends_at, created_at=now)
        await store.create_auction({
            "auction_id": auction_id, "asset_id": asset_id, "seller_id": "u_seller",
            "host": host, "spec": spec.to_dict(), "view": Auction(spec).view(now),
            "status": "scheduled", "seq": 0, "created_at": now,
        })
    directory = get_or_create_directory(config)
    try:
        await directory.ready.remote()
        assert await directory.hosts.remote() == {host: COUNT}

        async def all_closed() -> bool:
            return not await store.open_auctions()

        await wait_for(all_closed, timeout=60, interval=0.1, message="every auction closed")
        records = [await store.get_auction(f"a_t{i}") for i in range(COUNT)]
        assert all(r["status"] == "closed" for r in records)
        start_lateness, close_lateness = [], []
        for record in records:
            events = await store.load_events(record["auction_id"])
            assert [(e["seq"], e["type"]) for e in events] == [(1, "started"), (2, "closed")]
            started, closed = events
            assert starts_at <= started["at"] <= closed["at"]
            assert closed["ends_at"] == ends_at and record["view"]["ends_at"] == ends_at
            start_lateness.append(started["at"] - starts_at)
            close_lateness.append(closed["at"] - ends_at)
        assert min(close_lateness) >= 0, "closed before ends_at"
        assert max(start_lateness) <= MAX_LATENESS_MS, max(start_lateness)
        assert max(close_lateness) <= MAX_LATENESS_MS, max(close_lateness)

        # Each close is settled (unsold: asset released) and given back to the directory.
        async def all_released() -> bool:
            return await directory.hosts.remote() == {host: 0}

        await wait_for(all_released, timeout=60, interval=0.2, message="every auction released")
        assert await store.unsettled_finished() == []
    finally:
        await directory.shutdown.remote()
        ray.kill(directory, no_restart=True)
        await store.close()
