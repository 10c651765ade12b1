"""The bid path's write: one host batch (events, views, snapshots, notices) inside the
transaction `SqliteStore.commit` opens, its rows serialised already."""

from __future__ import annotations

import sqlite3
from typing import Any

from storage.records import NewNotice
from storage.sqlite_money import add_notices
from storage.sqlite_upgrade import KEEP_NEWER_SNAPSHOT

EventRow = tuple[str, int, str]  # (auction_id, seq, data)
_INSERT_EVENT = "INSERT INTO events(auction_id, seq, data) VALUES (?,?,?)"
_UPSERT_SNAPSHOT = ("INSERT INTO auction_snapshots(auction_id, seq, data) VALUES (?,?,?)"
                    + KEEP_NEWER_SNAPSHOT)


def write_batch(conn: sqlite3.Connection, rows: list[EventRow],
                groups: dict[str, list[EventRow]], views: list[tuple[Any, ...]],
                snaps: list[tuple[Any, ...]], notices: list[NewNotice]) -> set[str]:
    """Write a batch; the auctions fenced out (another host stored their seq first) are
    returned, and nothing of theirs is written. `groups`: `rows` by auction; `views`:
    (view, seq, auction_id, seq, status, ends_at); `snaps`: (auction_id, seq, snapshot)."""
    conflicted: set[str] = set()
    if rows:
        # Optimistic: one executemany for the whole batch. Only if some (auction_id, seq)
        # already exists do we redo it per auction to find who is fenced out.
        conn.execute("SAVEPOINT batch")
        try:
            conn.executemany(_INSERT_EVENT, rows)
        except sqlite3.IntegrityError:
            conn.execute("ROLLBACK TO batch")
            for auction_id, group in groups.items():
                conn.execute("SAVEPOINT one")
                try:
                    conn.executemany(_INSERT_EVENT, group)
                except sqlite3.IntegrityError:
                    conn.execute("ROLLBACK TO one")
                    conflicted.add(auction_id)
                conn.execute("RELEASE one")
        conn.execute("RELEASE batch")
    # `seq <= ?` guards: a view/snapshot never moves an auction backwards.
    _update_views(conn, [v for v in views if v[2] not in conflicted])
    if snaps:
        conn.executemany(_UPSERT_SNAPSHOT, [s for s in snaps if s[0] not in conflicted])
    add_notices(conn, [n for n in notices if n["data"].get("auction_id") not in conflicted])
    return conflicted


def _update_views(conn: sqlite3.Connection, views: list[tuple[Any, ...]]) -> None:
    """Store auctions' views: (view, seq, auction_id, seq, status, ends_at) rows.

    Most commits (a bid) change neither status nor ends_at, and an UPDATE that sets an indexed
    column rewrites that column's index entries even when the value is the same: the five
    indexes on status or ends_at made 13.3 WAL pages per one-bid commit where 8.3 do
    (docs/performance/history.md, "Three fixes"). So the rows go first through an UPDATE
    that sets only view and seq where status and ends_at are unchanged, and only if some row
    was left does every row go through the whole one (a row updated already matches it
    again, to the same values). Both take the same rows (numbered parameters)."""
    if not views:
        return
    lean = conn.executemany(
        "UPDATE auctions SET view=?1, seq=?2 WHERE auction_id=?3 AND seq<=?4 AND status=?5"
        " AND ends_at IS ?6", views)
    if lean.rowcount < len(views):
        conn.executemany(
            "UPDATE auctions SET view=?1, seq=?2, status=?5, ends_at=?6"
            " WHERE auction_id=?3 AND seq<=?4", views)
