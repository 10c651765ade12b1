"""A stale owner's append fails and it stops serving the auction (no Ray needed here)."""

from __future__ import annotations

import asyncio
import time

import pytest

from actors.config import ClusterConfig
from actors.host import AuctionHostCore
from actors.messages import Acked, Activate, PlaceBid, Refused, Viewed
from market.auction import Auction, AuctionSpec
from storage import open_store

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def _live_on_h(store, auction_id: str, asset_id: str) -> None:
    """An English auction of a new card, its record naming host "h", not started yet."""
    now = int(time.time() * 1000)
    await store.create_asset({"asset_id": asset_id, "owner_id": "u_s", "title": "t",
                              "metadata": {}, "created_at": now})
    spec = AuctionSpec(auction_id=auction_id, asset_id=asset_id, seller_id="u_s",
                       type="english", start_price=100, starts_at=now,
                       ends_at=now + 600_000, created_at=now)
    await store.create_auction({"auction_id": auction_id, "asset_id": asset_id,
                                "seller_id": "u_s", "host": "h", "spec": spec.to_dict(),
                                "view": Auction(spec).view(now), "status": "scheduled",
                                "seq": 0, "created_at": now})


async def test_stale_owner_is_fenced_out(tmp_path):
    url = f"sqlite:///{tmp_path / 'fence.db'}"
    store = open_store(url)
    await store.open()
    await _live_on_h(store, "a_f", "c_f")
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


async def test_a_host_fenced_by_an_earlier_life_of_its_own_name_serves_again(tmp_path):
    """A move or restart keeps a host's name: a late write of its earlier life fences the new
    one, whose next look at the store finds the record still naming it. Those events stand
    and it serves the auction again from the store (not left unserved until a restart)."""
    url = f"sqlite:///{tmp_path / 'late.db'}"
    store = open_store(url)
    await store.open()
    await _live_on_h(store, "a_l", "c_l")
    config = ClusterConfig(store_url=url, instance="late")
    new = AuctionHostCore("h", config)  # this life of host "h"
    [started] = await new.submit([Activate("a_l")])
    assert isinstance(started, Viewed)
    earlier = AuctionHostCore("h", config)  # the earlier life, writing late
    [late] = await earlier.submit([PlaceBid("a_l", "u_late", "l1", 100)])
    assert isinstance(late, Acked) and late.ack["seq"] == 2
    await earlier.close()

    [fenced] = await new.submit([PlaceBid("a_l", "u_new", "n1", 100)])
    assert isinstance(fenced, Refused) and fenced.code == "UNAVAILABLE"
    await asyncio.gather(*list(new._background))  # its look at the store, with rechecks
    [ack] = await new.submit([PlaceBid("a_l", "u_new", "n2", 200)])
    assert isinstance(ack, Acked) and ack.ack["seq"] == 3  # after the late bid, kept
    events = await store.load_events("a_l")
    assert [(e["seq"], e.get("bidder_id")) for e in events] == [
        (1, None), (2, "u_late"), (3, "u_new")]
    await new.close()
    await store.close()
