"""Settings refuse what would weaken the server, and `ece serve` says so and exits."""

from __future__ import annotations

import json
import stat

import pytest

from gateway.cli import main
from gateway.config import Settings
from gateway.seed import DEMO_FILE, demo_passwords


def test_a_short_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="ECE_SECRET"):
        Settings(secret="too-short")
    assert Settings(secret="x" * 32).secret == "x" * 32


@pytest.mark.parametrize(("name", "value"), [
    ("ECE_SECRET", "short"), ("ECE_MAX_CONN_PER_IP", "0"), ("ECE_CREATE_PER_MIN", "nan"),
    ("ECE_PORT", "eighty"), ("ECE_MINT", "everyone"), ("ECE_FRAME_RATE", "-1"),
    ("ECE_LOG_LEVEL", "LOUD"), ("ECE_SEED", "maybe"), ("ECE_PORT", "70000"),
])
def test_serve_exits_2_on_a_bad_setting(monkeypatch, capsys, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    assert main(["serve"]) == 2
    assert name.removeprefix("ECE_").lower() in capsys.readouterr().err.lower().replace(
        "ece_", "")


def test_demo_passwords_are_random_private_and_kept(tmp_path) -> None:
    first = demo_passwords(tmp_path, ["alice", "bob"])
    assert first["alice"] != first["bob"] and len(first["alice"]) >= 16
    path = tmp_path / DEMO_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # A restart signs in to the same accounts; a new name gets its own password.
    again = demo_passwords(tmp_path, ["alice", "bob", "carol"])
    assert {k: again[k] for k in first} == first and "carol" in again
    assert json.loads(path.read_text()) == again
    other = demo_passwords(tmp_path / "elsewhere", ["alice"])
    assert other["alice"] != first["alice"]
