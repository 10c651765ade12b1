"""The instance's singleton actors — the directory, the analytics actor, the portfolio shards:
every named actor of the instance but the auction hosts — where they run, and how a drain
moves them off a node (`move_off`, run by `ece drain` once the directory has moved the hosts).

A singleton moves by a restart of Ray's (`ray.kill(no_restart=False)`; each has
max_restarts=-1): the same actor id, so every handle to it stays valid (gateways' routers and
hosts hold the directory's) and calls to the directory are retried by Ray meanwhile
(max_task_retries=-1); the restarted actor rebuilds from the store, and `ready` answers once
it has. Ray puts a restarted actor that asks for no resource on any alive node
(ray-project/ray#25360), the leaving one included: it is restarted again until it runs on a
node that is neither leaving nor draining, at most `MAX_RESTARTS` times.

Ray's own node drain (GCS DrainNode, reason PREEMPTION) is not used, though it would steer
the restarts: in Ray 2.60 it is accepted on a busy node (the head too) and Ray places nothing
there afterwards, but it cannot be undone, and the raylet exits by itself as soon as no
resource is held on the node — actors asking for none (these singletons) and drivers (the
node's gateway) do not count — so the node would leave at once, its gateway with it, before
the operator takes that gateway out of the load balancer (docs/operations.md).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import ray

from actors.config import ClusterConfig

# Restarts of one singleton before its move is reported failed. Ray picks a node at random:
# with N alive nodes, each restart stays on a bad one with odds about 1/N.
MAX_RESTARTS = 12
# How long one restart may take, until the actor answers `ready` (rebuilt from the store).
RESTART_TIMEOUT_S = 120.0
POLL_S = 0.05


@dataclass(frozen=True)
class Placed:
    """One alive actor of the instance and the node it runs on."""

    name: str
    actor_id: str
    node_id: str
    restarts: int


def _table(actor_id: str | None = None) -> Any:
    # Ray's GCS actor table (ray.util.state needs the dashboard, which clusters may not run).
    return ray._private.state.actors(actor_id)


def ece_actors(config: ClusterConfig) -> list[Placed]:
    """Every alive named actor of this instance (hosts and singletons), with its node."""
    prefix = f"{config.instance}:"
    found = []
    for info in _table().values():
        name = info.get("Name") or ""
        if info["State"] != "ALIVE" or not name.startswith(prefix):
            continue
        try:  # names are per namespace: this instance's own actor by that name only
            handle = ray.get_actor(name, namespace=config.namespace)
        except ValueError:
            continue
        if handle._actor_id.hex() == info["ActorID"]:
            found.append(Placed(name, info["ActorID"], info["Address"]["NodeID"],
                                info["NumRestarts"]))
    return sorted(found, key=lambda p: p.name)


def is_singleton(config: ClusterConfig, name: str) -> bool:
    """Whether `name` is a singleton (not an auction host, which the directory moves)."""
    return not name.startswith(config.host_name(0).rsplit(":", 1)[0] + ":")


def move_off(config: ClusterConfig, node_id: str, draining: set[str] | frozenset[str] = frozenset(),
             ) -> tuple[list[dict[str, Any]], list[str]]:
    """Restart every singleton running on `node_id` until it runs elsewhere (not on a node in
    `draining` either), one at a time, the directory last; each is ready (rebuilt) when this
    returns. Returns (the moves, the reasons of those that failed)."""
    avoid = {node_id, *draining}
    on_node = [p for p in ece_actors(config)
               if p.node_id == node_id and is_singleton(config, p.name)]
    on_node.sort(key=lambda p: p.name == config.directory_name())
    moves, errors = [], []
    for placed in on_node:
        try:
            moves.append(_move(config, placed, avoid))
        except (TimeoutError, RuntimeError, ray.exceptions.RayError) as exc:
            errors.append(f"{placed.name}: {exc}")
    return moves, errors


def _move(config: ClusterConfig, placed: Placed, avoid: set[str]) -> dict[str, Any]:
    handle = ray.get_actor(placed.name, namespace=config.namespace)
    started = time.monotonic()
    now = placed
    for attempt in range(1, MAX_RESTARTS + 1):
        ray.kill(handle, no_restart=False)
        now = _restarted(now)
        ray.get(handle.ready.remote(), timeout=RESTART_TIMEOUT_S)
        if now.node_id not in avoid:
            return {"name": placed.name, "from": placed.node_id, "to": now.node_id,
                    "restarts": attempt, "seconds": round(time.monotonic() - started, 3)}
    raise RuntimeError(f"still on a leaving or draining node ({now.node_id[:12]}) after "
                       f"{MAX_RESTARTS} restarts")


def _restarted(before: Placed) -> Placed:
    """The actor once Ray has restarted it (alive again, one restart more than `before`)."""
    deadline = time.monotonic() + RESTART_TIMEOUT_S
    while time.monotonic() < deadline:
        info = _table(before.actor_id)
        if info and info["State"] == "ALIVE" and info["NumRestarts"] > before.restarts:
            return Placed(before.name, before.actor_id, info["Address"]["NodeID"],
                          info["NumRestarts"])
        if info and info["State"] == "DEAD":
            raise RuntimeError(f"died for good: {info.get('DeathCause')}")
        time.sleep(POLL_S)
    raise TimeoutError(f"not restarted within {RESTART_TIMEOUT_S:.0f} s")
