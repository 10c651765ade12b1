"""Rewrites of rows an older version of ECE wrote, run once per SQLite file when it is opened
(inside `connect`'s schema transaction). `PRAGMA user_version` records which have run, so a
file already upgraded costs one pragma read, and no read path checks rows for them.

1. Projection documents written by Python's `json` (before msgspec) may hold the literals
   `NaN`, `Infinity` and `-Infinity`, which JSON has not: a Sharpe ratio of a flat history,
   say. msgspec refuses them, so the raw routes serving those documents answered 500. They
   become `null`, as msgspec itself writes a non-finite float.
2. Auctions' snapshots were a column of the auctions row; they move to `auction_snapshots`
   (the column, where a file still has it, is left empty).
"""

from __future__ import annotations

import json
import sqlite3

from storage.facts import encode_json

DATA_VERSION = 2  # the rewrites below a file has had, in order
# How a snapshot lands in `auction_snapshots` (the commit and the move below): it replaces
# the stored one unless that one is newer.
KEEP_NEWER_SNAPSHOT = (" ON CONFLICT(auction_id) DO UPDATE SET seq=excluded.seq, data=excluded.data"
                       " WHERE excluded.seq >= auction_snapshots.seq")


def upgrade_rows(conn: sqlite3.Connection) -> None:
    """Bring the rows of `conn`'s file up to DATA_VERSION (in the caller's transaction)."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version < 1:
        null_nonfinite_projections(conn)
    if version < 2:
        move_snapshots(conn)
    if version < DATA_VERSION:
        conn.execute(f"PRAGMA user_version={DATA_VERSION}")


def null_nonfinite_projections(conn: sqlite3.Connection) -> int:
    """Rewrite projection documents that are not strict JSON with `null` for NaN and the
    infinities; the number rewritten. A document that is not JSON at all is left as it is."""
    rows = conn.execute("SELECT kind, key, data FROM projection_docs"
                        " WHERE NOT json_valid(data)").fetchall()
    fixed = []
    for kind, key, data in rows:
        try:
            doc = json.loads(data, parse_constant=lambda _: None)
        except ValueError:
            continue
        fixed.append((encode_json(doc).decode(), kind, key))
    conn.executemany("UPDATE projection_docs SET data=? WHERE kind=? AND key=?", fixed)
    return len(fixed)


def move_snapshots(conn: sqlite3.Connection) -> int:
    """Move the snapshots of a file whose auctions row still holds them into
    `auction_snapshots`, and empty the column; the number moved."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(auctions)")}
    if "snapshot" not in columns:
        return 0
    moved = conn.execute(
        "INSERT INTO auction_snapshots(auction_id, seq, data)"
        " SELECT auction_id, snapshot_seq, snapshot FROM auctions WHERE snapshot IS NOT NULL"
        + KEEP_NEWER_SNAPSHOT).rowcount
    conn.execute("UPDATE auctions SET snapshot=NULL WHERE snapshot IS NOT NULL")
    return moved
