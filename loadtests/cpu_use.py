"""What a stage's processes and the machine spend on CPU, and wait for it: on a shared
machine the wait is how much of a latency is other people's load."""

from __future__ import annotations

import contextlib
from pathlib import Path

import psutil


def process_cpu(procs: list[psutil.Process]) -> float:
    """CPU seconds (user + system) of `procs` so far."""
    total = 0.0
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            total += times.user + times.system
    return total


def runq_wait(procs: list[psutil.Process]) -> float:
    """Seconds the threads of `procs` have waited, runnable, for a CPU (Linux schedstat; 0
    elsewhere): on a shared machine, how much of a latency is the others' load."""
    total = 0
    for proc in procs:
        for task in Path(f"/proc/{proc.pid}/task").glob("*/schedstat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                total += int(task.read_text().split()[1])
    return total / 1e9


def cpu_stall() -> float:
    """Seconds in which some runnable task of the machine waited for a CPU (Linux PSI,
    /proc/pressure/cpu; 0 elsewhere)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        some = Path("/proc/pressure/cpu").read_text().splitlines()[0]
        return int(some.rsplit("total=", 1)[1]) / 1e6
    return 0.0


def machine_busy() -> float:
    """CPU seconds the whole machine has been busy (not idle, not waiting on I/O)."""
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)
