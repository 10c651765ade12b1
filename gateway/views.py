"""Auction views as clients see them, from what the store holds."""

from __future__ import annotations

import time

from market.auction import AuctionSpec, Auction


def now_ms() -> int:
    return int(time.time() * 1000)


def present_view(view: dict, spec: dict) -> dict:
    """The stored view, with what depends on the clock (a Dutch price) brought to now."""
    if view.get("type") == "dutch" and view.get("status") == "live":
        price = Auction.dutch_price(AuctionSpec.from_dict(spec), now_ms())
        return {**view, "price": price, "min_bid": price}
    return view
