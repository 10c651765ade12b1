"""MongoDB counter documents and duplicate-key codes, shared by the store's parts.

`counters` {_id: name, n}: `reserve` takes a block of positions of a feed with one $inc
(`storage.mongo_facts`: sales, closings, the analytics log; `storage.mongo_ledger`: notices).
A reserved position that no row takes is a gap readers pass, never a position given twice.
"""

from __future__ import annotations

import contextlib
from typing import Any, cast

from pymongo import ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from storage.base import StoreError

# A unique index refused the write (11001: older servers' code for the same).
DUP_CODES = frozenset({11000, 11001})


async def reserve(counters: AsyncCollection[dict[str, Any]], name: str, count: int) -> int:
    """Reserve `count` positions of counter `name`; returns the highest."""
    for _ in range(3):  # the first-ever upserts may race on the _id
        with contextlib.suppress(DuplicateKeyError):
            doc = await counters.find_one_and_update(
                {"_id": name}, {"$inc": {"n": int(count)}}, upsert=True,
                return_document=ReturnDocument.AFTER)
            return int(cast(dict[str, Any], doc)["n"])
    raise StoreError(f"cannot allocate {name} positions")
