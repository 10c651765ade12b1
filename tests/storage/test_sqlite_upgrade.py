"""A SQLite file written by an older ECE: projection documents holding Python json's `NaN`
and `Infinity` literals are served as strict JSON (`null`) once the file is opened."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import msgspec

from storage.sqlite import SqliteStore
from storage.sqlite_upgrade import DATA_VERSION

OLD_DOC = {"user_id": "u1", "value": 1200, "risk": {"sharpe": float("nan"),
           "sortino": float("inf"), "worst": float("-inf")}, "name": "NaN Infinity card"}


async def _old_file(path: Path) -> None:
    """A file as an older version left it: its schema, a document json.dumps wrote, and no
    data version."""
    store = SqliteStore(str(path))
    await store.open()
    await store.close()
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO projection_docs(kind, key, data) VALUES (?,?,?)",
                     ("portfolio", "u1", json.dumps(OLD_DOC)))
        conn.execute("INSERT INTO projection_docs(kind, key, data) VALUES (?,?,?)",
                     ("portfolio", "u2", json.dumps({"user_id": "u2", "value": 5})))
        conn.execute("PRAGMA user_version=0")
    conn.close()


async def test_nan_and_infinity_in_an_old_file_are_served_as_null(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    await _old_file(path)
    store = SqliteStore(str(path))
    await store.open()
    try:
        raw = await store.get_projection_json("portfolio", "u1")
        assert raw is not None
        served = msgspec.json.decode(raw)  # strict JSON, as the portfolio route decodes it
        expected = {**OLD_DOC, "risk": {"sharpe": None, "sortino": None, "worst": None}}
        assert served == expected
        assert await store.get_projection_doc("portfolio", "u1") == expected
        scanned = await store.scan_projection("portfolio", "u", "v")
        assert scanned == [("u1", expected), ("u2", {"user_id": "u2", "value": 5})]
    finally:
        await store.close()
    with sqlite3.connect(path) as conn:  # rewritten once: the next open has nothing to do
        assert conn.execute("PRAGMA user_version").fetchone()[0] == DATA_VERSION
        assert conn.execute("SELECT count(*) FROM projection_docs WHERE NOT json_valid(data)"
                            ).fetchone()[0] == 0
    conn.close()
