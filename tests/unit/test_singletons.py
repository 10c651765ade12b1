"""Which actors `ece drain` moves as singletons, and how its report names their moves."""

from __future__ import annotations

from actors.config import ClusterConfig
from actors.singletons import is_singleton
from gateway.moves import render

CONFIG = ClusterConfig(store_url="mongodb://db/ece", instance="shop")


def test_every_named_actor_but_the_hosts_is_a_singleton() -> None:
    for name in (CONFIG.directory_name(), CONFIG.analytics_name(), CONFIG.portfolio_name(3)):
        assert is_singleton(CONFIG, name), name
    for index in (0, 7, 120):
        assert not is_singleton(CONFIG, CONFIG.host_name(index))


def test_the_drain_report_names_each_singleton_moved() -> None:
    leaving, staying = "5f0c1e2a9b3d77aa", "a1b2c3d4e5f600bb"
    result = {"moved": [], "error": None, "seconds": 3.8,
              "nodes": {leaving: {}, staying: {}}, "draining": [leaving],
              "singletons": [{"name": "shop:directory", "from": leaving, "to": staying,
                              "restarts": 2, "seconds": 2.83}]}
    assert render("drain", leaving, result).splitlines() == [
        f"drain of node {leaving}: moved 0 hosts (0 auctions) and 1 singletons in 3.8 s",
        "  shop:directory: 5f0c1e2a9b3d -> a1b2c3d4e5f6, 2 restart(s), 2.83 s",
        "node 5f0c1e2a9b3d (draining): 0 hosts, 0 auctions",
        "node a1b2c3d4e5f6: 0 hosts, 0 auctions",
    ]
