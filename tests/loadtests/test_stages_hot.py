"""Stage hot_auction's pure parts: its generator jobs (one auction, every bidder with one bid
outstanding, split between the generator processes), its figures from a load summary, and
the keys it adds to the bench's result."""

from __future__ import annotations

import argparse

from loadtests import report
from loadtests.params import Params
from loadtests.stages_hot import FIGURES, STAGE, figures_of, hot_jobs
from testkit.client import User


def _params(procs: int = 2) -> Params:
    args = argparse.Namespace(quick=False, k=None, b=None, w=None, window=2, procs=procs,
                              encoding="json", measure=None, no_pin=False)
    return Params.build(args)


def test_every_bidder_bids_on_the_one_auction_with_one_bid_outstanding() -> None:
    params = _params(procs=2)
    bidders = [User(f"u{i}", f"name{i}", f"t{i}") for i in range(params.hot_bidders)]
    view = {"auction_id": "a_hot", "min_bid": 150}
    jobs = hot_jobs(params, "http://x", view, bidders)
    assert len(jobs) == 2
    assert all(job["mode"] == "closed" and job["window"] == 1 for job in jobs)
    specs = [spec for job in jobs for spec in job["bidders"]]
    assert params.hot_bidders == 200
    assert sorted(s["bidder_id"] for s in specs) == sorted(u.user_id for u in bidders)
    assert {s["auction_id"] for s in specs} == {"a_hot"} and {s["floor"] for s in specs} == {150}
    watchers = [w for job in jobs for w in job["watchers"]]
    assert len(watchers) == params.watchers and {w["auction_id"] for w in watchers} == {"a_hot"}


def test_figures_count_accepted_and_refused_apart_and_cpu_per_answered_bid() -> None:
    summary = {"answered_per_s": 2000.0, "accepted_per_s": 500.0, "rejected_per_s": 1500.0,
               "ack_ms": {"p50": 3.0, "p99": 9.0}, "event_ms": {"p99": 11.0},
               "cpu_cores": {"gateway": 0.5, "hosts": 0.4, "ray_other": 0.1, "generator": 0.7,
                             "machine_busy": 1.9, "not_ours": 0.2}}
    figures = figures_of(summary)
    assert figures["accepted_per_s"] == 500.0 and figures["refused_per_s"] == 1500.0
    # The generator's and everyone else's CPU are not the server's.
    assert figures["server_cpu_cores"] == 1.0
    assert figures["server_cpu_us_per_bid"] == 500.0


def test_the_report_gets_every_hot_auction_key_and_notes_a_missing_stage() -> None:
    result = {"figures": {}, "missing_stages": []}
    stages = {STAGE: {"figures": {"bids_per_s": 1.0, "accepted_per_s": 1.0,
                                  "refused_per_s": 0.0, "ack_p50_ms": 1.0, "ack_p99_ms": 1.0,
                                  "server_cpu_cores": 1.0, "server_cpu_us_per_bid": 1.0}}}
    report.add_stage(result, stages, {STAGE}, STAGE, FIGURES)
    assert result["figures"]["hot_auction_bids_per_s"]["value"] == 1.0
    assert {k for k in result["figures"] if k.startswith("hot_auction_")} == {
        "hot_auction_bids_per_s", "hot_auction_accepted_per_s", "hot_auction_refused_per_s",
        "hot_auction_ack_p50_ms", "hot_auction_ack_p99_ms", "hot_auction_server_cpu_cores",
        "hot_auction_server_cpu_us_per_bid"}
    assert result["missing_stages"] == []

    failed: dict = {"figures": {}, "missing_stages": []}
    report.add_stage(failed, {STAGE: {"error": "boom", "figures": {}}}, {STAGE}, STAGE, FIGURES)
    assert failed["missing_stages"] == [STAGE]
    assert failed["figures"]["hot_auction_bids_per_s"]["value"] is None
    assert any(stage == STAGE for _, stage, _ in report.LATENCIES)
