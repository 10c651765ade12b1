"""Who holds what, at what cost, and what came in and went out: the fold of the ownership feed.

The portfolio projection folds the store's ownership rows (one per change of an asset's owner,
in feed order) with `Holdings.apply`. A row: asset_id, card_id, grader, grade, from_user (None
for a mint), to_user (None when the asset leaves the exchange), at (epoch ms), how, and for a
sale price / premium / fee (cents; price None when cash was not the whole consideration).

What each `how` means for the two sides:
- "mint": the first owner's lot, cost basis 0 (stated: nothing was paid on the exchange).
- "auction", or "offer" with a price: a purchase. The buyer's basis is price + premium; the
  seller realises price - fee - basis.
- "offer" without a price (cards were part of the consideration): a swap. The receiver's basis
  is the cash-equivalent value of the asset at acquisition, `value_at(position, at)`; the
  giver realises that value - basis.
- anything else ("backfill" for owners found before the feed existed, a transfer): basis
  unknown (None), so no P/L for that lot — never a made-up 0.

Flows (`market.performance`: not performance): a purchase brings in the cash paid, a sale takes
out the proceeds net of the fee; everything else moves in kind, at its value at the time (0
when there is none). A lot whose basis is unknown realises nothing when it goes; it is counted
in `Account.unknown_realised`.

Invariant (tested as a property): every asset has at most one owner, and it is in exactly that
owner's lots. Pure: no I/O, no clock.
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
    """One user's side of the fold."""

    lots: dict[str, Lot] = field(default_factory=dict)
    realised: int = 0
    unknown_realised: int = 0  # lots gone whose basis was unknown
    flows: list[Flow] = field(default_factory=list)


def position_of(row: Mapping[str, Any]) -> str:
    return segment_key(str(row["card_id"]), str(row.get("grader") or "RAW"), row.get("grade"))


def _cash(row: Mapping[str, Any]) -> int | None:
    if row.get("how") == "auction" or (row.get("how") == "offer" and row.get("price") is not None):
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


class Holdings:
    """Every user's lots, realised P/L and flows, folded from the ownership feed."""

    def __init__(self) -> None:
        self.owner: dict[str, str] = {}
        self.accounts: dict[str, Account] = {}

    def account(self, user: str) -> Account:
        return self.accounts.setdefault(user, Account())

    def apply(self, row: Mapping[str, Any], value_at: ValueAt) -> tuple[str, ...]:
        """Fold one ownership row; returns the users whose holdings changed. The feed is the
        truth: the asset leaves whoever holds it now (normally `from_user`)."""
        asset_id, at = str(row["asset_id"]), int(row["at"])
        position = position_of(row)
        value = value_at(position, at) if _cash(row) is None else None
        touched: list[str] = []
        holder = self.owner.pop(asset_id, None)
        if holder is not None:
            acct = self.account(holder)
            lot = acct.lots.pop(asset_id, None)
            got = disposal(row, value)
            acct.flows.append(Flow(at, -got))
            if lot is not None and lot.basis is not None:
                acct.realised += got - lot.basis
            else:
                acct.unknown_realised += 1
            touched.append(holder)
        to = row.get("to_user")
        if to is not None:
            how, basis, inflow = acquisition(row, value)
            acct = self.account(str(to))
            acct.lots[asset_id] = Lot(asset_id, position, str(row["card_id"]),
                                      str(row.get("grader") or "RAW"), row.get("grade"), at,
                                      how, basis)
            acct.flows.append(Flow(at, inflow))
            self.owner[asset_id] = str(to)
            if str(to) not in touched:
                touched.append(str(to))
        return tuple(touched)

    def positions_of(self, user: str) -> set[str]:
        acct = self.accounts.get(user)
        return {lot.position for lot in acct.lots.values()} if acct else set()
