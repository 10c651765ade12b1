"""Pure auction rules for ECE: money, validation and the auction state machine (no I/O)."""

from market.auction import (
    AUCTION_TYPES,
    STATUSES,
    Auction,
    AuctionSpec,
    BidOutcome,
    parse_spec,
    public_event,
)
from market.errors import MarketError
from market.money import MAX_AMOUNT, increment_for, is_amount

__all__ = [
    "AUCTION_TYPES",
    "MAX_AMOUNT",
    "STATUSES",
    "Auction",
    "AuctionSpec",
    "BidOutcome",
    "MarketError",
    "increment_for",
    "is_amount",
    "parse_spec",
    "public_event",
]
