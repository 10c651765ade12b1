"""The open-loop workload's pure parts: Poisson arrival times and what a bidder bids.

A realistic bidder bids the auction's current minimum, or sets a maximum above it (a proxy
bid); a bidder who leads does not bid. What a generator process knows of an auction (its
`min_bid` and leader) comes from every answer and event its sockets see, newest first by seq,
so most bids are placed at the current minimum and accepted; two bids racing for the same
minimum are the refusals.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

from market.money import increment_for


def poisson_times(rate: float, start: float, end: float, rng: random.Random) -> Iterator[float]:
    """Arrival times of a Poisson process of `rate` per second in [start, end)."""
    if rate <= 0:
        return
    t = start + rng.expovariate(rate)
    while t < end:
        yield t
        t += rng.expovariate(rate)


@dataclass(frozen=True)
class BidMix:
    """`proxy_share` of the bids set a maximum `1..proxy_increments` increments above the
    amount; the others bid the amount alone."""

    proxy_share: float = 0.3
    proxy_increments: int = 4

    def choose(self, min_bid: int, rng: random.Random) -> tuple[int, int | None]:
        """(amount, max_amount or None) for a bid when the minimum is `min_bid`."""
        if rng.random() >= self.proxy_share:
            return min_bid, None
        top = min_bid
        for _ in range(rng.randint(1, self.proxy_increments)):
            top += increment_for(top)
        return min_bid, top


class Book:
    """What one generator process knows of one auction: the newest `min_bid` and leader."""

    __slots__ = ("leader_id", "min_bid", "seq")

    def __init__(self, min_bid: int, seq: int = 0, leader_id: str | None = None) -> None:
        self.min_bid = min_bid
        self.seq = seq
        self.leader_id = leader_id

    def learn(self, seq: int | None, min_bid: int | None, leader_id: str | None) -> None:
        """An ack or an event: applied only when newer than what is known (answers and events
        arrive on different sockets, in any order)."""
        if not isinstance(seq, int) or seq <= self.seq:
            return
        self.seq = seq
        if isinstance(min_bid, int):
            self.min_bid = min_bid
        if leader_id is not None:
            self.leader_id = leader_id

    def refused(self, min_bid: int | None) -> None:
        """A BID_TOO_LOW names the minimum now: it only ever raises what is known."""
        if isinstance(min_bid, int) and min_bid > self.min_bid:
            self.min_bid = min_bid


def pick_bidder(bidders: list, leader_id: str | None, rng: random.Random):
    """A bidder of the auction who does not lead it (as far as is known); None if none."""
    candidates = [b for b in bidders if b.bidder_id != leader_id]
    return rng.choice(candidates) if candidates else None
