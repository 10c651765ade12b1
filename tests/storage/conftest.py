"""Fixtures for the storage contract suite.

Every contract test runs twice: against SqliteStore on a real file in tmp_path, and against
MongoStore driven by the real PyMongo async client over TCP. The Mongo side talks to a real
server when ECE_TEST_MONGODB_URI is set, otherwise to mongoeco's wire-protocol server, which
we run in-process on 127.0.0.1 (port 0 = a free port picked by the kernel), one server for
the session (`mongo_uri`, tests/conftest.py) and a fresh database for each test (`mongo_db`).
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from storage import Store
from storage.mongo import MongoStore
from storage.sqlite import SqliteStore


@dataclass
class Backend[S: Store]:
    """Where a test's data lives; `make()` builds another independent store instance on it
    (as another process would), `open()` an opened one that the fixture closes."""

    kind: str
    factory: Callable[[], S]
    opened: list[S] = field(default_factory=list)

    def make(self) -> S:
        return self.factory()

    async def open(self) -> S:
        store = self.factory()
        await store.open()
        self.opened.append(store)
        return store

    async def close_all(self) -> None:
        for store in self.opened:
            await store.close()
        self.opened.clear()


type RawDb = AsyncDatabase[dict[str, Any]]


@pytest_asyncio.fixture
async def mongo_db(mongo_uri: str) -> AsyncIterator[RawDb]:
    """A fresh database on the session's server, through a plain driver client (for writes
    that bypass the store); dropped after the test."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_uri)
    db = client[f"ece_test_{uuid.uuid4().hex[:12]}"]
    try:
        yield db
    finally:
        await client.drop_database(db.name)
        await client.close()


@pytest_asyncio.fixture
async def mongo_backend(mongo_uri: str, mongo_db: RawDb) -> AsyncIterator[Backend[MongoStore]]:
    """MongoStore instances on this test's database (closed before it is dropped)."""
    b = Backend("mongo", lambda: MongoStore(mongo_uri, db_name=mongo_db.name))
    yield b
    await b.close_all()


@pytest_asyncio.fixture
async def sqlite_backend(tmp_path: Path) -> AsyncIterator[Backend[SqliteStore]]:
    """SqliteStore instances on one file in tmp_path."""
    path = str(tmp_path / "ece.db")
    b = Backend("sqlite", lambda: SqliteStore(path))
    yield b
    await b.close_all()


@pytest.fixture(params=["sqlite", "mongo"])
def backend(request: pytest.FixtureRequest) -> Backend:
    """The contract tests' backend: each test runs on both."""
    found: Backend = request.getfixturevalue(f"{request.param}_backend")
    return found


@pytest_asyncio.fixture
async def store(backend: Backend) -> Store:
    return await backend.open()


async def tamper_asset(store: Store, asset_id: str, **fields: Any) -> None:
    """Overwrite stored asset fields directly, bypassing the contract.

    Stands for whatever moved an asset behind an auction's back (an operator fix, a bug
    elsewhere, a split-brain listing): the store must cope with what it then finds.
    """
    if isinstance(store, SqliteStore):
        sets = ", ".join(f"{name}=?" for name in fields)
        args = (*fields.values(), asset_id)

        def tx(conn: sqlite3.Connection) -> None:
            conn.execute(f"UPDATE assets SET {sets} WHERE asset_id=?", args)

        await store._run(store._write, tx)
    elif isinstance(store, MongoStore):
        await store.assets.update_one({"_id": asset_id}, {"$set": fields})
    else:
        raise TypeError(f"no raw access to {type(store).__name__}")


async def tamper_account(store: Store, account: str, balance: int) -> None:
    """Overwrite an account's stored balance directly, bypassing the journal (check_ledger
    must notice)."""
    if isinstance(store, SqliteStore):
        def tx(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE accounts SET balance=? WHERE account=?", (balance, account))

        await store._run(store._write, tx)
    elif isinstance(store, MongoStore):
        await store._coll("accounts").update_one({"_id": account}, {"$set": {"balance": balance}})
    else:
        raise TypeError(f"no raw access to {type(store).__name__}")
