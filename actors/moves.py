"""Moves of auction hosts between Ray nodes: `drain` a node, `rebalance` the nodes, `move` one
host. A move is a fenced handover: the host is stopped for good, then the same named host
starts on the target node and rebuilds its auctions and offer threads from the store.

While a host is stopped, a bid sent to it is answered UNAVAILABLE: by the host dying under
it, then, until the new actor's name is registered, by the router ("auction is being
placed"); once the name resolves, a call waits for the new host to be ready. The client
retries with its req_id, which the auction remembers. A write of the old owner still in
flight at the store when it dies may land there after its death, when the new host has
rebuilt without it: then the new owner's next append to that auction collides on
(auction_id, seq) and is refused; the late write stands, and the new host rebuilds that
auction from the store, late events included, and serves it again (host._reload_fenced).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from actors.nodes import shared
from actors.placement import Move, drain_moves, rebalance_moves

if TYPE_CHECKING:
    from actors.directory import DirectoryCore

log = logging.getLogger("ece.directory")

# Hosts moved at once by a drain or a rebalance (each: stop, start elsewhere, recover).
PARALLEL_MOVES = 4
EMBEDDED_STORE = ("the embedded store keeps every actor on its node: nothing can move "
                  "(use MongoDB to run on several nodes)")


class Mover:
    """The moves of one directory's hosts (`core`)."""

    def __init__(self, core: DirectoryCore) -> None:
        self.core = core
        # One plan and its moves at a time: a drain or rebalance plans from where the last
        # one left the hosts, so no host is moved twice by plans made side by side.
        self._planning = asyncio.Lock()

    async def drain(self, node_id: str) -> dict[str, Any]:
        """Move every host off `node_id` and place nothing new there; idempotent. The mark
        is stored before anything moves, so a restarted directory keeps it; the hosts go
        where `placement_load` (live auctions and commands/s) says, as new hosts would.

        Answers {"moved": [...], "error": reason or None}, each move as `_move` reports it.
        """
        core = self.core
        await core.ready()
        if not shared(core.config):
            return _refusal(EMBEDDED_STORE)
        if node_id not in await core.alive.refresh():
            return _refusal(f"no alive node {node_id}")
        try:  # in memory at once: no new host goes there while this waits
            await core.mark_draining(node_id)
        except Exception as exc:
            log.warning("could not store node %s as draining", node_id, exc_info=True)
            return _refusal(f"could not store the draining mark: {exc!r}")
        async with self._planning:
            await core.refresh_nodes()
            loads = core.loads(core.placed())
            leaving = loads.get(node_id, {})
            moves = drain_moves(leaving, {n: sum(h.values()) for n, h in loads.items()},
                                core.draining)
            if leaving and not moves:
                return _refusal("every other node is draining: nowhere to move its hosts")
            return await self._run(moves)

    async def rebalance(self) -> dict[str, Any]:
        """Move hosts so that live auctions are even over the nodes not draining."""
        core = self.core
        await core.ready()
        if not shared(core.config):
            return _refusal(EMBEDDED_STORE)
        async with self._planning:
            await core.refresh_nodes()
            return await self._run(rebalance_moves(core.placed(), core.draining))

    async def move(self, name: str, node: str | None = None) -> dict[str, Any]:
        """Move one host to `node` (default: the least-loaded node not draining; with the
        embedded store, this node: a restart in place, the same handover)."""
        core = self.core
        await core.ready()
        if name not in core.handles:
            return _refusal(f"no host {name}")
        if node is not None and not shared(core.config):
            return _refusal(EMBEDDED_STORE)
        async with self._planning:
            target = node or core.target_node() or core.actors.own_node()
            return await self._run([(name, target)])

    async def _run(self, moves: list[Move]) -> dict[str, Any]:
        limit = asyncio.Semaphore(PARALLEL_MOVES)

        async def one(name: str, target: str) -> dict[str, Any] | None:
            async with limit:
                return await self._move(name, target)

        done = await asyncio.gather(*(one(n, t) for n, t in moves), return_exceptions=True)
        moved = [m for m in done if isinstance(m, dict)]
        errors = [f"{n}: {e!r}" for (n, _), e in zip(moves, done, strict=True)
                  if isinstance(e, BaseException)]
        return {"moved": moved, "error": "; ".join(errors) or None}

    async def _move(self, name: str, target: str) -> dict[str, Any] | None:
        """Stop host `name` for good, then start it on `target`, where it recovers its
        auctions from the store. Until it is ready, its callers see it dead (UNAVAILABLE,
        then a fresh handle by name); `place`, `revive` and `release` of it wait for the
        end."""
        core = self.core
        old = core.handles.get(name)
        if old is None:  # retired since the plan (its auctions finished): nothing to move
            return None
        started = time.monotonic()
        source = core.node_of.get(name)
        done = asyncio.get_running_loop().create_future()
        core.moving[name] = done  # plans run one at a time: no other move of it is under way
        try:
            core.actors.kill(old)
            # From the kill on, the directory holds no handle of it: if the stop or the
            # start fails, the host is started afresh by name on its next use (`revive`).
            del core.handles[name]
            core.node_of.pop(name, None)
            await core.actors.gone(old, name)
            stopped = time.monotonic()
            handle = core.start(name, target)
            await handle.ready.remote()
            stats = await handle.stats.remote()
            if core.handles.get(name) is handle:
                core.node_of[name] = stats["node_id"]
        finally:
            del core.moving[name]
            done.set_result(None)
        log.info("moved host %s from %s to %s in %.2f s", name, source, stats["node_id"],
                 time.monotonic() - started)
        return {"host": name, "from": source, "to": stats["node_id"],
                "auctions": stats["auctions"], "offer_threads": stats["offer_threads"],
                "seconds": round(time.monotonic() - started, 3),
                "stop_seconds": round(stopped - started, 3)}


def _refusal(reason: str) -> dict[str, Any]:
    return {"moved": [], "error": reason}
