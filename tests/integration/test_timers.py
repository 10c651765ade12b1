"""Timers at scale: thousands of auctions on one host start and close on time."""

from __future__ import annotations

import time

import pytest
import ray

from actors.config import ClusterConfig
from actors.directory import get_or_create_directory
from market.auction import Auction, AuctionSpec
from storage import open_store
from tests.support import wait_for

pytestmark = pytest.mark.asyncio(loop_scope="session")

COUNT = 2_000


async def test_two_thousand_auctions_on_one_host_close_within_250ms(ray_cluster, tmp_path):
    # The store is filled directly (as a restart would find it); the directory then starts
    # the host that owns them all, which rebuilds them and runs their timers.
    url = f"sqlite:///{tmp_path / 'timers.db'}?synchronous=OFF"
    config = ClusterConfig(store_url=url, instance="timers", auctions_per_actor=COUNT)
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
            "host": host, "spec": spec.to_dict(), "view": Auction.new(spec).view(now),
            "status": "scheduled", "seq": 0, "created_at": now,
        })
    directory = get_or_create_directory(config)
    try:
        await directory.ready.remote()
        assert await directory.hosts.remote() == {host: COUNT}

        async def all_closed() -> bool:
            return not await store.open_auctions()

        await wait_for(all_closed, timeout=30, interval=0.1, message="every auction closed")
        records = [await store.get_auction(f"a_t{i}") for i in range(COUNT)]
        assert all(r["status"] == "closed" for r in records)
        lateness = []
        for record in records:
            events = await store.load_events(record["auction_id"])
            assert [e["type"] for e in events] == ["started", "closed"]
            assert 0 <= events[0]["at"] - starts_at <= 250
            lateness.append(events[1]["at"] - ends_at)
        assert min(lateness) >= 0 and max(lateness) <= 250, (min(lateness), max(lateness))
    finally:
        await directory.shutdown.remote()
        ray.kill(directory, no_restart=True)
        await store.close()
