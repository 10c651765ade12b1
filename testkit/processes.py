"""Servers run as subprocesses we own: `ece serve` for the tests and the benchmark, and others.

Every process is started in a session of its own (``start_new_session=True``), so it leads its
own process group. Stopping is by pid and pgid only, never by name: SIGTERM to the leader (an
ECE gateway then shuts its private Ray down itself), SIGKILL to the group, and SIGKILL to any
descendant recorded while it ran that outlived it (Ray workers put themselves in groups of their
own); a recorded pid is touched only while it still has the start time recorded with it.
"""

from __future__ import annotations

import contextlib
import functools
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
RAY_ADDRESS = re.compile(r"ECE_RAY_ADDRESS=(\S+)")

# One client machine playing many users: the limits meant for hostile clients are raised
# through the settings, never bypassed. Tests of those limits set their own.
MANY_USERS = {
    "ECE_AUTH_IP_PER_MIN": "1000000",
    "ECE_AUTH_IP_BURST": "100000",
    "ECE_AUTH_USER_PER_MIN": "1000000",
    "ECE_AUTH_USER_BURST": "100000",
    "ECE_CREATE_PER_MIN": "1000000",
    "ECE_CREATE_BURST": "100000",
}
# The benchmark also has thousands of sockets bid as fast as they can, on many hosts.
BENCH_LIMITS = {
    **MANY_USERS,
    "ECE_RATE_LIMIT": "1000000000",
    "ECE_RATE_BURST": "1000000000",
    "ECE_FRAME_RATE": "1000000000",
    "ECE_FRAME_BURST": "1000000000",
    "ECE_MAX_CONN_PER_IP": "100000",
    "ECE_MAX_CONN_PER_USER": "100000",
    "ECE_MAX_HOSTS": "1000",
}


# Ports picked for servers lie below the kernel's ephemeral range, where a port bound to 0
# or an outgoing connection's local port may land at any moment (a pick from bind(0) was
# taken in the moment before its server bound it: "address already in use", a quick-bench
# failure on CI), and above `ray start`'s worker ports (10002-19999 by default), which Ray
# refuses to give any of its other components.
FIRST_PORT = 20_000
_PICKS = random.SystemRandom()  # the OS's: concurrent and forked processes pick apart


@functools.cache
def ephemeral_low() -> int:
    """The first port of the kernel's ephemeral range (32768 unless configured)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


def free_port() -> int:
    """A loopback port nothing listens on now, outside the ephemeral range."""
    for _ in range(200):
        port = _PICKS.randrange(FIRST_PORT, ephemeral_low())
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")


def threads_of(pid: int) -> dict[str, int]:
    """Each thread of `pid` as "<tid> <name>" -> its nice value (/proc/<pid>/task/*/stat)."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except FileNotFoundError:  # ended meanwhile
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        out[f"{tid} {name}"] = int(fields[16])  # field 19 of stat: nice
    return out


class Managed:
    """One subprocess we own: started in its own session, stopped by pid / pgid."""

    def __init__(self, name: str, argv: list[str], env: Mapping[str, str], log_path: Path,
                 port: int) -> None:
        self.name = name
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop() / kill()
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

    def wait_ready(self, timeout: float = 120.0) -> float:
        """Wait for `/healthz` to answer 200; returns the seconds since the start."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited early:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.base + "/healthz", timeout=1) as response:
                    # Ours only if our process listens there: a port found free, then taken
                    # by another server before ours bound it, answers too (ours then exits).
                    if response.status == 200 and self._listens():
                        self.ready_s = time.monotonic() - self.started_at
                        self.remember_descendants()
                        return self.ready_s
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready after {timeout:.0f}s:\n{self.log_tail()}")

    def _listens(self) -> bool:
        """Whether this process (or a child of it: ECE_GATEWAYS) listens on its port."""
        for proc in [self.process(), *self.descendants()]:
            try:
                if any(c.status == psutil.CONN_LISTEN and c.laddr.port == self.port
                       for c in proc.net_connections(kind="tcp")):
                    return True
            except psutil.Error:
                continue
        return False

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

    def kill(self) -> None:
        """SIGKILL at once: the process, its group and every descendant seen (no goodbye)."""
        if self.proc.poll() is None:
            self.remember_descendants()
        self._kill_group()
        self._kill_seen(grace=0.0)
        self._close_log()

    def stop(self, grace: float = 60.0) -> int:
        """SIGTERM, as an operator would; SIGKILL whatever is left after `grace` seconds.
        Returns the exit code."""
        if self.proc.poll() is None:
            self.remember_descendants()
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=grace)
        self._kill_group()
        # Descendants that left our group (Ray workers): a moment to exit on their own first.
        self._kill_seen(grace=5.0)
        self._close_log()
        return self.proc.returncode

    def _kill_group(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)

    def _kill_seen(self, grace: float) -> None:
        """SIGKILL recorded descendants still alive: same pid *and* same start time, so a
        recycled pid is never touched."""
        deadline = time.monotonic() + grace
        for pid, created in self._seen.items():
            with contextlib.suppress(psutil.Error):
                child = psutil.Process(pid)
                if child.create_time() == created:
                    while child.is_running() and time.monotonic() < deadline:
                        time.sleep(0.1)
                    if child.is_running() and child.create_time() == created:
                        child.kill()
        self._seen.clear()

    def _close_log(self) -> None:
        if not self._log.closed:
            self._log.close()


def start_ece(log_path: Path, env: Mapping[str, str], name: str = "ece") -> Managed:
    """`ece serve` with `env` over this process's environment (ECE_DATA_DIR at least). A port
    is picked unless ECE_PORT is given; no demo data unless ECE_SEED is given. Not waited for:
    call `wait_ready()`."""
    port = int(env.get("ECE_PORT") or free_port())
    full_env = {"ECE_SEED": "0", "RAY_USAGE_STATS_ENABLED": "0", **env, "ECE_PORT": str(port)}
    return Managed(name, [sys.executable, "-m", "gateway.cli", "serve"], full_env, log_path,
                   port)


def ray_address_of(server: Managed, timeout: float = 10.0) -> str:
    """The Ray address a started `ece serve` printed (for other gateways to join)."""
    deadline = time.monotonic() + timeout
    while True:
        found = RAY_ADDRESS.search(server.log_tail(200_000))
        if found:
            return found.group(1)
        if time.monotonic() > deadline:
            raise RuntimeError(f"{server.name} printed no ECE_RAY_ADDRESS:\n{server.log_tail()}")
        time.sleep(0.1)


def crash(victim: Managed, known: list[psutil.Process] | None = None) -> list[psutil.Process]:
    """Crash a server this instant, as a power cut would: SIGSTOP its leader and the processes
    of its tree already known (`known`, else its descendants now), then SIGKILL them and any started
    since, deepest first, then `kill()` the leader, its group and whatever else it recorded.
    Stopping first keeps every process of the tree until the end, so none is orphaned (and
    missed) by its parent dying first. Returns the processes killed, once they are gone."""
    procs = list(victim.descendants() if known is None else known)
    with contextlib.suppress(psutil.Error):
        # The leader (the gateway) first: a gateway left running while its hosts die would
        # answer its clients (UNAVAILABLE) in the moment between, which no power cut does.
        victim.process().suspend()
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.suspend()
    procs += [proc for proc in victim.descendants() if proc not in procs]
    for proc in reversed(procs):
        with contextlib.suppress(psutil.Error):
            proc.kill()
    victim.kill()
    psutil.wait_procs(procs, timeout=10)
    return procs
