"""Fault injection for MongoStore: the process dies at one of its writes.

Without transactions, MongoStore's multi-step writes must survive a crash between any two of
them; these helpers put a proxy between the store and its database that counts every write
(as `collection.method`) and makes the chosen one raise AutoReconnect, as the driver does
when the process loses MongoDB there.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pymongo.errors import AutoReconnect

from storage.mongo import MongoStore

WRITES = frozenset({"insert_one", "insert_many", "update_one", "update_many", "delete_one",
                    "delete_many", "bulk_write", "find_one_and_update", "replace_one"})


class Crash:
    """Counts the store's writes over every collection (and which they were, in `writes`);
    the `at`-th (or, `at` a name such as "trades.insert_one", the first of that name) raises
    AutoReconnect - before it reaches the server, or, `landed`, after it was applied (only the
    reply is lost). `at` 0 never fires (a dry run that counts)."""

    def __init__(self, at: int | str, landed: bool = False) -> None:
        self.at, self.landed, self.fired = at, landed, False
        self.writes: list[str] = []

    def due(self, name: str) -> bool:
        """Counts the write `name`; whether it is the one to fire (once)."""
        self.writes.append(name)
        hit = name == self.at if isinstance(self.at, str) else len(self.writes) == self.at
        if hit and not self.fired:
            self.fired = True
            return True
        return False

    def wrap(self, name: str, method: Any) -> Any:
        async def write(*args: Any, **kwargs: Any) -> Any:
            if not self.due(name):
                return await method(*args, **kwargs)
            if self.landed:
                await method(*args, **kwargs)
            raise AutoReconnect(f"injected crash at write {self.at} ({name})")

        return write


class Interpose(Crash):
    """The `at`-th write waits for `before` (another caller's work), then goes through."""

    def __init__(self, at: int, before: Callable[[], Any]) -> None:
        super().__init__(at)
        self.before = before

    def wrap(self, name: str, method: Any) -> Any:
        async def write(*args: Any, **kwargs: Any) -> Any:
            if self.due(name):
                await self.before()
            return await method(*args, **kwargs)

        return write


class _Coll:
    def __init__(self, coll: Any, crash: Crash) -> None:
        self._coll, self._crash = coll, crash

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._coll, name)
        if name not in WRITES:
            return attr
        return self._crash.wrap(f"{self._coll.name}.{name}", attr)


class _Db:
    def __init__(self, db: Any, crash: Crash) -> None:
        self._db, self._crash = db, crash

    def __getitem__(self, name: str) -> _Coll:
        return _Coll(self._db[name], self._crash)


@contextlib.contextmanager
def intercepting[C: Crash](store: MongoStore, crash: C) -> Iterator[C]:
    real = store._db
    store._db = _Db(real, crash)  # type: ignore[assignment]
    try:
        yield crash
    finally:
        store._db = real


def crashing(store: MongoStore, at: int | str,
             landed: bool = False) -> contextlib.AbstractContextManager[Crash]:
    return intercepting(store, Crash(at, landed))


def interposing(store: MongoStore, at: int,
                before: Callable[[], Any]) -> contextlib.AbstractContextManager[Interpose]:
    return intercepting(store, Interpose(at, before))


async def crash_then(store: MongoStore, at: int | str, landed: bool,
                     write: Callable[[], Any]) -> None:
    """Run `write` on `store`, which dies at its `at`-th write (or first `at` write)."""
    with crashing(store, at, landed) as crash, pytest.raises(AutoReconnect):
        await write()
    assert crash.fired


async def count_writes(store: MongoStore, write: Callable[[], Any]) -> list[str]:
    """The writes `write` makes on `store`, in order, as `collection.method`."""
    with crashing(store, 0) as crash:
        await write()
    return crash.writes
