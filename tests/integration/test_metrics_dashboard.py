"""The Grafana dashboard (`ops/grafana/ece.json`) against real scrapes: every metric its
panels query is exported, by the gateway's `/metrics` or by Ray's metrics agent (the host
actors' `ray.util.metrics`), once an instance has served a bid."""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path

import aiohttp
import pytest
import ray

from actors.metrics import HOST_AUCTIONS
from testkit.client import connect
from tests.integration.conftest import gateway_with

DASHBOARD = Path(__file__).resolve().parents[2] / "ops" / "grafana" / "ece.json"
# A PromQL identifier that names one of ours (functions and labels are not).
METRIC = re.compile(r"\b((?:ray_)?ece_[a-z_]+)\b")


def _queried() -> dict[str, set[str]]:
    """Panel title -> the metric names its queries read."""
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return {p["title"]: {m for t in p["targets"] for m in METRIC.findall(t["expr"])}
            for p in panels}


def _names(text: str) -> set[str]:
    """Every metric name in a Prometheus text scrape (samples and TYPE lines)."""
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            names.add(line.split()[2])
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def test_the_dashboard_is_well_formed() -> None:
    dash = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dash["panels"]:
        assert panel["targets"] and panel["gridPos"]["w"] > 0
        assert {t["refId"] for t in panel["targets"]} == {
            chr(65 + i) for i in range(len(panel["targets"]))}
    wanted = {"Bids answered per second", "Bid latency in the gateway", "Auctions per node",
              "Projection lag"}
    assert wanted <= set(_queried()), "the issue's four panels"
    assert all(_queried().values()), "every panel reads a metric of ours"


async def _scrape(http: aiohttp.ClientSession, url: str) -> str:
    async with http.get(url) as response:
        return await response.text()


@pytest.mark.asyncio(loop_scope="session")
async def test_every_metric_the_dashboard_queries_is_exported(ray_cluster, tmp_path):
    async with gateway_with(tmp_path) as ece:
        seller, bidder = await ece.api.signup("md_s"), await ece.api.signup("md_b")
        view = await ece.api.auction(seller)
        ws = await connect(ece.http, ece.base, bidder)
        assert (await ws.bid(view["auction_id"], 1000))["op"] == "ack"
        await ws.close()
        wanted = set().union(*_queried().values())
        ports = [n["MetricsExportPort"] for n in ray.nodes() if n["Alive"]]
        # Ray's agents export on their own period: poll (bounded) until the hosts' show.
        deadline = time.monotonic() + 90
        while True:
            found = _names(await _scrape(ece.http, ece.base + "/metrics"))
            for port in ports:
                found |= _names(await _scrape(ece.http, f"http://127.0.0.1:{port}/metrics"))
            if f"ray_{HOST_AUCTIONS}" in found or time.monotonic() > deadline:
                break
            await asyncio.sleep(1)
        missing = {name for name in wanted
                   if name not in found and re.sub(r"_(bucket|sum|count|total)$", "", name)
                   not in found}
        assert not missing, f"queried but not exported: {sorted(missing)}"
