"""The auction state machine: English (proxy bidding), Dutch and sealed-bid second-price.

Pure rules: no I/O and no clock. Every command follows decide -> events -> apply, so the same
`apply` that runs live also rebuilds an auction from its event log (replay) and the events are
the single source of truth. Time is always passed in as integer epoch milliseconds.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from market.errors import (
    AUCTION_NOT_LIVE,
    BID_TOO_LOW,
    HAS_BIDS,
    INVALID,
    NOT_SELLER,
    SELF_BID,
    MarketError,
)
from market.money import increment_for, is_amount
from market.spec import AUCTION_TYPES, STATUSES, AuctionSpec, parse_spec

__all__ = [
    "ACKS_PER_BIDDER",
    "AUCTION_TYPES",
    "PRIVATE_EVENT_FIELDS",
    "REFUSALS_PER_BIDDER",
    "STATUSES",
    "Auction",
    "AuctionSpec",
    "BidOutcome",
    "Event",
    "parse_spec",
    "public_event",
]

Event = dict[str, Any]

# Event fields that must never reach clients: proxy maxima and idempotency keys.
PRIVATE_EVENT_FIELDS: frozenset[str] = frozenset({"max_amount", "req_id"})
# What a sealed-bid auction hides in its bid events (only bid_count is public while live).
_SEALED_HIDDEN: tuple[str, ...] = ("bidder_id", "amount", "price", "leader_id")
# A `raised` event (a bidder raising their own bid) is public only as the fact that one happened.
_RAISED_PUBLIC: tuple[str, ...] = ("auction_id", "seq", "type", "at")

# Idempotency memory, per bidder and auction: the last ACKS_PER_BIDDER accepted requests (state,
# so in snapshots) and the last REFUSALS_PER_BIDDER refused ones (in memory only). A bidder's
# own traffic evicts their oldest entry; another bidder's traffic never does.
ACKS_PER_BIDDER = 256
REFUSALS_PER_BIDDER = 256
# The gateway prefixes a protocol req_id (up to 128 characters) with its type, e.g. "str:".
_MAX_ID_LEN = 160
# 2: acks bounded per bidder, listed oldest first. 1 (still read): every ack, by (bidder, req_id).
_SNAPSHOT_VERSION = 2
_READABLE_SNAPSHOT_VERSIONS = (1, 2)

# Reasons carried by `closed` events.
CLOSE_TIME = "time"  # ends_at reached
CLOSE_BUY_NOW = "buy_now"  # English buy-now bid
CLOSE_BID = "bid"  # Dutch: first acceptable bid wins


def dutch_price(
    start_price: int, floor_price: int, step: int, step_ms: int, starts_at: int, now: int
) -> int:
    """A Dutch auction's price at `now`: down by `step` every `step_ms`, never below the floor."""
    steps = max(0, now - starts_at) // step_ms
    return max(floor_price, start_price - steps * step)


