"""SQLite's ownership feed on a file older than it: the migration that creates the table
backfills it in the same transaction, once, however many processes open the file at once."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path

from market.provenance import token_id_for
from storage.sqlite import SqliteStore
from tests.storage.test_contract import asset
from tests.storage.test_ownership_contract import feed, moves, replayed, sell
from tests.storage.test_sqlite import _ASSETS_BEFORE_CATALOG


async def test_a_file_from_before_the_catalog_is_backfilled_once(tmp_path: Path) -> None:
    path = str(tmp_path / "old.db")
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute(_ASSETS_BEFORE_CATALOG)
        conn.executemany("INSERT INTO assets VALUES (?, ?, 'Old card', '{}', ?, NULL)",
                         [("a_old", "u1", 5), ("b_old", "u2", None)])
    stores = [SqliteStore(path) for _ in range(4)]
    await asyncio.gather(*(s.open() for s in stores))  # several processes migrate it at once
    try:
        rows = await feed(stores[1])
        assert moves(rows) == [("backfill", "a_old", None, "u1", None, None, None, None),
                               ("backfill", "b_old", None, "u2", None, None, None, None)]
        assert [(r["token_id"], r["card_id"], r["grade"]) for r in rows] == [
            (token_id_for("a_old"), None, None), (token_id_for("b_old"), None, None)]
        assert rows[0]["at"] == 5 and rows[1]["at"] > 1_700_000_000_000  # no created_at: now
        await stores[2].create_asset(asset("c_new", "u3"))
        await sell(stores[3], "a_old", "x1", "u1", "u3")
        rows = await feed(stores[0])
        assert [r["how"] for r in rows] == ["backfill", "backfill", "mint", "auction"]
        assert replayed(rows) == {"a_old": "u3", "b_old": "u2", "c_new": "u3"}
    finally:
        for s in stores:
            await s.close()
    again = SqliteStore(path)  # a later open: the table exists, nothing is added
    await again.open()
    try:
        assert len(await feed(again)) == 4
    finally:
        await again.close()
