"""`ece drain` of the node the directory runs on, on a real multi-node cluster with the
analytics and portfolio actors: after it, no actor of the instance is left on that node (its
hosts moved, then its singletons restarted elsewhere), and the singletons answer: the
directory locates every auction and places a new one, the projections catch up with a sale
made after the drain."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import aiohttp
import pytest
import ray

from actors.config import ClusterConfig
from actors.singletons import Placed, ece_actors, is_singleton
from gateway.status import join_cluster
from testkit.client import Api, unique, wait_for
from testkit.cluster import RAY_ENV, Cluster
from tests.cluster.conftest import CLUSTER_ENV
from tests.integration.test_analytics import graded_copy, sell_by_offer

# A cluster start, `ece drain` with a directory restart, a sale through the projections.
pytestmark = [pytest.mark.cluster, pytest.mark.asyncio(loop_scope="session"),
              pytest.mark.timeout(1200)]

AUCTIONS = 6  # two per host: three hosts over three nodes
# The projections on: analytics and two portfolio shards, singletons beside the directory.
ENV = {**CLUSTER_ENV, "ECE_ANALYTICS": "1", "ECE_PORTFOLIO_SHARDS": "2"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with Cluster(tmp_path_factory.mktemp("cluster"), workers=2, env=ENV) as started:
        yield started


@pytest.fixture(scope="module")
def config(cluster: Cluster) -> Iterator[ClusterConfig]:
    """This test process joined to the cluster as a driver, and the instance's config."""
    with pytest.MonkeyPatch.context() as env:
        for key, value in RAY_ENV.items():
            env.setenv(key, value)
        join_cluster(cluster.address)
        try:
            yield ClusterConfig(store_url=cluster.mongo_uri)
        finally:
            ray.shutdown()


def _on(actors: list[Placed], node_id: str) -> list[str]:
    return [p.name for p in actors if p.node_id == node_id]


async def test_a_drain_leaves_no_actor_on_the_node_and_the_singletons_answer(
        cluster: Cluster, config: ClusterConfig):
    async with aiohttp.ClientSession() as http:
        apis = [Api(g.base, http, retries=5) for g in cluster.gateways]
        seller = await apis[0].signup("seller")
        ids = [(await apis[i % len(apis)].auction(seller, duration_ms=3_600_000))["auction_id"]
               for i in range(AUCTIONS)]
        directory = ray.get_actor(config.directory_name(), namespace=config.namespace)
        hosts = {a: await directory.locate.remote(a) for a in ids}

        before = await asyncio.to_thread(ece_actors, config)
        [victim] = [p.node_id for p in before if p.name == config.directory_name()]
        singletons = {n for n in _on(before, victim) if is_singleton(config, n)}
        assert len([p for p in before if is_singleton(config, p.name)]) == 4, before

        done = await asyncio.to_thread(cluster.ece, "drain", victim[:12], "--json")
        assert done.returncode == 0, (done.stdout, done.stderr[-3000:])
        drained = json.loads(done.stdout)
        moved = {m["name"]: m for m in drained["singletons"]}
        assert set(moved) == singletons and config.directory_name() in moved
        assert all(m["to"] != victim for m in moved.values())
        assert victim in drained["draining"]  # the restarted directory knows it drains
        print(f"\ndrain: {len(drained['moved'])} hosts, singletons "
              + ", ".join(f"{n} {m['restarts']} restart(s) {m['seconds']:.2f} s"
                          for n, m in moved.items()))

        after = await asyncio.to_thread(ece_actors, config)
        assert _on(after, victim) == []
        assert {p.name for p in after} >= {p.name for p in before if is_singleton(config, p.name)}

        # The directory (restarted elsewhere) knows every auction where it lives, and places
        # a new one, on a node that is not draining.
        assert {a: await directory.locate.remote(a) for a in ids} == hosts
        new = await apis[-1].auction(seller, duration_ms=3_600_000)
        host = await directory.locate.remote(new["auction_id"])
        placed = {p.name: p.node_id for p in await asyncio.to_thread(ece_actors, config)}
        assert placed[host] != victim

        # The projections catch up with a sale made after the drain.
        buyer = await apis[0].signup("buyer")
        card_id, asset_id = await graded_copy(apis[0], seller, unique("Charizard"))
        await sell_by_offer(apis[-1], seller, buyer, asset_id, 4_321)

        async def sold() -> bool:
            page = await apis[0].expect(200, "GET", f"/api/cards/{card_id}/history"
                                        "?grader=PSA&grade=9")
            return bool(page["sales"]) and bool(page["candles"])

        await wait_for(sold, timeout=90, message="the sale in the card's history")

        def caught_up() -> bool:
            lag = cluster.status()["projections"]
            return bool(lag) and all(p["facts_behind"] == 0 for p in lag.values())

        await wait_for(lambda: asyncio.to_thread(caught_up), timeout=90, interval=1.0,
                       message="every projection caught up")
