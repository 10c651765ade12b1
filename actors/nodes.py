"""What the directory asks Ray about nodes and actors: which nodes are alive, where an actor
may be scheduled, and when a killed actor is really gone (`RayHosts`, which the unit tests
replace with a fake)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Protocol

import ray
from ray.exceptions import RayActorError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from actors.config import ClusterConfig

log = logging.getLogger("ece.directory")

# How long a killed actor may take to be gone.
STOP_TIMEOUT_S = 30.0
# How old the list of alive nodes may be when a new host is placed by it (listed again in the
# background, never on a caller's path; drain, rebalance and `nodes` list them afresh).
NODES_TTL_S = 5.0
# Ray ignores soft node affinity for an actor that requests no resource at all: it picks a
# random node (ray-project/ray#25360 fixed the hard case only; still so in Ray 2.60, checked
# on the test cluster). A host asks for one byte of Ray's `memory` resource, which makes the
# request non-empty and reserves nothing that matters.
NOMINAL_MEMORY = 1


def shared(config: ClusterConfig) -> bool:
    """Whether every node reaches the store (MongoDB), so actors may run anywhere."""
    return config.store_url.startswith(("mongodb://", "mongodb+srv://"))


def alive_nodes() -> list[str]:
    """The ids of the Ray nodes that are alive."""
    return [n["NodeID"] for n in ray.nodes() if n["Alive"]]  # type: ignore[no-untyped-call]


def strategy(config: ClusterConfig, node: str | None) -> str | NodeAffinitySchedulingStrategy:
    """With a shared store: on `node` if given (soft: Ray restarts the actor elsewhere if that
    node dies), else spread over the nodes. With the embedded store (a file on one machine):
    on the caller's node, whatever `node` says."""
    if not shared(config):
        return NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(),
                                              soft=False)
    return NodeAffinitySchedulingStrategy(node, soft=True) if node else "SPREAD"


def placed_on(config: ClusterConfig, node: str | None) -> dict[str, Any]:
    """Actor options that put it on `node` (see `strategy`)."""
    return {"scheduling_strategy": strategy(config, node), "memory": NOMINAL_MEMORY}


async def gone(handle: ray.actor.ActorHandle[Any], name: str, namespace: str) -> None:
    """Return once a killed actor (it has a `ready` method) is dead and its name is free."""
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            await handle.ready.remote()  # answered: the kill has not landed yet
        except RayActorError:
            try:
                ray.get_actor(name, namespace=namespace)
            except ValueError:
                return
        await asyncio.sleep(0.02)
    raise TimeoutError(f"{name} still running {STOP_TIMEOUT_S:.0f} s after its kill")


class Hosts(Protocol):
    """How the directory starts, stops and finds host actors, and lists the alive nodes."""

    def spawn(self, name: str, node: str | None) -> Any: ...
    def kill(self, handle: Any) -> None: ...
    async def gone(self, handle: Any, name: str) -> None: ...
    def running(self, name: str) -> bool: ...
    async def alive(self) -> list[str]: ...
    def own_node(self) -> str: ...


class RayHosts:
    """`Hosts` on Ray: AuctionHost actors, named and detached, in the instance's namespace."""

    def __init__(self, config: ClusterConfig) -> None:
        self.config = config

    def spawn(self, name: str, node: str | None) -> ray.actor.ActorHandle[Any]:
        from actors.host import AuctionHost  # the host's imports are heavy: only here

        handle: ray.actor.ActorHandle[Any] = AuctionHost.options(  # type: ignore[attr-defined]
            name=name,
            namespace=self.config.namespace,
            lifetime="detached",
            get_if_exists=True,
            **placed_on(self.config, node),
        ).remote(name, self.config.to_dict())
        return handle

    def kill(self, handle: ray.actor.ActorHandle[Any]) -> None:
        ray.kill(handle, no_restart=True)

    async def gone(self, handle: ray.actor.ActorHandle[Any], name: str) -> None:
        await gone(handle, name, self.config.namespace)

    def running(self, name: str) -> bool:
        try:
            ray.get_actor(name, namespace=self.config.namespace)
        except ValueError:
            return False
        return True

    async def alive(self) -> list[str]:
        return await asyncio.to_thread(alive_nodes)  # ray.nodes() blocks on Ray's GCS

    def own_node(self) -> str:
        return ray.get_runtime_context().get_node_id()


class AliveNodes:
    """The alive nodes as last listed (`nodes`), listed again in the background when stale."""

    def __init__(self, hosts: Hosts, ttl_s: float = NODES_TTL_S) -> None:
        self.hosts = hosts
        self.ttl_s = ttl_s
        self.nodes: list[str] = []
        self._at = float("-inf")
        self._listing: asyncio.Task[None] | None = None

    async def refresh(self) -> list[str]:
        self.nodes = await self.hosts.alive()
        self._at = time.monotonic()
        return self.nodes

    def soon(self) -> list[str]:
        """`nodes` now, without waiting; listed again in the background if older than ttl."""
        listing = self._listing is not None and not self._listing.done()
        if time.monotonic() - self._at > self.ttl_s and not listing:
            self._listing = asyncio.get_running_loop().create_task(self._quietly())
        return self.nodes

    async def _quietly(self) -> None:
        try:
            await self.refresh()
        except Exception:
            log.warning("listing the alive nodes failed", exc_info=True)
