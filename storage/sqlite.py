"""SQLite back end: one file shared by many processes (Ray actors + gateway workers).

Concurrency model: WAL lets readers proceed while one writer holds the lock; every write
transaction starts with BEGIN IMMEDIATE so the write lock is taken up front (a deferred
read->write upgrade fails with SQLITE_BUSY without waiting on the busy handler). Each store
instance owns one connection used from one dedicated thread, keeping blocking sqlite3 calls
off the event loop while preserving sqlite3's one-connection-per-thread comfort zone.

Writers take turns on the file's writer lock first (`storage.sqlite_lock`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from market.errors import (
    ASSET_EXISTS,
    ASSET_LISTED,
    ASSET_NOT_FOUND,
    ASSET_REDEEMED,
    AUCTION_EXISTS,
    AUCTION_NOT_FOUND,
    CERT_EXISTS,
    NOT_OWNER,
    USER_EXISTS,
    USERNAME_TAKEN,
)
from market.provenance import token_id_for
from storage.base import (
    FINISHED_STATUSES,
    OPEN_STATUSES,
    SETTLE_ASSET_MOVED,
    CommitBatch,
    Conflict,
    Store,
    StoreError,
    event_key,
    log_asset_moved,
    username_key,
)
from storage.chain import check_mint, check_transfer
from storage.clock import now_ms
from storage.facts import UNSOLD, json_text
from storage.ownership import auction_change, mint_change
from storage.records import AssetRecord, AuctionRecord, ProvenanceRecord, TradeRecord, UserRecord
from storage.sqlite_catalog import SqliteCatalog
from storage.sqlite_commit import write_batch
from storage.sqlite_facts import SqliteFacts, append_closing, settle_facts
from storage.sqlite_lock import WriterLock
from storage.sqlite_money import SqliteMoney
from storage.sqlite_offers import SqliteOffers
from storage.sqlite_ownership import SqliteOwnership, append_ownership
from storage.sqlite_schema import connect, sync_mode
from storage.sqlite_tokens import (
    ASSET_SELECT,
    SqliteTokens,
    asset_row,
    insert_record,
    sell_with_record,
)

log = logging.getLogger(__name__)

_AUCTION_COLS = (
    "auction_id, asset_id, seller_id, host, spec, view, status, seq,"
    " (SELECT data FROM auction_snapshots s WHERE s.auction_id=auctions.auction_id), settled,"
    " created_at, settle_error"
)




def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


_TRADE_COLS = "data, premium, seller_fee"


def _trade(row: tuple[Any, ...]) -> TradeRecord:
    """A TradeRecord from a row of _TRADE_COLS: premium and seller_fee only when set."""
    trade: TradeRecord = json.loads(row[0])
    trade.pop("premium", None)
    trade.pop("seller_fee", None)
    if row[1] is not None:
        trade["premium"] = row[1]
    if row[2] is not None:
        trade["seller_fee"] = row[2]
    return trade


def _rollback(conn: sqlite3.Connection) -> None:
    """Roll back if a transaction is still open; never masks the error being handled.

    SQLite may already have rolled back by itself (e.g. after SQLITE_FULL), in which case a
    bare ROLLBACK would raise "no transaction is active" instead of the real error.
    """
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


class SqliteStore(SqliteCatalog, SqliteTokens, SqliteMoney, SqliteOffers, SqliteFacts,
                  SqliteOwnership, Store):
    def __init__(self, path: str, synchronous: str = "FULL") -> None:
        self.path = path
        self.synchronous = sync_mode(synchronous)
        self._conn: sqlite3.Connection | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._writer = WriterLock(path)

    # -- plumbing --------------------------------------------------------------------------
    async def _run[T](self, fn: Callable[..., T], *args: Any) -> T:
        if self._pool is None or self._conn is None:
            raise StoreError("store is not open")
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    @property
    def _db(self) -> sqlite3.Connection:
        assert self._conn is not None
        return self._conn

    def _write[T](self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run fn inside BEGIN IMMEDIATE ... COMMIT, rolling back on any exception.

        A failed COMMIT (disk full, I/O error, busy) leaves SQLite inside the transaction,
        holding the file's write lock; it is rolled back here and reported as StoreError so
        that this connection, and every other process, can keep writing.
        """
        conn = self._db
        with self._writer.turn():  # this file's writers, in every process, take turns
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn)
            except BaseException:
                _rollback(conn)
                raise
            try:
                conn.execute("COMMIT")
            except BaseException as exc:
                _rollback(conn)
                if isinstance(exc, sqlite3.Error):
                    raise StoreError(f"commit failed, transaction rolled back: {exc}") from exc
                raise
            return result

    # -- lifecycle -------------------------------------------------------------------------
    async def open(self) -> None:
        if self._conn is not None:
            return
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="ece-sqlite")
        loop = asyncio.get_running_loop()
        try:
            self._conn = await loop.run_in_executor(
                self._pool, connect, self.path, self.synchronous)
            self._writer.open()
        except BaseException:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            self._pool.shutdown(wait=False)
            self._pool = None
            raise

    async def close(self) -> None:
        if self._pool is None:
            return
        pool, conn = self._pool, self._conn
        self._conn = None
        if conn is not None:
            await asyncio.get_running_loop().run_in_executor(pool, conn.close)
        pool.shutdown(wait=True)
        self._pool = None
        self._writer.close()

    # -- users -----------------------------------------------------------------------------
    async def create_user(self, user: UserRecord) -> None:
        row = (
            user["user_id"],
            user["username"],
            username_key(user["username"]),
            user["password_hash"],
            user.get("created_at"),
            int(bool(user.get("portfolio_public"))),
        )

        def tx(conn: sqlite3.Connection) -> None:
            # Explicit checks (under the write lock) give precise conflict codes.
            if conn.execute("SELECT 1 FROM users WHERE username_key=?", (row[2],)).fetchone():
                raise Conflict(USERNAME_TAKEN, f"username {row[1]!r} is taken")
            if conn.execute("SELECT 1 FROM users WHERE user_id=?", (row[0],)).fetchone():
                raise Conflict(USER_EXISTS, f"user {row[0]!r} exists")
            conn.execute(
                "INSERT INTO users(user_id, username, username_key, password_hash, created_at,"
                " portfolio_public) VALUES (?,?,?,?,?,?)",
                row,
            )

        await self._run(self._write, tx)

    _USER_SELECT = ("SELECT user_id, username, password_hash, created_at, portfolio_public"
                    " FROM users")

    @staticmethod
    def _user(row: tuple[Any, ...] | None) -> UserRecord | None:
        if row is None:
            return None
        return UserRecord(user_id=row[0], username=row[1], password_hash=row[2],
                          created_at=row[3], portfolio_public=bool(row[4]))

    async def get_user(self, user_id: str) -> UserRecord | None:
        def q() -> UserRecord | None:
            sql = self._USER_SELECT + " WHERE user_id=?"
            return self._user(self._db.execute(sql, (user_id,)).fetchone())

        return await self._run(q)

    async def get_user_by_username(self, username: str) -> UserRecord | None:
        key = username_key(username)

        def q() -> UserRecord | None:
            sql = self._USER_SELECT + " WHERE username_key=?"
            return self._user(self._db.execute(sql, (key,)).fetchone())

        return await self._run(q)

    async def set_portfolio_public(self, user_id: str, public: bool) -> bool:
        def tx(conn: sqlite3.Connection) -> bool:
            sql = "UPDATE users SET portfolio_public=? WHERE user_id=?"
            return conn.execute(sql, (int(public), user_id)).rowcount == 1

        return await self._run(self._write, tx)

    # -- assets ----------------------------------------------------------------------------
    async def create_asset(self, asset: AssetRecord, mint: ProvenanceRecord | None = None) -> None:
        if mint is not None:
            check_mint(asset, mint)
        grader, cert = asset.get("grader"), asset.get("cert")
        token_id = asset.get("token_id") or token_id_for(asset["asset_id"])
        row = (
            asset["asset_id"],
            asset["owner_id"],
            asset["title"],
            json_text(asset.get("metadata") or {}),
            asset.get("created_at"),
            *(asset.get(f) for f in ("card_id", "grader", "grade", "cert")),
            token_id,
        )

        def tx(conn: sqlite3.Connection) -> None:
            # Under the write lock; unique indexes back the cert and token checks.
            if conn.execute("SELECT 1 FROM assets WHERE asset_id=?", (row[0],)).fetchone():
                raise Conflict(ASSET_EXISTS, f"asset {row[0]!r} exists")
            if grader is not None and cert is not None and conn.execute(
                "SELECT 1 FROM assets WHERE grader=? AND cert=?", (grader, cert)
            ).fetchone():
                raise Conflict(CERT_EXISTS, f"{grader} certificate {cert!r} is registered")
            if conn.execute("SELECT 1 FROM assets WHERE token_id=?", (token_id,)).fetchone():
                raise Conflict(ASSET_EXISTS, f"token {token_id} exists")
            conn.execute(
                "INSERT INTO assets(asset_id, owner_id, title, metadata, created_at, card_id,"
                " grader, grade, cert, token_id, listed_in) VALUES (?,?,?,?,?,?,?,?,?,?,NULL)",
                row,
            )
            if mint is not None:  # the same transaction: both or neither
                insert_record(conn, token_id, mint)
            append_ownership(conn, asset["asset_id"], mint_change(asset, mint, now_ms()))

        await self._run(self._write, tx)

    async def get_asset(self, asset_id: str) -> AssetRecord | None:
        def q() -> AssetRecord | None:
            found = self._db.execute(ASSET_SELECT + " WHERE asset_id=?", (asset_id,)).fetchone()
            return None if found is None else asset_row(found)

        return await self._run(q)

    async def list_assets(self, owner_id: str, limit: int | None = None,
                          after: str | None = None) -> list[AssetRecord]:
        if limit is not None and limit <= 0:
            return []
        sql = ASSET_SELECT + " WHERE owner_id=?"
        args: list[Any] = [owner_id]
        if after is not None:
            sql += " AND asset_id>?"
            args.append(after)
        sql += " ORDER BY asset_id LIMIT ?"
        args.append(-1 if limit is None else int(limit))

        def q() -> list[AssetRecord]:
            return [asset_row(r) for r in self._db.execute(sql, args)]

        return await self._run(q)

    # -- auctions --------------------------------------------------------------------------
    async def create_auction(self, record: AuctionRecord) -> None:
        view = record["view"]
        auction_id, asset_id, seller_id = (
            record["auction_id"],
            record["asset_id"],
            record["seller_id"],
        )
        row = (
            auction_id,
            asset_id,
            seller_id,
            record["host"],
            json_text(record["spec"]),
            json_text(view),
            record["status"],
            int(record.get("seq", 0)),
            view.get("ends_at", record["spec"].get("ends_at")),
            record.get("created_at"),
        )

        def tx(conn: sqlite3.Connection) -> None:
            # Check-then-write is atomic because BEGIN IMMEDIATE holds the file's write lock.
            found = conn.execute(
                "SELECT owner_id, listed_in, redeemed FROM assets WHERE asset_id=?", (asset_id,)
            ).fetchone()
            if found is None:
                raise Conflict(ASSET_NOT_FOUND, f"asset {asset_id!r} not found")
            if found[0] != seller_id:
                raise Conflict(NOT_OWNER, f"asset {asset_id!r} is not owned by the seller")
            if found[2]:
                raise Conflict(ASSET_REDEEMED, f"asset {asset_id!r} was redeemed")
            if found[1] is not None:
                raise Conflict(ASSET_LISTED, f"asset {asset_id!r} is listed in {found[1]!r}")
            if conn.execute("SELECT 1 FROM auctions WHERE auction_id=?", (auction_id,)).fetchone():
                raise Conflict(AUCTION_EXISTS, f"auction {auction_id!r} exists")
            conn.execute(
                "INSERT INTO auctions(auction_id, asset_id, seller_id, host, spec, view,"
                " status, seq, ends_at, created_at, told) VALUES (?,?,?,?,?,?,?,?,?,?,0)",
                row,
            )
            conn.execute("UPDATE assets SET listed_in=? WHERE asset_id=?", (auction_id, asset_id))

        await self._run(self._write, tx)

    @staticmethod
    def _record(row: tuple[Any, ...]) -> AuctionRecord:
        return {
            "auction_id": row[0],
            "asset_id": row[1],
            "seller_id": row[2],
            "host": row[3],
            "spec": _loads(row[4]),
            "view": _loads(row[5]),
            "status": row[6],
            "seq": row[7],
            "snapshot": _loads(row[8]),
            "settled": bool(row[9]),
            "created_at": row[10],
            "settle_error": row[11],
        }

    def _records(self, where: str, args: Iterable[Any]) -> list[AuctionRecord]:
        sql = f"SELECT {_AUCTION_COLS} FROM auctions WHERE {where}"
        return [self._record(r) for r in self._db.execute(sql, tuple(args))]

    async def get_auction(self, auction_id: str) -> AuctionRecord | None:
        def q() -> AuctionRecord | None:
            found = self._records("auction_id=?", (auction_id,))
            return found[0] if found else None

        return await self._run(q)

    async def list_auctions(
        self, status: str | None = None, limit: int = 200, seller_id: str | None = None
    ) -> list[dict[str, Any]]:
        clauses: list[str] = []
        args: list[Any] = []
        if status is not None:
            clauses.append("status=?")
            args.append(status)
        if seller_id is not None:
            clauses.append("seller_id=?")
            args.append(seller_id)
        where = " AND ".join(clauses) or "1"
        # Finished auctions are browsed as history: most recently ended first.
        order = "DESC" if status in FINISHED_STATUSES else "ASC"
        sql = (
            f"SELECT view FROM auctions WHERE {where}"
            f" ORDER BY ends_at {order}, auction_id {order} LIMIT ?"
        )
        args.append(int(limit))

        def q() -> list[dict[str, Any]]:
            return [json.loads(r[0]) for r in self._db.execute(sql, args)]

        return await self._run(q)

    async def open_auctions(self, host: str | None = None) -> list[AuctionRecord]:
        where = f"status IN ({','.join('?' * len(OPEN_STATUSES))})"
        args: list[Any] = list(OPEN_STATUSES)
        if host is not None:
            where += " AND host=?"
            args.append(host)
        where += " ORDER BY ends_at, auction_id"
        return await self._run(self._records, where, args)

    async def commit(self, batch: CommitBatch) -> set[str]:
        if batch.is_empty():
            return set()
        return await self._run(self._commit, batch)

    def _commit(self, batch: CommitBatch) -> set[str]:
        # Serialise in the worker thread so the caller's event loop stays free.
        groups: dict[str, list[tuple[str, int, str]]] = {}
        rows: list[tuple[str, int, str]] = []
        for event in batch.events:
            auction_id, seq = event_key(event)
            row = (auction_id, seq, json_text(event))
            rows.append(row)
            groups.setdefault(auction_id, []).append(row)
        views = [
            (json_text(v), int(v["seq"]), aid, int(v["seq"]), v["status"], v.get("ends_at"))
            for aid, v in batch.views.items()
        ]
        snaps = [(aid, int(s["seq"]), json_text(s)) for aid, s in batch.snapshots.items()]
        return self._write(
            lambda conn: write_batch(conn, rows, groups, views, snaps, batch.notices))

    async def load_events(
        self, auction_id: str, after_seq: int = 0, limit: int | None = None
    ) -> list[dict[str, Any]]:
        sql = "SELECT data FROM events WHERE auction_id=? AND seq>? ORDER BY seq LIMIT ?"
        args = (auction_id, int(after_seq), -1 if limit is None else int(limit))

        def q() -> list[dict[str, Any]]:
            return [json.loads(r[0]) for r in self._db.execute(sql, args)]

        return await self._run(q)

    # -- settlement ------------------------------------------------------------------------
    async def settle(self, trade: TradeRecord, transfer: ProvenanceRecord | None = None) -> bool:
        if transfer is not None:
            check_transfer(trade, transfer)
        auction_id, asset_id = trade["auction_id"], trade["asset_id"]
        seller_id, buyer_id = trade["seller_id"], trade["buyer_id"]
        trade_row = (auction_id, asset_id, seller_id, buyer_id, trade.get("at"),
                     trade.get("premium"), trade.get("seller_fee"), json_text(trade))

        def tx(conn: sqlite3.Connection) -> bool | None:
            """True: sold and settled now; False: already settled; None: asset moved."""
            found = conn.execute(
                "SELECT settled FROM auctions WHERE auction_id=?", (auction_id,)
            ).fetchone()
            if found is None:
                raise Conflict(AUCTION_NOT_FOUND, f"auction {auction_id!r} not found")
            if found[0]:
                return False  # already applied: the saga step is a no-op
            # The sale happens only if the seller still owns the asset through this listing
            # (and has not redeemed it); the trade and the transfer are recorded only if it did.
            moved = conn.execute(
                "UPDATE assets SET owner_id=?, listed_in=NULL"
                " WHERE asset_id=? AND owner_id=? AND listed_in=? AND redeemed=0",
                (buyer_id, asset_id, seller_id, auction_id),
            ).rowcount
            if not moved:
                conn.execute(
                    "UPDATE auctions SET settled=1, settle_error=? WHERE auction_id=?",
                    (SETTLE_ASSET_MOVED, auction_id),
                )
                settle_facts(conn, trade, sold=False)
                return None
            if transfer is not None:  # refused: the whole transaction rolls back
                sell_with_record(conn, asset_id, transfer)
            append_ownership(conn, asset_id, auction_change(trade))
            conn.execute(
                "INSERT OR IGNORE INTO trades(auction_id, asset_id, seller_id, buyer_id, at,"
                " premium, seller_fee, data) VALUES (?,?,?,?,?,?,?,?)",
                trade_row,
            )
            conn.execute("UPDATE auctions SET settled=1 WHERE auction_id=?", (auction_id,))
            settle_facts(conn, trade, sold=True)
            return True

        outcome = await self._run(self._write, tx)
        if outcome is None:
            log_asset_moved(log, trade)
            return False
        return bool(outcome)

    async def release(self, auction_id: str, asset_id: str) -> bool:
        def tx(conn: sqlite3.Connection) -> bool:
            conn.execute(
                "UPDATE assets SET listed_in=NULL WHERE asset_id=? AND listed_in=?",
                (asset_id, auction_id),
            )
            cur = conn.execute(
                "UPDATE auctions SET settled=1 WHERE auction_id=? AND settled=0", (auction_id,)
            )
            if cur.rowcount == 1:
                append_closing(conn, auction_id, UNSOLD)
            return cur.rowcount == 1

        return await self._run(self._write, tx)

    async def unsettled_finished(self) -> list[AuctionRecord]:
        statuses = ",".join("?" * len(FINISHED_STATUSES))
        where = (
            f"auction_id IN (SELECT auction_id FROM auctions WHERE settled=0"
            f" AND status IN ({statuses}) UNION SELECT auction_id FROM auctions WHERE told=0"
            f" AND status IN ({statuses})) ORDER BY ends_at, auction_id"
        )
        return await self._run(self._records, where, (*FINISHED_STATUSES, *FINISHED_STATUSES))

    async def mark_told(self, auction_id: str) -> None:
        def tx(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE auctions SET told=1 WHERE auction_id=? AND settled=1",
                         (auction_id,))

        await self._run(self._write, tx)

    async def get_trade(self, auction_id: str) -> TradeRecord | None:
        def q() -> TradeRecord | None:
            row = self._db.execute(
                f"SELECT {_TRADE_COLS} FROM trades WHERE auction_id=?", (auction_id,)
            ).fetchone()
            return None if row is None else _trade(row)

        return await self._run(q)

    async def list_trades(
        self, asset_id: str | None = None, user_id: str | None = None, limit: int = 200
    ) -> list[TradeRecord]:
        clauses: list[str] = []
        args: list[Any] = []
        if asset_id is not None:
            clauses.append("asset_id=?")
            args.append(asset_id)
        if user_id is not None:
            clauses.append("(buyer_id=? OR seller_id=?)")
            args += [user_id, user_id]
        where = " AND ".join(clauses) or "1"
        sql = (f"SELECT {_TRADE_COLS} FROM trades WHERE {where}"
               " ORDER BY at DESC, auction_id DESC LIMIT ?")
        args.append(int(limit))

        def q() -> list[TradeRecord]:
            return [_trade(r) for r in self._db.execute(sql, args)]

        return await self._run(q)
