"""`ece drain` / `ece rebalance` without a cluster: naming a node, the report, and the exit
code when the cluster cannot be reached."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from gateway.moves import render, resolve_node

ROOT = Path(__file__).resolve().parents[2]
NODES = ["5f0c1e2a9b3d77", "5f0c99aa0000aa", "a1b2c3d4e5f600"]


def test_a_node_is_named_by_a_unique_prefix() -> None:
    assert resolve_node("a1b2", NODES) == ("a1b2c3d4e5f600", None)
    assert resolve_node("5f0c1e2a9b3d77", NODES) == ("5f0c1e2a9b3d77", None)


def test_an_ambiguous_or_unknown_prefix_is_refused() -> None:
    node, why = resolve_node("5f0c", NODES)
    assert node is None and "2 nodes" in str(why)
    node, why = resolve_node("ffff", NODES)
    assert node is None and why == "no alive node ffff"
    # An empty id (an unset shell variable) names no node, even with one node alive.
    for empty in ("", "  "):
        assert resolve_node(empty, NODES[:1]) == (None, "no node id given")


def test_the_report_names_each_move_and_the_nodes_after() -> None:
    result = {"moved": [{"host": "ece:host:1", "from": NODES[0], "to": NODES[2],
                         "auctions": 7, "offer_threads": 1, "seconds": 0.8}],
              "error": None, "seconds": 1.25,
              "nodes": {NODES[0]: {}, NODES[2]: {"ece:host:1": 7}}, "draining": [NODES[0]]}
    text = render("drain", NODES[0], result)
    assert text.splitlines() == [
        f"drain of node {NODES[0]}: moved 1 hosts (7 auctions) in 1.2 s",
        "  host ece:host:1: 5f0c1e2a9b3d -> a1b2c3d4e5f6, 7 auctions, 1 offer threads, 0.80 s",
        "node 5f0c1e2a9b3d (draining): 0 hosts, 0 auctions",
        "node a1b2c3d4e5f6: 1 hosts, 7 auctions",
    ]
    refused = render("rebalance", None, {"moved": [], "error": "nothing can move",
                                         "seconds": 0.1})
    assert refused.splitlines()[-1] == "problem: nothing can move"


def test_an_unreachable_cluster_exits_2_within_the_join_deadline() -> None:
    env = {**os.environ, "ECE_RAY_ADDRESS": "127.0.0.1:1",
           "ECE_SECRET": "test-secret-of-at-least-thirty-two-bytes"}
    for args in (["drain", "abc"], ["rebalance", "--json"]):
        done = subprocess.run([sys.executable, "-m", "gateway.cli", *args,
                               "--join-timeout", "1"], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 2, done.stderr[-2000:]
        assert "cannot reach the Ray cluster" in done.stderr
