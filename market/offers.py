"""Trade offers: cards and cash on both sides, counter-offers, expiry, and the swap's plan.

Pure: no I/O, no clock (`now` is passed in, epoch milliseconds). An `Offer` is a state
machine; every change bumps its `seq` and `updated_at`:

    active -> accepted -> settled | failed          (the swap completed, or could not)
    active -> declined | cancelled | expired | countered | invalidated

Only an active offer changes by a user's command; `settle`/`fail` end an accepted one. A
counter is a new active offer from the other side (`parent_id`, same `thread_id`) and its
parent becomes `countered`. Each command carries a `req_id`: the one that ended an offer's
active state is remembered in `acted`, so its retry is recognised (`is_retry`) and answered
with the offer as it is now.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from market import ledger
from market.errors import (
    FORBIDDEN,
    INVALID,
    LIMIT_EXCEEDED,
    OFFER_NOT_ACTIVE,
    OFFER_NOT_FOUND,
    MarketError,
)
from market.money import MAX_AMOUNT, is_amount

ACTIVE = "active"
ACCEPTED = "accepted"
SETTLED = "settled"
FAILED = "failed"
DECLINED = "declined"
CANCELLED = "cancelled"
EXPIRED = "expired"
COUNTERED = "countered"
INVALIDATED = "invalidated"
STATUSES: tuple[str, ...] = (ACTIVE, ACCEPTED, SETTLED, FAILED, DECLINED, CANCELLED, EXPIRED,
                             COUNTERED, INVALIDATED)
FINAL: frozenset[str] = frozenset(STATUSES) - {ACTIVE, ACCEPTED}
# Commands a user sends about an offer, and who may send each.
ACCEPT, DECLINE, CANCEL, COUNTER = "accept", "decline", "cancel", "counter"
ACTIONS: tuple[str, ...] = (ACCEPT, DECLINE, CANCEL, COUNTER)

MAX_ASSETS_PER_SIDE = 10
MAX_ACTIVE_SENT = 50  # active offers one user may have sent
MAX_MESSAGE = 500
HOUR_MS = 3600 * 1000
MIN_EXPIRY_MS = HOUR_MS
MAX_EXPIRY_MS = 30 * 24 * HOUR_MS
DEFAULT_EXPIRY_MS = 7 * 24 * HOUR_MS
MAX_ID_LEN = 160
OFFER_ID_PREFIX = "of_"


def _invalid(field_name: str, message: str) -> MarketError:
    return MarketError(INVALID, f"{field_name}: {message}", field=field_name)


def _is_id(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= MAX_ID_LEN


def offer_id_for(from_id: str, req_id: str) -> str:
    """The id of the offer `from_id` makes with `req_id`: a retried create names the same
    offer."""
    return _offer_id("offer", from_id, req_id)


def counter_id_for(parent_id: str, by: str, req_id: str) -> str:
    """The id of the counter `by` makes to `parent_id` with `req_id` (a retried counter names
    the same one; a create or a counter elsewhere with the same req_id never does)."""
    return _offer_id("counter", parent_id, by, req_id)


def second_chance_id(auction_id: str) -> str:
    """The id of the second-chance offer of an auction whose winner could not pay: made by
    the system, so outside the ids users' requests can name."""
    return _offer_id("second-chance", auction_id)


def _offer_id(*parts: str) -> str:
    digest = hashlib.sha256("\n".join(parts).encode()).hexdigest()
    return OFFER_ID_PREFIX + digest[:24]


def is_offer_id(entity_id: str) -> bool:
    """Offer ids and auction ids share the directory's placement map; this tells them apart."""
    return entity_id.startswith(OFFER_ID_PREFIX)


