"""The MongoDB store's trade offers and the asset locks of their swaps (a mixin of MongoStore).

Collection `offers`: {_id: offer_id, ...the whole OfferRecord (its `host` None when not
given), told_seq}. `told_seq` is the store's own: 0 on insert, raised only by
`mark_offer_told` (`$max`), kept by every later version. Without transactions `save_offers`
is one single-document write per record, in the given order, each fenced by its own
precondition: an insert (the unique `_id` refuses a second seq 1) or an update whose filter
is {_id, seq: n - 1}; a write that did not happen is then judged a retry (the stored seq,
status and updated_at are the record's) or fenced.

Locks: an accepted offer's swap claims its assets by setting `listed_in` to
`storage.base.offer_lock(offer_id)`, the field an auction listing uses, so whatever refuses a
listed asset (`create_auction`, a transfer or redeem by `append_provenance`) refuses a locked
one, `settle`/`release`/`fail_payment` only clear their own auction id, and
`MongoStore._explain_refusal` never mistakes a lock for an orphaned auction claim.
`lock_assets` takes one lock at a time (each a conditional single-document update) and gives
back what it took when one is refused; `move_locked_asset` is one conditional update that
moves the owner, drops the lock and pushes the token's transfer record, just after the
move's sale (a record with a price) is appended to the sales feed (storage.mongo_facts).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any, Protocol, cast

from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError, PyMongoError

from market.errors import (
    ASSET_LISTED,
    ASSET_MOVED,
    ASSET_NOT_FOUND,
    ASSET_REDEEMED,
    NOT_OWNER,
    PROVENANCE_CONFLICT,
)
from storage.base import LIVE_OFFER_STATUSES, Conflict, StoreError
from storage.chain import TokenState, check_append
from storage.mongo_ownership import PENDING
from storage.mongo_tokens import fence_filter
from storage.ownership import Change
from storage.records import NewNotice, NoticeRecord, OfferRecord, ProvenanceRecord

type Doc = dict[str, Any]

OFFER_INDEXES = [
    IndexModel([("to_id", ASCENDING), ("created_at", ASCENDING), ("_id", ASCENDING)]),
    IndexModel([("from_id", ASCENDING), ("created_at", ASCENDING), ("_id", ASCENDING)]),
    IndexModel([("from_id", ASCENDING), ("status", ASCENDING)]),  # count_offers
    IndexModel([("status", ASCENDING), ("host", ASCENDING)]),  # open_offers
    IndexModel([("assets", ASCENDING), ("status", ASCENDING)]),  # offers_with_assets
]
_BOXES: dict[str | None, tuple[str, ...]] = {
    "in": ("to_id",), "out": ("from_id",), None: ("to_id", "from_id")}
_BY_AGE = [("created_at", ASCENDING), ("_id", ASCENDING)]
_NEWEST_FIRST = [("created_at", DESCENDING), ("_id", DESCENDING)]
_INTS = ("seq", "created_at", "updated_at", "expires_at")
# A lock is taken in at most this many tries (a refusal whose cause is gone by the time it
# is read - the asset freed in between - is tried again).
_LOCK_ATTEMPTS = 3
_MOVE_ATTEMPTS = 3


class _Host(Protocol):
    """What the offers part needs of MongoStore (see storage.mongo)."""

    def _coll(self, name: str) -> AsyncCollection[Doc]: ...

    @property
    def assets(self) -> AsyncCollection[Doc]: ...

    async def add_notices(self, notices: list[NewNotice]) -> list[NoticeRecord]: ...

    async def mark_offer_told(self, offer_id: str, seq: int) -> None: ...

    async def _write_offers(self, offers: list[OfferRecord]) -> set[str]: ...

    async def _offer_sale(self, asset: Doc, frm: str, to: str,
                          record: ProvenanceRecord | None) -> bool: ...

    async def _offer_move_change(self, lock: str, asset_id: str, frm: str, to: str,
                                 record: ProvenanceRecord | None) -> Change: ...

    async def _flush_ownership(self, asset_id: str) -> int: ...


def _offers(host: _Host) -> AsyncCollection[Doc]:
    return host._coll("offers")


def _offer(doc: Doc) -> OfferRecord:
    doc.pop("_id", None)
    doc.setdefault("host", None)
    doc["told_seq"] = int(doc.get("told_seq") or 0)
    return cast(OfferRecord, doc)  # documents are schemaless: this is where they get a type


def _fields(record: OfferRecord) -> Doc:
    """The stored fields of a record to save (without told_seq); StoreError if malformed."""
    offer_id = record.get("offer_id")
    if not isinstance(offer_id, str):
        raise StoreError(f"offer_id must be a string: {offer_id!r}")
    for key in _INTS:
        value = record.get(key)
        if not isinstance(value, int) or isinstance(value, bool):
            raise StoreError(f"offer {offer_id!r}: {key} must be an int")
    for key in ("status", "from_id", "to_id"):
        if not isinstance(record.get(key), str):
            raise StoreError(f"offer {offer_id!r}: {key} must be a string")
    assets = record.get("assets")
    if not isinstance(assets, list) or not all(isinstance(a, str) for a in assets):
        raise StoreError(f"offer {offer_id!r}: assets must be a list of ids")
    doc: Doc = {k: v for k, v in record.items() if k != "told_seq"}
    doc.setdefault("host", None)
    return doc


async def _unlock(host: _Host, lock: str, asset_ids: list[str]) -> None:
    if asset_ids:
        await host.assets.update_many(
            {"_id": {"$in": list(asset_ids)}, "listed_in": lock},
            {"$set": {"listed_in": None, "listed_at": None}})


async def _lock_one(host: _Host, lock: str, asset_id: str, owner: str) -> bool:
    """Lock the asset; True if this call took the lock, False if `lock` held it already;
    the matching Conflict if it may not be locked."""
    for _ in range(_LOCK_ATTEMPTS):
        done = await host.assets.find_one_and_update(
            {"_id": asset_id, "owner_id": owner, "listed_in": None, "redeemed": {"$ne": True}},
            {"$set": {"listed_in": lock}, "$currentDate": {"listed_at": True}},
            projection={"_id": 1})
        if done is not None:
            return True
        found = await host.assets.find_one(
            {"_id": asset_id}, {"owner_id": 1, "listed_in": 1, "redeemed": 1})
        if found is None:
            raise Conflict(ASSET_NOT_FOUND, f"asset {asset_id!r} not found")
        if found.get("owner_id") != owner:
            raise Conflict(NOT_OWNER, f"asset {asset_id!r} is not owned by {owner!r}")
        if found.get("redeemed"):
            raise Conflict(ASSET_REDEEMED, f"asset {asset_id!r} was redeemed")
        listed_in = found.get("listed_in")
        if listed_in == lock:
            return False  # a retried step: ours already
        if listed_in is not None:
            # An auction's listing or another lock. A stale auction claim (a crashed
            # create_auction) is reclaimed only by the owner's next listing, never here.
            raise Conflict(ASSET_LISTED, f"asset {asset_id!r} is listed in {listed_in!r}")
        # Freed between our update and this read: try again.
    raise Conflict(ASSET_LISTED, f"asset {asset_id!r} is being listed concurrently")


def _check_record(asset_id: str, frm: str, to: str, record: ProvenanceRecord,
                  chain: list[Doc]) -> None:
    """Refuse (PROVENANCE_CONFLICT) a record that is not this move's transfer extending
    `chain`, the chain of an asset `frm` holds under the lock."""
    if (record.get("kind"), record.get("from"), record.get("to")) != ("transfer", frm, to):
        raise Conflict(PROVENANCE_CONFLICT,
                       f"asset {asset_id!r}: the record is not a transfer {frm!r} -> {to!r}")
    # Unlocked by this very write: the lock is no reason to refuse its own transfer.
    check_append(record, TokenState(frm, None, False, len(chain),
                                    chain[-1].get("hash") if chain else None))


class MongoOffers:
    """Mixin of MongoStore: the trade-offer part of the Store contract."""

    async def _create_offer_indexes(self: _Host) -> None:
        """Create the offers collection's indexes (from MongoStore.open)."""
        await _offers(self).create_indexes(OFFER_INDEXES)

    # -- offers ----------------------------------------------------------------------------
    async def save_offers(self: _Host, offers: list[OfferRecord],
                          notices: Mapping[str, list[NewNotice]] | None = None) -> set[str]:
        fenced = await self._write_offers(offers)
        told = {o["offer_id"]: int(o["seq"]) for o in offers
                if notices and o["offer_id"] in notices and o["offer_id"] not in fenced}
        if told and notices:
            await self.add_notices([n for offer_id in told for n in notices[offer_id]])
            for offer_id, seq in told.items():
                await self.mark_offer_told(offer_id, seq)
        return fenced

    async def _write_offers(self: _Host, offers: list[OfferRecord]) -> set[str]:
        docs = [_fields(o) for o in offers]  # all checked before anything is written
        coll = _offers(self)
        fenced: set[str] = set()
        for doc in docs:
            offer_id, seq = doc["offer_id"], doc["seq"]
            if offer_id in fenced:
                continue  # an earlier version of it was fenced: none of it is ours
            if seq == 1:
                try:
                    await coll.insert_one({**doc, "_id": offer_id, "told_seq": 0})
                    continue
                except DuplicateKeyError:
                    pass
            elif seq > 1:
                # $set, not a replacement: the stored told_seq stays.
                done = await coll.update_one({"_id": offer_id, "seq": seq - 1}, {"$set": doc})
                if done.matched_count == 1:
                    continue
            stored = await coll.find_one({"_id": offer_id},
                                         {"seq": 1, "status": 1, "updated_at": 1})
            if stored is None or (stored.get("seq"), stored.get("status"),
                                  stored.get("updated_at")) != (
                    seq, doc["status"], doc["updated_at"]):
                fenced.add(offer_id)
            # else: a retry of a write that was applied - nothing changes
        return fenced

    async def get_offer(self: _Host, offer_id: str) -> OfferRecord | None:
        doc = await _offers(self).find_one({"_id": offer_id})
        return None if doc is None else _offer(doc)

    async def list_offers(self: _Host, user_id: str, box: str | None = None,
                          status: str | None = None, limit: int = 50,
                          before: tuple[int, str] | None = None) -> list[OfferRecord]:
        if box not in _BOXES:
            raise StoreError(f"box must be 'in', 'out' or None, not {box!r}")
        if limit <= 0:
            return []
        sides = [{field: user_id} for field in _BOXES[box]]
        terms: list[Doc] = [sides[0] if len(sides) == 1 else {"$or": sides}]
        if status is not None:
            terms.append({"status": status})
        if before is not None:
            at, last_id = int(before[0]), str(before[1])
            terms.append({"$or": [{"created_at": {"$lt": at}},
                                  {"created_at": at, "_id": {"$lt": last_id}}]})
        query = terms[0] if len(terms) == 1 else {"$and": terms}
        cursor = _offers(self).find(query).sort(_NEWEST_FIRST).limit(int(limit))
        return [_offer(d) async for d in cursor]

    async def open_offers(self: _Host, host: str | None = None) -> list[OfferRecord]:
        query: Doc = {"$or": [
            {"status": {"$in": list(LIVE_OFFER_STATUSES)}},
            {"$expr": {"$lt": [{"$ifNull": ["$told_seq", 0]}, "$seq"]}},
        ]}
        if host is not None:
            query["host"] = host
        return [_offer(d) async for d in _offers(self).find(query).sort(_BY_AGE)]

    async def offers_with_assets(self: _Host, asset_ids: list[str],
                                 status: str = "active") -> list[OfferRecord]:
        if not asset_ids:
            return []
        query = {"assets": {"$in": list(dict.fromkeys(asset_ids))}, "status": status}
        return [_offer(d) async for d in _offers(self).find(query).sort(_BY_AGE)]

    async def count_offers(self: _Host, from_id: str, status: str = "active") -> int:
        return int(await _offers(self).count_documents({"from_id": from_id, "status": status}))

    async def mark_offer_told(self: _Host, offer_id: str, seq: int) -> None:
        await _offers(self).update_one({"_id": offer_id}, {"$max": {"told_seq": int(seq)}})

    # -- the locks of a swap ---------------------------------------------------------------
    async def lock_assets(self: _Host, lock: str, claims: list[tuple[str, str]]) -> None:
        taken: list[str] = []
        try:
            for asset_id, owner in claims:
                if await _lock_one(self, lock, str(asset_id), str(owner)):
                    taken.append(str(asset_id))
        except BaseException:
            # All or none: give back what this call took (not what a retried step's earlier
            # try took). Best effort: the refusal is what the caller needs to see.
            with contextlib.suppress(PyMongoError):
                await _unlock(self, lock, taken)
            raise

    async def unlock_assets(self: _Host, lock: str, asset_ids: list[str]) -> None:
        await _unlock(self, lock, asset_ids)

    async def move_locked_asset(self: _Host, lock: str, asset_id: str, frm: str, to: str,
                                record: ProvenanceRecord | None = None) -> bool:
        # Read, check, then one update conditioned on everything the check relied on (the
        # lock, the owner and, with a record, the chain it extends).
        for _ in range(_MOVE_ATTEMPTS):
            found = await self.assets.find_one(
                {"_id": asset_id},
                {"owner_id": 1, "listed_in": 1, "redeemed": 1, "provenance": 1,
                 "card_id": 1, "grader": 1, "grade": 1})
            if found is None:
                raise Conflict(ASSET_MOVED, f"asset {asset_id!r} not found")
            owner, listed_in = found.get("owner_id"), found.get("listed_in")
            if not (listed_in == lock and owner == frm and not found.get("redeemed")):
                if owner == to and listed_in != lock:
                    await self._flush_ownership(asset_id)  # what a crash left pending
                    return False  # moved by an earlier try of this step
                raise Conflict(ASSET_MOVED, f"asset {asset_id!r} is not {frm!r}'s under"
                                            f" {lock!r} (owner {owner!r}, listed in"
                                            f" {listed_in!r})")
            where: Doc = {"_id": asset_id, "owner_id": frm, "listed_in": lock,
                          "redeemed": {"$ne": True}}
            update: Doc = {"$set": {"owner_id": to, "listed_in": None, "listed_at": None},
                           "$push": {PENDING: await self._offer_move_change(
                               lock, asset_id, frm, to, record)}}
            if record is not None:
                _check_record(asset_id, frm, to, record, found.get("provenance") or [])
                where.update(fence_filter(record))
                update["$push"]["provenance"] = record
            # The sale first (keyed: once): checked, under the lock only this swap moves the
            # asset, and a retried swap that finds the move done never comes back here.
            await self._offer_sale(found, frm, to, record)
            done = await self.assets.update_one(where, update)
            if done.modified_count == 1:
                await self._flush_ownership(asset_id)  # the move's ownership row
                return True
            # Changed between the read and the update: judge it again.
        raise Conflict(ASSET_MOVED, f"asset {asset_id!r} keeps changing concurrently")
