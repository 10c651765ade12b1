"""The ownership feed: one row per change of an asset's owner, with a global position.

The portfolio projection (`market.holdings.Holdings.apply` folds the rows) tails it like the
sales and closings feeds (`storage.facts`), read with `actors.tail.GapCursor`. Every write
that changes an owner appends its row itself, never a second step that could be lost:

Rows by `how` (from → to; price, premium, fee; ref):
- `mint` (`create_asset`): None → the first owner; None (the basis is 0, stated); None.
- `auction` (`settle`, when the asset moved): seller → buyer; the hammer price, the buyer's
  premium, the seller's fee; the auction id.
- `offer` (`move_locked_asset`, one row per card): giver → receiver; the cash when one card
  went for cash alone (`Offer.sale_price`; premium 0, the cash leg's fee), else None - the
  projection values the swap, and `legs` holds the offer's two sides; the offer id.
- `transfer` (`append_provenance` of a transfer record): the owner → `to`; the record's
  price; the record's ref.
- `redeem` (`append_provenance` of a redeem: the token burns): the owner → None.
- `backfill` (opening a store whose assets predate the feed): None → the owner then; None
  (the basis is unknown).

Each row has a `key` unique in the feed (`mint:<asset>`, `auction:<auction>`,
`offer:<offer>:<asset>`, `token:<token>:<seq>`, `backfill:<asset>`): an idempotent retry of
the write that made it finds the change done and appends nothing, and the key guards the
append itself. Exactly one row per owner change: replaying the feed gives every asset its
store owner (None once redeemed) - the contract suite checks it on both stores.

Where the change happens: SQLite appends the row inside the write transaction of the change
(`pos` from AUTOINCREMENT: gap-free, in commit order). MongoDB has no multi-document
transactions: the change's own single-document update pushes the row onto the asset's
`ownership_pending` list, and the same call then places it in the feed (`pos` from a
counter, as the other feeds; its key makes placing it idempotent) and pulls it off; a row a
crash left pending is placed by the next write to that asset or by `open` (see
`storage.mongo_ownership`).

Backfill: a store opened for the first time with this feed (SQLite: the table is new;
MongoDB: no marker yet) appends one `backfill` row per asset not redeemed, to its owner then,
`at` its chain's last record's time (when that owner got it) or else its `created_at`.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any, NotRequired, TypedDict, cast

from market.catalog import normal_grade
from market.offers import Offer

MINT, AUCTION, OFFER, TRANSFER, REDEEM, BACKFILL = (
    "mint", "auction", "offer", "transfer", "redeem", "backfill")
HOWS: tuple[str, ...] = (MINT, AUCTION, OFFER, TRANSFER, REDEEM, BACKFILL)

# A change's own fields (what the write knows); the store adds the asset's.
CHANGE_FIELDS: tuple[str, ...] = ("key", "from_user", "to_user", "at", "how", "price",
                                  "premium", "fee", "ref", "legs")
ASSET_FIELDS: tuple[str, ...] = ("asset_id", "token_id", "card_id", "grader", "grade")
ROW_FIELDS: tuple[str, ...] = (*CHANGE_FIELDS[:1], *ASSET_FIELDS, *CHANGE_FIELDS[1:])


class OwnershipRecord(TypedDict):
    """One change of an asset's owner (see the module's docstring)."""

    key: str
    asset_id: str
    token_id: str | None
    card_id: str | None  # None for an asset outside the catalog
    grader: str | None
    grade: float | None
    from_user: str | None  # None for a mint or a backfill
    to_user: str | None  # None for a redeem (the token burned)
    at: int  # ms since the epoch
    how: str  # one of HOWS
    price: int | None  # cents
    premium: int | None  # paid by the buyer on top of the price
    fee: int | None  # kept from the seller's price
    ref: str | None  # the auction or offer id
    legs: dict[str, Any] | None  # an offer's {from_id, to_id, give, want}
    pos: NotRequired[int]  # the feed position (store-set)


type Change = dict[str, Any]


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def change(key: str, frm: str | None, to: str | None, at: Any, how: str, *,
           price: Any = None, premium: Any = None, fee: Any = None, ref: str | None = None,
           legs: dict[str, Any] | None = None) -> Change:
    return {"key": key, "from_user": frm, "to_user": to, "at": int(at), "how": how,
            "price": _int(price), "premium": _int(premium), "fee": _int(fee), "ref": ref,
            "legs": legs}


def mint_change(asset: Mapping[str, Any], mint: Mapping[str, Any] | None, now: int) -> Change:
    """`create_asset`'s row: to the first owner, at the mint record's time (else the asset's
    `created_at`, else now)."""
    at = (mint or {}).get("at") or asset.get("created_at") or now
    return change(f"mint:{asset['asset_id']}", None, asset["owner_id"], at, MINT)


def auction_change(trade: Mapping[str, Any]) -> Change:
    """`settle`'s row: seller to buyer at the hammer price, premium and seller's fee."""
    return change(f"auction:{trade['auction_id']}", trade["seller_id"], trade["buyer_id"],
                  trade["at"], AUCTION, price=trade.get("price"),
                  premium=trade.get("premium", 0), fee=trade.get("seller_fee", 0),
                  ref=trade["auction_id"])


def offer_legs(offer: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if offer is None:
        return None
    return {k: offer.get(k) for k in ("from_id", "to_id", "give", "want")}


def offer_change(offer_id: str, asset_id: str, frm: str, to: str, *, price: int | None,
                 at: Any, fee: int | None, offer: Mapping[str, Any] | None) -> Change:
    """A swap's row for one card: priced (premium 0, the cash leg's fee) only when the card
    went for cash alone."""
    return change(f"offer:{offer_id}:{asset_id}", frm, to, at, OFFER, price=price,
                  premium=None if price is None else 0, fee=None if price is None else fee,
                  ref=offer_id, legs=offer_legs(offer))


def offer_price(offer: Mapping[str, Any] | None, record: Mapping[str, Any] | None) -> int | None:
    """The card's price in a swap: `Offer.sale_price` of the stored offer, else the transfer
    record's price (an offer the store does not hold)."""
    if offer is not None:
        try:
            return Offer.from_dict(offer).sale_price()
        except (KeyError, TypeError, ValueError):
            pass  # not a whole offer record: the transfer record's price
    return _int((record or {}).get("price"))


