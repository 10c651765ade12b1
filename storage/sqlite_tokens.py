"""The SQLite store's tokens: asset rows, lookup by token, and each token's provenance chain.

A chain is the rows of `provenance(token_id, seq, record)` (primary key (token_id, seq),
WITHOUT ROWID: one range scan reads it in order). Every record is inserted inside the
`BEGIN IMMEDIATE` transaction that makes the change it records (create_asset's mint,
settle's transfer, append_provenance's owner change or redeem), after checking under that
write lock that it extends the chain (seq = length + 1, prev_hash = the last hash): a
crash, a retry or a concurrent writer in another process can never leave a record without
its change or a change without its record, nor two records with one seq.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from typing import Any, Protocol, cast

from market.catalog import normal_grade
from market.errors import PROVENANCE_CONFLICT, TOKEN_NOT_FOUND
from storage.base import Conflict
from storage.chain import TokenState, check_append, fence_problem, owner_after
from storage.ownership import token_change
from storage.records import AssetRecord, ProvenanceRecord
from storage.sqlite_ownership import append_ownership

ASSET_SELECT = (
    "SELECT asset_id, owner_id, title, metadata, created_at, listed_in, card_id, grader,"
    " grade, cert, token_id, redeemed FROM assets"
)


def asset_row(row: tuple[Any, ...]) -> AssetRecord:
    """An AssetRecord from a row of ASSET_SELECT."""
    asset: AssetRecord = {
        "asset_id": row[0],
        "owner_id": row[1],
        "title": row[2],
        "metadata": json.loads(row[3]),
        "created_at": row[4],
        "listed_in": row[5],
        "card_id": row[6],
        "grader": row[7],
        "grade": normal_grade(row[8]),  # a REAL column: 10 comes back as 10.0
        "cert": row[9],
        "token_id": row[10],
    }
    if row[11]:
        asset["redeemed"] = True
    return asset


def _dumps(record: ProvenanceRecord) -> str:
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False)


def _tail(conn: sqlite3.Connection, token_id: str) -> tuple[int, str | None]:
    """(length, last hash) of the token's chain; (0, None) when empty."""
    row = conn.execute(
        "SELECT seq, record FROM provenance WHERE token_id=? ORDER BY seq DESC LIMIT 1",
        (token_id,),
    ).fetchone()
    if row is None:
        return 0, None
    return int(row[0]), json.loads(row[1]).get("hash")


def insert_record(conn: sqlite3.Connection, token_id: str, record: ProvenanceRecord) -> None:
    """Insert `record` if it extends the token's chain; else Conflict PROVENANCE_CONFLICT.

    Call inside the write transaction that applies the change the record describes."""
    length, tail_hash = _tail(conn, token_id)
    problem = fence_problem(record, length, tail_hash)
    if problem:
        raise Conflict(PROVENANCE_CONFLICT, f"token {token_id}: {problem}")
    conn.execute("INSERT INTO provenance(token_id, seq, record) VALUES (?,?,?)",
                 (token_id, record["seq"], _dumps(record)))


def sell_with_record(conn: sqlite3.Connection, asset_id: str, record: ProvenanceRecord) -> None:
    """Append a sale's transfer to the asset's chain (in settle's transaction, once the
    asset has moved)."""
    row = conn.execute("SELECT token_id FROM assets WHERE asset_id=?", (asset_id,)).fetchone()
    if row is None or row[0] is None:
        raise Conflict(PROVENANCE_CONFLICT, f"asset {asset_id!r} has no token")
    insert_record(conn, row[0], record)


class _Host(Protocol):
    """What the token part needs of SqliteStore (see storage.sqlite)."""

    async def _run[T](self, fn: Callable[..., T], *args: Any) -> T: ...

    def _write[T](self, fn: Callable[[sqlite3.Connection], T]) -> T: ...

    @property
    def _db(self) -> sqlite3.Connection: ...


class SqliteTokens:
    """Mixin of SqliteStore: lookup by token and the provenance part of the Store contract."""

    async def get_asset_by_token(self: _Host, token_id: str) -> AssetRecord | None:
        def q() -> AssetRecord | None:
            found = self._db.execute(ASSET_SELECT + " WHERE token_id=?", (token_id,)).fetchone()
            return None if found is None else asset_row(found)

        return await self._run(q)

    async def load_provenance(self: _Host, token_id: str) -> list[ProvenanceRecord] | None:
        def q() -> list[ProvenanceRecord] | None:
            db = self._db
            if db.execute("SELECT 1 FROM assets WHERE token_id=?", (token_id,)).fetchone() is None:
                return None
            rows = db.execute(
                "SELECT record FROM provenance WHERE token_id=? ORDER BY seq", (token_id,))
            return [cast(ProvenanceRecord, json.loads(r[0])) for r in rows]

        return await self._run(q)

    async def append_provenance(self: _Host, token_id: str, record: ProvenanceRecord) -> None:
        text = _dumps(record)

        def tx(conn: sqlite3.Connection) -> None:
            found = conn.execute(
                "SELECT asset_id, owner_id, listed_in, redeemed FROM assets WHERE token_id=?",
                (token_id,),
            ).fetchone()
            if found is None:
                raise Conflict(TOKEN_NOT_FOUND, f"no asset has token {token_id}")
            asset_id, owner_id, listed_in, redeemed = found
            stored = conn.execute(
                "SELECT record FROM provenance WHERE token_id=? AND seq=?",
                (token_id, record.get("seq")),
            ).fetchone()
            if stored is not None and json.loads(stored[0]) == record:
                return  # a retry of an append that was applied: nothing (more) to do
            length, tail_hash = _tail(conn, token_id)
            check_append(record, TokenState(owner_id, listed_in, bool(redeemed), length,
                                            tail_hash))
            conn.execute("INSERT INTO provenance(token_id, seq, record) VALUES (?,?,?)",
                         (token_id, record["seq"], text))
            conn.execute(
                "UPDATE assets SET owner_id=?, redeemed=? WHERE asset_id=?",
                (owner_after(record, owner_id), int(record["kind"] == "redeem"), asset_id),
            )
            moved = token_change(token_id, record, owner_id)  # None for a mint
            if moved is not None:
                append_ownership(conn, asset_id, moved)

        await self._run(self._write, tx)
