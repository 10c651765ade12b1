"""The MongoDB store's tokens: asset documents, lookup by token, and provenance chains.

A token's chain lives inside its asset's document, as the array `provenance`, so that a
record and the change it records are one single-document write (no transactions needed):
`create_asset` inserts the asset with `provenance: [mint]`; `settle` moves `owner_id` and
`$push`es the transfer in the one conditional `update_one` that decides the sale;
`append_provenance` does the same for other changes. Each such update is conditioned on the
chain being exactly what the record extends - `provenance.<seq-1>` absent and
`provenance.<seq-2>.hash` == the record's `prev_hash` (`fence_filter`) - so a retried or
concurrent writer can never append twice or out of order. Asset reads project the chain out.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol, cast

from pymongo import ASCENDING, IndexModel, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError, DuplicateKeyError

from market.errors import ASSET_EXISTS, CERT_EXISTS, PROVENANCE_CONFLICT, TOKEN_NOT_FOUND
from market.provenance import token_id_for
from storage.base import Conflict
from storage.chain import TokenState, check_append, owner_after
from storage.mongo_ownership import PENDING
from storage.ownership import token_change
from storage.records import AssetRecord, ProvenanceRecord

type Doc = dict[str, Any]

log = logging.getLogger(__name__)

ASSET_FIELDS = (
    "asset_id", "owner_id", "title", "metadata", "created_at", "listed_in", "card_id", "grader",
    "grade", "cert", "token_id",
)
# What asset reads leave out: the chain, the ids of the auctions that sold the asset, and
# ownership rows not yet placed (storage.mongo_ownership).
ASSET_PROJECTION = {"provenance": 0, "sold_in": 0, PENDING: 0}
# A grader's certificate number is unique; assets without one (legacy, RAW) are not indexed.
CERT_INDEX = "grader_cert"
TOKEN_INDEX = "token_id"
_STRING = {"$type": "string"}
ASSET_INDEXES = [
    IndexModel([("owner_id", ASCENDING), ("_id", ASCENDING)]),  # list_assets, in pages
    IndexModel([("card_id", ASCENDING), ("grader", ASCENDING)]),
    IndexModel([("grader", ASCENDING), ("cert", ASCENDING)], name=CERT_INDEX, unique=True,
               partialFilterExpression={"grader": _STRING, "cert": _STRING}),
    IndexModel([("token_id", ASCENDING)], name=TOKEN_INDEX, unique=True,
               partialFilterExpression={"token_id": _STRING}),
]
_APPEND_ATTEMPTS = 3


def asset_record(doc: Doc) -> AssetRecord:
    out = {f: doc.get(f) for f in ASSET_FIELDS}
    if doc.get("redeemed"):
        out["redeemed"] = True
    return cast(AssetRecord, out)  # documents are schemaless: this is where they get a type


def duplicate_asset(exc: DuplicateKeyError, doc: Doc) -> Conflict:
    """The Conflict of an asset insert that a unique index refused: _id, (grader, cert) or
    token_id (`keyPattern` names it; servers without it name the index in the message)."""
    details = exc.details or {}
    pattern = details.get("keyPattern") or {}
    if "cert" in pattern or (not pattern and CERT_INDEX in str(details or exc)):
        return Conflict(CERT_EXISTS, f"{doc.get('grader')} certificate {doc.get('cert')!r} is"
                                     " registered")
    if "token_id" in pattern:
        return Conflict(ASSET_EXISTS, f"token {doc.get('token_id')} exists")
    return Conflict(ASSET_EXISTS, f"asset {doc['_id']!r} exists")


def fence_filter(record: ProvenanceRecord) -> Doc:
    """Filter terms matching a chain that `record` extends: `seq - 1` records, the last
    one's hash `prev_hash` (a missing `provenance` field is an empty chain)."""
    length = int(record["seq"]) - 1
    terms: Doc = {f"provenance.{length}": {"$exists": False}}
    if length > 0:
        terms[f"provenance.{length - 1}.hash"] = record["prev_hash"]
    return terms


class _Host(Protocol):
    """What the token part needs of MongoStore (see storage.mongo)."""

    @property
    def assets(self) -> AsyncCollection[Doc]: ...

    async def _flush_ownership(self, asset_id: str) -> int: ...


class MongoTokens:
    """Mixin of MongoStore: lookup by token and the provenance part of the Store contract."""

    async def get_asset_by_token(self: _Host, token_id: str) -> AssetRecord | None:
        doc = await self.assets.find_one({"token_id": token_id}, ASSET_PROJECTION)
        return None if doc is None else asset_record(doc)

    async def load_provenance(self: _Host, token_id: str) -> list[ProvenanceRecord] | None:
        doc = await self.assets.find_one({"token_id": token_id}, {"provenance": 1})
        if doc is None:
            return None
        return [cast(ProvenanceRecord, r) for r in doc.get("provenance") or []]

    async def append_provenance(self: _Host, token_id: str, record: ProvenanceRecord) -> None:
        # Read, check, then write conditioned on everything the check relied on; if another
        # writer got in between, check again against what it left.
        for _ in range(_APPEND_ATTEMPTS):
            doc = await self.assets.find_one(
                {"token_id": token_id},
                {"owner_id": 1, "listed_in": 1, "redeemed": 1, "provenance": 1})
            if doc is None:
                raise Conflict(TOKEN_NOT_FOUND, f"no asset has token {token_id}")
            chain: list[Doc] = doc.get("provenance") or []
            seq = record.get("seq")
            if isinstance(seq, int) and 1 <= seq <= len(chain) and chain[seq - 1] == record:
                await self._flush_ownership(doc["_id"])  # what a crash left pending
                return  # a retry of an append that was applied: nothing (more) to do
            owner, listed_in = doc["owner_id"], doc.get("listed_in")
            check_append(record, TokenState(owner, listed_in, bool(doc.get("redeemed")),
                                            len(chain), chain[-1].get("hash") if chain else None))
            sets: Doc = {"owner_id": owner_after(record, owner)}
            if record["kind"] == "redeem":
                sets["redeemed"] = True
            where: Doc = {"_id": doc["_id"], "owner_id": owner, "redeemed": {"$ne": True},
                          **fence_filter(record)}
            if record["kind"] != "mint":
                where["listed_in"] = None
            push: Doc = {"provenance": record}
            moved = token_change(token_id, record, owner)  # None for a mint
            if moved is not None:
                push[PENDING] = moved
            done = await self.assets.update_one(where, {"$set": sets, "$push": push})
            if done.modified_count == 1:
                await self._flush_ownership(doc["_id"])  # the change's ownership row
                return
        raise Conflict(PROVENANCE_CONFLICT, f"token {token_id} keeps changing concurrently")

    async def _backfill_token_ids(self: _Host) -> None:
        """Give assets written before tokens the token id derived from their id (what the
        API has always shown for them), so that they are found by token."""
        untokened = {"token_id": {"$not": _STRING}}
        ops = [
            UpdateOne({"_id": doc["_id"], **untokened},
                      {"$set": {"token_id": token_id_for(str(doc["_id"]))}})
            async for doc in self.assets.find(untokened, {"_id": 1})
        ]
        if not ops:
            return
        try:
            await self.assets.bulk_write(ops, ordered=False)
        except BulkWriteError as exc:  # a derived id some other asset was given: left as is
            errors = (exc.details or {}).get("writeErrors", [])
            if not errors or any(e.get("code") not in (11000, 11001) for e in errors):
                raise
            log.warning("%d assets keep no token id: %s", len(errors), errors[:3])
