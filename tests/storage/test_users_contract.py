"""The users' `portfolio_public` flag, on every back end: false for a new user, set and
cleared by `set_portfolio_public`, seen by both lookups and by another store instance; an
unknown user is False, not an error. An SQLite file made before the column existed gains it
(false for its users)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from storage import Store
from storage.records import UserRecord
from storage.sqlite import SqliteStore
from tests.storage.conftest import Backend


def user(user_id: str, username: str) -> UserRecord:
    return UserRecord(user_id=user_id, username=username, password_hash="h", created_at=1)


async def test_portfolio_public_defaults_false_and_is_set_and_cleared(backend: Backend) -> None:
    store: Store = await backend.open()
    await store.create_user(user("u1", "Alice"))
    await store.create_user(user("u2", "Bob"))
    assert (await store.get_user("u1") or {}).get("portfolio_public") is False

    assert await store.set_portfolio_public("u1", True) is True
    other = await backend.open()  # another process sees it
    assert (await other.get_user("u1") or {}).get("portfolio_public") is True
    assert (await other.get_user_by_username("ALICE") or {}).get("portfolio_public") is True
    assert (await other.get_user("u2") or {}).get("portfolio_public") is False
    assert await store.set_portfolio_public("u1", True) is True  # again: no change, still ok

    assert await store.set_portfolio_public("u1", False) is True
    assert (await other.get_user("u1") or {}).get("portfolio_public") is False


async def test_set_portfolio_public_of_an_unknown_user_is_false(store: Store) -> None:
    for user_id in ("nope", "", "u" * 10_000, "ü\u202e\U0001f600", "u1' OR '1'='1"):
        assert await store.set_portfolio_public(user_id, True) is False
    assert await store.get_user("nope") is None  # nothing created


async def test_an_older_sqlite_file_gains_the_column(tmp_path: Path) -> None:
    path = str(tmp_path / "old.db")
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE users (user_id TEXT PRIMARY KEY, username TEXT NOT NULL,"
                 " username_key TEXT NOT NULL UNIQUE, password_hash TEXT NOT NULL, created_at)")
    conn.execute("INSERT INTO users VALUES ('u1', 'Alice', 'alice', 'h', 1)")
    conn.commit()
    conn.close()
    async with SqliteStore(path) as store:
        assert (await store.get_user("u1") or {}).get("portfolio_public") is False
        assert await store.set_portfolio_public("u1", True) is True
        assert (await store.get_user("u1") or {}).get("portfolio_public") is True