def offer_ref(record: Mapping[str, Any] | None, lock: str, prefix: str) -> str:
    """The offer id of a swap's move: its lock less `prefix` (`storage.base.offer_lock`);
    a lock that is not an offer's: the record's ref, else the lock."""
    if lock.startswith(prefix):
        return lock.removeprefix(prefix)
    ref = None if record is None else record.get("ref")
    return str(ref or lock)


def offer_at(offer: Mapping[str, Any] | None, record: Mapping[str, Any] | None, now: int) -> int:
    """When a swap moved a card: its record's time, else the offer's last change, else now."""
    at = (None if record is None else record.get("at")) or (
        None if offer is None else offer.get("updated_at"))
    return int(at or now)


def token_change(token_id: str, record: Mapping[str, Any], owner: str) -> Change | None:
    """`append_provenance`'s row: a transfer or a redeem (a mint changes no owner)."""
    kind = record.get("kind")
    if kind not in (TRANSFER, REDEEM):
        return None
    to = record.get("to") if kind == TRANSFER else None
    return change(f"token:{token_id}:{record['seq']}", owner, to, record["at"], kind,
                  price=record.get("price"), ref=record.get("ref"))


BACKFILL_KEY = f"{BACKFILL}:"  # + the asset id


def backfill_change(asset_id: str, owner: str, at: Any) -> Change:
    return change(BACKFILL_KEY + asset_id, None, owner, at, BACKFILL)


def row(chg: Mapping[str, Any], asset: Mapping[str, Any]) -> OwnershipRecord:
    """A feed row: the change's fields and the asset's (asset_id or _id, token, card)."""
    out: dict[str, Any] = {f: chg.get(f) for f in CHANGE_FIELDS}
    out["asset_id"] = asset.get("asset_id", asset.get("_id"))
    for f in ASSET_FIELDS[1:]:
        out[f] = asset.get(f)
    out["grade"] = normal_grade(out["grade"])
    return cast(OwnershipRecord, out)


class OwnershipStore(abc.ABC):
    """The ownership feed; a base of `storage.base.Store`."""

    @abc.abstractmethod
    async def ownership_feed(self, after_pos: int, limit: int = 10_000) -> list[OwnershipRecord]:
        """Ownership rows with pos > after_pos, in pos order, at most `limit` (<= 0: none)."""

    @abc.abstractmethod
    async def ownership_position(self) -> int:
        """The highest pos in the ownership feed (0 when empty)."""
