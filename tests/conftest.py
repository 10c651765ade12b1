"""Fixtures shared by the suites that need a running ECE."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.cli import prepare_environment
from testkit.processes import MANY_USERS, Managed, start_ece
from tests.mongo_server import MONGO_URI_ENV, MongoecoServer

# The test cluster is Ray on loopback, like `ece serve`'s own: the same environment, set
# before any test module imports Ray.
prepare_environment()


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator:
    """`start(**env)`: `ece serve` on this test's data dir, ready; stopped after the test."""
    started: list[Managed] = []

    def start(**env: str) -> Managed:
        name = f"server-{len(started)}"
        server = start_ece(tmp_path / f"{name}.log",
                           {"ECE_DATA_DIR": str(tmp_path / "data"), **MANY_USERS, **env}, name)
        started.append(server)
        server.wait_ready()
        return server

    yield start
    for server in started:
        server.stop()  # also what a test that stopped or killed it left behind


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
