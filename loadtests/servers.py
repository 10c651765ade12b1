"""The servers a benchmark run starts, the client that sets them up, and their processes."""

from __future__ import annotations

import sys
from pathlib import Path

import aiohttp
import psutil

from loadtests.usage import host_processes, ray_processes
from testkit.client import Api
from testkit.processes import BENCH_LIMITS, Managed, free_port, start_ece

# 503s met during set-up (transient by the API's contract, retried), reported with the results.
ANOMALIES: dict[str, list] = {}
# The auctions the benchmark lists: English, an hour, no soft close (no extension mid-run).
BENCH_AUCTION = {"title": "Bench Card", "start_price": 100, "duration_ms": 3_600_000,
                 "soft_close_ms": 0}


def bench_api(base: str, http: aiohttp.ClientSession) -> Api:
    """The set-up client: 503s retried (a host being placed), and recorded."""
    return Api(base, http, retries=4, anomalies=ANOMALIES)


def start_server(name: str, tmp: Path, env: dict[str, str]) -> Managed:
    """`ece serve` with its own data dir under `tmp`; a benchmark is one client machine
    driving thousands of users, so it raises the limits meant for hostile clients."""
    data = tmp / name
    data.mkdir(parents=True, exist_ok=True)
    return start_ece(data / "server.log", {
        "ECE_DATA_DIR": str(data / "data"),
        "ECE_SECRET": "bench-secret-that-is-at-least-thirty-two-bytes-long",
        **BENCH_LIMITS,
        "ECE_LOG_LEVEL": "WARNING",
        **env,
    }, name)


def start_echo(tmp: Path) -> Managed:
    """The bare aiohttp WebSocket echo server (`loadtests.echo`)."""
    port = free_port()
    return Managed("echo", [sys.executable, "-m", "loadtests.echo", "--port", str(port)], {},
                   tmp / "echo.log", port)


def cpu_groups(server: Managed, ray_root: Managed, hosts: list[psutil.Process]) -> dict:
    """The processes a load window's CPU time is read from (`loadtests.driver.run_load`)."""
    host_pids = {h.pid for h in hosts}
    return {"gateway": [server.process()], "hosts": hosts,
            "ray_other": [p for p in ray_processes(ray_root) if p.pid not in host_pids]}


def instance_hosts(ray_root: Managed, before: set[int]) -> list[psutil.Process]:
    """The auction host processes started since `before` (this instance's, in a shared Ray)."""
    return [p for pid, p in host_processes(ray_root).items() if pid not in before]


# Every host process found for a server so far, by the server's pid. A server's hosts take
# many auctions each, so a later stage's auctions may all go to hosts an earlier stage
# started: without this their CPU fell outside the server's (the capacity stage of the
# 17:01 run counted no host and put the host's ~0.3 cores under "not ours").
_HOSTS_OF: dict[int, dict[int, psutil.Process]] = {}


def server_hosts(server: Managed, ray_root: Managed, before: set[int]) -> list[psutil.Process]:
    """`server`'s host processes still running: those started since `before`, and those
    found for it before."""
    seen = _HOSTS_OF.setdefault(server.pid, {})
    seen.update((p.pid, p) for p in instance_hosts(ray_root, before))
    return [p for p in seen.values() if p.is_running()]
