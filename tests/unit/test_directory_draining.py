"""The draining mark survives a restart of the directory: a directory core rebuilt on the same
store (real SQLite on a file, and MongoDB over the wire) still places no host on a draining
node, and forgets the nodes that are gone."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import pytest_asyncio
from pymongo import AsyncMongoClient

from actors.draining import load_draining, save_draining
from storage import Store
from storage.mongo import MongoStore
from storage.sqlite import SqliteStore
from tests.unit.directorykit import FakeActors, FakeStore, directory

type MakeStore = Callable[[], Store]


@pytest_asyncio.fixture(params=["sqlite", "mongo"])
async def make_store(request: pytest.FixtureRequest,
                     tmp_path: Path) -> AsyncIterator[MakeStore]:
    """Independent store instances on one database (as a restarted actor would open), closed
    after the test."""
    opened: list[Store] = []
    if request.param == "sqlite":
        path = str(tmp_path / "ece.db")

        def build() -> Store:
            return SqliteStore(path)
    else:
        uri: str = request.getfixturevalue("mongo_uri")
        db = f"ece_test_{uuid.uuid4().hex[:12]}"

        def build() -> Store:
            return MongoStore(uri, db_name=db)

    def make() -> Store:
        store = build()
        opened.append(store)
        return store

    yield make
    for store in opened:
        await store.close()
    if request.param == "mongo":
        client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(uri)
        await client.drop_database(db)
        await client.close()


async def test_a_restarted_directory_still_places_no_host_on_a_draining_node(
        make_store: MakeStore) -> None:
    # The config names a shared store (placement and drains run), the store is `make_store`.
    first, _ = await directory({}, {}, per_actor=1, store=make_store())
    assert (await first.moves.drain("n1"))["error"] is None
    await first.shutdown()

    # The directory restarts (Ray restarts its actor): a new core, a new store connection.
    core, actors = await directory({}, {}, per_actor=1, store=make_store())
    assert core.draining == {"n1"}
    names = [await core.place(f"a{i}") for i in range(4)]
    assert sorted(core.node_of[n] for n in names) == ["n0", "n0", "n2", "n2"]
    assert (await core.nodes())["draining"] == ["n1"]
    assert all(h.node != "n1" for h in actors.spawned)


async def test_a_restarted_directory_forgets_draining_nodes_that_are_gone(
        make_store: MakeStore) -> None:
    first, _ = await directory({}, {}, store=make_store())
    for node in ("n1", "n2"):
        assert (await first.moves.drain(node))["error"] is None
    # n2 left the cluster while the directory was down.
    core, _ = await directory({}, {}, store=make_store(), actors=FakeActors({}, ["n0", "n1"]))
    assert core.draining == {"n1"}
    store = make_store()
    await store.open()
    assert await load_draining(store) == {"n1"}  # stored without it


async def test_the_draining_set_is_stored_whole(make_store: MakeStore) -> None:
    one, two = make_store(), make_store()
    await one.open()
    await two.open()
    assert await load_draining(one) == set()
    await save_draining(one, {"n1"})
    await save_draining(two, {"n1", "n2"})
    await save_draining(one, {"n2"})
    assert await load_draining(two) == {"n2"}


class RacedStore(FakeStore):
    """Another writer stores {"other"} between this one's read of the version and its write
    (once)."""

    def __init__(self, live: set[str]) -> None:
        super().__init__({})
        self.live = live
        self.raced = False

    async def projection_checkpoint(self, name: str) -> int:
        version = await super().projection_checkpoint(name)
        if not self.raced:
            self.raced = True
            await super().save_projection(name, version, version + 1,
                                          [("directory", "draining", {"nodes": ["other"]})])
            self.live.add("n2")  # what the directory marked meanwhile
        return version


async def test_a_fenced_write_is_made_again_from_the_set_as_it_is_then() -> None:
    live = {"n1"}
    store = RacedStore(live)
    await save_draining(store, live)  # type: ignore[arg-type]
    assert await load_draining(store) == {"n1", "n2"}  # type: ignore[arg-type]
    assert store.checkpoints["directory.draining"] == 2
