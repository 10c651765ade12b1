"""Auction views as clients see them, from what the store holds."""

from __future__ import annotations

import time

from market.auction import Auction, AuctionSpec


def now_ms() -> int:
    return int(time.time() * 1000)


def present_view(view: dict, spec: dict) -> dict:
    """The stored view, with what depends on the clock (a live Dutch price) brought to now."""
    if view.get("type") == "dutch" and view.get("status") == "live":
        # A live Dutch auction has no bid yet, so its price depends on the spec alone.
        price = Auction.new(AuctionSpec.from_dict(spec)).current_price(now_ms())
        return {**view, "price": price, "min_bid": price}
    return view
