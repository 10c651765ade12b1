"""`ece status`'s duration options refuse what is not a finite, non-negative number of
seconds (argparse: usage error, exit 2) before anything joins a cluster."""

from __future__ import annotations

import argparse

import pytest

from gateway import cli
from gateway.status import seconds

BAD = ["-1", "-0.5", "inf", "-inf", "nan", "NaN", "1e999", "1e308", "86401", "soon", ""]


@pytest.mark.parametrize("text", BAD)
def test_a_bad_duration_is_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        seconds(text)


@pytest.mark.parametrize("text, value", [("0", 0.0), ("0.2", 0.2), ("60", 60.0)])
def test_a_finite_duration_is_its_value(text: str, value: float) -> None:
    assert seconds(text) == value


@pytest.mark.parametrize("option", ["--max-lag", "--sample", "--join-timeout"])
@pytest.mark.parametrize("text", ["-1", "inf", "nan"])
def test_the_cli_exits_2_on_a_bad_duration(option: str, text: str, monkeypatch,
                                           capsys) -> None:
    monkeypatch.setattr(cli, "prepare_environment", lambda: None)  # this process's env
    monkeypatch.setattr(cli.ops, "run", lambda *a: pytest.fail("status ran"))
    with pytest.raises(SystemExit) as exited:
        cli.main(["status", f"{option}={text}"])
    assert exited.value.code == 2
    assert option in capsys.readouterr().err
