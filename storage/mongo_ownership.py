"""The MongoDB store's ownership feed (storage.ownership; a mixin of MongoStore).

Collection `ownership` {_id: key, pos, asset_id, token_id, card_id, grader, grade, from_user,
to_user, at, how, price, premium, fee, ref, legs}: unique `pos`; by `asset_id`.

Without multi-document transactions a row cannot be inserted with the change it records, so
it rides in the change itself: the single-document write that changes the owner (the asset's
insert in `create_asset`; the conditional update of `settle`, `move_locked_asset` and
`append_provenance`) also pushes the row's change onto the asset's `ownership_pending` list.
Then the same call places every pending change of that asset in the feed, in list order
(`_flush_ownership`: the key probed, a position reserved from the `ownership_pos` counter,
the row upserted with `$setOnInsert` on its key, so two placers place it once), and pulls
them off the list. A crash in between leaves the change pending: the next write to that
asset places it first (rows of one asset stay in the order of their changes), and `open`
places whatever is pending (`ownership_pending.key` has a partial index: only those assets
are in it). A position reserved by a placer that lost the race, or died, is a gap readers
pass (`actors.tail.GapCursor`), as on the other feeds.

Backfill: the first `open` of a database without the `ownership_backfilled` marker (in
`counters`) gives every asset that has no `ownership_pending` field - no write of this
version has touched it - a pending `backfill` change (none for a redeemed asset), under the
condition that the field is still missing, then sets the marker. Writers of an older version
must be stopped first: their owner changes have no row.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, cast

from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from market.ledger import FEES, entry_id_for
from market.ledger import OFFER as OFFER_CAUSE
from storage.base import OFFER_LOCK_PREFIX
from storage.clock import now_ms
from storage.mongo_counters import reserve
from storage.ownership import (
    ASSET_FIELDS,
    Change,
    OwnershipRecord,
    backfill_change,
    offer_at,
    offer_change,
    offer_price,
    offer_ref,
    row,
)
from storage.records import ProvenanceRecord

type Doc = dict[str, Any]

PENDING = "ownership_pending"
OWNERSHIP_POS, BACKFILLED = "ownership_pos", "ownership_backfilled"
_PENDING_KEY = f"{PENDING}.key"
OWNERSHIP_INDEXES = [
    IndexModel([("pos", ASCENDING)], unique=True),
    IndexModel([("asset_id", ASCENDING), ("pos", ASCENDING)]),
]
PENDING_INDEX = IndexModel([(_PENDING_KEY, ASCENDING)], name="ownership_pending",
                           partialFilterExpression={_PENDING_KEY: {"$exists": True}})
_ASSET_PROJECTION = {PENDING: 1, **{f: 1 for f in ASSET_FIELDS[1:]}}


def _record(doc: Doc) -> OwnershipRecord:
    out = cast(dict[str, Any], row({**doc, "key": doc["_id"]}, doc))
    out["pos"] = int(doc["pos"])
    return cast(OwnershipRecord, out)


class _Host(Protocol):
    def _coll(self, name: str) -> AsyncCollection[Doc]: ...

    @property
    def assets(self) -> AsyncCollection[Doc]: ...

    async def _flush_ownership(self, asset_id: str) -> int: ...

    async def _place_ownership(self, r: OwnershipRecord) -> bool: ...

    async def _backfill_ownership(self) -> None: ...


class MongoOwnership:
    """Mixin of MongoStore: the ownership feed."""

    async def _open_ownership(self: _Host) -> None:
        """Indexes, the backfill once, and the rows crashed writers left pending."""
        await self._coll("ownership").create_indexes(OWNERSHIP_INDEXES)
        await self.assets.create_indexes([PENDING_INDEX])
        await self._backfill_ownership()
        async for doc in self.assets.find({_PENDING_KEY: {"$exists": True}}, {"_id": 1}):
            await self._flush_ownership(str(doc["_id"]))

    async def _backfill_ownership(self: _Host) -> None:
        counters = self._coll("counters")
        if await counters.find_one({"_id": BACKFILLED}) is not None:
            return
        now = now_ms()
        untouched = {PENDING: {"$exists": False}}
        cursor = self.assets.find(untouched, {"owner_id": 1, "redeemed": 1, "created_at": 1,
                                              "provenance": {"$slice": -1}})
        async for doc in cursor:
            chain = doc.get("provenance") or []
            at = (chain[-1].get("at") if chain else None) or doc.get("created_at") or now
            pending = [] if doc.get("redeemed") else [
                backfill_change(str(doc["_id"]), doc["owner_id"], at)]
            await self.assets.update_one({"_id": doc["_id"], **untouched},
                                         {"$set": {PENDING: pending}})
        await counters.update_one({"_id": BACKFILLED}, {"$set": {"n": 1}}, upsert=True)

    async def _flush_ownership(self: _Host, asset_id: str) -> int:
        """Place the asset's pending changes in the feed, in order, and pull them off its
        list; how many this call placed."""
        doc = await self.assets.find_one({"_id": asset_id}, _ASSET_PROJECTION)
        pending: list[Doc] = (doc or {}).get(PENDING) or []
        if doc is None or not pending:
            return 0
        placed = 0
        for chg in pending:
            placed += await self._place_ownership(row(chg, {**doc, "asset_id": asset_id}))
        await self.assets.update_one(
            {"_id": asset_id}, {"$pull": {PENDING: {"key": {"$in": [c["key"] for c in pending]}}}})
        return placed

    async def _place_ownership(self: _Host, r: OwnershipRecord) -> bool:
        """Append row `r` unless its key is in the feed; True if this call placed it."""
        feed = self._coll("ownership")
        if await feed.find_one({"_id": r["key"]}, {"_id": 1}) is not None:
            return False
        pos = await reserve(self._coll("counters"), OWNERSHIP_POS, 1)
        fields = {f: v for f, v in r.items() if f != "key"}
        try:
            # Placed concurrently since the probe: matched, and `pos` stays unused (a gap).
            done = await feed.update_one({"_id": r["key"]}, {"$setOnInsert": {**fields,
                                                                              "pos": pos}},
                                         upsert=True)
        except DuplicateKeyError:  # a racing upsert of the same key won
            return False
        return done.upserted_id is not None

    async def _offer_move_change(self: _Host, lock: str, asset_id: str, frm: str, to: str,
                                 record: ProvenanceRecord | None) -> Change:
        """`move_locked_asset`'s change: the offer's sides, its price when one card went for
        cash alone, and the fee of its entry (posted before any card moves)."""
        offer_id = offer_ref(record, lock, OFFER_LOCK_PREFIX)
        offer: Mapping[str, Any] | None = await self._coll("offers").find_one({"_id": offer_id})
        price = offer_price(offer, record)
        fee = None
        if price is not None:
            entry = await self._coll("entries").find_one(
                {"_id": entry_id_for(OFFER_CAUSE, offer_id)}, {"postings": 1})
            if entry is not None:
                fee = sum(int(amount) for account, amount in entry.get("postings") or []
                          if account == FEES)
        at = offer_at(offer, record, now_ms())
        return offer_change(offer_id, asset_id, frm, to, price=price, at=at, fee=fee,
                            offer=offer)

    async def ownership_feed(self: _Host, after_pos: int,
                             limit: int = 10_000) -> list[OwnershipRecord]:
        if limit <= 0:
            return []
        cursor = self._coll("ownership").find({"pos": {"$gt": int(after_pos)}})
        return [_record(d) async for d in cursor.sort("pos", ASCENDING).limit(int(limit))]

    async def ownership_position(self: _Host) -> int:
        doc = await self._coll("ownership").find_one({}, {"pos": 1}, sort=[("pos", DESCENDING)])
        return 0 if doc is None else int(doc["pos"])
