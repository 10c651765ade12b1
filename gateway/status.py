"""`ece status [--json]`: what an operator, a load balancer or a cron job asks of a running
cluster. The Ray nodes; the auction hosts with the node each runs on, its auctions and its
commands per second (two samples `sample_s` apart); every projection's lag; the store's
health. Exit 0 when healthy, 1 when not (each reason printed), 2 when the cluster or the
instance cannot be reached at all.

`collect` gathers (a Ray driver joining the cluster, like `ece serve` with ECE_RAY_ADDRESS)
and `assess` judges, purely, so its rules are unit tested. `join_cluster` is how every
operator command joins: within a deadline, or `Unreachable`."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

from actors.analytics.runner import read_lag
from gateway.config import Settings
from storage import open_store

HEALTHY, UNHEALTHY, UNREACHABLE = 0, 1, 2
# How long an operator command waits to join the Ray cluster before it reports it unreachable.
JOIN_DEADLINE_S = 10.0


class Unreachable(Exception):
    """The Ray cluster could not be joined: it refused, or did not answer in time."""


def join_cluster(address: str | None, deadline_s: float = JOIN_DEADLINE_S) -> None:
    """Join the Ray cluster at `address` (None: `auto`, this machine's) as a driver in the
    `ece` namespace, or raise `Unreachable` within `deadline_s`.

    `ray.init` retries an address nobody answers at for minutes (its control service, the
    GCS, in ~35 s attempts), so it runs in a daemon thread the caller waits for with the
    deadline. A join given up on is left behind: the caller should report and exit."""
    import ray

    outcome: list[Exception | None] = []
    done = threading.Event()

    def join() -> None:
        try:
            ray.init(address=address or "auto", namespace="ece", log_to_driver=False,
                     configure_logging=False)
            outcome.append(None)
        except Exception as exc:  # ConnectionError, RuntimeError, ValueError, ...
            outcome.append(exc)
        finally:
            done.set()

    # Outside the main thread Ray warns that it sets no SIGTERM handler: true, and harmless.
    logging.getLogger("ray._private.worker").addFilter(_no_sigterm_warning)
    threading.Thread(target=join, name="ece-join-ray", daemon=True).start()
    if not done.wait(deadline_s):
        raise Unreachable(f"no answer from the Ray cluster at {address or 'auto'} "
                          f"within {deadline_s:g} s")
    if outcome[0] is not None:
        raise Unreachable(_reason(outcome[0])) from outcome[0]


def _no_sigterm_warning(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith("SIGTERM handler is not set")


MAX_SECONDS = 86_400.0  # a duration option's bound (Ray's deadlines overflow near 1e308)


def seconds(text: str) -> float:
    """argparse type of a duration option: seconds, from zero to a day (`MAX_SECONDS`)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or not 0 <= value <= MAX_SECONDS:
        raise argparse.ArgumentTypeError(
            f"{text!r}: seconds must be between 0 and {MAX_SECONDS:.0f}")
    return value


@dataclass(frozen=True)
class Limits:
    """What `assess` tolerates."""

    max_lag_s: float = 60.0  # a projection further behind than this is unhealthy (`--max-lag`)
    max_store_ms: float = 2_000.0  # the store's answer to a one-row read
    call_timeout_s: float = 5.0  # an actor's answer to `stats` / `hosts`


def assess(status: dict[str, Any], limits: Limits) -> list[str]:
    """The reasons `status` (as `collect` builds it) is unhealthy; empty when healthy."""
    problems: list[str] = []
    alive = {n["node_id"] for n in status["nodes"] if n["alive"]}
    if not alive:
        problems.append("no live Ray node")
    if status.get("directory_error"):
        problems.append(f"directory: {status['directory_error']}")
    for host in status["hosts"]:
        if host.get("error"):
            problems.append(f"host {host['name']}: {host['error']}")
        elif host["node_id"] not in alive:
            problems.append(f"host {host['name']} runs on a node that is not alive")
    store = status["store"]
    if store.get("error"):
        problems.append(f"store: {store['error']}")
    elif store["read_ms"] > limits.max_store_ms:
        problems.append(f"store: a one-row read took {store['read_ms']:.0f} ms "
                        f"(limit {limits.max_store_ms:.0f})")
    for name, lag in sorted(status["projections"].items()):
        if lag["seconds_behind"] > limits.max_lag_s:
            problems.append(f"projection {name}: {lag['seconds_behind']:.0f} s behind "
                            f"({lag['facts_behind']} facts; limit {limits.max_lag_s:.0f} s)")
    return problems


async def _call(method: Any, timeout: float) -> Any:
    return await asyncio.wait_for(method.remote(), timeout)


async def _hosts(settings: Settings, limits: Limits, sample_s: float
                 ) -> tuple[list[dict[str, Any]], str | None]:
    import ray

    cluster = settings.cluster()
    try:
        directory = ray.get_actor(cluster.directory_name(), namespace=cluster.namespace)
        placed: dict[str, int] = await _call(directory.hosts, limits.call_timeout_s)
    except (ValueError, TimeoutError, ray.exceptions.RayError) as exc:
        return [], _reason(exc)

    async def sample(name: str) -> dict[str, Any]:
        try:
            handle = ray.get_actor(name, namespace=cluster.namespace)
            stats: dict[str, Any] = await _call(handle.stats, limits.call_timeout_s)
            return {**stats, "at": time.monotonic()}
        except (ValueError, TimeoutError, ray.exceptions.RayError) as exc:
            return {"error": _reason(exc)}

    names = sorted(placed)
    first = await asyncio.gather(*(sample(n) for n in names))
    await asyncio.sleep(sample_s)  # the rate's interval, not a synchronisation
    second = await asyncio.gather(*(sample(n) for n in names))
    out = []
    for name, a, b in zip(names, first, second, strict=True):
        row: dict[str, Any] = {"name": name, "placed": placed[name]}
        if "error" in b or "error" in a:
            row["error"] = b.get("error") or a.get("error")
        else:
            span = max(b["at"] - a["at"], 1e-3)
            row.update(node_id=b["node_id"], auctions=b["auctions"], nice=b.get("nice", 0),
                       offer_threads=b["offer_threads"],
                       commands_per_s=round(max(0, b["commands"] - a["commands"]) / span, 1))
        out.append(row)
    return out, None


async def _store(settings: Settings, limits: Limits) -> tuple[dict[str, Any], dict[str, Any]]:
    cluster = settings.cluster()
    store = None
    try:
        store = open_store(settings.store_url)  # a bad URL is a store problem too
        t = time.monotonic()
        await asyncio.wait_for(store.open(), limits.call_timeout_s)
        await asyncio.wait_for(store.sales_position(), limits.call_timeout_s)
        health = {"url": _redacted(settings.store_url),
                  "read_ms": round((time.monotonic() - t) * 1000, 1)}
        lag = await asyncio.wait_for(
            read_lag(store, cluster.price_shards, cluster.behaviour_shards,
                     int(time.time() * 1000), cluster.portfolio_shards),
            limits.call_timeout_s) if settings.analytics else {}
        return health, lag
    except Exception as exc:  # any failure of the store is what this reports
        url = _redacted(settings.store_url)  # error texts may quote the URL: never its password
        return {"url": url, "error": _reason(exc).replace(settings.store_url, url)}, {}
    finally:
        if store is not None:
            await store.close()


async def collect(settings: Settings, limits: Limits, sample_s: float = 1.0) -> dict[str, Any]:
    """The cluster as a driver sees it (Ray must be initialised)."""
    import ray

    nodes = [{"node_id": n["NodeID"], "address": n["NodeManagerAddress"], "alive": n["Alive"],
              "cpus": n.get("Resources", {}).get("CPU", 0.0)} for n in ray.nodes()]
    (hosts, directory_error), (store, lag) = await asyncio.gather(
        _hosts(settings, limits, sample_s), _store(settings, limits))
    for node in nodes:
        on = [h for h in hosts if h.get("node_id") == node["node_id"]]
        node["hosts"] = len(on)
        node["auctions"] = sum(h["auctions"] for h in on)
        node["commands_per_s"] = round(sum(h["commands_per_s"] for h in on), 1)
    return {"instance": settings.instance, "nodes": nodes, "hosts": hosts,
            "directory_error": directory_error, "store": store, "projections": lag}


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__


def _redacted(url: str) -> str:
    """The store URL without a password."""
    scheme, sep, rest = url.partition("://")
    if sep and "@" in rest:
        creds, _, host = rest.rpartition("@")
        return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"
    return url


def render(status: dict[str, Any], problems: list[str]) -> str:
    """The human form of `ece status`."""
    lines = [f"instance {status['instance']}: "
             + ("healthy" if not problems else f"UNHEALTHY ({len(problems)})")]
    for node in status["nodes"]:
        state = "alive" if node["alive"] else "DEAD"
        lines.append(f"node {node['node_id'][:12]} {node['address']} {state}: "
                     f"{node['hosts']} hosts, {node['auctions']} auctions, "
                     f"{node['commands_per_s']} commands/s")
    for host in status["hosts"]:
        if host.get("error"):
            lines.append(f"  host {host['name']}: {host['error']}")
        else:
            # A host below normal priority waits behind the gateway for a CPU (Ray starts
            # workers at nice 15 unless its node is told otherwise: gateway.cli).
            nice = (f", at nice {host['nice']} (its node's Ray starts workers below normal "
                    "priority: docs/operations.md, A cluster)"
                    if host.get("nice") else "")
            lines.append(f"  host {host['name']} on {host['node_id'][:12]}: "
                         f"{host['auctions']} auctions, {host['offer_threads']} offer threads, "
                         f"{host['commands_per_s']} commands/s{nice}")
    store = status["store"]
    lines.append(f"store {store['url']}: "
                 + (store["error"] if store.get("error") else f"read in {store['read_ms']} ms"))
    for name, lag in sorted(status["projections"].items()):
        lines.append(f"  projection {name}: {lag['facts_behind']} facts, "
                     f"{lag['seconds_behind']} s behind")
    lines.extend(f"problem: {p}" for p in problems)
    return "\n".join(lines)


def joined(settings: Settings, deadline_s: float) -> bool:
    """Join the cluster for a CLI command; False (said on stderr) when it cannot be reached."""
    try:
        join_cluster(settings.ray_address, deadline_s)
    except Unreachable as exc:
        print(f"cannot reach the Ray cluster: {exc}", file=sys.stderr)
        return False
    return True


def run(settings: Settings, as_json: bool, limits: Limits, sample_s: float,
        join_deadline_s: float = JOIN_DEADLINE_S) -> int:
    """`ece status`: join the cluster, collect, print, and the exit code."""
    import ray

    if not joined(settings, join_deadline_s):
        return UNREACHABLE
    try:
        status = asyncio.run(collect(settings, limits, sample_s))
    finally:
        ray.shutdown()
    problems = assess(status, limits)
    if as_json:
        print(json.dumps({**status, "healthy": not problems, "problems": problems}, indent=2))
    else:
        print(render(status, problems))
    if status["directory_error"] and not status["hosts"]:
        return UNREACHABLE if "ValueError" in status["directory_error"] else UNHEALTHY
    return UNHEALTHY if problems else HEALTHY
