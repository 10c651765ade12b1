"""Persistence for ECE: one `Store` contract, SQLite and MongoDB implementations.

Use `open_store(url)` to build a store from a URL, then `await store.open()`.
"""

from __future__ import annotations

import os
import tempfile
from urllib.parse import parse_qs, urlsplit

from storage.base import (
    SETTLE_ASSET_MOVED,
    CommitBatch,
    Conflict,
    Store,
    StoreError,
    sort_name,
)

__all__ = [
    "SETTLE_ASSET_MOVED",
    "CommitBatch",
    "Conflict",
    "Store",
    "StoreError",
    "open_store",
    "sort_name",
]


def _shm_dir() -> str:
    # /dev/shm is tmpfs on Linux: fast and shared by every process on the host.
    return "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()


def open_store(url: str) -> Store:
    """Build (but do not open) a store.

    sqlite:///abs/path.db[?synchronous=NORMAL]  -> SqliteStore (WAL, synchronous=FULL default)
    memory:NAME                                  -> SqliteStore on /dev/shm/ece-NAME.db, sync OFF
    mongodb://host/[db][?...] / mongodb+srv://   -> MongoStore (db "ece" unless in the path;
                                                    ?w=1&journal=false relax durability)
    """
    if url.startswith("memory:"):
        from storage.sqlite import SqliteStore

        name = url.removeprefix("memory:").strip("/") or "default"
        if not name.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"bad memory store name {name!r}")
        return SqliteStore(os.path.join(_shm_dir(), f"ece-{name}.db"), synchronous="OFF")
    if url.startswith("sqlite://"):
        from storage.sqlite import SqliteStore

        rest = url.removeprefix("sqlite://")
        path, _, query = rest.partition("?")
        if not path:
            raise ValueError(f"sqlite URL needs a path: {url!r}")
        synchronous = parse_qs(query).get("synchronous", ["FULL"])[-1]
        return SqliteStore(path, synchronous=synchronous)
    if url.startswith(("mongodb://", "mongodb+srv://")):
        from storage.mongo import MongoStore

        parts = urlsplit(url)
        db_name = parts.path.strip("/") or "ece"
        opts: dict[str, str] = {k.lower(): v[-1] for k, v in parse_qs(parts.query).items()}
        concern = opts.get("w", "majority")
        w: str | int = int(concern) if concern.isdigit() else concern
        journal = opts.get("journal", "true").lower() != "false"
        return MongoStore(url, db_name=db_name, write_concern=w, journal=journal)
    raise ValueError(f"unsupported store URL {url!r}")
