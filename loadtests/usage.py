"""What the benchmark reads off the processes it started: auction hosts, memory, CPU time."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import psutil

from testkit.processes import Managed


def host_processes(root: Managed) -> dict[int, psutil.Process]:
    """Ray workers under `root` that run an auction host (Ray titles them ray::AuctionHost)."""
    found: dict[int, psutil.Process] = {}
    for child in root.descendants():
        with contextlib.suppress(psutil.Error):
            cmd = child.cmdline()
            if cmd and cmd[0].startswith("ray::AuctionHost"):
                found[child.pid] = child
    return found


def _total(processes: list[psutil.Process], read: Callable[[psutil.Process], int]) -> int:
    """`read` summed over the processes still there to read."""
    total = 0
    for proc in processes:
        with contextlib.suppress(psutil.Error):
            total += read(proc)
    return total


def rss(processes: list[psutil.Process]) -> int:
    return _total(processes, lambda proc: proc.memory_info().rss)


def uss(processes: list[psutil.Process]) -> int:
    return _total(processes, lambda proc: proc.memory_full_info().uss)


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
