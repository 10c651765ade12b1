"""Placement over a real multi-node cluster, and fan-out across its gateways (each receives
only the events its sockets watch). The node loss is in test_node_loss.py, on a cluster of
its own.

The two tests share one cluster (a start costs about half a minute) and may run in either
order: each counts only its own auctions."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from loadtests.stages_fanout_gateways import measure as measure_fanout
from testkit import node_loss
from testkit.client import Api
from testkit.cluster import Cluster

# The first test also waits for the cluster to start; the node-loss test waits up to a few
# minutes for acks and recovery. Both take far longer on a loaded two-core machine.
pytestmark = [pytest.mark.cluster, pytest.mark.asyncio(loop_scope="session"),
              pytest.mark.timeout(900)]


async def test_auctions_created_through_every_gateway_spread_over_nodes(cluster: Cluster):
    async with aiohttp.ClientSession() as http:
        apis = [Api(g.base, http) for g in cluster.gateways]
        seller = await apis[0].signup("seller")
        # Four hosts' worth (two auctions each): placement by load puts new hosts on the least
        # loaded node, so they spread however uneven the earlier tests left the nodes.
        views = [await apis[i % len(apis)].auction(seller, duration_ms=3_600_000)
                 for i in range(8)]
        ids = [v["auction_id"] for v in views]
        # Every gateway serves every auction, whichever gateway created it.
        for auction_id in ids:
            for api in apis:
                assert (await api.get(auction_id))["auction_id"] == auction_id
    # Each gateway's Ray client is attached to its own node's raylet (ECE_RAY_NODE_IP), as on
    # separate machines, not to the head's.
    for node in cluster.nodes:
        if node.alive and node.gateway is not None:
            assert f"(node {node.node_id})" in node.gateway.log_tail(100_000), node.index
    status = await asyncio.to_thread(cluster.status)
    assert status["healthy"], status["problems"]
    alive = {n.node_id for n in cluster.nodes if n.alive}
    assert {n["node_id"] for n in status["nodes"] if n["alive"]} == alive
    # This test's auctions (only these: the cluster is shared) run on live nodes, several.
    placed = await node_loss.nodes_of(cluster, ids)
    assert set(placed.values()) <= alive, (placed, status["hosts"])
    assert len(set(placed.values())) >= 2, (placed, status["hosts"])


async def test_each_gateway_receives_only_the_events_its_sockets_watch(cluster: Cluster):
    """Two auctions per gateway, each watched on that gateway only, bid on through every
    gateway; hosts hold two auctions each, so a host's events also belong to auctions a
    gateway does not watch."""
    result = await measure_fanout([g.base for g in cluster.gateways], per_gateway=2,
                                  watchers=2, bids=8)
    figures, details = result["figures"], result["details"]
    assert figures["bids_acked"] > 0 and figures["watchers_missing_events"] == 0
    for counts in details["per_gateway"]:  # received == needed on every gateway
        assert counts["ece_fanout_received_events"] == counts["ece_fanout_needed_events"]
    assert figures["gateway_events_over_needed"] == 1.0
    # Sending every event of a host to every gateway polling it would have sent more.
    assert figures["unfiltered_events_over_needed"] > 1.0
