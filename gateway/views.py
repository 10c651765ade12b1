"""Auction views as clients see them, from what the store holds."""

from __future__ import annotations

import time

from market.auction import dutch_price


def now_ms() -> int:
    return int(time.time() * 1000)


def present_view(view: dict) -> dict:
    """The stored view, with what depends on the clock (a live Dutch price) brought to now."""
    if view.get("type") == "dutch" and view.get("status") == "live":
        price = dutch_price(view["start_price"], view["floor_price"], view["step"],
                            view["step_ms"], view["starts_at"], now_ms())
        return {**view, "price": price, "min_bid": price}
    return view
