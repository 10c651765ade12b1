"""Stage `node_loss`: a real three-node Ray cluster on this machine (testkit.cluster: a head
and two worker nodes, each its own raylet and gateway, MongoDB through mongoeco's wire server
in a process of its own), steady bidding on six auctions over WebSockets through every
gateway, then SIGKILL of the worker node hosting most of them (its raylet, its workers and
actors, its gateway). The scenario is testkit.node_loss, the same one tests/cluster asserts.

Figures: per auction that lived on the killed node, the time from the kill to its first
accepted bid (p50 and max over those auctions; the head's GCS health check, HEALTH_CHECK in
testkit.cluster, is most of it), and the acknowledged bids missing from the store's log
(must be 0).
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
from pathlib import Path
from typing import Any

from loadtests.params import Params
from testkit import node_loss
from testkit.cluster import Cluster

STAGE = "node_loss"
CLUSTER_ENV = {"ECE_AUCTIONS_PER_ACTOR": "2"}

# (key, stage, figure, unit, description)
FIGURES = (
    ("node_loss_recovery_p50_ms", STAGE, "node_loss_recovery_p50_ms", "ms",
     "node loss: kill -> first accepted bid, p50 over the lost node's auctions"),
    ("node_loss_recovery_max_ms", STAGE, "node_loss_recovery_max_ms", "ms",
     "  kill -> first accepted bid, slowest of the lost node's auctions"),
    ("node_loss_lost_acked_bids", STAGE, "node_loss_lost_acked_bids", "bids",
     "  acknowledged bids missing from the store (must be 0)"),
)


def node_loss_stage(params: Params | None = None, tmp: Path | None = None) -> dict[str, Any]:
    """Run the node-loss scenario once on a fresh cluster; {"figures": {...}, "detail": ...}."""
    workdir = Path(tempfile.mkdtemp(prefix="node-loss-", dir=tmp))
    with Cluster(workdir, workers=2, env=CLUSTER_ENV) as cluster:
        outcome = asyncio.run(asyncio.wait_for(node_loss.run(cluster), 600))
    lost = [outcome.recovery_s[a] * 1000 for a in outcome.on_victim]
    return {
        "figures": {
            "node_loss_recovery_p50_ms": round(statistics.median(lost), 1),
            "node_loss_recovery_max_ms": round(max(lost), 1),
            "node_loss_lost_acked_bids": len(outcome.lost_acks()),
        },
        "detail": {
            "auctions": len(outcome.auctions),
            "auctions_on_lost_node": len(outcome.on_victim),
            "acked_bids": len(outcome.acks),
            "errors": outcome.errors,
            "bidder_reconnects": outcome.reconnects,
            "quick": bool(params.quick) if params is not None else None,
        },
    }




if __name__ == "__main__":
    import json

    print(json.dumps(node_loss_stage(), indent=2))
