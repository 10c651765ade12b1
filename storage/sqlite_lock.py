"""The writer lock of a SQLite store's file: its writers, in every process, take turns.

A write transaction holds an flock of `<file>-writer.lock` (`WRITER_LOCK`) from before
BEGIN IMMEDIATE until after COMMIT or ROLLBACK. SQLite alone lets a writer that finds the
file locked sleep in its busy handler, in steps of 1, 2, 5, ... up to 100 ms, however soon
the lock frees: with two or more busy writers on one file (several auction hosts, the
projection actors) a commit now and then waited 100-300 ms for a lock held for under 1 ms.
Waiting on the flock, the kernel wakes the next writer as soon as the holder is done
(docs/performance/history.md, "Four fixes of 2026-12-04"). Readers take no lock (WAL). A process
that dies holding it lets it go with its file descriptors.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator

from storage.base import StoreError
from storage.sqlite_schema import WRITER_LOCK


class WriterLock:
    """One store's handle on its file's writer lock (opened and closed with the store)."""

    def __init__(self, db_path: str) -> None:
        self.path = db_path + WRITER_LOCK
        self._fd: int | None = None

    def open(self) -> None:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    @contextlib.contextmanager
    def turn(self) -> Iterator[None]:
        """Held for one write transaction; waits while another writer holds it."""
        if self._fd is None:
            raise StoreError("store is not open")
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
