"""Who holds what, at what cost, and what came in and went out: the fold of the ownership feed.

The portfolio projection folds the store's ownership rows (one per change of an asset's owner,
in feed order) with `Holdings.apply`. A row: asset_id, card_id, grader, grade, from_user (None
for a mint), to_user (None when the asset leaves the exchange), at (epoch ms), how, and for a
sale price / premium / fee (cents; price None when cash was not the whole consideration).

What each `how` means for the two sides:
- "mint": the first owner's lot, cost basis 0 (stated: nothing was paid on the exchange).
- "auction", or "offer" / "transfer" with a price: a purchase. The buyer's basis is price +
  premium; the seller realises price - fee - basis.
- "offer" without a price (cards were part of the consideration): a swap. The receiver's basis
  is the cash-equivalent value of the asset at acquisition, `value_at(position, at)`; the
  giver realises that value - basis.
- anything else ("backfill" for owners found before the feed existed, a transfer without a
  price): basis unknown (None), so no P/L for that lot — never a made-up 0. "redeem" (to
  nobody: the token burned) takes the asset out at its value.

Flows (`market.performance`: not performance): a purchase brings in the cash paid, a sale takes
out the proceeds net of the fee; everything else moves in kind, at its value at the time (0
when there is none). A lot whose basis is unknown realises nothing when it goes; it is counted
in `Account.unknown_realised`.

A row names both sides: the asset leaves `from_user`'s lots and joins `to_user`'s. Each
account remembers the feed position it has folded up to, so a batch folded again after a crash
(results saved ahead of the checkpoint) changes nothing, and an account persisted and reloaded
(`to_doc` / `from_doc`) folds on as if it had never stopped.

Invariants (hypothesis properties): every asset has at most one owner, and it is in exactly
that owner's lots; a fold resumed from persisted accounts, redoing rows, equals one fold.
Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from market.catalog import segment_key
from market.performance import MINT, PURCHASE, SWAP

ValueAt = Callable[[str, int], int | None]  # (position, at) -> value in cents, or None
UNKNOWN_BASIS = "unknown"


class Lot(NamedTuple):
    """One asset held: its position (card × grader × grade), how and when it came, and what it
    cost (None: unknown)."""

    asset_id: str
    position: str
    card_id: str
    grader: str
    grade: Any
    acquired_at: int
    how: str  # PURCHASE | SWAP | MINT | UNKNOWN_BASIS
    basis: int | None


class Flow(NamedTuple):
    at: int
    amount: int  # > 0 in, < 0 out, cents


@dataclass
class Account:
    """One user's side of the fold. `pos`: the feed position of the last row folded into it
    (a row at or before it is not folded again: a projection whose results got ahead of its
    checkpoint can redo a batch)."""

    lots: dict[str, Lot] = field(default_factory=dict)
    realised: int = 0
    unknown_realised: int = 0  # lots gone whose basis was unknown
    flows: list[Flow] = field(default_factory=list)
    pos: int = 0

    def give(self, row: Mapping[str, Any], value: int | None) -> None:
        """The row's asset leaves this account."""
        lot = self.lots.pop(str(row["asset_id"]), None)
        got = disposal(row, value)
        self.flows.append(Flow(int(row["at"]), -got))
        if lot is not None and lot.basis is not None:
            self.realised += got - lot.basis
        else:
            self.unknown_realised += 1

    def take(self, row: Mapping[str, Any], value: int | None) -> None:
        """The row's asset arrives in this account."""
        how, basis, inflow = acquisition(row, value)
        at = int(row["at"])
        self.lots[str(row["asset_id"])] = Lot(
            str(row["asset_id"]), position_of(row), str(row.get("card_id") or ""),
            str(row.get("grader") or "RAW"), row.get("grade"), at, how, basis)
        self.flows.append(Flow(at, inflow))

    def to_doc(self) -> dict[str, Any]:
        """The persisted state (flows are drained by the projection, not kept)."""
        return {"lots": [lot._asdict() for lot in self.lots.values()], "realised": self.realised,
                "unknown_realised": self.unknown_realised, "pos": self.pos}

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Account:
        lots = [Lot(**lot) for lot in doc.get("lots", [])]
        return cls({lot.asset_id: lot for lot in lots}, int(doc.get("realised", 0)),
                   int(doc.get("unknown_realised", 0)), [], int(doc.get("pos", 0)))


def position_of(row: Mapping[str, Any]) -> str:
    """The segment key of the row's asset; an asset outside the catalog is a position of its
    own ("asset:<id>"), which has no value."""
    if not row.get("card_id"):
        return f"asset:{row['asset_id']}"
    return segment_key(str(row["card_id"]), str(row.get("grader") or "RAW"), row.get("grade"))


def _cash(row: Mapping[str, Any]) -> int | None:
    """The cash paid for the asset, when cash was the whole consideration."""
    if row.get("how") == "auction" or (
            row.get("how") in ("offer", "transfer") and row.get("price") is not None):
        return int(row.get("price") or 0)
    return None


def acquisition(row: Mapping[str, Any], value: int | None) -> tuple[str, int | None, int]:
    """(how, basis, inflow) for the receiving side of `row`; `value` is the asset's value at
    the time (None: none)."""
    price = _cash(row)
    if price is not None:
        paid = price + int(row.get("premium") or 0)
        return PURCHASE, paid, paid
    in_kind = value if value is not None else 0
    if row.get("how") == "mint":
        return MINT, 0, in_kind
    if row.get("how") == "offer":
        return SWAP, value, in_kind
    return UNKNOWN_BASIS, None, in_kind


def disposal(row: Mapping[str, Any], value: int | None) -> int:
    """What the giving side of `row` got for the asset, cents: the proceeds net of the fee for
    a sale for cash, else its value at the time (0 when none)."""
    price = _cash(row)
    if price is not None:
        return price - int(row.get("fee") or 0)
    return value if value is not None else 0


def fold(row: Mapping[str, Any], account: Callable[[str], Account | None],
         value_at: ValueAt) -> tuple[str, ...]:
    """Fold one ownership row into the accounts of its two sides that `account` gives (None:
    a user this fold does not keep, e.g. another shard's); returns the users changed. A row
    with a `pos` at or before an account's is skipped for that account."""
    pos = int(row.get("pos") or 0)
    value = value_at(position_of(row), int(row["at"])) if _cash(row) is None else None
    touched = []
    for user, step in ((row.get("from_user"), Account.give), (row.get("to_user"), Account.take)):
        acct = account(str(user)) if user is not None else None
        if acct is None or (pos and acct.pos >= pos):
            continue
        step(acct, row, value)
        if str(user) not in touched:
            touched.append(str(user))
    for user in touched:
        acct = account(user)
        if acct is not None and pos:
            acct.pos = pos
    return tuple(touched)


class Holdings:
    """Every user's lots, realised P/L and flows, folded from the whole ownership feed."""

    def __init__(self) -> None:
        self.owner: dict[str, str] = {}
        self.accounts: dict[str, Account] = {}

    def account(self, user: str) -> Account:
        return self.accounts.setdefault(user, Account())

    def apply(self, row: Mapping[str, Any], value_at: ValueAt) -> tuple[str, ...]:
        """Fold one ownership row; returns the users whose holdings changed."""
        touched = fold(row, self.account, value_at)
        to = row.get("to_user")
        if to is None:
            self.owner.pop(str(row["asset_id"]), None)
        else:
            self.owner[str(row["asset_id"])] = str(to)
        return touched