def dutch_next_drop(
    start_price: int, floor_price: int, step: int, step_ms: int, starts_at: int, now: int
) -> int | None:
    """When a Dutch price next falls after `now` (None once it is at the floor)."""
    if dutch_price(start_price, floor_price, step, step_ms, starts_at, now) <= floor_price:
        return None
    return starts_at + (max(0, now - starts_at) // step_ms + 1) * step_ms


def public_event(event: Event, auction_type: str) -> Event:
    """The client-safe copy of an event: private fields dropped, a leader's bid shown at the
    price (never their maximum), sealed bids anonymised, raises reduced to the bare fact."""
    kind = event.get("type")
    if kind == "raised":
        return {k: event[k] for k in _RAISED_PUBLIC if k in event}
    out = {k: v for k, v in event.items() if k not in PRIVATE_EVENT_FIELDS}
    if kind == "bid":
        if auction_type == "sealed":
            for key in _SEALED_HIDDEN:
                out[key] = None
        elif "amount" in out and out.get("bidder_id") == out.get("leader_id"):
            # What the leader offered above the price is as hidden as their maximum.
            out["amount"] = out.get("price")
    return out


@dataclass
class BidOutcome:
    """Result of one bid command: the events it produced (including any time transitions that
    ran first) and exactly one of `ack` or `error`."""

    events: list[Event]
    ack: dict[str, Any] | None = None
    error: MarketError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def _too_low(min_bid: int, message: str = "bid is below the minimum") -> MarketError:
    return MarketError(BID_TOO_LOW, message, min_bid=min_bid)


def _is_id(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= _MAX_ID_LEN


def _remember[V](memory: dict[str, OrderedDict[str, V]], bidder_id: str, req_id: str,
                 value: V, limit: int) -> None:
    """Store `value` under (bidder_id, req_id), evicting that bidder's oldest beyond `limit`."""
    mine = memory.setdefault(bidder_id, OrderedDict())
    mine[req_id] = value
    if len(mine) > limit:
        mine.popitem(last=False)


class Auction:
    """One auction's full private state. Mutated only through `apply(event)`."""

    def __init__(self, spec: AuctionSpec) -> None:
        if spec.type not in AUCTION_TYPES:
            raise ValueError(f"unknown auction type {spec.type!r}")
        self.spec: AuctionSpec = spec
        self.status: str = "scheduled"
        self.seq: int = 0
        self.price: int | None = None  # None until there is a (public) price
        self.leader_id: str | None = None
        self.bid_count: int = 0
        self.ends_at: int = spec.ends_at
        self.winner_id: str | None = None
        self.final_price: int | None = None
        # English: bidder -> (effective maximum, seq at which they reached it).
        # Sealed: bidder -> (current sealed bid, seq of that bid). Dutch: unused.
        # The seq breaks ties: the earlier one wins.
        self._book: dict[str, tuple[int, int]] = {}
        # Accepted: bidder_id -> req_id -> the ack returned, oldest first, at most
        # ACKS_PER_BIDDER each; part of the state (evicted by `apply`, so replay agrees).
        self._acks: dict[str, OrderedDict[str, dict[str, Any]]] = {}
        # The bid whose ack later events of the same command (extended/closed) update.
        self._last_bid: tuple[str, str] | None = None
        # Refused: the same shape, in memory only, so retries get the same answer on this
        # replica.
        self._rejected: dict[str, OrderedDict[str, MarketError]] = {}

    # ---- construction ------------------------------------------------------------------

    @classmethod
    def replay(cls, spec: AuctionSpec, events: list[Event]) -> Auction:
        auction = cls(spec)
        for event in events:
            auction.apply(event)
        return auction

    def to_snapshot(self) -> dict[str, Any]:
        """Full private state as JSON-serialisable data (sorted, so equal states compare equal)."""
        return {
            "version": _SNAPSHOT_VERSION,
            "spec": self.spec.to_dict(),
            "status": self.status,
            "seq": self.seq,
            "price": self.price,
            "leader_id": self.leader_id,
            "bid_count": self.bid_count,
            "ends_at": self.ends_at,
            "winner_id": self.winner_id,
            "final_price": self.final_price,
            "book": [[b, amount, seq] for b, (amount, seq) in sorted(self._book.items())],
            "acks": [[b, r, dict(ack)] for b in sorted(self._acks)
                     for r, ack in self._acks[b].items()],  # per bidder, oldest first
            "last_bid": list(self._last_bid) if self._last_bid is not None else None,
        }

    @classmethod
    def from_snapshot(cls, d: dict[str, Any]) -> Auction:
        version = d.get("version", _SNAPSHOT_VERSION)
        if version not in _READABLE_SNAPSHOT_VERSIONS:
            raise ValueError(f"unsupported snapshot version {version!r}")
        auction = cls(AuctionSpec.from_dict(d["spec"]))
        auction.status = d["status"]
        auction.seq = d["seq"]
        auction.price = d["price"]
        auction.leader_id = d["leader_id"]
        auction.bid_count = d["bid_count"]
        auction.ends_at = d["ends_at"]
        auction.winner_id = d["winner_id"]
        auction.final_price = d["final_price"]
        auction._book = {b: (amount, seq) for b, amount, seq in d["book"]}
        rows = d["acks"]
        if version == 1:
            # Sorted by req_id, not age; an ack's seq grows with every later command.
            rows = sorted(rows, key=lambda row: (row[0], row[2]["seq"]))
        for b, r, ack in rows:
            _remember(auction._acks, b, r, dict(ack), ACKS_PER_BIDDER)
        last = d.get("last_bid")
        auction._last_bid = (last[0], last[1]) if last else None
        return auction

    # ---- queries -----------------------------------------------------------------------

    @property
    def is_finished(self) -> bool:
        return self.status in ("closed", "cancelled")

    @property
    def reserve_met(self) -> bool | None:
        """Public: whether the reserve is met (None when there is no reserve, or sealed-live)."""
        reserve = self.spec.reserve_price
        if reserve is None:
            return None
        if self.spec.type == "sealed":
            # Revealing it while live would leak information about the sealed bids.
            return self.winner_id is not None if self.status == "closed" else None
        return self.price is not None and self.bid_count > 0 and self.price >= reserve

    def ranked_bidders(self) -> list[tuple[str, int]]:
        """Every bidder with the most they committed to (English: their maximum; sealed: their
        bid), highest first, the earlier on ties; a Dutch auction's only bidder is its
        winner. Private (maxima): for settlement (second chance, losers), never for clients."""
        if self.spec.type == "dutch":
            if self.winner_id is None or self.final_price is None:
                return []
            return [(self.winner_id, self.final_price)]
        ranked = sorted(self._book.items(), key=lambda kv: (-kv[1][0], kv[1][1]))
        return [(bidder, amount) for bidder, (amount, _) in ranked]

    def next_deadline(self) -> int | None:
        if self.status == "scheduled":
            return self.spec.starts_at
        if self.status == "live":
            return self.ends_at
        return None

    def current_price(self, now: int) -> int | None:
        """Dutch: the falling price at `now`; other types: the current public price."""
        spec = self.spec
        if spec.type != "dutch":
            return self.price
        if self.status == "closed":
            return self.price
        assert spec.step is not None and spec.step_ms is not None and spec.floor_price is not None
        return dutch_price(spec.start_price, spec.floor_price, spec.step, spec.step_ms,
                           spec.starts_at, now)

    def min_bid(self, now: int) -> int | None:
        """Smallest amount the next (new) bidder may bid; None once finished."""
        if self.is_finished:
            return None
        spec = self.spec
        if spec.type == "dutch":
            return self.current_price(now)
        if spec.type == "sealed" or self.bid_count == 0 or self.price is None:
            return spec.start_price
        return self.price + self._increment(self.price)

    def view(self, now: int) -> dict[str, Any]:
        """Public, JSON-able state. Never contains proxy maxima or the reserve value."""
        spec = self.spec
        price, leader_id = self.price, self.leader_id
        if spec.type == "sealed" and self.status != "closed":
            price = leader_id = None
        elif spec.type == "dutch" and self.status == "live":
            price = self.current_price(now)
        buy_now = spec.buy_now_price if spec.type == "english" and self.bid_count == 0 else None
        view: dict[str, Any] = {
            "auction_id": spec.auction_id,
            "asset_id": spec.asset_id,
            "seller_id": spec.seller_id,
            "type": spec.type,
            "status": self.status,
            "price": price,
            "leader_id": leader_id,
            "bid_count": self.bid_count,
            "reserve_met": self.reserve_met,
            "starts_at": spec.starts_at,
            "ends_at": self.ends_at,
            "winner_id": self.winner_id,
            "final_price": self.final_price,
            "seq": self.seq,
            "start_price": spec.start_price,
            "min_bid": self.min_bid(now),
            "buy_now_price": buy_now,
            "soft_close_ms": spec.soft_close_ms,
        }
        if spec.type == "dutch":
            view["floor_price"] = spec.floor_price
            view["step"] = spec.step
            view["step_ms"] = spec.step_ms
            assert spec.floor_price is not None and spec.step is not None
            assert spec.step_ms is not None
            view["next_drop_at"] = dutch_next_drop(
                spec.start_price, spec.floor_price, spec.step, spec.step_ms, spec.starts_at, now
            ) if self.status == "live" else None
        return view

    # ---- commands ----------------------------------------------------------------------

    def advance(self, now: int) -> list[Event]:
        """Apply the time transitions due at `now` (start, then close) and return their events."""
        events: list[Event] = []
        if self.status == "scheduled" and now >= self.spec.starts_at:
            self._emit(events, "started", now)
        if self.status == "live" and now >= self.ends_at:
            self._emit(events, "closed", now, reason=CLOSE_TIME, ends_at=self.ends_at,
                       **self._time_close_result())
        return events

    def cancel(self, by: str, now: int) -> list[Event]:
        """Seller withdraws the auction before any bid. Raises MarketError; never half-applies."""
        if by != self.spec.seller_id:
            raise MarketError(NOT_SELLER, "only the seller can cancel this auction")
        # Judge "is it over" at `now` without mutating, so a refusal leaves no events behind.
        if self.is_finished or now >= self.ends_at:
            raise MarketError(AUCTION_NOT_LIVE, "auction is already over", status=self.status)
        if self.bid_count > 0:
            raise MarketError(HAS_BIDS, "auction cannot be cancelled after the first bid")
        events: list[Event] = []
        self._emit(events, "cancelled", now)
        return events

    def handle_bid(
        self, bidder_id: str, req_id: str, amount: int, max_amount: int | None, now: int
    ) -> BidOutcome:
        if not _is_id(bidder_id) or not _is_id(req_id):
            # No usable idempotency key, so this refusal cannot be remembered.
            return BidOutcome([], None, MarketError(
                INVALID, f"bidder_id and req_id must be strings of 1..{_MAX_ID_LEN} characters"))
        # A retry must not change anything: not even the time transitions.
        acks = self._acks.get(bidder_id)
        ack = acks.get(req_id) if acks is not None else None
        if ack is not None:
            return BidOutcome([], dict(ack), None)
        refusals = self._rejected.get(bidder_id)
        refused = refusals.get(req_id) if refusals is not None else None
        if refused is not None:
            return BidOutcome([], None, refused)

        events = self.advance(now)
        try:
            events.extend(self._decide_bid(bidder_id, req_id, amount, max_amount, now))
        except MarketError as err:
            # Without its traceback: it held this call's frames, and through them the
            # caller's (a host's whole batch), in a cycle only a garbage collection frees.
            # At thousands of refusals a second that made the host's collections of the
            # young generations take up to 0.5 s (docs/performance/history.md).
            refusal = err.with_traceback(None)
            _remember(self._rejected, bidder_id, req_id, refusal, REFUSALS_PER_BIDDER)
            return BidOutcome(events, None, refusal)
        return BidOutcome(events, dict(self._acks[bidder_id][req_id]), None)

    # ---- bid decisions (validate fully, then emit; never emit and then raise) ------------

    def _decide_bid(
        self, bidder_id: str, req_id: str, amount: int, max_amount: int | None, now: int
    ) -> list[Event]:
        if not is_amount(amount):
            raise MarketError(INVALID, "amount must be an integer number of cents in 0..2**53",
                              field="amount")
        if max_amount is not None:
            if not is_amount(max_amount):
                raise MarketError(INVALID, "max_amount must be an integer number of cents "
                                  "in 0..2**53", field="max_amount")
            if max_amount < amount:
                raise MarketError(INVALID, "max_amount must be >= amount", field="max_amount")
        if self.status != "live":
            raise MarketError(AUCTION_NOT_LIVE, f"auction is {self.status}", status=self.status)
        if bidder_id == self.spec.seller_id:
            raise MarketError(SELF_BID, "the seller cannot bid on their own auction")
        effective_max = amount if max_amount is None else max_amount
        if self.spec.type == "english":
            return self._bid_english(bidder_id, req_id, amount, effective_max, now)
        if self.spec.type == "dutch":
            return self._bid_dutch(bidder_id, req_id, amount, effective_max, now)
        return self._bid_sealed(bidder_id, req_id, amount, effective_max, now)

    def _bid_english(
        self, bidder_id: str, req_id: str, amount: int, effective_max: int, now: int
    ) -> list[Event]:
        spec = self.spec
        min_bid = self.min_bid(now)
        assert min_bid is not None
        if amount < min_bid:
            raise _too_low(min_bid)
        events: list[Event] = []
        bid_count = self.bid_count + 1

        if self.bid_count == 0 and spec.buy_now_price is not None and amount >= spec.buy_now_price:
            price = spec.buy_now_price
            self._emit(events, "bid", now, bidder_id=bidder_id, amount=amount, price=price,
                       leader_id=bidder_id, bid_count=bid_count, max_amount=effective_max,
                       req_id=req_id, min_bid=None)
            self._emit(events, "closed", now, reason=CLOSE_BUY_NOW, ends_at=now,
                       winner_id=bidder_id, final_price=price, price=price, leader_id=bidder_id)
            return events

        leader = self.leader_id
        if leader is None:
            # First bid: nobody to compete with, so the price is the start price.
            new_leader, price, leader_max = bidder_id, spec.start_price, effective_max
        elif bidder_id == leader:
            # Raising your own ceiling never makes you bid against yourself.
            current_max = self._book[leader][0]
            needed = current_max + self._increment(current_max)
            if effective_max < needed:
                raise _too_low(needed, "you already lead; raise your maximum by at least one "
                               "increment")
            assert self.price is not None
            reserve = spec.reserve_price
            if reserve is None or not self.price < reserve <= effective_max:
                # Nothing public moves: a private raise that neither counts nor extends.
                self._emit(events, "raised", now, bidder_id=bidder_id, amount=amount,
                           max_amount=effective_max, req_id=req_id, price=self.price,
                           leader_id=leader, bid_count=self.bid_count)
                return events
            # It lifts the price to the reserve (below), which is public: an ordinary bid.
            new_leader, price, leader_max = leader, self.price, effective_max
        else:
            # Every other bidder's maximum is <= price < min_bid <= this bid's maximum, so the
            # only contest is between this bidder and the current leader.
            current_max = self._book[leader][0]
            if effective_max > current_max:
                new_leader, leader_max, second = bidder_id, effective_max, current_max
            else:  # a tie goes to the leader, who reached that maximum first
                new_leader, leader_max, second = leader, current_max, effective_max
            price = min(leader_max, second + self._increment(second))
        reserve = spec.reserve_price
        if reserve is not None and leader_max >= reserve and price < reserve:
            price = reserve  # the leader is willing to pay the reserve, so the reserve is met

        # min_bid: what the next bid must reach, so clients never re-implement the ladder.
        self._emit(events, "bid", now, bidder_id=bidder_id, amount=amount, price=price,
                   leader_id=new_leader, bid_count=bid_count, max_amount=effective_max,
                   req_id=req_id, min_bid=price + self._increment(price))
        if spec.soft_close_ms > 0 and self.ends_at - now < spec.soft_close_ms:
            self._emit(events, "extended", now, ends_at=now + spec.soft_close_ms)
        return events

    def _bid_dutch(
        self, bidder_id: str, req_id: str, amount: int, effective_max: int, now: int
    ) -> list[Event]:
        price = self.current_price(now)
        assert price is not None
        if amount < price:
            raise _too_low(price, "bid is below the current price")
        events: list[Event] = []
        # First acceptable bid wins at the current price (not at the amount offered).
        self._emit(events, "bid", now, bidder_id=bidder_id, amount=amount, price=price,
                   leader_id=bidder_id, bid_count=self.bid_count + 1,
                   max_amount=effective_max, req_id=req_id)
        self._emit(events, "closed", now, reason=CLOSE_BID, ends_at=now, winner_id=bidder_id,
                   final_price=price, price=price, leader_id=bidder_id)
        return events

    def _bid_sealed(
        self, bidder_id: str, req_id: str, amount: int, effective_max: int, now: int
    ) -> list[Event]:
        previous = self._book.get(bidder_id)
        if previous is None:
            if amount < self.spec.start_price:
                raise _too_low(self.spec.start_price)
            kind, bid_count = "bid", self.bid_count + 1
        else:
            needed = previous[0] + increment_for(previous[0])
            if amount < needed:
                raise _too_low(needed, "a replacement bid must be at least one increment above "
                               "your bid")
            kind, bid_count = "raised", self.bid_count  # bid_count: bidders with a bid
        events: list[Event] = []
        # price/leader stay None: nothing about the standings is revealed until close.
        self._emit(events, kind, now, bidder_id=bidder_id, amount=amount, price=None,
                   leader_id=None, bid_count=bid_count, max_amount=effective_max,
                   req_id=req_id)
        return events

    def _time_close_result(self) -> dict[str, Any]:
        """winner_id, final_price, price, leader_id for a close at ends_at."""
        spec = self.spec
        if spec.type == "english":
            reserve = spec.reserve_price
            sold = self.bid_count > 0 and self.price is not None and (
                reserve is None or self.price >= reserve)
            return {
                "winner_id": self.leader_id if sold else None,
                "final_price": self.price if sold else None,
                "price": self.price,
                "leader_id": self.leader_id,
            }
        if spec.type == "dutch":
            return {"winner_id": None, "final_price": None, "price": None, "leader_id": None}
        # Sealed, second price: highest bid wins (earliest on ties) and pays the larger of the
        # second-highest bid and the reserve (or the start price when there is no reserve).
        ranked = sorted(self._book.items(), key=lambda kv: (-kv[1][0], kv[1][1]))
        floor = spec.reserve_price if spec.reserve_price is not None else spec.start_price
        if not ranked or ranked[0][1][0] < floor:
            return {"winner_id": None, "final_price": None, "price": None, "leader_id": None}
        winner = ranked[0][0]
        second = ranked[1][1][0] if len(ranked) > 1 else 0
        price = max(second, floor)
        return {"winner_id": winner, "final_price": price, "price": price, "leader_id": winner}

    def _increment(self, price: int) -> int:
        return self.spec.increment if self.spec.increment is not None else increment_for(price)

    # ---- events --------------------------------------------------------------------------

    def _emit(self, events: list[Event], kind: str, now: int, **fields: Any) -> None:
        event: Event = {"auction_id": self.spec.auction_id, "seq": self.seq + 1, "type": kind,
                        "at": now, **fields}
        self.apply(event)
        events.append(event)

    def apply(self, event: Event) -> None:
        """Evolve the state by one event. Trusts the event's decided values (no re-judging)."""
        seq = event["seq"]
        if seq != self.seq + 1:
            raise ValueError(f"event seq {seq} does not follow {self.seq}")
        if event.get("auction_id", self.spec.auction_id) != self.spec.auction_id:
            raise ValueError(f"event for {event.get('auction_id')!r} applied to "
                             f"{self.spec.auction_id!r}")
        kind = event["type"]
        if kind == "started":
            self.status = "live"
        elif kind in ("bid", "raised"):
            # A raise (of one's own bid) carries the unchanged price, leader and bid_count.
            bidder = event["bidder_id"]
            if self.spec.type == "english":
                self._book[bidder] = (event["max_amount"], seq)
            elif self.spec.type == "sealed":
                self._book[bidder] = (event["amount"], seq)
            self.price = event["price"]
            self.leader_id = event["leader_id"]
            self.bid_count = event["bid_count"]
            req_id = event["req_id"]
            ack = {"seq": seq, "price": self.price, "leader_id": self.leader_id,
                   "ends_at": self.ends_at, "bid_count": self.bid_count}
            _remember(self._acks, bidder, req_id, ack, ACKS_PER_BIDDER)
            self._last_bid = (bidder, req_id)
        elif kind == "extended":
            self.ends_at = event["ends_at"]
            self._touch_last_ack(seq)
        elif kind == "closed":
            self.status = "closed"
            self.winner_id = event["winner_id"]
            self.final_price = event["final_price"]
            self.price = event["price"]
            self.leader_id = event["leader_id"]
            self.ends_at = event["ends_at"]
            if event.get("reason") != CLOSE_TIME:
                self._touch_last_ack(seq)  # the bid that closed it reports the final seq
        elif kind == "cancelled":
            self.status = "cancelled"
        else:
            raise ValueError(f"unknown event type {kind!r}")
        self.seq = seq

    def _touch_last_ack(self, seq: int) -> None:
        """An extended/closed event caused by the bid just applied: its ack reports them."""
        if self._last_bid is None:
            return
        bidder, req_id = self._last_bid
        ack = self._acks[bidder][req_id]  # its bidder's newest, so never evicted
        ack["seq"] = seq
        ack["ends_at"] = self.ends_at
