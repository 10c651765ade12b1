"""A stale owner's append fails and it stops serving the auction (no Ray needed here)."""

from __future__ import annotations

import time

import pytest

from actors.config import ClusterConfig
from actors.host import AuctionHostCore
from actors.messages import Acked, Activate, PlaceBid, Refused, Viewed
from market.auction import Auction, AuctionSpec
from storage import open_store

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_stale_owner_is_fenced_out(tmp_path):
    url = f"sqlite:///{tmp_path / 'fence.db'}"
    store = open_store(url)
    await store.open()
    now = int(time.time() * 1000)
    await store.create_asset({"asset_id": "c_f", "owner_id": "u_s", "title": "t",
                              "metadata": {}, "created_at": now})
    spec = AuctionSpec(auction_id="a_f", asset_id="c_f", seller_id="u_s", type="english",
                       start_price=100, starts_at=now, ends_at=now + 600_000, created_at=now)
    await store.create_auction({"auction_id": "a_f", "asset_id": "c_f", "seller_id": "u_s",
                                "host": "h", "spec": spec.to_dict(),
                                "view": Auction(spec).view(now), "status": "scheduled",
                                "seq": 0, "created_at": now})
    config = ClusterConfig(store_url=url, instance="fence")
    old = AuctionHostCore("h", config)  # the owner before a restart or a move
    [started] = await old.submit([Activate("a_f")])
    assert isinstance(started, Viewed) and started.auction["status"] == "live"
    new = AuctionHostCore("h", config)  # the new owner rebuilds from the store
    [ack] = await new.submit([PlaceBid("a_f", "u_new", "n1", 100)])
    assert isinstance(ack, Acked) and ack.ack["seq"] == 2

    # The stale owner still believes seq 2 is free: its append conflicts, nothing of it lands.
    [stale] = await old.submit([PlaceBid("a_f", "u_old", "o1", 100)])
    assert isinstance(stale, Refused) and stale.code == "UNAVAILABLE"
    assert "a_f" not in old.auctions  # it stopped serving the auction
    [again] = await old.submit([PlaceBid("a_f", "u_old", "o2", 100)])
    # The gateway re-resolves the auction's host on NOT_HERE.
    assert isinstance(again, Refused) and again.code == "NOT_HERE"
    events = await store.load_events("a_f")
    assert [(e["seq"], e["type"], e.get("bidder_id")) for e in events] == [
        (1, "started", None), (2, "bid", "u_new")]
    record = await store.get_auction("a_f")
    assert record["view"]["leader_id"] == "u_new" and record["seq"] == 2
    for owner in (old, new):
        await owner.close()
    await store.close()
