"""The SQLite store's money: accounts and the journal, the user channel, payment failure.

`post_entry` is one `BEGIN IMMEDIATE` transaction: under the file's write lock it checks
the balances, updates `accounts`, inserts one `postings` row per account, the `entries`
row (with `after`) and the `payment` notices, so a crash or a concurrent writer in another
process never sees part of an entry. Notices take their user's next `seq` (MAX + 1) and
the next `pos` (AUTOINCREMENT) inside the transaction that adds them (`insert_notices`).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable
from typing import Any, Protocol, cast

from market.errors import AUCTION_NOT_FOUND, INSUFFICIENT_FUNDS
from market.ledger import EXTERNAL, USER_PREFIX, is_account
from storage.base import SETTLE_PAYMENT_FAILED, Conflict, StoreError, prefix_bounds
from storage.facts import PAYMENT_FAILED_OUTCOME, json_text
from storage.records import (
    AccountRecord,
    EntryRecord,
    NewNotice,
    NoticeRecord,
    PostingRecord,
    SecondChanceRecord,
    TradeRecord,
)
from storage.sqlite_facts import append_closing

_NOTICE_SELECT = "SELECT user_id, key, type, at, data, seq, pos FROM notices"
_POSTING_SELECT = (
    "SELECT account, version, entry_id, cause, cause_key, at, amount, balance FROM postings"
)
_MAX_PROBLEMS = 100  # per kind of problem check_ledger reports




def _guarded(account: str) -> bool:
    """Accounts that may not go below 0: every one but `external`."""
    return account != EXTERNAL


def _postings(entry: EntryRecord) -> list[tuple[str, int]]:
    """The entry's postings, checked: balanced, distinct accounts, at most one debit of a
    user or `fees` account; StoreError otherwise."""
    raw = entry.get("postings")
    if not isinstance(raw, list):
        raise StoreError(f"entry {entry.get('entry_id')!r}: postings must be a list")
    pairs: list[tuple[str, int]] = []
    for pair in raw:
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise StoreError(f"entry {entry['entry_id']!r}: bad posting {pair!r}")
        account, amount = pair
        if not is_account(account) or isinstance(amount, bool) or not isinstance(amount, int):
            raise StoreError(f"entry {entry['entry_id']!r}: bad posting {pair!r}")
        pairs.append((account, amount))
    if len({a for a, _ in pairs}) != len(pairs):
        raise StoreError(f"entry {entry['entry_id']!r}: an account appears twice")
    if sum(n for _, n in pairs) != 0:
        raise StoreError(f"entry {entry['entry_id']!r}: postings do not sum to 0")
    if sum(1 for a, n in pairs if n < 0 and _guarded(a)) > 1:
        raise StoreError(f"entry {entry['entry_id']!r}: more than one guarded debit")
    return pairs


def _entry(row: tuple[Any, ...]) -> EntryRecord:
    return {"entry_id": row[0], "cause": row[1], "cause_key": row[2], "at": row[3],
            "postings": json.loads(row[4]), "after": json.loads(row[5])}


def _load_entry(conn: sqlite3.Connection, entry_id: str) -> EntryRecord | None:
    row = conn.execute(
        "SELECT entry_id, cause, cause_key, at, postings, after FROM entries WHERE entry_id=?",
        (entry_id,),
    ).fetchone()
    return None if row is None else _entry(row)


def _notice(row: tuple[Any, ...]) -> NoticeRecord:
    return {"user_id": row[0], "key": row[1], "type": row[2], "at": row[3],
            "data": json.loads(row[4]), "seq": row[5], "pos": row[6]}


def _posting(row: tuple[Any, ...]) -> PostingRecord:
    return {"account": row[0], "version": row[1], "entry_id": row[2], "cause": row[3],
            "cause_key": row[4], "at": row[5], "amount": row[6], "balance": row[7]}


# A notice gets its user's next seq (MAX + 1) and the next pos; one whose (user_id, key) is
# stored already is left as it is. One statement: under the writer lock no other seq can come.
_INSERT_NOTICE = (
    "INSERT INTO notices(user_id, seq, key, type, at, data)"
    " SELECT ?1, COALESCE(MAX(seq), 0) + 1, ?2, ?3, ?4, ?5 FROM notices WHERE user_id=?1"
    " ON CONFLICT(user_id, key) DO NOTHING")


def _notice_params(notice: NewNotice) -> tuple[Any, ...]:
    return (notice["user_id"], notice["key"], notice["type"], notice["at"],
            json_text(notice["data"]))


def add_notices(conn: sqlite3.Connection, notices: Iterable[NewNotice]) -> None:
    """`insert_notices` for a caller that needs no records back (the bid path's batch)."""
    conn.executemany(_INSERT_NOTICE, [_notice_params(n) for n in notices])


def insert_notices(conn: sqlite3.Connection, notices: Iterable[NewNotice]) -> list[NoticeRecord]:
    """Add `notices` inside the caller's write transaction; returned in the given order.

    Each gets its user's next seq (MAX + 1) and the next pos; one whose (user_id, key) is
    stored already is returned as stored instead."""
    out: list[NoticeRecord] = []
    for notice in notices:
        params = _notice_params(notice)
        added = conn.execute(_INSERT_NOTICE + " RETURNING seq, pos", params).fetchone()
        if added is None:
            found = conn.execute(_NOTICE_SELECT + " WHERE user_id=? AND key=?",
                                 (notice["user_id"], notice["key"])).fetchone()
            out.append(_notice(found))
            continue
        out.append({"user_id": notice["user_id"], "key": notice["key"], "type": notice["type"],
                    "at": notice["at"], "data": json.loads(params[4]), "seq": int(added[0]),
                    "pos": int(added[1])})
    return out


def _apply_entry(conn: sqlite3.Connection, entry: EntryRecord) -> EntryRecord:
    """post_entry's transaction: the stored entry, or apply it (Conflict rolls it back)."""
    entry_id = entry["entry_id"]
    stored = _load_entry(conn, entry_id)
    if stored is not None:
        return stored
    pairs = _postings(entry)
    lines: list[tuple[str, int, int, int]] = []  # account, version, amount, balance after
    for account, amount in pairs:
        row = conn.execute("SELECT balance, version FROM accounts WHERE account=?",
                           (account,)).fetchone()
        balance, version = (0, 0) if row is None else (int(row[0]), int(row[1]))
        if balance + amount < 0 and _guarded(account):
            raise Conflict(INSUFFICIENT_FUNDS,
                           f"{account} has {balance}, the entry takes {-amount}")
        lines.append((account, version + 1, amount, balance + amount))
    cause, cause_key, at = entry["cause"], entry["cause_key"], entry["at"]
    conn.executemany(
        "INSERT INTO accounts(account, balance, version) VALUES (?,?,?) ON CONFLICT(account)"
        " DO UPDATE SET balance=excluded.balance, version=excluded.version",
        [(a, b, v) for a, v, _, b in lines],
    )
    conn.executemany(
        "INSERT INTO postings(account, version, entry_id, amount, balance, at, cause,"
        " cause_key) VALUES (?,?,?,?,?,?,?,?)",
        [(a, v, entry_id, n, b, at, cause, cause_key) for a, v, n, b in lines],
    )
    record: EntryRecord = {"entry_id": entry_id, "cause": cause, "cause_key": cause_key,
                           "at": at, "postings": [[a, n] for a, n in pairs],
                           "after": {a: b for a, _, _, b in lines}}
    conn.execute(
        "INSERT INTO entries(entry_id, cause, cause_key, at, postings, after)"
        " VALUES (?,?,?,?,?,?)",
        (entry_id, cause, cause_key, at, json_text(record["postings"]), json_text(record["after"])),
    )
    insert_notices(conn, [
        {"user_id": a.removeprefix(USER_PREFIX), "key": f"payment:{entry_id}",
         "type": "payment", "at": at,
         "data": {"entry_id": entry_id, "cause": cause, "ref": cause_key, "amount": n,
                  "balance": b, "version": v}}
        for a, v, n, b in lines if a.startswith(USER_PREFIX)
    ])
    return record


# check_ledger's queries: each row is one problem, described by _PROBLEMS' format.
_ACCOUNT_VS_POSTINGS = """
SELECT a.account, a.balance, a.version, COALESCE(p.total, 0), COALESCE(p.n, 0)
FROM accounts a LEFT JOIN (
    SELECT account, SUM(amount) AS total, COUNT(*) AS n, MAX(version) AS top
    FROM postings GROUP BY account) p ON p.account = a.account
WHERE a.balance != COALESCE(p.total, 0) OR a.version != COALESCE(p.n, 0)
   OR COALESCE(p.top, 0) != COALESCE(p.n, 0)"""
_ENTRY_LINES = """SELECT e.entry_id, json_extract(j.value, '$[0]'), json_extract(j.value, '$[1]')
FROM entries e, json_each(e.postings) j"""
_POSTING_LINES = "SELECT entry_id, account, amount FROM postings"
_PROBLEMS: tuple[tuple[str, str], ...] = (
    (f"SELECT account, balance FROM accounts WHERE balance < 0 AND account != '{EXTERNAL}'",
     "{0} is negative: {1}"),
    (_ACCOUNT_VS_POSTINGS,
     "{0} has balance {1} and version {2}, its postings sum to {3} over {4} versions"),
    ("SELECT account, version, balance, run FROM (SELECT account, version, balance,"
     " SUM(amount) OVER (PARTITION BY account ORDER BY version) AS run FROM postings)"
     " WHERE balance != run",
     "{0} posting {1} records balance {2}, its postings sum to {3}"),
    ("SELECT account FROM postings WHERE account NOT IN (SELECT account FROM accounts)"
     " GROUP BY account",
     "{0} has postings but no account"),
    ("SELECT e.entry_id, SUM(json_extract(j.value, '$[1]')) FROM entries e,"
     " json_each(e.postings) j GROUP BY e.entry_id HAVING SUM(json_extract(j.value, '$[1]'))"
     " != 0",
     "entry {0}: postings sum to {1}, not 0"),
    (f"{_ENTRY_LINES} EXCEPT {_POSTING_LINES}",
     "entry {0}: no posting record of {2} to {1}"),
    (f"{_POSTING_LINES} EXCEPT {_ENTRY_LINES}",
     "a posting record of {2} to {1} is not in entry {0}"),
)


def _check(conn: sqlite3.Connection) -> list[str]:
    """check_ledger's queries, in one read transaction: one snapshot of the file."""
    conn.execute("BEGIN")
    try:
        return _problems(conn)
    finally:
        conn.execute("ROLLBACK")


def _problems(conn: sqlite3.Connection) -> list[str]:
    problems: list[str] = []
    total = conn.execute("SELECT COALESCE(SUM(balance), 0) FROM accounts").fetchone()[0]
    if total != 0:
        problems.append(f"the balances sum to {total}, not 0")
    for sql, words in _PROBLEMS:
        rows = conn.execute(f"{sql} LIMIT {_MAX_PROBLEMS}").fetchall()
        problems += [words.format(*row) for row in rows]
    return problems


class _Host(Protocol):
    """What the money part needs of SqliteStore (see storage.sqlite)."""

    async def _run[T](self, fn: Callable[..., T], *args: Any) -> T: ...

    def _write[T](self, fn: Callable[[sqlite3.Connection], T]) -> T: ...

    @property
    def _db(self) -> sqlite3.Connection: ...


class SqliteMoney:
    """Mixin of SqliteStore: the money, user channel and payment failure part of Store."""

    # -- accounts and the journal ------------------------------------------------------------
    async def post_entry(self: _Host, entry: EntryRecord) -> EntryRecord:
        def tx(conn: sqlite3.Connection) -> EntryRecord:
            return _apply_entry(conn, entry)

        return await self._run(self._write, tx)

    async def get_entry(self: _Host, entry_id: str) -> EntryRecord | None:
        return await self._run(lambda: _load_entry(self._db, entry_id))

    async def get_account(self: _Host, account: str) -> AccountRecord:
        def q() -> AccountRecord:
            row = self._db.execute("SELECT balance, version FROM accounts WHERE account=?",
                                   (account,)).fetchone()
            balance, version = (0, 0) if row is None else (row[0], row[1])
            return {"account": account, "balance": balance, "version": version}

        return await self._run(q)

    async def user_balances(self: _Host) -> dict[str, tuple[int, int]]:
        low, high = prefix_bounds(USER_PREFIX)
        sql = "SELECT account, balance, version FROM accounts WHERE account>=? AND account<?"

        def q() -> dict[str, tuple[int, int]]:
            rows = self._db.execute(sql, (low, high))
            return {a.removeprefix(USER_PREFIX): (b, v) for a, b, v in rows}

        return await self._run(q)

    async def list_postings(self: _Host, account: str, before_version: int | None = None,
                            limit: int = 50) -> list[PostingRecord]:
        if limit <= 0:
            return []
        sql = _POSTING_SELECT + " WHERE account=? AND version<? ORDER BY version DESC LIMIT ?"
        before = (1 << 62) if before_version is None else int(before_version)

        def q() -> list[PostingRecord]:
            return [_posting(r) for r in self._db.execute(sql, (account, before, int(limit)))]

        return await self._run(q)

    async def recover_ledger(self) -> int:
        return 0  # an entry is one transaction: never half-applied

    async def check_ledger(self: _Host) -> list[str]:
        return await self._run(lambda: _check(self._db))

    # -- the user channel ----------------------------------------------------------------------
    async def add_notices(self: _Host, notices: list[NewNotice]) -> list[NoticeRecord]:
        if not notices:
            return []

        def tx(conn: sqlite3.Connection) -> list[NoticeRecord]:
            return insert_notices(conn, notices)

        return await self._run(self._write, tx)

    async def load_notices(self: _Host, user_id: str, after_seq: int = 0,
                           limit: int = 100) -> list[NoticeRecord]:
        if limit <= 0:
            return []
        sql = _NOTICE_SELECT + " WHERE user_id=? AND seq>? ORDER BY seq LIMIT ?"

        def q() -> list[NoticeRecord]:
            rows = self._db.execute(sql, (user_id, int(after_seq), int(limit)))
            return [_notice(r) for r in rows]

        return await self._run(q)

    async def last_notice_seq(self: _Host, user_id: str) -> int:
        def q() -> int:
            row = self._db.execute("SELECT MAX(seq) FROM notices WHERE user_id=?",
                                   (user_id,)).fetchone()
            return int(row[0] or 0)

        return await self._run(q)

    async def notice_feed(self: _Host, after_pos: int, limit: int = 1000) -> list[NoticeRecord]:
        if limit <= 0:
            return []
        sql = _NOTICE_SELECT + " WHERE pos>? ORDER BY pos LIMIT ?"

        def q() -> list[NoticeRecord]:
            return [_notice(r) for r in self._db.execute(sql, (int(after_pos), int(limit)))]

        return await self._run(q)

    async def notice_position(self: _Host) -> int:
        def q() -> int:
            return int(self._db.execute("SELECT COALESCE(MAX(pos), 0) FROM notices")
                       .fetchone()[0])

        return await self._run(q)

    # -- payment failure -------------------------------------------------------------------------
    async def fail_payment(self: _Host, trade: TradeRecord,
                           second_chance: SecondChanceRecord | None = None) -> bool:
        auction_id, asset_id = trade["auction_id"], trade["asset_id"]
        if second_chance is not None and second_chance["auction_id"] != auction_id:
            raise StoreError(f"second chance of {second_chance['auction_id']!r}"
                             f" given for auction {auction_id!r}")

        def tx(conn: sqlite3.Connection) -> bool:
            found = conn.execute(
                "SELECT settled FROM auctions WHERE auction_id=?", (auction_id,)
            ).fetchone()
            if found is None:
                raise Conflict(AUCTION_NOT_FOUND, f"auction {auction_id!r} not found")
            if found[0]:
                return False
            conn.execute("UPDATE assets SET listed_in=NULL WHERE asset_id=? AND listed_in=?",
                         (asset_id, auction_id))
            conn.execute("UPDATE auctions SET settled=1, settle_error=? WHERE auction_id=?",
                         (SETTLE_PAYMENT_FAILED, auction_id))
            if second_chance is not None:
                conn.execute(
                    "INSERT OR IGNORE INTO second_chances(auction_id, user_id, at, data)"
                    " VALUES (?,?,?,?)",
                    (auction_id, second_chance["user_id"], second_chance["at"],
                     json_text(second_chance)),
                )
            append_closing(conn, auction_id, PAYMENT_FAILED_OUTCOME)
            return True

        return await self._run(self._write, tx)

    async def get_second_chance(self: _Host, auction_id: str) -> SecondChanceRecord | None:
        def q() -> SecondChanceRecord | None:
            row = self._db.execute("SELECT data FROM second_chances WHERE auction_id=?",
                                   (auction_id,)).fetchone()
            return None if row is None else cast(SecondChanceRecord, json.loads(row[0]))

        return await self._run(q)

    async def list_second_chances(self: _Host, user_id: str,
                                  limit: int = 100) -> list[SecondChanceRecord]:
        if limit <= 0:
            return []
        sql = ("SELECT data FROM second_chances WHERE user_id=?"
               " ORDER BY at DESC, auction_id DESC LIMIT ?")

        def q() -> list[SecondChanceRecord]:
            rows = self._db.execute(sql, (user_id, int(limit)))
            return [cast(SecondChanceRecord, json.loads(r[0])) for r in rows]

        return await self._run(q)

