"""Fixtures for the storage contract suite.

Every contract test runs twice: against SqliteStore on a real file in tmp_path, and against
MongoStore driven by the real PyMongo async client over TCP. The Mongo side talks to a real
server when ECE_TEST_MONGODB_URI is set, otherwise to mongoeco's wire-protocol server, which
we run in-process on 127.0.0.1 (port 0 = a free port picked by the kernel).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import pytest_asyncio
from pymongo import AsyncMongoClient

from storage import Store
from storage.mongo import MongoStore
from storage.sqlite import SqliteStore

MONGO_URI_ENV = "ECE_TEST_MONGODB_URI"


class MongoecoServer:
    """mongoeco's wire server on its own thread and event loop.

    It must not share the tests' loop: the driver blocks on socket replies that only this
    loop can produce, and a dedicated thread also mirrors a separate server process.
    """

    def __init__(self) -> None:
        self._ready: concurrent.futures.Future[str] = concurrent.futures.Future()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="mongoeco-wire", daemon=True)

    def start(self) -> str:
        self._thread.start()
        return self._ready.result(timeout=30)

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=30)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:
            if not self._ready.done():
                self._ready.set_exception(exc)

    async def _serve(self) -> None:
        from mongoeco.engines.memory import MemoryEngine
        from mongoeco.wire import AsyncMongoEcoProxyServer

        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        server = AsyncMongoEcoProxyServer(engine=MemoryEngine(), host="127.0.0.1", port=0)
        await server.start()
        try:
            self._ready.set_result(server.address.uri)
            await self._stop.wait()
        finally:
            await server.close()


@pytest.fixture(scope="session")
def mongo_uri() -> Iterator[str]:
    real = os.environ.get(MONGO_URI_ENV)
    if real:
        yield real
        return
    server = MongoecoServer()
    uri = server.start()
    try:
        yield uri
    finally:
        server.stop()


@dataclass
class Backend:
    """Where a test's data lives; `make()` builds another independent store instance on it."""

    kind: str
    factory: Callable[[], Store]
    opened: list[Store] = field(default_factory=list)

    def make(self) -> Store:
        return self.factory()

    async def open(self) -> Store:
        store = self.factory()
        await store.open()
        self.opened.append(store)
        return store

    async def close_all(self) -> None:
        for store in self.opened:
            await store.close()
        self.opened.clear()


@pytest_asyncio.fixture(params=["sqlite", "mongo"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    if request.param == "sqlite":
        path = str(tmp_path / "ece.db")
        b = Backend("sqlite", lambda: SqliteStore(path))
        yield b
        await b.close_all()
        return
    uri: str = request.getfixturevalue("mongo_uri")
    db_name = f"ece_test_{uuid.uuid4().hex[:12]}"
    b = Backend("mongo", lambda: MongoStore(uri, db_name=db_name))
    yield b
    await b.close_all()
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(uri)
    try:
        await client.drop_database(db_name)
    finally:
        await client.close()


@pytest_asyncio.fixture
async def store(backend: Backend) -> Store:
    return await backend.open()
