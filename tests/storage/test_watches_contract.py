"""Watches in the Store contract (storage.facts.record_watch / auction_watchers), run against
every back end: once per user and auction, the first time kept, only for auctions that
exist and are open, so a client naming made-up or finished auctions stores nothing."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storage import Store
from storage.sqlite import SqliteStore
from tests.storage.conftest import Backend
from tests.storage.test_contract import finish, listed

AT = 1_700_000_000_000


async def test_a_watch_is_recorded_once_the_first_time_kept(store: Store) -> None:
    await listed(store, "a1")  # scheduled
    await listed(store, "a2")
    await finish(store, "a2", "live")
    assert await store.auction_watchers("a1") == []
    assert await store.record_watch("u2", "a1", AT + 5) is True
    assert await store.record_watch("u2", "a1", AT) is False  # earlier or later: the first
    assert await store.record_watch("u2", "a1", AT + 9) is False
    assert await store.record_watch("u3", "a1", AT + 5) is True
    assert await store.record_watch("u1", "a1", AT + 1) is True  # the seller too: the store
    assert await store.record_watch("u2", "a2", AT + 7) is True  # keeps what it is told
    # By time, then user id.
    assert await store.auction_watchers("a1") == [("u1", AT + 1), ("u2", AT + 5),
                                                  ("u3", AT + 5)]
    assert await store.auction_watchers("a2") == [("u2", AT + 7)]
    assert await store.auction_watchers("nope") == []


async def test_missing_and_finished_auctions_are_not_watched(store: Store) -> None:
    await listed(store, "closed")
    await finish(store, "closed", "closed")
    await listed(store, "cancelled")
    await finish(store, "cancelled", "cancelled")
    for auction_id in ("closed", "cancelled", "nope"):
        assert await store.record_watch("u2", auction_id, AT) is False
        assert await store.auction_watchers(auction_id) == []
    # Watched while open, then closed: the watch stays; no new one after.
    await listed(store, "a1")
    assert await store.record_watch("u2", "a1", AT) is True
    await finish(store, "a1", "closed")
    assert await store.record_watch("u3", "a1", AT + 1) is False
    assert await store.auction_watchers("a1") == [("u2", AT)]


async def test_a_hostile_client_naming_many_auctions_stores_nothing(backend: Backend,
                                                                    store: Store) -> None:
    await listed(store, "real")
    made_up = [f"x{i}" for i in range(500)]
    answers = await asyncio.gather(*(store.record_watch("evil", a, AT) for a in made_up))
    assert not any(answers)
    assert await store.record_watch("evil", "real", AT) is True
    assert await stored_watches(backend, store) == 1


@pytest.mark.parametrize(("user_id", "auction_id", "at"), [
    ("", "a1", AT), (None, "a1", AT), ("u1", "", AT), ("u1", 7, AT), ("u1", "x" * 201, AT),
    ("u1", "a1", None), ("u1", "a1", 1.5), ("u1", "a1", True), ("u1", "a1", -1)])
async def test_malformed_watches_are_refused(store: Store, user_id: Any, auction_id: Any,
                                             at: Any) -> None:
    await listed(store, "a1")
    with pytest.raises(ValueError):
        await store.record_watch(user_id, auction_id, at)
    assert await store.auction_watchers("a1") == []


async def test_concurrent_watches_of_one_pair_store_one(backend: Backend) -> None:
    stores = [await backend.open() for _ in range(4)]
    await listed(stores[0], "a1")
    answers = await asyncio.gather(*(s.record_watch("u2", "a1", AT + i)
                                     for i, s in enumerate(stores)))
    assert sorted(answers) == [False, False, False, True]
    watchers = await stores[1].auction_watchers("a1")
    assert watchers == [("u2", AT + answers.index(True))]


# -- property: the watchers are each open auction's first watch per user --------------------
_watch = st.tuples(st.sampled_from(["u1", "u2", "u3"]), st.integers(0, 3),
                   st.integers(0, 10_000))


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(watches=st.lists(_watch, max_size=25))
async def test_watchers_are_the_first_watch_of_each_user(backend: Backend,
                                                         watches: list[Any]) -> None:
    store = backend.opened[0] if backend.opened else await backend.open()
    run = uuid.uuid4().hex[:8]  # one store for every example: fresh auctions
    ids = [f"{run}-{i}" for i in range(4)]
    for auction_id in ids[:3]:  # the fourth does not exist
        await listed(store, auction_id)
    await finish(store, ids[2], "closed")
    first: dict[tuple[str, str], int] = {}
    for user_id, i, t in watches:
        new = await store.record_watch(user_id, ids[i], AT + t)
        open_ = i < 2
        assert new is (open_ and (user_id, ids[i]) not in first)
        if new:
            first[(user_id, ids[i])] = AT + t
    for auction_id in ids:
        expected = sorted(((u, t) for (u, a), t in first.items() if a == auction_id),
                          key=lambda w: (w[1], w[0]))
        assert await store.auction_watchers(auction_id) == expected


# -- SQLite specifics ---------------------------------------------------------------------------
async def stored_watches(backend: Backend, store: Store) -> int:
    """Watch rows stored, read behind the contract (a stray one would show)."""
    if isinstance(store, SqliteStore):
        return int(store._db.execute("SELECT count(*) FROM watches").fetchone()[0])
    return int(await store._coll("watches").count_documents({}))  # type: ignore[attr-defined]


async def test_sqlite_repeated_watch_takes_no_write_lock(
        sqlite_backend: Backend[SqliteStore]) -> None:
    backend = sqlite_backend
    store = await backend.open()
    await listed(store, "a1")
    assert await store.record_watch("u2", "a1", AT) is True
    with contextlib.closing(sqlite3.connect(store.path, isolation_level=None)) as other:
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        try:
            # Answered from a read: no wait for the lock (its busy timeout is 10 s).
            assert await asyncio.wait_for(store.record_watch("u2", "a1", AT + 1), 5) is False
            assert await asyncio.wait_for(store.record_watch("u2", "nope", AT), 5) is False
        finally:
            other.execute("ROLLBACK")
    assert await store.record_watch("u3", "a1", AT) is True
    assert await stored_watches(backend, store) == 2
