"""Auction views as clients see them, from what the store holds."""

from __future__ import annotations

from actors.clock import now_ms
from market.auction import dutch_next_drop, dutch_price

__all__ = ["present_view"]


def present_view(view: dict) -> dict:
    """The stored view, with what depends on the clock (a live Dutch price) brought to now."""
    if view.get("type") == "dutch" and view.get("status") == "live":
        schedule = (view["start_price"], view["floor_price"], view["step"], view["step_ms"],
                    view["starts_at"], now_ms())
        price = dutch_price(*schedule)
        return {**view, "price": price, "min_bid": price,
                "next_drop_at": dutch_next_drop(*schedule)}
    return view
