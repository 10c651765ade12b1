"""MongoDB back end on PyMongo's native asyncio client (no Motor).

No multi-document transactions are used, so the store also works on a standalone mongod:
atomicity comes from single-document conditional updates (find_one_and_update with a filter
that encodes the precondition) and from the unique (auction_id, seq) index on the event log.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from typing import Any, cast

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, IndexModel, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError, PyMongoError
from pymongo.write_concern import WriteConcern

from market.errors import (
    ASSET_LISTED,
    ASSET_NOT_FOUND,
    ASSET_REDEEMED,
    AUCTION_EXISTS,
    AUCTION_NOT_FOUND,
    NOT_OWNER,
    PROVENANCE_CONFLICT,
)
from market.provenance import token_id_for
from storage.base import (
    FINISHED_STATUSES,
    OFFER_LOCK_PREFIX,
    OPEN_STATUSES,
    SETTLE_ASSET_MOVED,
    CommitBatch,
    Conflict,
    Store,
    StoreError,
    event_key,
    log_asset_moved,
)
from storage.chain import check_mint, check_transfer
from storage.clock import now_ms
from storage.mongo_catalog import CARD_INDEXES, MongoCatalog
from storage.mongo_counters import DUP_CODES
from storage.mongo_facts import MongoFacts
from storage.mongo_money import MongoMoney
from storage.mongo_offers import MongoOffers
from storage.mongo_ownership import PENDING, MongoOwnership
from storage.mongo_tokens import (
    ASSET_FIELDS,
    ASSET_INDEXES,
    ASSET_PROJECTION,
    MongoTokens,
    asset_record,
    duplicate_asset,
    fence_filter,
)
from storage.mongo_users import MongoUsers
from storage.ownership import auction_change, mint_change
from storage.records import AssetRecord, AuctionRecord, ProvenanceRecord, TradeRecord

type Doc = dict[str, Any]

log = logging.getLogger(__name__)

# A listing claim with no auction document after this long (by the MongoDB server's clock)
# is a crashed create_auction.
ORPHAN_CLAIM_S = 30.0

_RECORD_FIELDS = (
    "auction_id",
    "asset_id",
    "seller_id",
    "host",
    "spec",
    "view",
    "status",
    "seq",
    "snapshot",
    "settled",
    "created_at",
    "settle_error",
)
_TRADE_PROJECTION = {"_id": 0}


def _pick(doc: Doc | None, fields: tuple[str, ...]) -> Doc | None:
    if doc is None:
        return None
    return {f: doc.get(f) for f in fields}


def _older_than_server_now(field: str, seconds: float) -> Doc:
    """`$expr` body: `field`, stamped by the server ($currentDate), is more than `seconds`
    old by the same server's clock ($$NOW). No process's clock takes part, so clock skew
    between application hosts cannot matter. A null, missing or non-date stamp (written by
    an older version of this store) counts as old."""
    return {
        "$cond": [
            {"$eq": [{"$type": f"${field}"}, "date"]},
            {"$gt": [{"$subtract": ["$$NOW", f"${field}"]}, int(seconds * 1000)]},
            True,
        ]
    }


def _record(doc: Doc) -> AuctionRecord:
    out = {f: doc.get(f) for f in _RECORD_FIELDS}
    out["settled"] = bool(out["settled"])
    return cast(AuctionRecord, out)  # documents are schemaless: this is where they get a type


class MongoStore(MongoUsers, MongoCatalog, MongoTokens, MongoMoney, MongoOffers, MongoFacts,
                 MongoOwnership, Store):
    def __init__(
        self,
        uri: str,
        db_name: str = "ece",
        write_concern: str | int = "majority",
        journal: bool = True,
    ) -> None:
        self.uri = uri
        self.db_name = db_name
        self.write_concern = WriteConcern(w=write_concern, j=journal)
        self._client: AsyncMongoClient[Doc] | None = None
        self._db: AsyncDatabase[Doc] | None = None

    # -- plumbing --------------------------------------------------------------------------
    def _coll(self, name: str) -> AsyncCollection[Doc]:
        if self._db is None:
            raise StoreError("store is not open")
        return self._db[name]

    @property
    def users(self) -> AsyncCollection[Doc]:
        return self._coll("users")

    @property
    def assets(self) -> AsyncCollection[Doc]:
        return self._coll("assets")

    @property
    def cards(self) -> AsyncCollection[Doc]:
        return self._coll("cards")

    @property
    def auctions(self) -> AsyncCollection[Doc]:
        return self._coll("auctions")

    @property
    def events(self) -> AsyncCollection[Doc]:
        return self._coll("events")

    @property
    def trades(self) -> AsyncCollection[Doc]:
        return self._coll("trades")

    # -- lifecycle -------------------------------------------------------------------------
    async def open(self) -> None:
        if self._client is not None:
            return
        client: AsyncMongoClient[Doc] = AsyncMongoClient(self.uri)
        try:
            db = client.get_database(self.db_name, write_concern=self.write_concern)
            self._client, self._db = client, db
            # create_index is idempotent for identical specs, so concurrent opens are fine.
            await self.users.create_indexes(
                [IndexModel([("username_lower", ASCENDING)], unique=True)]
            )
            await self.assets.create_indexes(ASSET_INDEXES)
            await self._backfill_token_ids()
            await self.cards.create_indexes(CARD_INDEXES)
            await self.auctions.create_indexes(
                [
                    IndexModel([("status", ASCENDING), ("ends_at", ASCENDING)]),
                    IndexModel([("host", ASCENDING), ("status", ASCENDING)]),
                    IndexModel([("seller_id", ASCENDING), ("ends_at", ASCENDING)]),
                    IndexModel([("settled", ASCENDING), ("status", ASCENDING)]),
                    IndexModel([("told", ASCENDING), ("status", ASCENDING)]),
                ]
            )
            await self.events.create_indexes(
                [IndexModel([("auction_id", ASCENDING), ("seq", ASCENDING)], unique=True)]
            )
            await self.trades.create_indexes(
                [
                    IndexModel([("auction_id", ASCENDING)], unique=True),
                    IndexModel([("asset_id", ASCENDING), ("at", DESCENDING)]),
                    IndexModel([("buyer_id", ASCENDING), ("at", DESCENDING)]),
                    IndexModel([("seller_id", ASCENDING), ("at", DESCENDING)]),
                ]
            )
            await self._open_money()
            await self._create_offer_indexes()
            await self._create_fact_indexes()
            await self._open_ownership()
        except BaseException:
            self._client = self._db = None
            await client.close()
            raise

    async def close(self) -> None:
        client, self._client, self._db = self._client, None, None
        if client is not None:
            await client.close()

    # -- assets ----------------------------------------------------------------------------
    async def create_asset(self, asset: AssetRecord, mint: ProvenanceRecord | None = None) -> None:
        if mint is not None:
            check_mint(asset, mint)
        doc: Doc = {f: asset.get(f) for f in ASSET_FIELDS}
        doc.update(_id=asset["asset_id"], metadata=asset.get("metadata") or {}, listed_in=None,
                   token_id=asset.get("token_id") or token_id_for(asset["asset_id"]))
        # One document: the asset and its chain are inserted together or not at all.
        doc.update(listed_at=None, provenance=[] if mint is None else [mint])
        doc[PENDING] = [mint_change(asset, mint, now_ms())]  # its ownership row, placed next
        try:
            await self.assets.insert_one(doc)
        except DuplicateKeyError as exc:
            raise duplicate_asset(exc, doc) from None
        await self._flush_ownership(asset["asset_id"])

    async def get_asset(self, asset_id: str) -> AssetRecord | None:
        doc = await self.assets.find_one({"_id": asset_id}, ASSET_PROJECTION)
        return None if doc is None else asset_record(doc)

    async def list_assets(self, owner_id: str, limit: int | None = None,
                          after: str | None = None) -> list[AssetRecord]:
        if limit is not None and limit <= 0:
            return []
        query: Doc = {"owner_id": owner_id}
        if after is not None:
            query["_id"] = {"$gt": after}
        cursor = self.assets.find(query, ASSET_PROJECTION).sort("_id", ASCENDING)
        if limit is not None:
            cursor = cursor.limit(int(limit))
        return [asset_record(doc) async for doc in cursor]

    # -- auctions --------------------------------------------------------------------------
    async def create_auction(self, record: AuctionRecord) -> None:
        auction_id, asset_id, seller_id = (
            record["auction_id"],
            record["asset_id"],
            record["seller_id"],
        )
        view, spec = record["view"], record["spec"]
        doc: Doc = {f: record.get(f) for f in _RECORD_FIELDS}
        doc.update(
            _id=auction_id,
            seq=int(record.get("seq", 0)),
            snapshot=None,
            snapshot_seq=-1,
            settled=False,
            told=False,
            settle_error=None,
            ends_at=view.get("ends_at", spec.get("ends_at")),
        )
        # Step 1: claim the asset with one conditional update - the single atomic point
        # that decides which of several concurrent listings wins, across processes.
        claimed = await self._claim(asset_id, seller_id, auction_id)
        # Step 2: insert the auction. A crash between the steps leaves an orphan claim,
        # which _claim reclaims after ORPHAN_CLAIM_S (see _explain_refusal).
        try:
            await self.auctions.insert_one(doc)
        except DuplicateKeyError:
            if claimed:
                await self.assets.update_one(
                    {"_id": asset_id, "listed_in": auction_id},
                    {"$set": {"listed_in": None, "listed_at": None}},
                )
            raise Conflict(AUCTION_EXISTS, f"auction {auction_id!r} exists") from None

    async def _claim(self, asset_id: str, seller_id: str, auction_id: str) -> bool:
        """Set listed_in=auction_id iff the seller owns the unlisted asset.

        Returns True if this call made the claim, False if it already was ours (a retried
        create_auction whose first attempt died before inserting the auction)."""
        for _ in range(2):
            done = await self.assets.find_one_and_update(
                {"_id": asset_id, "owner_id": seller_id, "listed_in": None,
                 "redeemed": {"$ne": True}},
                # Stamped with the server's clock: only ever compared with that clock.
                {"$set": {"listed_in": auction_id}, "$currentDate": {"listed_at": True}},
                projection={"_id": 1},
            )
            if done is not None:
                return True
            if not await self._explain_refusal(asset_id, seller_id, auction_id):
                return False
        raise Conflict(ASSET_LISTED, f"asset {asset_id!r} is being listed concurrently")

    async def _explain_refusal(self, asset_id: str, seller_id: str, auction_id: str) -> bool:
        """Raise the matching Conflict; return True to retry the claim, False if ours."""
        asset = await self.assets.find_one({"_id": asset_id}, ASSET_PROJECTION)
        if asset is None:
            raise Conflict(ASSET_NOT_FOUND, f"asset {asset_id!r} not found")
        if asset["owner_id"] != seller_id:
            raise Conflict(NOT_OWNER, f"asset {asset_id!r} is not owned by the seller")
        if asset.get("redeemed"):
            raise Conflict(ASSET_REDEEMED, f"asset {asset_id!r} was redeemed")
        listed_in, listed_at = asset.get("listed_in"), asset.get("listed_at")
        if listed_in is None:
            return True  # released between our update and this read
        if listed_in == auction_id:
            if await self.auctions.find_one({"_id": auction_id}, {"_id": 1}) is not None:
                raise Conflict(AUCTION_EXISTS, f"auction {auction_id!r} exists")
            return False
        # A swap's lock (`offer_lock`) is never an auction's claim, orphaned or not: only
        # its offer's saga frees it.
        if (not str(listed_in).startswith(OFFER_LOCK_PREFIX)
                and await self.auctions.find_one({"_id": listed_in}, {"_id": 1}) is None):
            # Maybe an orphan claim from a crashed create_auction: drop it only if it is
            # unchanged and older than ORPHAN_CLAIM_S, both judged by the server itself.
            dropped = await self.assets.update_one(
                {
                    "_id": asset_id,
                    "listed_in": listed_in,
                    "listed_at": listed_at,
                    "$expr": _older_than_server_now("listed_at", ORPHAN_CLAIM_S),
                },
                {"$set": {"listed_in": None, "listed_at": None}},
            )
            if dropped.modified_count == 1:
                return True
        raise Conflict(ASSET_LISTED, f"asset {asset_id!r} is listed in {listed_in!r}")

    async def get_auction(self, auction_id: str) -> AuctionRecord | None:
        doc = await self.auctions.find_one({"_id": auction_id})
        return None if doc is None else _record(doc)

    async def list_auctions(
        self, status: str | None = None, limit: int = 200, seller_id: str | None = None
    ) -> list[dict[str, Any]]:
        query: Doc = {}
        if status is not None:
            query["status"] = status
        if seller_id is not None:
            query["seller_id"] = seller_id
        # Finished auctions are browsed as history: most recently ended first.
        order = DESCENDING if status in FINISHED_STATUSES else ASCENDING
        cursor = (
            self.auctions.find(query, {"view": 1})
            .sort([("ends_at", order), ("_id", order)])
            .limit(int(limit))
        )
        return [doc["view"] async for doc in cursor]

    async def open_auctions(self, host: str | None = None) -> list[AuctionRecord]:
        query: Doc = {"status": {"$in": list(OPEN_STATUSES)}}
        if host is not None:
            query["host"] = host
        cursor = self.auctions.find(query).sort([("ends_at", ASCENDING), ("_id", ASCENDING)])
        return [_record(doc) async for doc in cursor]

    async def commit(self, batch: CommitBatch) -> set[str]:
        if batch.is_empty():
            return set()
        # Tag every event with the batch id so a fenced auction's events that did land can
        # be removed again without touching the rightful owner's events.
        batch_id = uuid.uuid4().hex
        docs: list[Doc] = []
        for event in batch.events:
            auction_id, seq = event_key(event)
            docs.append({"auction_id": auction_id, "seq": seq, "b": batch_id, "ev": event})
        conflicted: set[str] = set()
        if docs:
            try:
                # Unordered: one round trip, and one auction's conflict can't block others.
                await self.events.insert_many(docs, ordered=False)
            except BulkWriteError as exc:
                conflicted = await self._fence(exc, docs, batch_id)
            except PyMongoError as exc:
                await self._discard(batch_id)
                raise StoreError(f"event insert failed: {exc}") from exc
        ops: list[UpdateOne] = []
        for auction_id, view in batch.views.items():
            if auction_id in conflicted:
                continue
            seq = int(view["seq"])
            # `seq <= new` guard: a view never moves an auction backwards.
            ops.append(
                UpdateOne(
                    {"_id": auction_id, "seq": {"$lte": seq}},
                    {
                        "$set": {
                            "view": view,
                            "status": view["status"],
                            "seq": seq,
                            "ends_at": view.get("ends_at"),
                        }
                    },
                )
            )
        for auction_id, snap in batch.snapshots.items():
            if auction_id in conflicted:
                continue
            seq = int(snap["seq"])
            ops.append(
                UpdateOne(
                    {"_id": auction_id, "snapshot_seq": {"$lte": seq}},
                    {"$set": {"snapshot": snap, "snapshot_seq": seq}},
                )
            )
        if ops:
            try:
                await self.auctions.bulk_write(ops, ordered=False)
            except PyMongoError as exc:
                # Events are durable already; views/snapshots are re-derivable from them.
                raise StoreError(f"view/snapshot update failed: {exc}") from exc
        notices = [n for n in batch.notices if n["data"].get("auction_id") not in conflicted]
        if notices:
            try:
                await self.add_notices(notices)
            except PyMongoError:  # the bids are durable: only the news of them is lost
                log.warning("commit: %d notices not stored", len(notices), exc_info=True)
        return conflicted

    async def _fence(self, exc: BulkWriteError, docs: list[Doc], batch_id: str) -> set[str]:
        details = exc.details or {}
        conflicted: set[str] = set()
        other: list[Any] = []
        for err in details.get("writeErrors", []):
            if err.get("code") in DUP_CODES:
                conflicted.add(docs[err["index"]]["auction_id"])
            else:
                other.append(err)
        if other or details.get("writeConcernErrors"):
            # Not a fencing conflict: keep the all-or-nothing promise for this batch.
            await self._discard(batch_id)
            raise StoreError(f"event insert failed: {other or details['writeConcernErrors']}")
        if conflicted:
            await self.events.delete_many(
                {"auction_id": {"$in": sorted(conflicted)}, "b": batch_id}
            )
        return conflicted

    async def _discard(self, batch_id: str) -> None:
        # Best effort: the original error is what the caller needs to see.
        with contextlib.suppress(PyMongoError):
            await self.events.delete_many({"b": batch_id})

    async def load_events(
        self, auction_id: str, after_seq: int = 0, limit: int | None = None
    ) -> list[dict[str, Any]]:
        cursor = self.events.find(
            {"auction_id": auction_id, "seq": {"$gt": int(after_seq)}}, {"ev": 1, "_id": 0}
        ).sort("seq", ASCENDING)
        if limit is not None:
            if limit <= 0:
                return []
            cursor = cursor.limit(int(limit))
        return [doc["ev"] async for doc in cursor]

    # -- settlement ------------------------------------------------------------------------
    async def settle(self, trade: TradeRecord, transfer: ProvenanceRecord | None = None) -> bool:
        # Idempotent single-document steps, ordered so that a retry after a crash at any
        # point converges: (1) move the asset, conditionally, remembering the sale in the
        # asset's `sold_in` list and appending `transfer` to its chain; (2) record the trade
        # (keyed by auction) only if the asset moved - in this call or an earlier,
        # interrupted one; (3) append the facts (the sale, the closing: keyed, so once);
        # (4) flip `settled`, which decides the return value, so True is reported once.
        if transfer is not None:
            check_transfer(trade, transfer)
        auction_id = trade["auction_id"]
        if await self._is_settled(auction_id):
            return False
        if not await self._sell_asset(trade, transfer):
            await self._settle_facts(trade, sold=False)
            res = await self.auctions.update_one(
                {"_id": auction_id, "settled": False},
                {"$set": {"settled": True, "settle_error": SETTLE_ASSET_MOVED}},
            )
            if res.modified_count == 1:
                log_asset_moved(log, trade)
            return False
        # A duplicate means an earlier, interrupted attempt already recorded the trade. First
        # after the move: a reader who sees the new owner finds the trade a moment later.
        with contextlib.suppress(DuplicateKeyError):
            await self.trades.insert_one({**trade, "_id": auction_id})
        await self._flush_ownership(trade["asset_id"])  # the sale's ownership row, once
        await self._settle_facts(trade, sold=True)
        res = await self.auctions.update_one(
            {"_id": auction_id, "settled": False}, {"$set": {"settled": True}}
        )
        return res.modified_count == 1

    async def _sell_asset(self, trade: TradeRecord, transfer: ProvenanceRecord | None) -> bool:
        """Move the asset to the buyer iff the seller owns it through this listing (and has
        not redeemed it), appending `transfer` to its chain in the same update.

        True if it moved now or in an earlier attempt for this auction: `sold_in` lists
        every auction that sold the asset, so that stays recognisable even after the buyer
        has relisted or resold it before the retry (whose transfer is then not appended:
        the chain already has this sale's)."""
        auction_id, asset_id, seller_id = trade["auction_id"], trade["asset_id"], trade["seller_id"]
        where: Doc = {"_id": asset_id, "owner_id": seller_id, "listed_in": auction_id,
                      "redeemed": {"$ne": True}}
        push: Doc = {"sold_in": auction_id, PENDING: auction_change(trade)}
        if transfer is not None:
            where.update(fence_filter(transfer))
            push["provenance"] = transfer
        moved = await self.assets.update_one(where, {
            "$set": {"owner_id": trade["buyer_id"], "listed_in": None, "listed_at": None},
            "$push": push,
        })
        if moved.modified_count == 1:
            return True
        now = await self.assets.find_one(
            {"_id": asset_id}, {"owner_id": 1, "listed_in": 1, "redeemed": 1, "sold_in": 1})
        if now is not None and auction_id in (now.get("sold_in") or []):
            return True
        if now is not None and (now["owner_id"], now.get("listed_in"), bool(
                now.get("redeemed"))) == (seller_id, auction_id, False):
            # Still the seller's through this listing: only the chain fence refused it.
            raise Conflict(PROVENANCE_CONFLICT,
                           f"settle {auction_id}: the transfer does not extend the chain")
        return False

    async def _is_settled(self, auction_id: str) -> bool:
        """Whether the auction is settled; Conflict AUCTION_NOT_FOUND when there is none."""
        found = await self.auctions.find_one({"_id": auction_id}, {"settled": 1})
        if found is None:
            raise Conflict(AUCTION_NOT_FOUND, f"auction {auction_id!r} not found")
        return bool(found.get("settled"))

    async def release(self, auction_id: str, asset_id: str) -> bool:
        await self.assets.update_one(
            {"_id": asset_id, "listed_in": auction_id},
            {"$set": {"listed_in": None, "listed_at": None}},
        )
        await self._release_closing(auction_id)  # before `settled`: appended once
        res = await self.auctions.update_one(
            {"_id": auction_id, "settled": False}, {"$set": {"settled": True}}
        )
        return res.modified_count == 1

    async def unsettled_finished(self) -> list[AuctionRecord]:
        # `told` is False from the listing until mark_told; auctions listed before notices
        # existed lack it, and count as told.
        finished = {"$in": list(FINISHED_STATUSES)}
        cursor = self.auctions.find(
            {"$or": [{"settled": False, "status": finished}, {"told": False, "status": finished}]}
        ).sort([("ends_at", ASCENDING), ("_id", ASCENDING)])
        return [_record(doc) async for doc in cursor]

    async def mark_told(self, auction_id: str) -> None:
        await self.auctions.update_one({"_id": auction_id, "settled": True},
                                       {"$set": {"told": True}})

    async def get_trade(self, auction_id: str) -> TradeRecord | None:
        return cast(TradeRecord | None,
                    await self.trades.find_one({"_id": auction_id}, _TRADE_PROJECTION))

    async def list_trades(
        self, asset_id: str | None = None, user_id: str | None = None, limit: int = 200
    ) -> list[TradeRecord]:
        query: Doc = {}
        if asset_id is not None:
            query["asset_id"] = asset_id
        if user_id is not None:
            query["$or"] = [{"buyer_id": user_id}, {"seller_id": user_id}]
        cursor = (
            self.trades.find(query, _TRADE_PROJECTION)
            .sort([("at", DESCENDING), ("_id", DESCENDING)])
            .limit(int(limit))
        )
        return [cast(TradeRecord, doc) async for doc in cursor]
