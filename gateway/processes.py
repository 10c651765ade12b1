"""Several gateway processes on one port (ECE_GATEWAYS=N): the first one's helpers.

`ece serve` with N > 1 is the first process: it starts (or joins) Ray and the actors as with
one, then starts N - 1 more `ece serve` processes joined to the same Ray
(`--gateway-process I`), waits until each serves, and only then listens itself; all bind the
port with `SO_REUSEPORT` and the kernel spreads the connections between them.

- Each child's stdin is a pipe from the first process, which writes nothing: when the first
  process ends, however it ends, the child reads end-of-file and shuts down (`lifeline`).
- Each child says on stdout when it serves; the first process forwards its lines.
- A child that exits while the first process is not stopping is logged and stops everything:
  `ece serve` exits 1 and the supervisor (systemd, the cluster launcher) restarts it whole.
  Restarting one child in place is not attempted: a child that crashed once is as likely to
  crash again, and a half-served port is worse than a visible restart.
- Stopping (SIGTERM/SIGINT to the first process) sends SIGTERM to every child; each drains
  its sockets as a single gateway does; a child not gone after `STOP_GRACE_S` is killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Callable

log = logging.getLogger("ece")
SERVING = "ECE gateway process"  # how a child's line saying it serves begins
READY_TIMEOUT_S = 180.0
STOP_GRACE_S = 30.0


class Children:
    """The N - 1 gateway processes the first one starts, watched until stopped."""

    def __init__(self) -> None:
        self.procs: list[asyncio.subprocess.Process] = []
        self.stopping = False
        self.failed: str | None = None  # why one ended on its own
        self._tasks: list[asyncio.Task] = []

    async def start(self, count: int, ray_address: str, on_exit: Callable[[], None]) -> None:
        """Start `count` children joined to `ray_address`; return when each serves. Raises
        RuntimeError if one exits or is not serving within READY_TIMEOUT_S."""
        env = {**os.environ, "ECE_RAY_ADDRESS": ray_address}
        for index in range(1, count + 1):
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "gateway.cli", "serve", "--gateway-process", str(index),
                env=env, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
            self.procs.append(proc)
        try:
            async with asyncio.timeout(READY_TIMEOUT_S):
                await self._all_serving()
        except TimeoutError:
            raise RuntimeError(f"gateway processes not serving after {READY_TIMEOUT_S:.0f}s"
                               ) from None
        for index, proc in enumerate(self.procs, start=1):
            self._tasks.append(asyncio.create_task(self._forward(proc)))
            self._tasks.append(asyncio.create_task(self._watch(index, proc, on_exit)))

    async def _all_serving(self) -> None:
        try:
            async with asyncio.TaskGroup() as group:
                for proc in self.procs:  # one failing cancels the others' waits
                    group.create_task(self._until_serving(proc))
        except* RuntimeError as failed:
            raise failed.exceptions[0] from None

    async def _until_serving(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        while line := await proc.stdout.readline():
            sys.stdout.write(line.decode(errors="replace"))
            if line.startswith(SERVING.encode()):
                sys.stdout.flush()
                return
        code = await proc.wait()
        raise RuntimeError(f"gateway process {proc.pid} exited with code {code} before serving")

    async def _forward(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        while line := await proc.stdout.readline():
            sys.stdout.write(line.decode(errors="replace"))
            sys.stdout.flush()

    async def _watch(self, index: int, proc: asyncio.subprocess.Process,
                     on_exit: Callable[[], None]) -> None:
        code = await proc.wait()
        if not self.stopping and self.failed is None:
            self.failed = f"gateway process {index} (pid {proc.pid}) exited with code {code}"
            log.error("%s; stopping every gateway process", self.failed)
            on_exit()

    def terminate(self) -> None:
        """SIGTERM to every child still running (each then drains its sockets)."""
        self.stopping = True
        for proc in self.procs:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.terminate()

    async def wait(self, grace: float = STOP_GRACE_S) -> None:
        """Wait for every child to end; SIGKILL those still running after `grace` s."""
        self.terminate()
        try:
            async with asyncio.timeout(grace):
                await asyncio.gather(*(p.wait() for p in self.procs))
        except TimeoutError:
            for proc in self.procs:
                if proc.returncode is None:
                    log.error("gateway process pid %d still running after %.0fs; killing it",
                              proc.pid, grace)
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
            await asyncio.gather(*(p.wait() for p in self.procs))
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def lifeline(loop: asyncio.AbstractEventLoop, on_parent_gone: Callable[[], None]) -> None:
    """In a child: call `on_parent_gone` when stdin (the first process's pipe) reaches
    end-of-file, i.e. when the first process has ended, however it ended."""

    def readable() -> None:
        try:
            data = os.read(0, 4096)
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(0)
            on_parent_gone()

    loop.add_reader(0, readable)
