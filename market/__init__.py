"""Pure rules for ECE: money, validation, the auction state machine, the ledger (no I/O)."""

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
from market.ledger import Balances, Entry
from market.money import MAX_AMOUNT, increment_for, is_amount

__all__ = [
    "AUCTION_TYPES",
    "MAX_AMOUNT",
    "STATUSES",
    "Auction",
    "AuctionSpec",
    "Balances",
    "BidOutcome",
    "Entry",
    "MarketError",
    "increment_for",
    "is_amount",
    "parse_spec",
    "public_event",
]
