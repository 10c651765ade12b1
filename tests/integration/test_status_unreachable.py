"""`ece status` against an address nobody answers at: exit 2 (unreachable) within its join
deadline, not after Ray's minutes of retrying its control service."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from gateway.status import UNREACHABLE


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_status_of_an_unreachable_address_exits_2_promptly(tmp_path) -> None:
    env = {**os.environ, "ECE_RAY_ADDRESS": f"127.0.0.1:{_closed_port()}",
           "ECE_DATA_DIR": str(tmp_path)}
    # The subprocess timeout is the bound: Ray alone retries for minutes (over 500 s seen).
    done = subprocess.run([sys.executable, "-m", "gateway.cli", "status", "--join-timeout",
                           "3"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == UNREACHABLE, done.stdout + done.stderr[-2000:]
    assert "cannot reach the Ray cluster" in done.stderr
