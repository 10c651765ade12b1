"""The MongoDB store's ledger engine: journal entries applied without transactions, the
user channel's notices, and the ledger audit. `storage.mongo_money` exposes them as Store
methods.

An entry is applied in idempotent single-document steps that any caller (a retried
`post_entry`, a concurrent one, `recover_ledger`) can take up and finish:

1. The entry document is inserted `state: pending` with a `plan` for its guarded debit (the
   one posting that takes a `user:` account or `fees` down): the version and balance it is
   to get, planned from the account's latest posting (refused up front if funds are short).
2. The postings, the guarded debit first. `postings` is the authority on balances: an
   account's state is its highest-version posting, and a posting is applied by inserting the
   account's next one, `{account, version: v + 1, balance: b + amount, ...}`, under two
   unique indexes: `(account, version)` - one writer per slot, so each balance follows from
   the one before - and `(account, entry_id)` - an entry moves an account at most once,
   however many callers retry it (a marker never removed). A writer that loses a slot reads
   again and tries the next. The debit is inserted only at the slot its plan names; a plan
   whose slot another entry took can never apply, and is replaced (or, if funds are now
   short, the entry is deleted: refused) by a compare-and-set on the entry document, so
   refusing and applying the debit exclude each other. Once the debit is in, the entry is
   committed: its other postings (credits, `external`) cannot be refused.
3. `accounts` {_id: account, balance, version}, a cache of each account's latest posting
   (read by `user_balances`), is raised - never lowered - to the entry's postings.
4. The `payment` notices, keyed `payment:<entry_id>` (so added once).
5. `state: applied`, with `after`: only now does `get_entry` return it.

Notices: a user's next `seq` is the last one's + 1 under a unique `(user_id, seq)` index,
retried on a collision, so seqs have no gaps; `pos` comes from the counter document
`counters.notice_pos` ($inc), so a pos may be wasted (a gap in the feed), never given twice.
"""

from __future__ import annotations

import contextlib
from typing import Any, Protocol, cast

from pymongo import ASCENDING, DESCENDING, IndexModel, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError, DuplicateKeyError

from market.errors import INSUFFICIENT_FUNDS
from market.ledger import EXTERNAL, USER_PREFIX, is_account
from storage.base import Conflict, StoreError
from storage.mongo_counters import DUP_CODES, reserve
from storage.records import EntryRecord, NewNotice, NoticeRecord, PostingRecord

type Doc = dict[str, Any]

PENDING, APPLIED = "pending", "applied"
NOTICE_POS = "notice_pos"  # the counters document handing out feed positions
_ATTEMPTS = 1000  # slot races lost in a row before giving up (each loss is another's win)
_NOTICE_FIELDS = ("user_id", "key", "type", "at", "data", "seq", "pos")
_POSTING_FIELDS = ("account", "version", "entry_id", "cause", "cause_key", "at", "amount",
                   "balance")
LEDGER_INDEXES: dict[str, list[IndexModel]] = {
    "entries": [IndexModel([("state", ASCENDING)])],
    "postings": [
        IndexModel([("account", ASCENDING), ("version", ASCENDING)], unique=True),
        IndexModel([("account", ASCENDING), ("entry_id", ASCENDING)], unique=True),
    ],
    "notices": [
        IndexModel([("user_id", ASCENDING), ("seq", ASCENDING)], unique=True),
        IndexModel([("user_id", ASCENDING), ("key", ASCENDING)], unique=True),
        IndexModel([("pos", ASCENDING)]),
    ],
}


class Host(Protocol):
    """What the ledger needs of MongoStore (see storage.mongo)."""

    def _coll(self, name: str) -> AsyncCollection[Doc]: ...


class Vanished(Exception):
    """A pending entry was refused and removed by another caller while this one finished it."""


def guarded(account: str, amount: int) -> bool:
    """Whether this posting debits an account that may not go below 0 (all but external)."""
    return amount < 0 and account != EXTERNAL


def ordered(entry_id: str, postings: Any) -> list[tuple[str, int]]:
    """The postings, checked, the guarded debit (at most one) first."""
    try:
        pairs = [(a, n) for a, n in postings]
    except (TypeError, ValueError):
        raise StoreError(f"entry {entry_id!r}: postings are not [account, amount]") from None
    if any(not is_account(a) or isinstance(n, bool) or not isinstance(n, int)
           for a, n in pairs) or sum(n for _, n in pairs) != 0 \
            or len({a for a, _ in pairs}) != len(pairs):
        raise StoreError(f"entry {entry_id!r}: postings must be distinct accounts with"
                         " integer amounts summing to 0")
    debits = [p for p in pairs if guarded(*p)]
    if len(debits) > 1:
        raise StoreError(f"entry {entry_id!r} debits more than one user or fees account")
    return debits + [p for p in pairs if not guarded(*p)]


