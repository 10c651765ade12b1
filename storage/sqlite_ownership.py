"""The SQLite store's ownership feed (storage.ownership): the `ownership` table.

A row is inserted by `append_ownership` inside the write transaction that changes the owner
(`create_asset`, `settle`, `append_provenance`, `move_locked_asset`), after the change, so
that the row and the change commit together or not at all. `pos` is AUTOINCREMENT taken in
that transaction: gap-free, in commit order. The insert is `INSERT ... SELECT ... WHERE NOT
EXISTS` on the row's key (never INSERT OR IGNORE: an ignored row would still consume a
position), though the writes' own idempotency already keeps a retry from reaching it.

`backfill_ownership` runs in the schema migration's transaction (`storage.sqlite_schema`)
when the table is new: one `backfill` row per asset not redeemed.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Mapping
from typing import Any, Protocol, cast

from market.catalog import normal_grade
from market.ledger import FEES, entry_id_for
from market.ledger import OFFER as OFFER_CAUSE
from storage.base import OFFER_LOCK_PREFIX, StoreError
from storage.clock import now_ms
from storage.ownership import (
    ASSET_FIELDS,
    BACKFILL,
    BACKFILL_KEY,
    ROW_FIELDS,
    Change,
    OwnershipRecord,
    offer_at,
    offer_change,
    offer_price,
    offer_ref,
    row,
)
from storage.records import ProvenanceRecord

_COLS = ", ".join(ROW_FIELDS)
_KEY = ROW_FIELDS.index("key") + 1
_INSERT = (f"INSERT INTO ownership({_COLS}) SELECT {', '.join('?' * len(ROW_FIELDS))}"
           f" WHERE NOT EXISTS (SELECT 1 FROM ownership WHERE key=?{_KEY})")
_LEGS = ROW_FIELDS.index("legs")
_ASSET = f"SELECT {', '.join(ASSET_FIELDS)} FROM assets WHERE asset_id=?"


def _insert(conn: sqlite3.Connection, r: OwnershipRecord) -> bool:
    values: list[Any] = [r.get(f) for f in ROW_FIELDS]
    if values[_LEGS] is not None:
        values[_LEGS] = json.dumps(values[_LEGS], separators=(",", ":"))
    return conn.execute(_INSERT, values).rowcount == 1


def append_ownership(conn: sqlite3.Connection, asset_id: str, chg: Change) -> bool:
    """Append the row of `chg` to `asset_id` inside the caller's write transaction, after
    the change; True if appended (False: its key is in the feed already)."""
    found = conn.execute(_ASSET, (asset_id,)).fetchone()
    if found is None:
        raise StoreError(f"ownership row of a missing asset {asset_id!r}")
    return _insert(conn, row(chg, dict(zip(ASSET_FIELDS, found, strict=True))))


def _offer_fee(conn: sqlite3.Connection, offer_id: str) -> int | None:
    """The fee of the offer's cash entry (posted before any card moves), if there is one."""
    found = conn.execute("SELECT postings FROM entries WHERE entry_id=?",
                         (entry_id_for(OFFER_CAUSE, offer_id),)).fetchone()
    if found is None:
        return None
    return sum(int(amount) for account, amount in json.loads(found[0]) if account == FEES)


def append_offer_move(conn: sqlite3.Connection, lock: str, asset_id: str, frm: str, to: str,
                      record: ProvenanceRecord | None) -> bool:
    """`move_locked_asset`'s row, in its transaction: the offer read from `offers` (its
    sides, its price when one card went for cash alone) and the fee from its entry."""
    offer_id = offer_ref(record, lock, OFFER_LOCK_PREFIX)
    found = conn.execute("SELECT data FROM offers WHERE offer_id=?", (offer_id,)).fetchone()
    offer: Mapping[str, Any] | None = None if found is None else json.loads(found[0])
    price = offer_price(offer, record)
    at = offer_at(offer, record, now_ms())
    fee = None if price is None else _offer_fee(conn, offer_id)
    return append_ownership(conn, asset_id, offer_change(
        offer_id, asset_id, frm, to, price=price, at=at, fee=fee, offer=offer))


# backfill_change's row for every asset at once (one statement: a big old store backfills in
# seconds, not a query per asset).
_BACKFILL = (
    f"INSERT INTO ownership({_COLS}) SELECT ?1 || a.asset_id,"
    f" {', '.join('a.' + f for f in ASSET_FIELDS)}, NULL, a.owner_id, CAST(COALESCE("
    "(SELECT json_extract(p.record, '$.at') FROM provenance p WHERE p.token_id=a.token_id"
    " ORDER BY p.seq DESC LIMIT 1), a.created_at, ?2) AS INTEGER), ?3,"
    " NULL, NULL, NULL, NULL, NULL FROM assets a WHERE a.redeemed=0 ORDER BY a.asset_id"
)


def backfill_ownership(conn: sqlite3.Connection) -> int:
    """One `backfill` row per asset not redeemed, to its owner, at its chain's last record's
    time, else its `created_at`, else now (in the migration's transaction); how many."""
    return conn.execute(_BACKFILL, (BACKFILL_KEY, now_ms(), BACKFILL)).rowcount


def _record(values: tuple[Any, ...]) -> OwnershipRecord:
    out = dict(zip(("pos", *ROW_FIELDS), values, strict=True))
    if out["legs"] is not None:
        out["legs"] = json.loads(out["legs"])
    out["grade"] = normal_grade(out["grade"])  # an old file's REAL column: 9 read as 9.0
    return cast(OwnershipRecord, out)


class _Host(Protocol):
    async def _run[T](self, fn: Callable[..., T], *args: Any) -> T: ...

    @property
    def _db(self) -> sqlite3.Connection: ...


class SqliteOwnership:
    """Mixin of SqliteStore: the ownership feed's reads."""

    async def ownership_feed(self: _Host, after_pos: int,
                             limit: int = 10_000) -> list[OwnershipRecord]:
        if limit <= 0:
            return []
        sql = f"SELECT pos, {_COLS} FROM ownership WHERE pos>? ORDER BY pos LIMIT ?"

        def q() -> list[OwnershipRecord]:
            return [_record(r) for r in self._db.execute(sql, (int(after_pos), int(limit)))]

        return await self._run(q)

    async def ownership_position(self: _Host) -> int:
        def q() -> int:
            return int(self._db.execute(
                "SELECT COALESCE(MAX(pos), 0) FROM ownership").fetchone()[0])

        return await self._run(q)
