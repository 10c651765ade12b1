"""Fakes of Ray and the store for the directory's core (actors.directory.DirectoryCore): hosts
that start where told and count commands, a node list, and a store of open auctions."""

from __future__ import annotations

import asyncio
from typing import Any

from actors.config import ClusterConfig
from actors.directory import DirectoryCore
from storage import Store

NODES = ["n0", "n1", "n2"]


class Method:
    """An actor method: `remote` starts the call (as Ray does) and answers an awaitable."""

    def __init__(self, fn: Any) -> None:
        self.fn = fn
        self.calls = 0

    def remote(self, *args: Any) -> Any:
        self.calls += 1
        return asyncio.ensure_future(self.fn(*args))


class FakeHost:
    """A host on `node`; `commands` is its counter (`stats`), `stuck` holds its `stats`
    answer until set."""

    def __init__(self, name: str, node: str) -> None:
        self.name, self.node, self.killed = name, node, False
        self.commands = 0
        self.stuck = asyncio.Event()
        self.stuck.set()
        self.ready = Method(self._ready)
        self.stats = Method(self._stats)

    async def _ready(self) -> bool:
        if self.killed:
            raise RuntimeError(f"{self.name} is dead")
        return True

    async def _stats(self) -> dict[str, Any]:
        await self.stuck.wait()
        await self._ready()
        return {"node_id": self.node, "auctions": 0, "offer_threads": 0,
                "commands": self.commands}


class FakeActors:
    """`actors.nodes.Hosts` without Ray: hosts start where `first` says (then where asked);
    a stop ends when `stopping` is set, or fails with `stop_error`; `nodes` are alive."""

    def __init__(self, first: dict[str, str], nodes: list[str] | None = None) -> None:
        self.first = dict(first)
        self.nodes = list(NODES if nodes is None else nodes)
        self.spawned: list[FakeHost] = []
        self.stopping = asyncio.Event()
        self.stopping.set()
        self.stop_error: Exception | None = None
        self.listing = asyncio.Event()
        self.listing.set()
        self.listed = 0

    def spawn(self, name: str, node: str | None) -> FakeHost:
        host = FakeHost(name, self.first.pop(name, node or self.nodes[0]))
        self.spawned.append(host)
        return host

    def kill(self, handle: FakeHost) -> None:
        handle.killed = True

    async def gone(self, handle: FakeHost, name: str) -> None:
        await self.stopping.wait()
        if self.stop_error is not None:
            raise self.stop_error

    def running(self, name: str) -> bool:
        return any(h.name == name and not h.killed for h in self.spawned)

    async def alive(self) -> list[str]:
        await self.listing.wait()
        self.listed += 1
        return list(self.nodes)

    def own_node(self) -> str:
        return self.nodes[0]

    def starts(self, name: str) -> int:
        return sum(h.name == name for h in self.spawned)

    def running_on(self, name: str) -> FakeHost:
        return next(h for h in reversed(self.spawned) if h.name == name and not h.killed)


class FakeStore:
    """Open auctions (auction -> host) and the generic documents the directory keeps."""

    def __init__(self, auctions: dict[str, str]) -> None:
        self.auctions = auctions
        self.docs: dict[tuple[str, str], dict[str, Any]] = {}
        self.checkpoints: dict[str, int] = {}

    async def open(self) -> None:
        pass

    async def open_auctions(self) -> list[dict[str, Any]]:
        return [{"auction_id": a, "host": h} for a, h in self.auctions.items()]

    async def open_offers(self) -> list[dict[str, Any]]:
        return []

    async def unsettled_finished(self) -> list[dict[str, Any]]:
        return []

    async def get_projection_doc(self, kind: str, key: str) -> dict[str, Any] | None:
        return self.docs.get((kind, key))

    async def projection_checkpoint(self, name: str) -> int:
        return self.checkpoints.get(name, 0)

    async def save_projection(self, name: str, expect: int, pos: int,
                              puts: list[tuple[str, str, dict[str, Any]]]) -> bool:
        if self.checkpoints.get(name, 0) != expect:
            return False
        for kind, key, doc in puts:
            self.docs[(kind, key)] = doc
        self.checkpoints[name] = pos
        return True


class Clock:
    """The directory's clock (`DirectoryCore.clock`), moved by the test."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def host(i: int) -> str:
    return f"ece:host:{i}"


SHARED = "mongodb://fake/ece"  # placement and moves run with a shared store only


async def directory(auctions: dict[str, str], first: dict[str, str], per_actor: int = 2,
                    store_url: str = SHARED, store: Store | FakeStore | None = None,
                    actors: FakeActors | None = None, clock: Clock | None = None,
                    ) -> tuple[DirectoryCore, FakeActors]:
    """A started directory core over fakes (or over `store`), on `clock` if given; no
    background sampling (tests call `ask_hosts`)."""
    actors = actors if actors is not None else FakeActors(first)
    config = ClusterConfig(store_url=store_url, auctions_per_actor=per_actor)
    core = DirectoryCore(config, store if store is not None else FakeStore(auctions),  # type: ignore[arg-type]
                         actors, sample_s=None)
    if clock is not None:
        core.clock = clock
    await core.ready()
    return core, actors


async def settle() -> None:
    """Let every task that can run go on to its next wait (the fakes do no I/O)."""
    for _ in range(200):
        await asyncio.sleep(0)
