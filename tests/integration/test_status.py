"""`ece status` against a running instance on the test session's Ray cluster: in-process
(`collect`), and as the operator runs it (a subprocess joining the cluster by its address)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import pytest

from gateway.status import HEALTHY, UNHEALTHY, UNREACHABLE, Limits, assess, collect
from testkit.client import connect
from tests.integration.conftest import gateway_with

pytestmark = pytest.mark.asyncio(loop_scope="session")


def _ece_status(address: str, settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ECE_RAY_ADDRESS": address, "ECE_INSTANCE": settings.instance,
           "ECE_DATA_DIR": str(settings.data_dir), "ECE_SECRET": settings.secret}
    if settings.mongodb_uri:
        env["ECE_MONGODB_URI"] = settings.mongodb_uri
    return subprocess.run([sys.executable, "-m", "gateway.cli", "status", "--sample", "0.2",
                           *args], env=env, capture_output=True, text=True, timeout=120)


async def test_status_shows_the_hosts_auctions_and_rate(ray_cluster, tmp_path):
    async with gateway_with(tmp_path) as ece:
        seller, bidder = await ece.api.signup("st_s"), await ece.api.signup("st_b")
        views = [await ece.api.auction(seller) for _ in range(2)]
        ws = await connect(ece.http, ece.base, bidder)
        assert (await ws.bid(views[0]["auction_id"], 1000))["op"] == "ack"

        status = await collect(ece.settings, Limits(), sample_s=0.2)
        assert assess(status, Limits()) == []
        [host] = status["hosts"]
        assert host["auctions"] == 2 and host["placed"] == 2
        [node] = [n for n in status["nodes"] if n["node_id"] == host["node_id"]]
        assert node["alive"] and node["auctions"] == 2
        assert "error" not in status["store"]

        done = _ece_status(ray_cluster, ece.settings, "--json")
        assert done.returncode == HEALTHY, done.stderr[-2000:]
        shown = json.loads(done.stdout)
        assert shown["healthy"] is True
        assert [h["auctions"] for h in shown["hosts"]] == [2]
        await ws.close()


async def test_status_fails_when_the_store_is_down(ray_cluster, tmp_path):
    """A running instance whose store cannot be reached: exit 1, the store named."""
    async with gateway_with(tmp_path) as ece:
        # A MongoDB URI nobody listens on: the store check fails within its timeout.
        bad = dataclasses.replace(ece.settings, mongodb_uri="mongodb://127.0.0.1:1/ece"
                                  "?serverSelectionTimeoutMS=500")
        done = _ece_status(ray_cluster, bad)
        assert done.returncode == UNHEALTHY, done.stdout + done.stderr[-2000:]
        assert "problem: store:" in done.stdout


async def test_status_of_an_instance_that_is_not_running(ray_cluster, tmp_path):
    async with gateway_with(tmp_path) as ece:
        settings = ece.settings
    done = _ece_status(ray_cluster, settings)
    assert done.returncode == UNREACHABLE, done.stdout + done.stderr[-2000:]
