"""`ece drain NODE_ID` and `ece rebalance`: the operator's commands that move auction hosts
between Ray nodes (actors.directory does the moves; see docs/operations.md). Once the
directory has moved a drained node's hosts, `ece drain` moves the instance's singletons off
it too (actors.singletons: the directory, analytics and portfolio actors), so that no ECE
actor is left there.

Both join the cluster as a driver, like `ece status`, within a deadline; print what moved;
and exit 0 when done, 1 when refused or a move failed (each reason printed), 2 when the
cluster or the instance cannot be reached at all."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from actors.config import ClusterConfig
from gateway.config import Settings
from gateway.status import (
    HEALTHY,
    JOIN_DEADLINE_S,
    UNHEALTHY,
    UNREACHABLE,
    joined,
)


def resolve_node(prefix: str, alive: list[str]) -> tuple[str | None, str | None]:
    """The alive node whose id starts with `prefix` (as `ece status` prints 12 characters):
    (node id, None), or (None, why not). An empty prefix names no node (an unset shell
    variable must not drain the only node)."""
    if not prefix.strip():
        return None, "no node id given"
    found = [node for node in alive if node.startswith(prefix)]
    if len(found) == 1:
        return found[0], None
    if not found:
        return None, f"no alive node {prefix}"
    return None, f"{prefix} names {len(found)} nodes; give more of the id"


def render(command: str, node_id: str | None, result: dict[str, Any]) -> str:
    moved = result["moved"]
    auctions = sum(m["auctions"] for m in moved)
    head = f"drain of node {node_id}" if command == "drain" else "rebalance"
    singles = len(result.get("singletons", []))
    lines = [f"{head}: moved {len(moved)} hosts ({auctions} auctions)"
             + (f" and {singles} singletons" if singles else "")
             + f" in {result['seconds']:.1f} s"]
    lines += [f"  host {m['host']}: {str(m['from'])[:12]} -> {m['to'][:12]}, "
              f"{m['auctions']} auctions, {m['offer_threads']} offer threads, "
              f"{m['seconds']:.2f} s" for m in moved]
    lines += [f"  {m['name']}: {str(m['from'])[:12]} -> {m['to'][:12]}, "
              f"{m['restarts']} restart(s), {m['seconds']:.2f} s"
              for m in result.get("singletons", [])]
    for node, hosts in sorted(result.get("nodes", {}).items()):
        state = " (draining)" if node in result.get("draining", []) else ""
        lines.append(f"node {node[:12]}{state}: {len(hosts)} hosts, "
                     f"{sum(hosts.values())} auctions")
    if result.get("error"):
        lines.append(f"problem: {result['error']}")
    return "\n".join(lines)


def _singletons_off(cluster: ClusterConfig, directory: Any, node_id: str,
                    drained: dict[str, Any], timeout: float) -> dict[str, Any]:
    """After the hosts: move the singletons off `node_id` (actors.singletons), then check
    that no actor of the instance is left there."""
    import ray

    from actors.singletons import ece_actors, move_off

    moves, errors = move_off(cluster, node_id, set(drained.get("draining", [])))
    out: dict[str, Any] = {"singletons": moves}
    if any(m["name"] == cluster.directory_name() for m in moves):
        # A restarted directory rebuilt from the store: drain again (idempotent: marks the
        # node draining, moves what a host placed meanwhile) and read its view afresh.
        again = ray.get(directory.drain.remote(node_id), timeout=timeout)
        out["moved"] = drained["moved"] + again["moved"]
        out.update(ray.get(directory.nodes.remote(), timeout=timeout))
        errors += [again["error"]] if again.get("error") else []
    left = [p.name for p in ece_actors(cluster) if p.node_id == node_id]
    if left:
        errors.append(f"still on the node: {', '.join(left)}")
    out["error"] = "; ".join(errors) or None
    return out


def run(settings: Settings, command: str, node: str | None, as_json: bool,
        timeout: float, join_deadline_s: float = JOIN_DEADLINE_S) -> int:
    """`ece drain NODE` / `ece rebalance`: join, ask the directory, print, the exit code."""
    import ray

    from actors.nodes import alive_nodes

    if not joined(settings, join_deadline_s):
        return UNREACHABLE
    try:
        cluster = settings.cluster()
        try:
            directory = ray.get_actor(cluster.directory_name(), namespace=cluster.namespace)
        except ValueError:
            print(f"no instance {settings.instance} runs on this cluster", file=sys.stderr)
            return UNREACHABLE
        node_id = None
        if command == "drain":
            node_id, why = resolve_node(node or "", alive_nodes())
            if node_id is None:
                print(f"ece drain: {why}", file=sys.stderr)
                return UNHEALTHY
        started = time.monotonic()
        call: ray.ObjectRef[dict[str, Any]] = (
            directory.drain.remote(node_id) if node_id else directory.rebalance.remote())
        result: dict[str, Any]
        try:
            result = ray.get(call, timeout=timeout)
            result.update(ray.get(directory.nodes.remote(), timeout=timeout))
            if node_id is not None and not result.get("error"):
                result.update(_singletons_off(cluster, directory, node_id, result, timeout))
        except ray.exceptions.GetTimeoutError:
            result = {"moved": [], "error": f"not finished within {timeout:g} s; the moves go "
                                            "on in the directory: see `ece status`"}
        except ray.exceptions.RayError as exc:
            result = {"moved": [], "error": f"{type(exc).__name__}: {str(exc)[:200]}"}
        result["seconds"] = round(time.monotonic() - started, 3)
    finally:
        ray.shutdown()
    if as_json:
        print(json.dumps({"command": command, "node_id": node_id, **result}, indent=2))
    else:
        print(render(command, node_id, result))
    return UNHEALTHY if result.get("error") else HEALTHY
