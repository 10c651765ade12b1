"""`ece drain` and `ece rebalance` on a real multi-node cluster, under steady bidding: a worker
node is drained (its hosts move, a fenced handover each) and then leaves; a node joins and
`ece rebalance` moves hosts onto it. No acknowledged bid is lost or duplicated, and watchers
on the surviving gateways miss no event."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest

from testkit import node_loss
from testkit.client import Api, wait_for
from testkit.cluster import Cluster
from testkit.node_loss import Bidding, ack_mismatches, caught_up, watch

# A cluster start, four waits of up to 90 s, `ece drain` / `ece rebalance` and a node join:
# about three minutes here, far more on a loaded two-core machine.
pytestmark = [pytest.mark.cluster, pytest.mark.asyncio(loop_scope="session"),
              pytest.mark.timeout(1200)]

AUCTIONS = 8  # two per host (tests/cluster/conftest.py): four hosts over three nodes


async def _ece(cluster: Cluster, *args: str) -> tuple[int, dict]:
    done = await asyncio.to_thread(cluster.ece, *args, "--json")
    try:
        return done.returncode, json.loads(done.stdout)
    except json.JSONDecodeError as exc:
        raise AssertionError(f"ece {args}: {done.returncode}\n{done.stdout}\n{done.stderr}"
                             ) from exc


def _auctions_by_node(status: dict) -> dict[str, int]:
    return {n["node_id"]: n["auctions"] for n in status["nodes"] if n["alive"]}


async def test_drain_leave_join_and_rebalance_under_bidding(cluster: Cluster):
    async with aiohttp.ClientSession() as http:
        apis = [Api(g.base, http, retries=5) for g in cluster.gateways]
        seller = await apis[0].signup("seller")
        views = [await apis[i % len(apis)].auction(seller, duration_ms=3_600_000)
                 for i in range(AUCTIONS)]
        ids = [v["auction_id"] for v in views]
        users = [await apis[i % len(apis)].signup(f"bidder{i}-") for i in range(4)]

        status = await asyncio.to_thread(cluster.status)
        by_node = _auctions_by_node(status)
        # Placement by load: every node got hosts.
        assert all(by_node[n] > 0 for n in cluster.node_ids), status["hosts"]
        victim = max(cluster.nodes[1:], key=lambda n: by_node[n.node_id])
        leaving = {h["name"] for h in status["hosts"] if h.get("node_id") == victim.node_id}

        # Watchers on the gateways that stay, subscribed to every auction.
        watchers = [await watch(cluster, http, node.index, ids) for node in cluster.nodes
                    if node is not victim and node.alive]
        bidding = Bidding(cluster, http, users, ids, per_auction=1)
        bidding.start()
        try:
            await _acks_everywhere(bidding, ids, since=0.0, what="before the drain")

            # Drain: every host of the victim moves, while bids flow.
            code, drained = await _ece(cluster, "drain", victim.node_id[:12])
            assert code == 0, drained
            assert {m["host"] for m in drained["moved"]} == leaving
            assert all(m["to"] != victim.node_id for m in drained["moved"])
            assert drained["nodes"][victim.node_id] == {}
            assert victim.node_id in drained["draining"]
            print(f"\ndrain: {len(drained['moved'])} hosts, "
                  f"{sum(m['auctions'] for m in drained['moved'])} auctions in "
                  f"{drained['seconds']:.2f} s (per host: "
                  + ", ".join(f"{m['seconds']:.2f}" for m in drained["moved"]) + ")")
            await _acks_everywhere(bidding, ids, since=time.monotonic(), what="after the drain")
            unavailable = bidding.errors.get("UNAVAILABLE", 0)

            # The drained node leaves: its gateway first (its bidders reconnect elsewhere),
            # then its raylet. No auction lived there, so none is unavailable meanwhile.
            assert victim.gateway is not None
            victim.alive = False  # bidders reconnect to the other gateways only
            await asyncio.to_thread(victim.gateway.stop, 15)
            await asyncio.to_thread(victim.ray.stop, 15)
            await _acks_everywhere(bidding, ids, since=time.monotonic(), what="after the leave")
            assert bidding.errors.get("UNAVAILABLE", 0) == unavailable, bidding.errors

            # A node joins: `ece rebalance` moves hosts onto it, under bidding.
            joined = await asyncio.to_thread(cluster.add_node)
            code, rebalanced = await _ece(cluster, "rebalance")
            assert code == 0, rebalanced
            assert rebalanced["moved"], rebalanced
            assert {m["to"] for m in rebalanced["moved"]} == {joined.node_id}
            assert sum(rebalanced["nodes"][joined.node_id].values()) > 0
            print(f"rebalance: {len(rebalanced['moved'])} hosts onto the joined node in "
                  f"{rebalanced['seconds']:.2f} s; errors seen by bidders: {bidding.errors}")
            await _acks_everywhere(bidding, ids, since=time.monotonic(),
                                   what="after the rebalance")
        finally:
            await bidding.finish()

        final = {a: await apis[0].get(a) for a in ids}
        await wait_for(lambda: all(caught_up(w, final) for w in watchers), timeout=30,
                       message="every watcher caught up with the final seq")
        for watcher in watchers:
            await watcher.socket.close()
    status = await asyncio.to_thread(cluster.status)
    assert status["healthy"], status["problems"]
    assert _auctions_by_node(status).get(joined.node_id, 0) > 0

    log = await node_loss.read_store(cluster, node_loss.events_of, ids)
    for events in log.values():
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    # Every acknowledged bid is in its auction's log once, at the seq its ack named; every
    # bid in the logs was acknowledged (once: a req_id is acked at most once).
    assert ack_mismatches(bidding.acks, log) == []
    for watcher in watchers:  # every event after its snapshot, in order, once
        for auction_id in ids:
            first = watcher.snapshots[auction_id][0]
            assert [e["seq"] for e in watcher.events[auction_id]] == [
                e["seq"] for e in log[auction_id] if e["seq"] > first]


async def _acks_everywhere(bidding: Bidding, ids: list[str], since: float, what: str) -> None:
    await wait_for(lambda: all(bidding.acked(a, since) >= 2 for a in ids), timeout=90,
                   interval=0.1, message=f"2 acks on every auction {what}")