@dataclass(frozen=True)
class Side:
    """What one party puts in: asset ids (in the order given) and cash in cents."""

    assets: tuple[str, ...] = ()
    cash: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"assets": list(self.assets), "cash": self.cash}

    @classmethod
    def parse(cls, value: object, name: str) -> Side:
        """A side from a client: `{assets?: [id...], cash?: cents}`; omitted means none."""
        if value is None:
            return cls()
        if not isinstance(value, Mapping):
            raise _invalid(name, "must be an object {assets, cash}")
        extra = set(value) - {"assets", "cash"}
        if extra:
            raise _invalid(name, f"unknown field {sorted(extra)[0]!r}")
        assets = value.get("assets", [])
        if not isinstance(assets, list) or len(assets) > MAX_ASSETS_PER_SIDE:
            raise _invalid(f"{name}.assets",
                           f"must be a list of at most {MAX_ASSETS_PER_SIDE} asset ids")
        if not all(_is_id(a) for a in assets):
            raise _invalid(f"{name}.assets", f"an asset id is a string of 1..{MAX_ID_LEN}")
        if len(set(assets)) != len(assets):
            raise _invalid(f"{name}.assets", "an asset appears twice")
        cash = value.get("cash", 0)
        if not is_amount(cash):
            raise _invalid(f"{name}.cash", "must be an integer number of cents in 0..2**53")
        return cls(tuple(assets), cash)


@dataclass(frozen=True)
class Terms:
    """What an offer (or a counter) proposes, checked, from its sender's side."""

    give: Side
    want: Side
    message: str | None
    expires_at: int

    @classmethod
    def parse(cls, body: Mapping[str, Any], now: int) -> Terms:
        """`give`, `want`, `message?` and the expiry: `expires_in` (seconds) or
        `expires_at` (epoch ms), from 1 hour to 30 days ahead; 7 days when neither."""
        give, want = Side.parse(body.get("give"), "give"), Side.parse(body.get("want"), "want")
        message = body.get("message")
        if message is not None and (not isinstance(message, str) or len(message) > MAX_MESSAGE):
            raise _invalid("message", f"must be a string of at most {MAX_MESSAGE} characters")
        return cls(give, want, message or None, _expiry(body, now))

    def check(self, from_id: str, to_id: str) -> None:
        """The rules the sides must meet whoever owns what (ownership is checked apart)."""
        if from_id == to_id:
            raise _invalid("to_id", "an offer to yourself")
        if not self.give.assets and not self.want.assets:
            raise _invalid("give", "an offer needs at least one asset on some side")
        if self.give.cash and self.want.cash:
            raise _invalid("want.cash", "cash goes on one side only")
        if set(self.give.assets) & set(self.want.assets):
            raise _invalid("want.assets", "an asset is on both sides")


def _expiry(body: Mapping[str, Any], now: int) -> int:
    expires_in, expires_at = body.get("expires_in"), body.get("expires_at")
    if expires_in is not None and expires_at is not None:
        raise _invalid("expires_at", "give expires_in or expires_at, not both")
    if expires_at is not None:
        if not is_amount(expires_at):
            raise _invalid("expires_at", "must be integer epoch milliseconds")
        ahead = expires_at - now
    elif expires_in is not None:
        if not is_amount(expires_in) or expires_in > MAX_EXPIRY_MS:  # a cheap bound first
            raise _invalid("expires_in", "must be an integer number of seconds")
        ahead = expires_in * 1000
    else:
        ahead = DEFAULT_EXPIRY_MS
    if not MIN_EXPIRY_MS <= ahead <= MAX_EXPIRY_MS:
        raise _invalid("expires_at", "an offer expires from 1 hour to 30 days ahead")
    return now + ahead


