"""The token-signing secret: env, or a 0600 file in the data dir created exactly once."""

from __future__ import annotations

import multiprocessing
import os
import stat
from pathlib import Path

import pytest

from gateway import secret as secret_mod
from gateway.secret import SecretError, load_or_create_secret

WORKERS = 8


class FakeTime:
    """A clock that only moves when slept on; `on_sleep` runs at each sleep."""

    def __init__(self, on_sleep=None) -> None:
        self.now = 0.0
        self.sleeps = 0
        self.on_sleep = on_sleep

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        self.now += seconds
        if self.on_sleep is not None:
            self.on_sleep(self.sleeps)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _write(path: Path, content: str, mode: int = 0o600) -> None:
    path.write_text(content)
    path.chmod(mode)


# --- from the environment --------------------------------------------------------------------


def test_env_secret_is_used_as_is_and_touches_no_file(tmp_path):
    given = "e" * 32
    assert load_or_create_secret(tmp_path / "data", given) == given
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("short", ["", "x" * 31, "é" * 15])  # "é" is 2 bytes: 30 < 32
def test_short_env_secret_raises(tmp_path, short):
    with pytest.raises(ValueError, match="at least 32 bytes"):
        load_or_create_secret(tmp_path, short)


def test_env_secret_length_is_counted_in_utf8_bytes(tmp_path):
    assert load_or_create_secret(tmp_path, "é" * 16) == "é" * 16


# --- the file ----------------------------------------------------------------------------------


def test_creates_a_0600_secret_file_and_leaves_no_temp_files(tmp_path):
    data_dir = tmp_path / "nested" / "data"
    made = load_or_create_secret(data_dir, None)
    path = data_dir / "secret.key"
    assert len(made.encode()) >= 32
    assert path.read_text() == made
    assert _mode(path) == 0o600
    assert [p.name for p in data_dir.iterdir()] == ["secret.key"]


def test_an_existing_file_is_reused(tmp_path):
    existing = "k" * 40
    _write(tmp_path / "secret.key", existing + "\n")
    assert load_or_create_secret(tmp_path, None) == existing
    assert load_or_create_secret(tmp_path, None) == existing
    assert (tmp_path / "secret.key").read_text() == existing + "\n"


def test_a_second_call_returns_the_first_secret(tmp_path):
    assert load_or_create_secret(tmp_path, None) == load_or_create_secret(tmp_path, None)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660])
def test_a_file_open_to_group_or_other_is_refused(tmp_path, mode):
    _write(tmp_path / "secret.key", "k" * 40, mode)
    with pytest.raises(SecretError, match="chmod 600"):
        load_or_create_secret(tmp_path, None)
    assert _mode(tmp_path / "secret.key") == mode  # refused, not silently changed


def test_publishing_never_clobbers_an_existing_file(tmp_path):
    _write(tmp_path / "secret.key", "w" * 40)
    secret_mod._publish(tmp_path, tmp_path / "secret.key", "l" * 40)  # the loser of a race
    assert (tmp_path / "secret.key").read_text() == "w" * 40
    assert [p.name for p in tmp_path.iterdir()] == ["secret.key"]


def test_an_empty_file_is_waited_on_until_its_writer_fills_it(tmp_path):
    path = tmp_path / "secret.key"
    _write(path, "")

    def writer_finishes(sleeps: int) -> None:
        if sleeps == 3:
            path.write_text("f" * 40)

    fake = FakeTime(writer_finishes)
    assert load_or_create_secret(tmp_path, None, clock=fake.clock, sleep=fake.sleep) == "f" * 40
    assert fake.sleeps == 3


def test_a_file_that_stays_empty_fails_after_the_wait(tmp_path):
    _write(tmp_path / "secret.key", "")
    fake = FakeTime()
    with pytest.raises(SecretError, match="fewer than 32"):
        load_or_create_secret(tmp_path, None, wait_s=5.0, clock=fake.clock, sleep=fake.sleep)
    assert 5.0 <= fake.now < 5.5
    assert (tmp_path / "secret.key").read_text() == ""  # not overwritten


def test_a_short_file_is_refused(tmp_path):
    _write(tmp_path / "secret.key", "short")
    fake = FakeTime()
    with pytest.raises(SecretError, match="remove it"):
        load_or_create_secret(tmp_path, None, clock=fake.clock, sleep=fake.sleep)


def test_a_directory_in_place_of_the_file_is_refused(tmp_path):
    (tmp_path / "secret.key").mkdir(mode=0o700)
    with pytest.raises(SecretError, match="not a regular file"):
        load_or_create_secret(tmp_path, None)


# --- concurrent creators ---------------------------------------------------------------------


def _racer(data_dir: str, barrier, results) -> None:
    barrier.wait(timeout=60)
    try:
        results.put(("ok", load_or_create_secret(Path(data_dir), None)))
    except BaseException as exc:
        results.put(("error", repr(exc)))


def test_processes_starting_together_agree_on_one_secret(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(WORKERS)
    results = ctx.Queue()
    procs = [ctx.Process(target=_racer, args=(str(tmp_path), barrier, results))
             for _ in range(WORKERS)]
    for proc in procs:
        proc.start()
    try:
        outcomes = [results.get(timeout=120) for _ in procs]
    finally:
        for proc in procs:
            proc.join(timeout=60)
            if proc.is_alive():
                proc.kill()
    assert all(kind == "ok" for kind, _ in outcomes), outcomes
    secrets_seen = {value for _, value in outcomes}
    assert len(secrets_seen) == 1
    (only,) = secrets_seen
    assert len(only.encode()) >= 32
    assert (tmp_path / "secret.key").read_text() == only
    assert _mode(tmp_path / "secret.key") == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["secret.key"]
    assert os.stat(tmp_path / "secret.key").st_nlink == 1
