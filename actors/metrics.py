"""The actors' own metrics, exported through Ray's metrics (`ray.util.metrics`): each node's
metrics agent serves them to Prometheus as `ray_<name>`, labelled with the node
(`NodeAddress`) besides the tags below. The gateway's `/metrics` has the edge's figures
(connections, bids by outcome, bid latency, projection lag); `ops/grafana/ece.json` shows
both.

Cores stay free of Ray: a host core reports each batch to an optional `BatchObserver`, and
the Ray shell passes `HostMetrics`."""

from __future__ import annotations

from typing import Protocol

# Prometheus names as a scrape shows them (Ray prefixes `ray_`; histograms add _bucket etc.).
HOST_AUCTIONS = "ece_host_auctions"
HOST_QUEUE = "ece_host_queue_depth"
HOST_BATCH = "ece_host_batch_size"
HOST_COMMIT = "ece_host_commit_seconds"
BATCH_BOUNDARIES = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0]
COMMIT_BOUNDARIES = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5]


class BatchObserver(Protocol):
    def __call__(self, commands: int, commit_s: float | None, queued: int,
                 auctions: int) -> None:
        """One batch done: its commands, its commit's seconds (None: nothing to store), the
        commands still queued and the auctions served."""


class HostMetrics:
    """A host actor's metrics (create it inside the actor: Ray's metrics need a worker)."""

    def __init__(self, host: str) -> None:
        from ray.util.metrics import Gauge, Histogram

        self._tags = {"host": host}
        keys = ("host",)
        self._auctions = Gauge(HOST_AUCTIONS, "Auctions a host actor serves", keys)
        self._queue = Gauge(HOST_QUEUE, "Commands queued in a host actor, not yet run", keys)
        self._batch = Histogram(HOST_BATCH, "Commands per batch a host actor runs",
                                BATCH_BOUNDARIES, keys)
        self._commit = Histogram(HOST_COMMIT, "Seconds a host actor's batch commit takes",
                                 COMMIT_BOUNDARIES, keys)
        for metric in (self._auctions, self._queue, self._batch, self._commit):
            metric.set_default_tags(self._tags)

    def __call__(self, commands: int, commit_s: float | None, queued: int,
                 auctions: int) -> None:
        self._auctions.set(auctions)
        self._queue.set(queued)
        if commands:
            self._batch.observe(commands)
        if commit_s is not None:
            self._commit.observe(commit_s)
