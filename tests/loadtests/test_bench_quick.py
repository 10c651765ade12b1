"""The quick benchmark runs every stage and writes complete JSON (no speed assertions)."""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from loadtests.report import STAGES
from loadtests.stages_capacity import FIGURES as CAPACITY_FIGURES
from loadtests.stages_capacity import GOALS as CAPACITY_GOALS
from loadtests.stages_processes import FIGURES as PROCESS_FIGURES
from loadtests.stages_processes import RATIOS as PROCESS_RATIOS

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(520)]


def run_bench(out: Path, log: Path, timeout: float = 460.0) -> int:
    with open(log, "wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "loadtests.bench", "--quick", "--out", str(out)],
            cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGTERM)  # the bench stops its servers on SIGTERM
            try:
                proc.wait(timeout=45)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
            raise


def test_quick_bench_writes_every_stage(tmp_path: Path) -> None:
    out = tmp_path / "quick.json"
    log = tmp_path / "bench.log"
    code = run_bench(out, log)
    output = log.read_text(errors="replace")
    assert out.exists(), output[-4000:]
    result = json.loads(out.read_text())
    assert code == 0, (result.get("errors"), output[-4000:])
    assert result["errors"] == []
    assert result["missing_stages"] == []

    for stage in STAGES:
        figures = result["stages"][stage]["figures"]
        assert figures, f"{stage}: no figures"
        for name, value in figures.items():
            assert isinstance(value, (int, float)) and not isinstance(value, bool), (stage, name)
            assert math.isfinite(value) and value > 0, (stage, name, value)

    # The capacity figures (the processes stage's too) are null when no step met the latency
    # target (a loaded machine): a result, not a missing key. Every key must be there.
    capacity_keys = {key for key, _, _ in CAPACITY_FIGURES} | {
        "capacity_over_baseline", "capacity_over_echo", "cpu_per_bid_over_echo"} | {
        key for key, *_ in PROCESS_FIGURES} | set(PROCESS_RATIOS)
    assert "fanout_over_echo" in result["ratios"]
    assert capacity_keys <= set(result["figures"]) | set(result["ratios"])
    for key, figure in result["figures"].items():
        if key in capacity_keys and figure["value"] is None:
            continue
        assert isinstance(figure["value"], (int, float)) and figure["value"] > 0, key
    for key, value in result["ratios"].items():
        if key in capacity_keys and value is None:
            continue
        assert isinstance(value, (int, float)) and value > 0, key
    assert {g["goal"] for g in result["goals"]} and all(
        isinstance(g["met"], bool) or g["goal"] in CAPACITY_GOALS for g in result["goals"])
    machine = result["machine"]
    assert machine["cpu_count"] >= 1 and machine["memory_bytes"] > 0
    assert machine["python"] and machine["ray"] and machine["aiohttp"]
    assert result["parameters"]["quick"] is True
