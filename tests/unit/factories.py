"""Shared builders for the market unit tests."""

from __future__ import annotations

from typing import Any

from market.auction import Auction, AuctionSpec, BidOutcome

SELLER = "seller"
T0 = 1_000_000  # starts_at used by most tests
HOUR = 3_600_000


def make_spec(**overrides: Any) -> AuctionSpec:
    fields: dict[str, Any] = {
        "auction_id": "auc-1",
        "asset_id": "asset-1",
        "seller_id": SELLER,
        "type": "english",
        "start_price": 1000,
        "starts_at": T0,
        "ends_at": T0 + HOUR,
        "created_at": T0 - 1,
    }
    fields.update(overrides)
    return AuctionSpec(**fields)


def make_auction(**overrides: Any) -> Auction:
    return Auction(make_spec(**overrides))


def live(**overrides: Any) -> Bidder:
    """A started auction wrapped in a Bidder that has recorded the `started` event."""
    bidder = Bidder(make_auction(**overrides))
    bidder.advance(bidder.auction.spec.starts_at)
    assert bidder.auction.status == "live"
    return bidder


class Bidder:
    """Places bids with fresh req_ids and records every event, for replay checks."""

    def __init__(self, auction: Auction) -> None:
        self.auction = auction
        self.events: list[dict[str, Any]] = []
        self._n = 0

    def bid(
        self, bidder: str, amount: int, max_amount: int | None = None, now: int = T0 + 1,
        req_id: str | None = None,
    ) -> BidOutcome:
        if req_id is None:
            self._n += 1
            req_id = f"req-{self._n}"
        outcome = self.auction.handle_bid(bidder, req_id, amount, max_amount, now)
        self.events.extend(outcome.events)
        return outcome

    def advance(self, now: int) -> list[dict[str, Any]]:
        events = self.auction.advance(now)
        self.events.extend(events)
        return events

    def replayed(self) -> Auction:
        return Auction.replay(self.auction.spec, self.events)

    def ok(self, bidder: str, amount: int, max_amount: int | None = None,
           now: int = T0 + 1) -> dict[str, Any]:
        outcome = self.bid(bidder, amount, max_amount, now)
        assert outcome.error is None, outcome.error.to_dict()
        assert outcome.ack is not None
        return outcome.ack

    def refused(self, bidder: str, amount: int, max_amount: int | None = None,
                now: int = T0 + 1) -> dict[str, Any]:
        outcome = self.bid(bidder, amount, max_amount, now)
        assert outcome.ack is None
        assert outcome.error is not None
        return outcome.error.to_dict()