class Offer:
    """One trade offer's state; `to_dict()` is the record the store keeps and clients see."""

    def __init__(self, offer_id: str, from_id: str, to_id: str, terms: Terms, now: int,
                 parent_id: str | None = None, thread_id: str | None = None) -> None:
        terms.check(from_id, to_id)
        self.offer_id = offer_id
        self.thread_id = thread_id or offer_id
        self.from_id = from_id
        self.to_id = to_id
        self.give = terms.give
        self.want = terms.want
        self.message = terms.message
        self.expires_at = terms.expires_at
        self.parent_id = parent_id
        self.child_id: str | None = None
        self.status = ACTIVE
        self.reason: str | None = None
        self.acted: dict[str, Any] | None = None
        self.created_at = now
        self.updated_at = now
        self.seq = 1

    # ---- reading -----------------------------------------------------------------------

    @property
    def assets(self) -> list[str]:
        return [*self.give.assets, *self.want.assets]

    @property
    def is_final(self) -> bool:
        return self.status in FINAL

    def party(self, user_id: str) -> bool:
        return user_id in (self.from_id, self.to_id)

    def is_retry(self, action: str, by: str, req_id: str) -> bool:
        """Whether this command is the one that already ended the offer's active state."""
        acted = self.acted
        return acted is not None and (acted["action"], acted["by"], acted["req_id"]) == (
            action, by, req_id)

    def moves(self) -> list[tuple[str, str, str]]:
        """The swap's asset moves: (asset_id, from, to), `give` first."""
        return ([(a, self.from_id, self.to_id) for a in self.give.assets]
                + [(a, self.to_id, self.from_id) for a in self.want.assets])

    def cash_leg(self) -> tuple[str, str, int] | None:
        """(payer, receiver, cents) of the swap's cash, or None when there is none."""
        if self.give.cash:
            return self.from_id, self.to_id, self.give.cash
        if self.want.cash:
            return self.to_id, self.from_id, self.want.cash
        return None

    def sale_price(self) -> int | None:
        """The price of the card, when this swap is a sale: one card for cash alone (no card
        comes back, no cash goes with the card). Anything else has no price of its own."""
        sides = [(self.give, self.want), (self.want, self.give)]
        for card_side, cash_side in sides:
            if len(card_side.assets) == 1 and not card_side.cash and not cash_side.assets \
                    and cash_side.cash > 0:
                return int(cash_side.cash)
        return None

    def cash_entry(self, fee_bps: int, at: int) -> ledger.Entry | None:
        """The swap's ledger entry (keyed by the offer id): the payer pays the cash, the
        receiver gets it less `fee_bps` (the fee of the cash leg only)."""
        leg = self.cash_leg()
        if leg is None:
            return None
        payer, receiver, cash = leg
        # The store refuses the entry if the payer cannot pay (the swap then fails).
        return ledger.settlement(self.offer_id, payer, receiver, cash, fee_bps, 0, at,
                                 MAX_AMOUNT, cause=ledger.OFFER)

    # ---- changes -----------------------------------------------------------------------

    def _change(self, status: str, now: int, reason: str | None = None) -> None:
        self.status = status
        self.reason = reason
        self.seq += 1
        self.updated_at = max(now, self.updated_at)

    def expire(self, now: int) -> bool:
        """Expire an active offer whose time is up; True if it did."""
        if self.status == ACTIVE and now >= self.expires_at:
            self._change(EXPIRED, self.expires_at)
            return True
        return False

    def allowed(self, action: str, by: str) -> None:
        """Refuse a command its sender may not give (FORBIDDEN) or that comes too late."""
        if action not in ACTIONS:
            raise _invalid("op", f"unknown action {action!r}")
        sender_only = action == CANCEL
        if by != (self.from_id if sender_only else self.to_id):
            who = "sender" if sender_only else "recipient"
            raise MarketError(FORBIDDEN, f"only the offer's {who} may {action} it")
        if self.status != ACTIVE:
            raise MarketError(OFFER_NOT_ACTIVE, f"the offer is {self.status}",
                              status=self.status)

    def replay(self, action: str, by: str, req_id: str, child_active: bool = False) -> str:
        """How a command about an offer that is no longer active is answered: "offer" (a
        retry of the command that ended it: the offer as it is now) or "child" (a retried
        counter: the counter it made); otherwise refused - OFFER_NOT_FOUND to a stranger,
        LIMIT_EXCEEDED for a second counter while the first is active (`child_active`),
        FORBIDDEN or OFFER_NOT_ACTIVE."""
        if not self.party(by):
            raise MarketError(OFFER_NOT_FOUND, "no such offer")
        if action == COUNTER and self.child_id == counter_id_for(self.offer_id, by, req_id):
            return "child"
        if self.is_retry(action, by, req_id):
            return "offer"
        if action == COUNTER and self.status == COUNTERED and by == self.to_id and child_active:
            raise MarketError(LIMIT_EXCEEDED, "this thread has an active counter already")
        self.allowed(action, by)
        return "offer"  # not reached: allowed() refuses whatever is not active

    def act(self, action: str, by: str, req_id: str, now: int) -> None:
        """Accept, decline or cancel (a counter is `counter`). Checks `allowed` first."""
        self.allowed(action, by)
        if action == COUNTER:
            raise _invalid("op", "a counter needs terms: use counter()")
        status = {ACCEPT: ACCEPTED, DECLINE: DECLINED, CANCEL: CANCELLED}[action]
        self._change(status, now)
        self.acted = {"action": action, "by": by, "req_id": req_id}

    def counter(self, by: str, req_id: str, terms: Terms, now: int) -> Offer:
        """Answer with new terms from the recipient's side: the parent becomes countered,
        the returned counter is active, with a fresh expiry."""
        child = self.counter_offer(by, req_id, terms, now)
        self.countered_by(child, req_id)
        return child

    def counter_offer(self, by: str, req_id: str, terms: Terms, now: int) -> Offer:
        """The counter `counter` would make, this offer unchanged (checks come first)."""
        self.allowed(COUNTER, by)
        return Offer(counter_id_for(self.offer_id, by, req_id), by, self.from_id, terms, now,
                     parent_id=self.offer_id, thread_id=self.thread_id)

    def countered_by(self, child: Offer, req_id: str | None = None) -> None:
        """Record the counter that answered this offer (also to repair a parent whose
        counter was saved before it: then its req_id is not known, and not needed - a
        counter's retry is recognised by the counter's id)."""
        self._change(COUNTERED, child.created_at)
        self.acted = {"action": COUNTER, "by": child.from_id, "req_id": req_id}
        self.child_id = child.offer_id

    def invalidate(self, reason: str, now: int) -> bool:
        """An asset of this active offer moved: it can no longer be accepted as it is."""
        if self.status != ACTIVE:
            return False
        self._change(INVALIDATED, now, reason)
        return True

    def settle(self, now: int) -> None:
        if self.status != ACCEPTED:
            raise MarketError(OFFER_NOT_ACTIVE, f"the offer is {self.status}")
        self._change(SETTLED, now)

    def fail(self, reason: str, now: int) -> None:
        if self.status != ACCEPTED:
            raise MarketError(OFFER_NOT_ACTIVE, f"the offer is {self.status}")
        self._change(FAILED, now, reason)

    # ---- records -----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "offer_id": self.offer_id, "thread_id": self.thread_id,
            "from_id": self.from_id, "to_id": self.to_id,
            "give": self.give.to_dict(), "want": self.want.to_dict(), "assets": self.assets,
            "message": self.message, "expires_at": self.expires_at,
            "parent_id": self.parent_id, "child_id": self.child_id,
            "status": self.status, "reason": self.reason, "acted": self.acted,
            "created_at": self.created_at, "updated_at": self.updated_at, "seq": self.seq,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Offer:
        """Rebuild a stored offer (its terms are not re-checked against the clock)."""
        give = Side(tuple(d["give"]["assets"]), int(d["give"]["cash"]))
        want = Side(tuple(d["want"]["assets"]), int(d["want"]["cash"]))
        offer = cls.__new__(cls)
        offer.offer_id = d["offer_id"]
        offer.thread_id = d["thread_id"]
        offer.from_id, offer.to_id = d["from_id"], d["to_id"]
        offer.give, offer.want = give, want
        offer.message = d.get("message")
        offer.expires_at = int(d["expires_at"])
        offer.parent_id, offer.child_id = d.get("parent_id"), d.get("child_id")
        offer.status, offer.reason = d["status"], d.get("reason")
        offer.acted = dict(d["acted"]) if d.get("acted") else None
        offer.created_at, offer.updated_at = int(d["created_at"]), int(d["updated_at"])
        offer.seq = int(d["seq"])
        return offer


def public(record: Mapping[str, Any]) -> dict[str, Any]:
    """An offer as its two parties see it (without the host's bookkeeping)."""
    return {k: v for k, v in record.items() if k not in ("host", "told_seq", "acted", "assets")}