def entry_record(doc: Doc) -> EntryRecord:
    return EntryRecord(entry_id=doc["_id"], cause=doc["cause"], cause_key=doc["cause_key"],
                       at=doc["at"], postings=[list(p) for p in doc["postings"]],
                       after={a: b for a, b in doc.get("after") or []})


def notice_record(doc: Doc) -> NoticeRecord:
    return cast(NoticeRecord, {f: doc.get(f) for f in _NOTICE_FIELDS})


def posting_record(doc: Doc) -> PostingRecord:
    return cast(PostingRecord, {f: doc.get(f) for f in _POSTING_FIELDS})


def _only_duplicates(exc: BulkWriteError) -> bool:
    details = exc.details or {}
    errors = details.get("writeErrors") or []
    return bool(errors) and not details.get("writeConcernErrors") and all(
        e.get("code") in DUP_CODES for e in errors)


class Books:
    """The money collections, for one operation."""

    def __init__(self, host: Host) -> None:
        self.accounts = host._coll("accounts")
        self.entries = host._coll("entries")
        self.postings = host._coll("postings")
        self.notices = host._coll("notices")
        self.counters = host._coll("counters")

    async def latest(self, account: str) -> tuple[int, int]:
        """(version, balance) of the account's latest posting; (0, 0) when none."""
        doc = await self.postings.find_one({"account": account}, {"version": 1, "balance": 1},
                                           sort=[("version", DESCENDING)])
        return (0, 0) if doc is None else (int(doc["version"]), int(doc["balance"]))

    async def _plan(self, account: str, amount: int) -> Doc | None:
        """Where the guarded debit would go now; None if funds are short."""
        version, balance = await self.latest(account)
        if balance + amount < 0:
            return None
        return {"version": version + 1, "balance": balance + amount}

    # -- posting an entry ------------------------------------------------------------------
    async def post(self, entry: EntryRecord) -> EntryRecord:
        entry_id = entry["entry_id"]
        try:
            pairs = ordered(entry_id, entry.get("postings"))
        except StoreError:  # the stored entry stands, whatever is given
            stored = await self.entries.find_one({"_id": entry_id})
            if stored is None:
                raise
            return await self.finish(stored)
        debit = pairs[0] if pairs and guarded(*pairs[0]) else None
        for _ in range(_ATTEMPTS):
            plan = None if debit is None else await self._plan(*debit)
            if debit is None or plan is not None:
                doc: Doc = {"_id": entry_id, "cause": entry["cause"],
                            "cause_key": entry["cause_key"], "at": entry["at"],
                            "postings": [list(p) for p in entry["postings"]],
                            "state": PENDING, "plan": plan}
                try:
                    await self.entries.insert_one(doc)
                except DuplicateKeyError:
                    pass  # stored already: what is stored decides, below
                else:
                    with contextlib.suppress(Vanished):
                        return await self.finish(doc)
                    continue
            stored = await self.entries.find_one({"_id": entry_id})
            if stored is None:
                if plan is None:
                    raise Conflict(INSUFFICIENT_FUNDS, f"entry {entry_id}: insufficient funds")
                continue  # refused and removed by a concurrent caller just now: try again
            with contextlib.suppress(Vanished):
                return await self.finish(stored)
        raise StoreError(f"entry {entry_id}: gave up after {_ATTEMPTS} attempts")

    async def finish(self, doc: Doc) -> EntryRecord:
        """Apply what is left of a stored entry. Conflict INSUFFICIENT_FUNDS if its debit is
        refused now (the entry is removed); Vanished if another caller removed it."""
        if doc["state"] == APPLIED:
            return entry_record(doc)
        pairs = ordered(doc["_id"], doc["postings"])
        done: list[Doc] = []
        if pairs and guarded(*pairs[0]):
            doc, debit = await self._debit(doc, *pairs[0])
            if doc["state"] == APPLIED:
                return entry_record(doc)
            pairs = ordered(doc["_id"], doc["postings"])  # the entry as it stands now
            done.append(debit)
        for account, amount in pairs[len(done):]:
            done.append(await self._credit(doc, account, amount))
        await self._cache(done)
        await self.add_notices([{
            "user_id": p["account"].removeprefix(USER_PREFIX), "key": f"payment:{doc['_id']}",
            "type": "payment", "at": doc["at"],
            "data": {"entry_id": doc["_id"], "cause": doc["cause"], "ref": doc["cause_key"],
                     "amount": p["amount"], "balance": p["balance"], "version": p["version"]},
        } for p in done if p["account"].startswith(USER_PREFIX)])
        balances = {p["account"]: p["balance"] for p in done}
        after = [[a, balances[a]] for a, _ in doc["postings"]]
        await self.entries.update_one({"_id": doc["_id"], "state": PENDING},
                                      {"$set": {"state": APPLIED, "after": after},
                                       "$unset": {"plan": ""}})
        return entry_record({**doc, "after": after})

    @staticmethod
    def _posting(doc: Doc, account: str, amount: int, version: int, balance: int) -> Doc:
        return {"account": account, "version": version, "entry_id": doc["_id"],
                "amount": amount, "balance": balance, "at": doc["at"], "cause": doc["cause"],
                "cause_key": doc["cause_key"]}

    async def _debit(self, doc: Doc, account: str, amount: int) -> tuple[Doc, Doc]:
        """Apply the guarded debit at the slot the entry's plan names, replanning while
        other entries take the slot. Returns the entry document as it stands (whose
        postings are the ones to apply) and the debit's posting ({} if it is applied)."""
        entry_id = doc["_id"]
        for _ in range(_ATTEMPTS):
            plan: Doc | None = doc.get("plan")
            if plan is not None:
                posting = self._posting(doc, account, amount, plan["version"], plan["balance"])
                with contextlib.suppress(DuplicateKeyError):
                    await self.postings.insert_one(posting)
                    return doc, posting
            mine = await self.postings.find_one({"account": account, "entry_id": entry_id})
            if mine is not None:  # applied (before a crash, or by a concurrent caller)
                current = await self.entries.find_one({"_id": entry_id})
                if current is None:
                    raise StoreError(f"entry {entry_id} is gone but its debit was applied")
                return current, mine
            # The plan's slot went to another entry: it can never apply. Replace it or
            # refuse the entry, conditioned on the plan, so that one caller decides.
            where = {"_id": entry_id, "state": PENDING, "plan": plan}
            fresh = await self._plan(account, amount)
            if fresh is None:
                if (await self.entries.delete_one(where)).deleted_count == 1:
                    raise Conflict(INSUFFICIENT_FUNDS, f"entry {entry_id}: insufficient funds")
            else:
                await self.entries.update_one(where, {"$set": {"plan": fresh}})
            reloaded = await self.entries.find_one({"_id": entry_id})
            if reloaded is None:
                raise Vanished(entry_id)
            doc = reloaded
            if doc["state"] == APPLIED:
                return doc, {}
        raise StoreError(f"entry {entry_id}: gave up after {_ATTEMPTS} attempts")

    async def _credit(self, doc: Doc, account: str, amount: int) -> Doc:
        """Apply a posting that cannot be refused at the account's next slot (once)."""
        for _ in range(_ATTEMPTS):
            version, balance = await self.latest(account)
            posting = self._posting(doc, account, amount, version + 1, balance + amount)
            try:
                await self.postings.insert_one(posting)
                return posting
            except DuplicateKeyError:  # the slot was taken, or this entry applied here
                mine = await self.postings.find_one({"account": account,
                                                     "entry_id": doc["_id"]})
                if mine is not None:
                    return mine
        raise StoreError(f"entry {doc['_id']}: gave up on {account} after {_ATTEMPTS} tries")

    async def _cache(self, postings: list[Doc]) -> None:
        """Raise each account's cached balance and version to these postings'."""
        ops = [UpdateOne({"_id": p["account"], "version": {"$lt": p["version"]}},
                         {"$set": {"balance": p["balance"], "version": p["version"]}},
                         upsert=True) for p in postings]
        if not ops:
            return
        try:
            await self.accounts.bulk_write(ops, ordered=False)
        except BulkWriteError as exc:  # an upsert found a newer version cached: fine
            if not _only_duplicates(exc):
                raise

    async def recover(self) -> int:
        count = 0
        async for doc in self.entries.find({"state": PENDING}):
            with contextlib.suppress(Vanished):
                try:
                    await self.finish(doc)
                except Conflict as exc:
                    if exc.code != INSUFFICIENT_FUNDS:
                        raise
            count += 1
        return count

    # -- notices ---------------------------------------------------------------------------
    async def add_notices(self, notices: list[NewNotice]) -> list[NoticeRecord]:
        if not notices:
            return []
        pairs = list(dict.fromkeys((n["user_id"], n["key"]) for n in notices))
        stored = {(d["user_id"], d["key"]): notice_record(d) async for d in self.notices.find(
            {"$or": [{"user_id": u, "key": k} for u, k in pairs]})}
        new = [p for p in pairs if p not in stored]
        if new:
            top = await self._positions(len(new))
            first = {(n["user_id"], n["key"]): n for n in reversed(notices)}
            for pos, pair in zip(range(top - len(new) + 1, top + 1), new, strict=True):
                stored[pair] = await self._add(first[pair], pos)
        return [stored[(n["user_id"], n["key"])] for n in notices]

    async def _positions(self, count: int) -> int:
        """Reserve `count` feed positions; returns the highest."""
        return await reserve(self.counters, NOTICE_POS, count)

    async def _add(self, notice: NewNotice, pos: int) -> NoticeRecord:
        user_id, key = notice["user_id"], notice["key"]
        for _ in range(_ATTEMPTS):
            last = await self.notices.find_one({"user_id": user_id}, {"seq": 1},
                                               sort=[("seq", DESCENDING)])
            doc: Doc = {"user_id": user_id, "key": key, "type": notice["type"],
                        "at": notice["at"], "data": notice["data"],
                        "seq": 1 if last is None else int(last["seq"]) + 1, "pos": pos}
            try:
                await self.notices.insert_one(doc)
                return notice_record(doc)
            except DuplicateKeyError:  # the seq was taken, or the notice added concurrently
                found = await self.notices.find_one({"user_id": user_id, "key": key})
                if found is not None:
                    return notice_record(found)  # `pos` stays unused: a gap in the feed
        raise StoreError(f"notice {key!r} of {user_id!r}: gave up after {_ATTEMPTS} tries")

    # -- the audit -------------------------------------------------------------------------
    async def audit(self) -> list[str]:
        """check_ledger: see storage.base.Store.check_ledger."""
        problems: list[str] = []
        latest: dict[str, tuple[int, int]] = {}  # account -> (version, balance)
        moved: dict[tuple[str, str], Doc] = {}  # (account, entry_id) -> posting
        cursor = self.postings.find({}, {"_id": 0}).sort([("account", ASCENDING),
                                                          ("version", ASCENDING)])
        async for p in cursor:
            account, version, balance = p["account"], p["version"], p["balance"]
            before_v, before_b = latest.get(account, (0, 0))
            if (version, balance) != (before_v + 1, before_b + p["amount"]):
                problems.append(f"{account}: posting {version} (entry {p['entry_id']}, balance"
                                f" {balance}) does not follow version {before_v} at {before_b}")
            latest[account] = (version, balance)
            moved[(account, p["entry_id"])] = p
        cached = {d["_id"]: (d.get("version"), d.get("balance"))
                  async for d in self.accounts.find({})}
        for account in sorted(latest.keys() | cached.keys()):
            version, balance = latest.get(account, (0, 0))
            if cached.get(account) != (version, balance):
                problems.append(f"{account}: (version, balance) {cached.get(account)} stored,"
                                f" ({version}, {balance}) by its postings")
            if balance < 0 and account != EXTERNAL:
                problems.append(f"{account}: negative balance {balance}")
        if (total := sum(b for _, b in latest.values())) != 0:
            problems.append(f"the balances sum to {total}, not 0")
        if (cached_total := sum(b or 0 for _, b in cached.values())) != 0:
            problems.append(f"the stored balances sum to {cached_total}, not 0")
        async for e in self.entries.find({}):
            entry_id = e["_id"]
            if e.get("state") != APPLIED:
                problems.append(f"entry {entry_id} is half-applied ({e.get('state')})")
            if sum(n for _, n in e["postings"]) != 0:
                problems.append(f"entry {entry_id}: postings do not sum to 0")
            after = dict(e.get("after") or [])
            for account, amount in e["postings"]:
                line = moved.pop((account, entry_id), None)
                if line is None:
                    problems.append(f"entry {entry_id}: no posting record for {account}")
                elif line["amount"] != amount or (e.get("state") == APPLIED
                                                  and after.get(account) != line["balance"]):
                    problems.append(f"entry {entry_id}: {account}'s posting record disagrees")
        for account, entry_id in sorted(moved):
            problems.append(f"{account}: a posting of entry {entry_id}, which is not stored")
        return problems
