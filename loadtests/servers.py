"""Subprocesses the benchmark starts (ECE servers, the echo server) and what it reads off them.

Every process is started in a session of its own (``start_new_session=True``), so it leads its
own process group. Stopping is by pid and pgid only: SIGTERM to the leader (an ECE gateway then
shuts its private Ray down itself), SIGKILL to the group, and SIGKILL to any descendant recorded
while it ran that outlived it (Ray workers put themselves in groups of their own).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
RAY_ADDRESS = re.compile(r"ECE_RAY_ADDRESS=(\S+)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Managed:
    """One subprocess we own: started in its own session, stopped by pid / pgid."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_path: Path,
                 port: int) -> None:
        self.name = name
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(
            argv, cwd=ROOT, env={**os.environ, **env}, stdout=self._log,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
        self.ready_s: float | None = None
        self._seen: dict[int, float] = {}  # descendant pid -> create_time

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def wait_ready(self, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited early:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.base + "/healthz", timeout=1) as response:
                    if response.status == 200:
                        self.ready_s = time.monotonic() - self.started_at
                        self.remember_descendants()
                        return self.ready_s
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready after {timeout:.0f}s:\n{self.log_tail()}")

    def process(self) -> psutil.Process:
        return psutil.Process(self.pid)

    def descendants(self) -> list[psutil.Process]:
        try:
            return self.process().children(recursive=True)
        except psutil.Error:
            return []

    def remember_descendants(self) -> None:
        for child in self.descendants():
            with contextlib.suppress(psutil.Error):
                self._seen[child.pid] = child.create_time()

    def stop(self, grace: float = 20.0) -> None:
        if self.proc.poll() is None:
            self.remember_descendants()
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=grace)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        # Descendants that left our group (Ray workers) and are still alive: same pid and same
        # start time as recorded, so a recycled pid is never touched.
        deadline = time.monotonic() + 5
        for pid, created in self._seen.items():
            with contextlib.suppress(psutil.Error):
                child = psutil.Process(pid)
                if child.create_time() == created:
                    while child.is_running() and time.monotonic() < deadline:
                        time.sleep(0.1)  # give it a moment to exit on its own (raylet gone)
                    if child.is_running() and child.create_time() == created:
                        child.kill()
        self._seen.clear()
        if not self._log.closed:
            self._log.close()


def start_echo(tmp: Path) -> Managed:
    port = free_port()
    return Managed("echo", [sys.executable, "-m", "loadtests.echo", "--port", str(port)], {},
                   tmp / "echo.log", port)


BENCH_LIMITS = {
    "ECE_RATE_LIMIT": "1000000000",
    "ECE_RATE_BURST": "1000000000",
    "ECE_FRAME_RATE": "1000000000",
    "ECE_FRAME_BURST": "1000000000",
    "ECE_MAX_CONN_PER_IP": "100000",
    "ECE_MAX_CONN_PER_USER": "100000",
    "ECE_AUTH_IP_PER_MIN": "1000000",
    "ECE_AUTH_IP_BURST": "100000",
    "ECE_AUTH_USER_PER_MIN": "1000000",
    "ECE_AUTH_USER_BURST": "100000",
    "ECE_CREATE_PER_MIN": "1000000",
    "ECE_CREATE_BURST": "100000",
    "ECE_MAX_HOSTS": "1000",
}


def start_ece(name: str, tmp: Path, env: dict[str, str]) -> Managed:
    port = free_port()
    data = tmp / name
    data.mkdir(parents=True, exist_ok=True)
    full_env = {
        "ECE_PORT": str(port),
        "ECE_DATA_DIR": str(data / "data"),
        "ECE_SEED": "0",
        "ECE_SECRET": "bench-secret-that-is-at-least-thirty-two-bytes-long",
        # A benchmark is one client machine driving thousands of users: it raises the limits
        # meant for hostile clients through the settings, it does not bypass them.
        **BENCH_LIMITS,
        "ECE_LOG_LEVEL": "WARNING",
        "RAY_USAGE_STATS_ENABLED": "0",
        **env,
    }
    return Managed(name, [sys.executable, "-m", "gateway.cli", "serve"], full_env,
                   data / "server.log", port)


def ray_address_of(server: Managed, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = RAY_ADDRESS.search(server.log_tail(200_000))
        if found:
            return found.group(1)
        time.sleep(0.1)
    raise RuntimeError(f"{server.name} printed no ECE_RAY_ADDRESS:\n{server.log_tail()}")


# ---- reading processes ---------------------------------------------------------------------

def host_processes(root: Managed) -> dict[int, psutil.Process]:
    """Ray workers under `root` that run an auction host (Ray titles them ray::AuctionHost)."""
    found: dict[int, psutil.Process] = {}
    for child in root.descendants():
        with contextlib.suppress(psutil.Error):
            cmd = child.cmdline()
            if cmd and cmd[0].startswith("ray::AuctionHost"):
                found[child.pid] = child
    return found


def rss(processes: list[psutil.Process]) -> int:
    total = 0
    for proc in processes:
        with contextlib.suppress(psutil.Error):
            total += proc.memory_info().rss
    return total


def uss(processes: list[psutil.Process]) -> int:
    total = 0
    for proc in processes:
        with contextlib.suppress(psutil.Error):
            total += proc.memory_full_info().uss
    return total


def cpu_seconds(processes: dict[str, list[psutil.Process]]) -> dict[str, float]:
    """User+system CPU seconds so far, summed per group name."""
    out: dict[str, float] = {}
    for name, procs in processes.items():
        total = 0.0
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                times = proc.cpu_times()
                total += times.user + times.system
        out[name] = total
    return out


def ray_processes(root: Managed) -> list[psutil.Process]:
    """Everything under `root` except auction hosts (raylet, GCS, directory, agents...)."""
    hosts = host_processes(root)
    return [p for p in root.descendants() if p.pid not in hosts]
