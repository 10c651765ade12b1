"""Fixtures shared by the suites that need a running ECE."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.mongo_server import MONGO_URI_ENV, MongoecoServer

ROOT = Path(__file__).resolve().parent.parent
# The test cluster binds Ray to loopback (read by Ray at import, so before any test module).
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


# Many test users sign up from 127.0.0.1 and list cards quickly: raised through settings.
SERVER_TEST_LIMITS = {
    "ECE_AUTH_IP_PER_MIN": "100000", "ECE_AUTH_IP_BURST": "10000",
    "ECE_AUTH_USER_PER_MIN": "100000", "ECE_AUTH_USER_BURST": "10000",
    "ECE_CREATE_PER_MIN": "100000", "ECE_CREATE_BURST": "10000",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """`ece serve` in a subprocess of its own session, stopped by pid (group) only."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.port = int(env["ECE_PORT"])
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "serve"],
            cwd=ROOT, env={**os.environ, **env}, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited: {self.log_path.read_text()[-3000:]}")
            try:
                if requests.get(self.base + "/healthz", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise AssertionError(f"server not ready: {self.log_path.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL the whole process group we started (gateway, its Ray, its workers)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self._log.close()

    def stop(self) -> int:
        """SIGTERM, as an operator would; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # leftovers of the group, if any
        self._log.close()
        return self.proc.returncode


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator:
    started: list[ServerProcess] = []

    def start(**env: str) -> ServerProcess:
        env = {"ECE_PORT": str(free_port()), "ECE_DATA_DIR": str(tmp_path / "data"),
               "ECE_SEED": "0", **SERVER_TEST_LIMITS, **env}
        server = ServerProcess(env, tmp_path / f"server-{len(started)}.log")
        started.append(server)
        server.wait_ready()
        return server

    yield start
    for server in started:
        if server.proc.poll() is None:
            server.stop()


@pytest.fixture(scope="session")
def mongo_uri() -> Iterator[str]:
    real = os.environ.get(MONGO_URI_ENV)
    if real:
        yield real
        return
    server = MongoecoServer()
    uri = server.start()
    try:
        yield uri
    finally:
        server.stop()
