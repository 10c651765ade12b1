"""Ray's environment is set by `ece`'s main before Ray is imported, never by an import."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from gateway.cli import prepare_environment

ROOT = Path(__file__).resolve().parents[2]


def test_importing_the_gateway_changes_no_environment_and_imports_no_ray() -> None:
    code = ("import os, sys; before = dict(os.environ); "
            "import gateway, gateway.cli, gateway.config; "
            "assert dict(os.environ) == before, 'environment changed'; "
            "assert 'ray' not in sys.modules, 'ray imported'")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)


def test_a_private_ray_stays_on_loopback(tmp_path: Path) -> None:
    for address in ("", "127.0.0.1:6379", "localhost:6379"):
        env = {"ECE_RAY_ADDRESS": address} if address else {}
        prepare_environment(env, home=tmp_path)
        assert env.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER") == "0"
        assert env.get("RAY_worker_niceness") == "0"  # the hosts not behind the gateway
        assert "RAY_AUTH_MODE" not in env
    env = {"ECE_RAY_ADDRESS": "10.0.0.5:6379"}
    prepare_environment(env, home=tmp_path)
    assert env == {"ECE_RAY_ADDRESS": "10.0.0.5:6379"}  # joining a real cluster: untouched


def test_a_joining_driver_sends_the_local_token(tmp_path: Path) -> None:
    (tmp_path / ".ray").mkdir()
    (tmp_path / ".ray" / "auth_token").write_text("t")
    env = {"ECE_RAY_ADDRESS": "127.0.0.1:6379"}
    prepare_environment(env, home=tmp_path)
    assert env["RAY_AUTH_MODE"] == "token"
    env = {"ECE_RAY_ADDRESS": "127.0.0.1:6379", "RAY_AUTH_MODE": "disabled"}
    prepare_environment(env, home=tmp_path)
    assert env["RAY_AUTH_MODE"] == "disabled"  # never overrides what the operator set
    env = {}
    prepare_environment(env, home=tmp_path)
    assert "RAY_AUTH_MODE" not in env  # starting our own Ray: no token to send


def test_an_operators_worker_niceness_is_kept(tmp_path: Path) -> None:
    env = {"RAY_worker_niceness": "5"}
    prepare_environment(env, home=tmp_path)
    assert env["RAY_worker_niceness"] == "5"


def test_ray_environment_is_set_in_one_place() -> None:
    """Tests and benchmark tools call `prepare_environment()`; none sets Ray's variables."""
    for name in ("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "RAY_worker_niceness"):
        setters = sorted(str(path.relative_to(ROOT))
                         for folder in ("market", "storage", "actors", "gateway", "testkit",
                                        "loadtests", "tests")
                         for path in (ROOT / folder).rglob("*.py")
                         if name in path.read_text(encoding="utf-8")
                         and path != Path(__file__).resolve())
        assert setters == ["gateway/cli.py"], name
