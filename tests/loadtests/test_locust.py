"""Locust drives a real server for a few seconds; bids go through without failures."""

from __future__ import annotations

import contextlib
import csv
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LOCUST = Path(sys.executable).parent / "locust"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(170)]


def run_locust(host: str, prefix: Path, users: int, seconds: int, env: dict[str, str]) -> int:
    with open(prefix.with_suffix(".log"), "wb") as sink:
        proc = subprocess.Popen(
            [str(LOCUST), "-f", str(ROOT / "loadtests" / "locustfile.py"), "--headless",
             "--host", host, "-u", str(users), "-r", str(users), "-t", f"{seconds}s",
             "--stop-timeout", "3", "--csv", str(prefix), "--only-summary"],
            cwd=prefix.parent, env={**os.environ, **env}, stdout=sink,
            stderr=subprocess.STDOUT, start_new_session=True)
        try:
            return proc.wait(timeout=seconds + 60)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
            raise


def test_locust_bids_against_a_fresh_server(start_server, tmp_path: Path) -> None:
    server = start_server()  # ECE_SEED=0: the locust bidders list their own auction
    prefix = tmp_path / "locust"
    code = run_locust(server.base, prefix, users=4, seconds=10,
                      env={"LOCUST_BID_INTERVAL": "0.5", "LOCUST_USER_PREFIX": "lt"})
    log = prefix.with_suffix(".log").read_text(errors="replace")
    stats_path = prefix.parent / "locust_stats.csv"
    assert stats_path.exists(), log[-3000:]
    with open(stats_path, newline="") as handle:
        rows = {row["Name"]: row for row in csv.DictReader(handle)}

    acks = rows.get("bid→ack")
    assert acks is not None, (sorted(rows), log[-3000:])
    assert int(acks["Request Count"]) > 0
    assert int(acks["Failure Count"]) == 0, log[-3000:]
    # Every bid got an answer of a known kind and nothing else failed.
    assert int(rows["Aggregated"]["Failure Count"]) == 0, log[-3000:]
    assert code == 0, log[-3000:]
    # Bid events reached the sockets subscribed to the auction too.
    assert int(rows.get("bid→event", {}).get("Request Count", 0)) > 0
