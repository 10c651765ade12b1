"""The MongoDB store's money part of the Store contract: accounts and the journal, the user
channel and payment failures (a mixin of MongoStore).

The ledger engine - how an entry is applied exactly once without transactions, how notices
get gap-free seqs - is `storage.mongo_ledger`. Collections: `entries` {_id: entry_id, cause,
cause_key, at, postings, state: pending | applied, plan, after: [[account, balance], ...]},
`postings` {account, version, entry_id, amount, balance, at, cause, cause_key} (unique
(account, version) and (account, entry_id)), `accounts` {_id: account, balance, version}
(a cache of each account's latest posting), `notices` {user_id, seq, key, type, at, data,
pos} (unique (user_id, seq) and (user_id, key); by pos), `counters` {_id: "notice_pos", n}
and `second_chances` {_id: auction_id, ...SecondChanceRecord} (by user_id, at).
"""

from __future__ import annotations

import contextlib
from typing import Any, Protocol, cast

from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from market.ledger import USER_PREFIX
from storage.base import SETTLE_PAYMENT_FAILED
from storage.mongo_ledger import (
    APPLIED,
    LEDGER_INDEXES,
    Books,
    entry_record,
    notice_record,
    posting_record,
)
from storage.records import (
    AccountRecord,
    EntryRecord,
    NewNotice,
    NoticeRecord,
    PostingRecord,
    SecondChanceRecord,
    TradeRecord,
)

type Doc = dict[str, Any]

# `user:` accounts are the _ids in [USER_PREFIX, _USER_END): ';' follows ':'.
_USER_END = USER_PREFIX[:-1] + chr(ord(USER_PREFIX[-1]) + 1)


class _Host(Protocol):
    """What the money part needs of MongoStore (see storage.mongo)."""

    def _coll(self, name: str) -> AsyncCollection[Doc]: ...

    @property
    def assets(self) -> AsyncCollection[Doc]: ...

    @property
    def auctions(self) -> AsyncCollection[Doc]: ...

    async def _is_settled(self, auction_id: str) -> bool: ...

    async def _payment_failed_closing(self, auction_id: str) -> None: ...


def _second_chance(doc: Doc) -> SecondChanceRecord:
    doc.pop("_id", None)
    return cast(SecondChanceRecord, doc)  # documents are schemaless: here they get a type


class MongoMoney:
    """Mixin of MongoStore: accounts, the journal, notices, payment failures."""

    async def _open_money(self: _Host) -> None:
        """Create the money collections' indexes (from MongoStore.open)."""
        for name, indexes in LEDGER_INDEXES.items():
            await self._coll(name).create_indexes(indexes)
        await self._coll("second_chances").create_indexes(
            [IndexModel([("user_id", ASCENDING), ("at", DESCENDING)])])

    # -- accounts and the journal ----------------------------------------------------------
    async def post_entry(self: _Host, entry: EntryRecord) -> EntryRecord:
        return await Books(self).post(entry)

    async def get_entry(self: _Host, entry_id: str) -> EntryRecord | None:
        doc = await Books(self).entries.find_one({"_id": entry_id, "state": APPLIED})
        return None if doc is None else entry_record(doc)

    async def get_account(self: _Host, account: str) -> AccountRecord:
        version, balance = await Books(self).latest(account)
        return AccountRecord(account=account, balance=balance, version=version)

    async def user_balances(self: _Host) -> dict[str, tuple[int, int]]:
        cursor = Books(self).accounts.find({"_id": {"$gte": USER_PREFIX, "$lt": _USER_END}})
        return {d["_id"].removeprefix(USER_PREFIX): (int(d["balance"]), int(d["version"]))
                async for d in cursor}

    async def list_postings(self: _Host, account: str, before_version: int | None = None,
                            limit: int = 50) -> list[PostingRecord]:
        if limit <= 0:
            return []
        query: Doc = {"account": account}
        if before_version is not None:
            query["version"] = {"$lt": int(before_version)}
        cursor = Books(self).postings.find(query).sort("version", DESCENDING).limit(int(limit))
        return [posting_record(d) async for d in cursor]

    async def recover_ledger(self: _Host) -> int:
        return await Books(self).recover()

    async def check_ledger(self: _Host) -> list[str]:
        return await Books(self).audit()

    # -- the user channel ------------------------------------------------------------------
    async def add_notices(self: _Host, notices: list[NewNotice]) -> list[NoticeRecord]:
        return await Books(self).add_notices(notices)

    async def load_notices(self: _Host, user_id: str, after_seq: int = 0,
                           limit: int = 100) -> list[NoticeRecord]:
        if limit <= 0:
            return []
        cursor = Books(self).notices.find({"user_id": user_id, "seq": {"$gt": int(after_seq)}})
        return [notice_record(d) async for d in cursor.sort("seq", ASCENDING).limit(int(limit))]

    async def last_notice_seq(self: _Host, user_id: str) -> int:
        doc = await Books(self).notices.find_one({"user_id": user_id}, {"seq": 1},
                                                 sort=[("seq", DESCENDING)])
        return int(doc["seq"]) if doc else 0

    async def notice_feed(self: _Host, after_pos: int, limit: int = 1000) -> list[NoticeRecord]:
        if limit <= 0:
            return []
        cursor = Books(self).notices.find({"pos": {"$gt": int(after_pos)}})
        return [notice_record(d) async for d in cursor.sort("pos", ASCENDING).limit(int(limit))]

    async def notice_position(self: _Host) -> int:
        doc = await Books(self).notices.find_one({}, {"pos": 1}, sort=[("pos", DESCENDING)])
        return 0 if doc is None else int(doc["pos"])

    # -- payment failure -------------------------------------------------------------------
    async def fail_payment(self: _Host, trade: TradeRecord,
                           second_chance: SecondChanceRecord | None = None) -> bool:
        # Idempotent single-document steps, `settled` last (it decides the answer): a retry
        # after a crash anywhere redoes what is missing and changes nothing else.
        auction_id = trade["auction_id"]
        if await self._is_settled(auction_id):
            return False
        if second_chance is not None:
            with contextlib.suppress(DuplicateKeyError):  # one per auction: the first stands
                await self._coll("second_chances").insert_one(
                    {**second_chance, "_id": auction_id})
        await self.assets.update_one({"_id": trade["asset_id"], "listed_in": auction_id},
                                     {"$set": {"listed_in": None, "listed_at": None}})
        await self._payment_failed_closing(auction_id)  # a fact, keyed by the auction
        res = await self.auctions.update_one(
            {"_id": auction_id, "settled": False},
            {"$set": {"settled": True, "settle_error": SETTLE_PAYMENT_FAILED}})
        return res.modified_count == 1

    async def get_second_chance(self: _Host, auction_id: str) -> SecondChanceRecord | None:
        doc = await self._coll("second_chances").find_one({"_id": auction_id})
        return None if doc is None else _second_chance(doc)

    async def list_second_chances(self: _Host, user_id: str,
                                  limit: int = 100) -> list[SecondChanceRecord]:
        if limit <= 0:
            return []
        cursor = self._coll("second_chances").find({"user_id": user_id}).sort(
            [("at", DESCENDING), ("_id", DESCENDING)]).limit(int(limit))
        return [_second_chance(d) async for d in cursor]
