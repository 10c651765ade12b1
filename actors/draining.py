"""The set of draining nodes, kept in the store so that a restarted directory still places no
host on them.

One document through the store's generic document API (`save_projection` /
`get_projection_doc`, as the analytics keep their results): kind "directory", key
"draining", {"nodes": [node ids]}. Its writes are fenced by their own checkpoint, a version
counter: a write that lost a race to another is made again from the set as it is then.
"""

from __future__ import annotations

from collections.abc import Collection

from storage import Store, StoreError

KIND = "directory"
KEY = "draining"
VERSION = "directory.draining"  # the checkpoint that fences the document's writes
ATTEMPTS = 5


async def load_draining(store: Store) -> set[str]:
    """The nodes stored as draining (none if never written)."""
    doc = await store.get_projection_doc(KIND, KEY)
    return {str(node) for node in doc.get("nodes", ())} if doc is not None else set()


async def save_draining(store: Store, nodes: Collection[str]) -> None:
    """Store `nodes` as the draining set. `nodes` may be the directory's live set: a write
    fenced by a concurrent one is made again from what it holds then."""
    for _ in range(ATTEMPTS):
        version = await store.projection_checkpoint(VERSION)
        if await store.save_projection(VERSION, version, version + 1,
                                       [(KIND, KEY, {"nodes": sorted(nodes)})]):
            return
    raise StoreError(f"the draining nodes were not stored: {ATTEMPTS} writes fenced")
