"""The MongoDB store's fact feeds (sales, auction closings), projection results with their
checkpoints, and the analytics log (storage.facts; a mixin of MongoStore).

Collections:

- `sales` {pos, key, card_id, grader, grade, price, at, source, ref, seller_id, buyer_id}:
  unique `key`; by `pos`; `(card_id, grader, grade, at)` for a card's sales by time.
- `closings` {_id: auction_id, pos, outcome, at}: one per auction; unique `pos`.
- `projection_docs` {_id: kind + "\\x00" + key, doc}: a kind's documents are one `_id`
  range, in key order (a kind has no NUL, and strings compare by code point, so
  `kind\\x00start <= _id < kind\\x00end` is exactly `start <= key < end`).
- `checkpoints` {_id: name, pos}.
- `analytics_log` {pos, channel, type, data}: unique `pos`.
- `watches` {auction_id, user_id, at}: unique `(auction_id, user_id)`, the first insert
  standing; an auction's watchers are that index's range.

Positions come from `counters` documents ($inc; `sales_pos`, `closings_pos`, `log_pos`,
like `notice_pos`), taken just before the write that places the row: a position may show
up late (a writer between its $inc and its write) or never (it died there, or lost a race
for the row), and readers pass such gaps (`actors.tail.GapCursor`). Every gap costs a
tailing reader a wait, so an ordinary duplicate (a retried step, a sale added twice) must
take no position: a closing probes its `_id` first; sales, added by the hundred thousand,
are written in two steps that find the duplicates without a read:

1. Each row is upserted unplaced (`pos` None: no reader sees it) on {key, pos: None} with
   `$setOnInsert`: a new key is inserted, a row a crashed call left unplaced is matched,
   and a key placed already is refused by the unique `key` index - that row is done.
2. The rest get a block of positions, each set on its row only while it is unplaced.

Both are bulk writes (the second ordered, so that readers see rows in order) of batches
(`_in_batches`) sized to take about BATCH_S: a reader that sees a later writer's row waits
at most about that long at the gap of a batch being placed (well under
`actors.tail.GAP_WAIT_S`), whatever the server's speed. On MongoDB two keyed writes cost
about twice an insert_many with a `$in` probe; on mongoeco (the test server) they are what
keeps bulk appends linear: its `insert` compares each document's `_id` with every stored
one, and its `$in` every stored document with every listed value (only single-field
equalities use an index there). The log's rows, which have no duplicates, are upserted on
their `pos` for the same reason.

The store's write paths append their facts as idempotent steps before the step that
decides their answer, so a retry after a crash anywhere appends each fact once: `settle`
(the sale after the asset moved, then the closing, then `settled`), `release` and
`fail_payment` (the closing, then `settled`), `move_locked_asset` (the sale after the
checks, just before the conditional move; a retried swap that finds the move done does
not call it again).

`save_projection` without transactions: read the checkpoint (fenced if not `expect`), the
documents (ReplaceOne upsert / DeleteOne, idempotent), the messages, the log's trim, then
the checkpoint's conditional move. A crash or a lost fence race in between leaves documents
ahead of the checkpoint (rewritten with the same values by the retry or the winner) and
the messages in the log (a retry appends them again).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol, cast

from pymongo import (
    ASCENDING,
    DESCENDING,
    DeleteOne,
    IndexModel,
    ReplaceOne,
    UpdateOne,
)
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError, DuplicateKeyError

from market.catalog import normal_grade
from storage import facts
from storage.base import OPEN_STATUSES, StoreError
from storage.clock import now_ms
from storage.facts import (
    ASSET_MOVED_OUTCOME,
    PAYMENT_FAILED_OUTCOME,
    SALE_FIELDS,
    SOLD,
    SOURCE_AUCTION,
    SOURCE_OFFER,
    UNSOLD,
)
from storage.mongo_counters import DUP_CODES, reserve
from storage.records import (
    AnalyticsMessage,
    ClosingRecord,
    Json,
    ProvenanceRecord,
    SaleRecord,
    TradeRecord,
)

type Doc = dict[str, Any]

SALES_POS, CLOSINGS_POS, LOG_POS = "sales_pos", "closings_pos", "log_pos"
_POS_INDEX = IndexModel([("pos", ASCENDING)], unique=True)
FACT_INDEXES: dict[str, list[IndexModel]] = {
    "sales": [
        IndexModel([("key", ASCENDING)], unique=True),
        IndexModel([("pos", ASCENDING)]),  # not unique: unplaced rows share None
        IndexModel([("card_id", ASCENDING), ("grader", ASCENDING), ("grade", ASCENDING),
                    ("at", ASCENDING)]),
    ],
    "closings": [_POS_INDEX],
    "analytics_log": [_POS_INDEX],
    "watches": [IndexModel([("auction_id", ASCENDING), ("user_id", ASCENDING)], unique=True)],
}
# Bulk writes: the first has FIRST_BATCH rows, each next one as many as the last wrote in
# BATCH_S (at least MIN_BATCH, at most BATCH).
FIRST_BATCH, MIN_BATCH, BATCH, BATCH_S = 200, 20, 5_000, 0.5
_SEP = "\x00"  # between a projection document's kind and key in its _id


def _sale_doc(sale: Mapping[str, Any]) -> Doc:
    """The stored fields of a sale to add (without its position); StoreError if it lacks
    one or its key is not a string."""
    try:
        doc = {f: sale[f] for f in SALE_FIELDS}
    except KeyError as exc:
        raise StoreError(f"sale {sale.get('key')!r} lacks {exc.args[0]!r}") from None
    if not isinstance(doc["key"], str):
        raise StoreError(f"sale key must be a string: {doc['key']!r}")
    doc["grade"] = normal_grade(doc["grade"])
    return doc


def _sale(doc: Doc) -> SaleRecord:
    out = {f: doc.get(f) for f in SALE_FIELDS}
    out["grade"] = normal_grade(out["grade"])
    out["pos"] = int(doc["pos"])
    return cast(SaleRecord, out)  # documents are schemaless: this is where they get a type


def _closing(doc: Doc) -> ClosingRecord:
    return ClosingRecord(pos=int(doc["pos"]), auction_id=doc["_id"], outcome=doc["outcome"],
                         at=doc["at"])


def _message(doc: Doc) -> AnalyticsMessage:
    return AnalyticsMessage(pos=int(doc["pos"]), channel=doc["channel"], type=doc["type"],
                            data=doc["data"])


def _doc_id(kind: str, key: str) -> str:
    if not isinstance(kind, str) or _SEP in kind or not isinstance(key, str):
        raise StoreError(f"projection kind and key must be strings (no NUL in the kind):"
                         f" {kind!r}, {key!r}")
    return kind + _SEP + key


def _kind_range(kind: str) -> Doc:
    """The `_id` range of every document of `kind`."""
    low = _doc_id(kind, "")
    return {"$gte": low, "$lt": kind + chr(ord(_SEP) + 1)}


async def _in_batches[T](items: list[T], write: Callable[[list[T]], Awaitable[int]]) -> int:
    """`write` each of consecutive batches of `items`, each sized to take about BATCH_S by
    the speed of the one before; the sum of its answers."""
    total, done, size = 0, 0, FIRST_BATCH
    while done < len(items):
        batch = items[done:done + size]
        done += len(batch)
        started = time.monotonic()
        total += await write(batch)
        took = max(time.monotonic() - started, 0.001)
        size = max(MIN_BATCH, min(BATCH, int(len(batch) * BATCH_S / took)))
    return total


def _dup_only(exc: BulkWriteError) -> list[Doc]:
    """The write errors of a bulk write refused only by unique indexes; re-raised otherwise."""
    details = exc.details or {}
    errors: list[Doc] = details.get("writeErrors") or []
    if not errors or details.get("writeConcernErrors") or any(
            e.get("code") not in DUP_CODES for e in errors):
        raise StoreError(f"bulk write failed: {errors or details}") from exc
    return errors


async def _refused(coll: AsyncCollection[Doc], ops: list[UpdateOne]) -> set[int]:
    """Run these upserts (unordered); the indexes of those a unique index refused."""
    try:
        await coll.bulk_write(ops, ordered=False)
    except BulkWriteError as exc:
        return {int(e["index"]) for e in _dup_only(exc)}
    return set()


async def _upsert_new(coll: AsyncCollection[Doc], ops: list[UpdateOne]) -> int:
    """Run `$setOnInsert` upserts (unordered); how many inserted. An upsert refused by a
    unique index (a racing upsert of its key the server did not retry) is run once more, to
    match what the race stored; refused again, its position is taken: StoreError."""
    try:
        return (await coll.bulk_write(ops, ordered=False)).upserted_count
    except BulkWriteError as exc:
        errors = _dup_only(exc)
        done = int((exc.details or {}).get("nUpserted", 0))
        again = [ops[e["index"]] for e in errors]
    try:
        return done + (await coll.bulk_write(again, ordered=False)).upserted_count
    except BulkWriteError as exc:
        _dup_only(exc)
        raise StoreError(f"{coll.name}: positions given twice (a counter behind its feed):"
                         f" {(exc.details or {}).get('writeErrors', [])[:3]}") from exc


class _Host(Protocol):
    """What the facts part needs of MongoStore (see storage.mongo)."""

    def _coll(self, name: str) -> AsyncCollection[Doc]: ...

    @property
    def assets(self) -> AsyncCollection[Doc]: ...

    @property
    def auctions(self) -> AsyncCollection[Doc]: ...

    async def _positions(self, counter: str, count: int) -> int: ...

    async def _insert_sales(self, rows: list[Doc]) -> int: ...

    async def _append_sale(self, card: Doc | None, *, key: str, price: int | None, at: int,
                           source: str, ref: str | None, seller_id: str | None,
                           buyer_id: str | None) -> bool: ...

    async def _append_closing(self, auction_id: str, outcome: str) -> bool: ...

    async def _append_messages(self, messages: list[AnalyticsMessage]) -> None: ...

    async def projection_checkpoint(self, name: str) -> int: ...


class MongoFacts:
    """Mixin of MongoStore: the fact feeds and projection results (storage.facts)."""

    async def _create_fact_indexes(self: _Host) -> None:
        """Create the fact collections' indexes (from MongoStore.open)."""
        for name, indexes in FACT_INDEXES.items():
            await self._coll(name).create_indexes(indexes)

    async def _positions(self: _Host, counter: str, count: int) -> int:
        """Reserve `count` positions of `counter`; returns the highest."""
        return await reserve(self._coll("counters"), counter, count)

    # -- appended by the store's own write paths -------------------------------------------
    async def _append_sale(self: _Host, card: Doc | None, *, key: str, price: int | None,
                           at: int, source: str, ref: str | None, seller_id: str | None,
                           buyer_id: str | None) -> bool:
        """Append a sale of the asset whose card data is `card` ({card_id, grader, grade},
        e.g. its asset document); True if appended. Nothing for an asset that is no
        catalog card's graded copy, a sale without a positive price, or a key in the feed
        already."""
        if price is None or price <= 0 or card is None or card.get("card_id") is None \
                or card.get("grader") is None:
            return False
        row = {"key": key, "card_id": card["card_id"], "grader": card["grader"],
               "grade": normal_grade(card.get("grade")), "price": price, "at": at,
               "source": source, "ref": ref, "seller_id": seller_id, "buyer_id": buyer_id}
        return await self._insert_sales([row]) == 1

    async def _settle_facts(self: _Host, trade: TradeRecord, sold: bool) -> None:
        """`settle`'s facts, before it sets `settled`: the auction's sale (when the asset
        moved and is a catalog card's graded copy) and its closing (sold or asset_moved)."""
        auction_id = trade["auction_id"]
        if sold:
            card = await self.assets.find_one({"_id": trade["asset_id"]},
                                              {"card_id": 1, "grader": 1, "grade": 1})
            await self._append_sale(
                card, key=facts.auction_sale_key(auction_id), price=trade.get("price"),
                at=trade["at"], source=SOURCE_AUCTION, ref=auction_id,
                seller_id=trade["seller_id"], buyer_id=trade["buyer_id"])
        await self._append_closing(auction_id, SOLD if sold else ASSET_MOVED_OUTCOME)

    async def _offer_sale(self: _Host, asset: Doc, frm: str, to: str,
                          record: ProvenanceRecord | None) -> bool:
        """`move_locked_asset`'s sale (`asset` its document as read for the move): only a
        transfer record with a price makes one."""
        if record is None or record.get("price") is None:
            return False
        return await self._append_sale(
            asset, key=facts.offer_sale_key(str(record["ref"])), price=record["price"],
            at=record["at"], source=SOURCE_OFFER, ref=record["ref"], seller_id=frm,
            buyer_id=to)

    async def _release_closing(self: _Host, auction_id: str) -> None:
        """`release`'s closing (unsold), before it sets `settled`; none for an auction that
        is settled already (or does not exist)."""
        if await self.auctions.find_one({"_id": auction_id, "settled": False},
                                        {"_id": 1}) is not None:
            await self._append_closing(auction_id, UNSOLD)

    async def _payment_failed_closing(self: _Host, auction_id: str) -> None:
        await self._append_closing(auction_id, PAYMENT_FAILED_OUTCOME)

    async def _append_closing(self: _Host, auction_id: str, outcome: str) -> bool:
        """Append the auction's closing (at the store's clock) unless it has one; True if
        appended."""
        closings = self._coll("closings")
        if await closings.find_one({"_id": auction_id}, {"_id": 1}) is not None:
            return False
        pos = await self._positions(CLOSINGS_POS, 1)
        # Appended concurrently since the probe: matched, and `pos` stays unused (a gap).
        op = UpdateOne({"_id": auction_id},
                       {"$setOnInsert": {"pos": pos, "outcome": outcome, "at": now_ms()}},
                       upsert=True)
        return await _upsert_new(closings, [op]) == 1

    async def _insert_sales(self: _Host, rows: list[Doc]) -> int:
        """Add these sale rows (checked, keys distinct) but those whose key is placed in the
        feed already, in batches (see the module's docstring); how many this call placed."""
        sales = self._coll("sales")

        async def write(batch: list[Doc]) -> int:
            placed = await _refused(sales, [
                UpdateOne({"key": r["key"], "pos": None},
                          {"$setOnInsert": {f: v for f, v in r.items() if f != "key"}},
                          upsert=True) for r in batch])
            keys = [r["key"] for i, r in enumerate(batch) if i not in placed]
            if not keys:
                return 0
            top = await self._positions(SALES_POS, len(keys))
            # In order, so that readers see them in order; a row placed meanwhile by a
            # concurrent call is left alone, the position it was given here a gap.
            done = await sales.bulk_write([
                UpdateOne({"key": key, "pos": None}, {"$set": {"pos": pos}})
                for pos, key in zip(range(top - len(keys) + 1, top + 1), keys, strict=True)])
            return done.modified_count

        return await _in_batches(rows, write)

    # -- the sales feed --------------------------------------------------------------------
    async def add_sales(self: _Host, sales: list[SaleRecord]) -> int:
        rows: dict[str, Doc] = {}
        now = now_ms()
        for sale in sales:  # all checked before anything is written
            facts.check_sale(sale, now)
            row = _sale_doc(sale)
            rows.setdefault(row["key"], row)  # a key given twice: the first
        return await self._insert_sales(list(rows.values())) if rows else 0

    async def sales_feed(self: _Host, after_pos: int, limit: int = 10_000) -> list[SaleRecord]:
        if limit <= 0:
            return []
        cursor = self._coll("sales").find({"pos": {"$gt": int(after_pos)}})
        return [_sale(d) async for d in cursor.sort("pos", ASCENDING).limit(int(limit))]

    async def sales_position(self: _Host) -> int:
        doc = await self._coll("sales").find_one({}, {"pos": 1}, sort=[("pos", DESCENDING)])
        return 0 if doc is None else int(doc["pos"])

    # -- the closings feed -----------------------------------------------------------------
    async def closings_feed(self: _Host, after_pos: int,
                            limit: int = 10_000) -> list[ClosingRecord]:
        if limit <= 0:
            return []
        cursor = self._coll("closings").find({"pos": {"$gt": int(after_pos)}})
        return [_closing(d) async for d in cursor.sort("pos", ASCENDING).limit(int(limit))]

    async def closings_position(self: _Host) -> int:
        doc = await self._coll("closings").find_one({}, {"pos": 1}, sort=[("pos", DESCENDING)])
        return 0 if doc is None else int(doc["pos"])

    # -- watches -----------------------------------------------------------------------------
    async def record_watch(self: _Host, user_id: str, auction_id: str, at: int) -> bool:
        facts.check_watch(user_id, auction_id, at)
        if await self.auctions.find_one(
                {"_id": auction_id, "status": {"$in": list(OPEN_STATUSES)}}, {"_id": 1}) is None:
            return False
        try:
            await self._coll("watches").insert_one(
                {"auction_id": auction_id, "user_id": user_id, "at": at})
        except DuplicateKeyError:
            return False
        return True

    async def auction_watchers(self: _Host, auction_id: str) -> list[tuple[str, int]]:
        cursor = self._coll("watches").find({"auction_id": auction_id},
                                            {"_id": 0, "user_id": 1, "at": 1})
        return sorted([(d["user_id"], int(d["at"])) async for d in cursor],
                      key=lambda w: (w[1], w[0]))

    # -- projection results and checkpoints ------------------------------------------------
    async def projection_checkpoint(self: _Host, name: str) -> int:
        doc = await self._coll("checkpoints").find_one({"_id": name})
        return 0 if doc is None else int(doc["pos"])

    async def save_projection(self: _Host, name: str, expect: int, pos: int,
                              puts: list[tuple[str, str, Json | None]],
                              messages: list[AnalyticsMessage] | None = None) -> bool:
        expect, pos = int(expect), int(pos)
        # The last put of a (kind, key) wins: what applying each in turn would do. Kind by
        # kind in the order the kinds come, each kind's writes acknowledged before the next
        # kind's start: within an unordered bulk write the server applies the ops in any
        # order, so a kind that carries the version of others (the price projection's
        # `segment` after its `sale` and `candle` docs) must not share one with them, or a
        # reader could see the new version over the old candles and cache that under it.
        kinds: dict[str, dict[str, Json | None]] = {}
        for kind, key, doc in puts:
            of_kind = kinds.get(kind)
            if of_kind is None:
                of_kind = kinds[kind] = {}
            of_kind[_doc_id(kind, key)] = doc
        if await self.projection_checkpoint(name) != expect:
            return False
        docs = self._coll("projection_docs")

        async def write(batch: list[ReplaceOne[Doc] | DeleteOne]) -> int:
            try:
                await docs.bulk_write(batch, ordered=False)
            except BulkWriteError as exc:  # two upserts of one new _id raced: write again
                _dup_only(exc)
                await docs.bulk_write(batch, ordered=False)
            return len(batch)

        for of_kind in kinds.values():
            ops: list[ReplaceOne[Doc] | DeleteOne] = [
                DeleteOne({"_id": doc_id}) if doc is None
                else ReplaceOne({"_id": doc_id}, {"doc": doc}, upsert=True)
                for doc_id, doc in of_kind.items()]
            await _in_batches(ops, write)
        if messages:
            await self._append_messages(messages)
        checkpoints = self._coll("checkpoints")
        moved = await checkpoints.update_one({"_id": name, "pos": expect},
                                             {"$set": {"pos": pos}})
        if moved.matched_count == 1:
            return True
        if expect != 0:
            return False  # moved (or reset) by another instance since our read
        try:
            await checkpoints.insert_one({"_id": name, "pos": pos})
        except DuplicateKeyError:
            return False  # another instance's first save won
        return True

    async def _append_messages(self: _Host, messages: list[AnalyticsMessage]) -> None:
        """Append messages to the analytics log, then trim it to its last LOG_KEEP."""
        log = self._coll("analytics_log")

        async def write(batch: list[AnalyticsMessage]) -> int:
            top = await self._positions(LOG_POS, len(batch))
            return await _upsert_new(log, [
                UpdateOne({"pos": pos}, {"$setOnInsert": {
                    "channel": m["channel"], "type": m["type"], "data": m["data"]}},
                    upsert=True)
                for pos, m in zip(range(top - len(batch) + 1, top + 1), batch, strict=True)])

        await _in_batches(messages, write)
        keep = max(int(facts.LOG_KEEP), 0)  # read now: the module's value, patched or not
        # The newest message that goes: the (keep + 1)-th newest (exact even across gaps).
        cursor = log.find({}, {"pos": 1}).sort("pos", DESCENDING).skip(keep).limit(1)
        async for doc in cursor:
            await log.delete_many({"pos": {"$lte": doc["pos"]}})

    async def reset_projections(self: _Host, names: list[str], kinds: list[str]) -> None:
        if names:
            await self._coll("checkpoints").delete_many({"_id": {"$in": list(names)}})
        for kind in dict.fromkeys(kinds):
            await self._coll("projection_docs").delete_many({"_id": _kind_range(kind)})

    async def get_projection_doc(self: _Host, kind: str, key: str) -> Json | None:
        doc = await self._coll("projection_docs").find_one({"_id": _doc_id(kind, key)})
        return None if doc is None else cast(Json, doc["doc"])

    async def get_projection_json(self: _Host, kind: str, key: str) -> bytes | None:
        doc = await self._coll("projection_docs").find_one({"_id": _doc_id(kind, key)})
        return None if doc is None else facts.encode_json(doc["doc"])

    async def get_projection_docs(self: _Host, kind: str, keys: list[str]) -> dict[str, Json]:
        if not keys:
            return {}
        ids = list(dict.fromkeys(_doc_id(kind, k) for k in keys))
        skip = len(kind) + 1
        return {d["_id"][skip:]: d["doc"]
                async for d in self._coll("projection_docs").find({"_id": {"$in": ids}})}

    async def scan_projection(self: _Host, kind: str, start: str, end: str, limit: int = 1000,
                              reverse: bool = False) -> list[tuple[str, Json]]:
        if limit <= 0:
            return []
        cursor = self._coll("projection_docs").find(
            {"_id": {"$gte": _doc_id(kind, start), "$lt": _doc_id(kind, end)}})
        cursor = cursor.sort("_id", DESCENDING if reverse else ASCENDING).limit(int(limit))
        skip = len(kind) + 1
        return [(d["_id"][skip:], d["doc"]) async for d in cursor]

    async def count_projection(self: _Host, kind: str) -> int:
        return int(await self._coll("projection_docs").count_documents(
            {"_id": _kind_range(kind)}))

    # -- the analytics log (live messages) -------------------------------------------------
    async def analytics_log(self: _Host, after_pos: int,
                            limit: int = 1000) -> list[AnalyticsMessage]:
        if limit <= 0:
            return []
        cursor = self._coll("analytics_log").find({"pos": {"$gt": int(after_pos)}})
        return [_message(d) async for d in cursor.sort("pos", ASCENDING).limit(int(limit))]

    async def analytics_log_position(self: _Host) -> int:
        doc = await self._coll("analytics_log").find_one({}, {"pos": 1},
                                                         sort=[("pos", DESCENDING)])
        return 0 if doc is None else int(doc["pos"])
