"""A real multi-node Ray cluster (testkit.cluster): a head and two worker nodes on this
machine, each with its own raylet and its own gateway, sharing a MongoDB store in a process of
its own. One cluster per test module: starting one takes about half a minute here."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from testkit.cluster import Cluster

# Two auctions per host: a handful of auctions make several hosts to spread over the nodes.
CLUSTER_ENV = {"ECE_AUCTIONS_PER_ACTOR": "2"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with Cluster(tmp_path_factory.mktemp("cluster"), workers=2, env=CLUSTER_ENV) as started:
        yield started
