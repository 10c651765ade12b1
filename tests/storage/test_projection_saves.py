"""save_projection's write order and chunking (storage.sqlite_facts, storage.mongo_facts).

Kinds are written in the order they come in the puts, each kind after the ones before it are
visible: the price projection puts a segment's `version` (what the gateway caches the
segment's history under) after the sales and candles it describes, so a reader that sees a
version sees them too. SQLite writes a big save in chunks, those before the last unsynced;
the connection's synchronous level (what every fact commit uses) is left as it was.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import pytest_asyncio

import storage.sqlite_facts
from storage import Store
from storage.mongo import MongoStore
from storage.sqlite import SqliteStore
from tests.storage.conftest import Backend
from tests.storage.mongo_faults import Crash, intercepting

Put = tuple[str, str, dict[str, Any] | None]


class AnyOrder(Crash):
    """Applies each unordered bulk write on projection_docs one op at a time, last first (the
    server may apply an unordered batch in any order), and `look`s after each op."""

    def __init__(self, look: Callable[[], Awaitable[None]]) -> None:
        super().__init__(0)
        self.look = look

    def wrap(self, name: str, method: Any) -> Any:
        if name != "projection_docs.bulk_write":
            return super().wrap(name, method)

        async def write(ops: list[Any], ordered: bool = True, **kwargs: Any) -> None:
            self.due(name)
            assert not ordered
            for op in reversed(ops):
                await method([op], ordered=False, **kwargs)
                await self.look()

        return write


@pytest_asyncio.fixture
async def mongo_stores(mongo_backend: Backend[MongoStore]) -> list[MongoStore]:
    """The writer and a reader (another process)."""
    return [await mongo_backend.open() for _ in range(2)]


async def test_mongo_a_segment_version_is_never_seen_before_its_candles(
        mongo_stores: list[MongoStore]) -> None:
    store, reader = mongo_stores
    assert await store.save_projection("prices.0", 0, 1, [
        ("candle", "s|1d|1", {"close": 1}), ("segment", "s", {"version": 1})])
    seen: list[tuple[int, int]] = []

    async def look() -> None:
        segment = await reader.get_projection_doc("segment", "s")
        candle = await reader.get_projection_doc("candle", "s|1d|1")
        assert segment is not None and candle is not None
        seen.append((segment["version"], candle["close"]))

    puts: list[Put] = [("sale", "s|2|2", {"price": 2}), ("candle", "s|1d|1", {"close": 2}),
                       ("segment", "s", {"version": 2})]
    with intercepting(store, AnyOrder(look)) as order:
        assert await store.save_projection("prices.0", 1, 2, puts) is True
    # Never the new version over the old candles: one write per kind, in the puts' order.
    assert (2, 1) not in seen
    assert seen[-1] == (2, 2)
    assert order.writes[:3] == ["projection_docs.bulk_write"] * 3


async def test_a_big_save_writes_what_applying_each_put_in_turn_would(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(storage.sqlite_facts, "SAVE_CHUNK", 3)
    await store.save_projection("p", 0, 1, [("candle", "gone", {"v": 0})])
    puts: list[Put] = [("segment", "b", {"v": 1}), ("candle", "z", {"v": 2}),
                       ("candle", "a", {"v": 3}), ("segment", "a", {"v": 4}),
                       ("candle", "z", {"v": 5}), ("candle", "gone", None),
                       ("candle", "m", {"v": 6}), ("segment", "b", {"v": 7})]
    assert await store.save_projection("p", 1, 9, puts) is True
    assert await store.projection_checkpoint("p") == 9
    assert await store.scan_projection("candle", "", "\uffff") == [
        ("a", {"v": 3}), ("m", {"v": 6}), ("z", {"v": 5})]
    assert await store.scan_projection("segment", "", "\uffff") == [
        ("a", {"v": 4}), ("b", {"v": 7})]
    # Fenced (the checkpoint is 9 now): nothing written.
    assert await store.save_projection("p", 1, 12, [("candle", "q", {"v": 8})] * 1 + puts) \
        is False
    assert await store.get_projection_doc("candle", "q") is None


@pytest.mark.parametrize("level", ["FULL", "NORMAL", "OFF"])
async def test_sqlite_chunks_leave_the_connections_synchronous_level_as_it_was(
        tmp_path: Any, monkeypatch: pytest.MonkeyPatch, level: str) -> None:
    monkeypatch.setattr(storage.sqlite_facts, "SAVE_CHUNK", 2)
    store = SqliteStore(str(tmp_path / "s.db"), synchronous=level)
    await store.open()
    try:
        def synchronous() -> int:
            return int(store._db.execute("PRAGMA synchronous").fetchone()[0])

        before = synchronous()
        puts: list[Put] = [("candle", str(n), {"v": n}) for n in range(7)]
        assert await store.save_projection("p", 0, 7, puts) is True
        assert synchronous() == before
        assert await store.save_projection("p", 0, 8, puts) is False  # fenced at a chunk
        assert synchronous() == before
        assert await store.count_projection("candle") == 7
    finally:
        await store.close()
