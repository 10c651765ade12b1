"""The store's side of token provenance: what a record must satisfy to be stored.

`market.provenance` makes and verifies signed records; the store only checks that a record
extends the chain it holds (seq, prev_hash) and agrees with the asset's ownership, under the
same lock or conditional write that applies the change, so that a chain and its asset's
`owner_id` never disagree. Shared by both back ends (storage.sqlite_tokens,
storage.mongo_tokens).
"""

from __future__ import annotations

from dataclasses import dataclass

from market.errors import ASSET_LISTED, ASSET_REDEEMED, PROVENANCE_CONFLICT
from market.provenance import GENESIS
from storage.base import Conflict
from storage.records import AssetRecord, ProvenanceRecord, TradeRecord


@dataclass(frozen=True)
class TokenState:
    """What the store holds of a token when a record is to be appended to its chain."""

    owner_id: str
    listed_in: str | None
    redeemed: bool
    length: int  # records in the chain
    tail_hash: str | None  # the last record's hash (None: empty chain)


def _refuse(message: str) -> Conflict:
    return Conflict(PROVENANCE_CONFLICT, message)


def check_mint(asset: AssetRecord, mint: ProvenanceRecord) -> None:
    """Refuse (PROVENANCE_CONFLICT) a `mint` that cannot start this asset's chain."""
    if mint.get("seq") != 1 or mint.get("kind") != "mint" or mint.get("from") is not None:
        raise _refuse("a chain starts with a mint: seq 1, kind mint, from null")
    if mint.get("prev_hash") != GENESIS:
        raise _refuse("a mint's prev_hash is 64 zeros")
    if mint.get("to") != asset["owner_id"]:
        raise _refuse(f"the mint is to {mint.get('to')!r}, the owner is {asset['owner_id']!r}")


def check_transfer(trade: TradeRecord, transfer: ProvenanceRecord) -> None:
    """Refuse (PROVENANCE_CONFLICT) a sale's `transfer` that does not record this trade."""
    if transfer.get("kind") != "transfer" or not isinstance(transfer.get("seq"), int):
        raise _refuse("a sale's record is a transfer")
    if (transfer.get("from"), transfer.get("to")) != (trade["seller_id"], trade["buyer_id"]):
        raise _refuse(f"the transfer is not from {trade['seller_id']!r} to "
                      f"{trade['buyer_id']!r}")
    if transfer["seq"] < 2:
        raise _refuse("a chain starts with a mint, not a transfer")


def fence_problem(record: ProvenanceRecord, length: int, tail_hash: str | None) -> str | None:
    """Why `record` does not extend a chain of `length` records ending in `tail_hash`."""
    if record.get("seq") != length + 1:
        return f"seq {record.get('seq')!r}, but the chain has {length} records"
    if record.get("prev_hash") != (tail_hash if length else GENESIS):
        return "prev_hash is not the hash of the chain's last record"
    return None


def check_append(record: ProvenanceRecord, state: TokenState) -> None:
    """Refuse, with the Conflict `Store.append_provenance` documents, a record that may not
    be appended to a token in `state` (an already stored one is the caller's to spot)."""
    if state.redeemed:
        raise Conflict(ASSET_REDEEMED, "the token was redeemed (burned)")
    problem = fence_problem(record, state.length, state.tail_hash)
    if problem:
        raise _refuse(problem)
    kind, frm, to, owner = record.get("kind"), record.get("from"), record.get("to"), state.owner_id
    if (kind == "mint") != (record["seq"] == 1):
        raise _refuse("a chain starts with its mint, and has only that one")
    if kind == "mint":
        ok = frm is None and to == owner
    elif kind == "transfer":
        ok = frm == owner and isinstance(to, str) and to != owner
    elif kind == "redeem":
        ok = frm == owner and to is None
    else:
        raise _refuse(f"kind {kind!r} is not mint, transfer or redeem")
    if not ok:
        raise _refuse(f"a {kind} from {frm!r} to {to!r}; the owner is {owner!r}")
    if kind != "mint" and state.listed_in is not None:
        raise Conflict(ASSET_LISTED, f"the asset is listed in {state.listed_in!r}")


def owner_after(record: ProvenanceRecord, owner_id: str) -> str:
    """The asset's owner once `record` is appended (a redeem keeps it: the token burns)."""
    to = record.get("to")
    return to if record.get("kind") == "transfer" and isinstance(to, str) else owner_id
