"""The processes stage's pure parts: its servers, figure keys, ratios and report rows."""

from __future__ import annotations

import argparse

from loadtests.params import Params
from loadtests.report import build
from loadtests.stages_processes import (
    FIGURES,
    GATEWAYS,
    HOSTS,
    QUICK,
    RATIOS,
    STAGE,
    add_processes_report,
    key,
    ratios_of,
    server_specs,
)


def params(quick: bool) -> Params:
    args = argparse.Namespace(quick=quick, k=None, b=None, w=None, window=2, procs=2,
                              encoding="json", measure=None, no_pin=False)
    return Params.build(args)


def test_two_servers_differ_in_the_number_of_gateway_processes_only() -> None:
    specs = server_specs(params(quick=False))
    assert sorted(s["ECE_GATEWAYS"] for s in specs.values()) == ["1", "2"]
    assert len({s["ECE_AUCTIONS_PER_ACTOR"] for s in specs.values()}) == 1
    # --quick: only the servers of the configurations it measures.
    quick = server_specs(params(quick=True))
    assert {s["ECE_GATEWAYS"] for s in quick.values()} == {
        str(g) for g, _ in QUICK.measured}
    assert all(s["ECE_AUCTIONS_PER_ACTOR"] == str(QUICK.per_host) for s in quick.values())


def test_a_figure_per_configuration_and_ratios_over_them() -> None:
    keys = [row[0] for row in FIGURES]
    assert keys == [key(g, h) for g in GATEWAYS for h in HOSTS]
    assert "capacity_1gw_1host_bids_per_s" in keys and "capacity_2gw_4host_bids_per_s" in keys
    assert all(a in keys and b in keys for a, b in RATIOS.values())
    got = ratios_of({key(2, 4): 300.0, key(1, 4): 200.0, key(2, 1): 100.0})
    assert got == {"two_gateways_over_one": 1.5, "four_hosts_over_one": 3.0}
    # A configuration that met the target at no rate has no capacity: no ratio, no error.
    assert ratios_of({key(2, 4): 300.0, key(2, 1): 0}) == {
        "two_gateways_over_one": None, "four_hosts_over_one": None}


def test_report_rows_keep_every_key_and_mark_a_failed_stage_missing() -> None:
    stages = {STAGE: {"figures": {key(2, 4): 240.0, key(1, 4): 160.0, key(2, 1): 120.0}}}
    result = build({}, {}, stages, {}, [], 1.0)
    add_processes_report(result, stages, {STAGE})
    assert {row[0] for row in FIGURES} <= set(result["figures"])
    assert result["figures"][key(1, 1)]["value"] is None
    assert result["ratios"]["two_gateways_over_one"] == 1.5
    assert result["ratios"]["four_hosts_over_one"] == 2.0
    assert STAGE not in result["missing_stages"]

    failed = build({}, {}, {STAGE: {"error": "boom", "figures": {}}}, {}, [], 1.0)
    add_processes_report(failed, {STAGE: {"error": "boom", "figures": {}}}, {STAGE})
    assert STAGE in failed["missing_stages"]
    assert failed["ratios"]["two_gateways_over_one"] is None

    untouched = build({}, {}, {}, {}, [], 1.0)
    add_processes_report(untouched, {}, {"echo"})  # not wanted: nothing added
    assert key(1, 1) not in untouched["figures"]


def test_the_fanout_ratio_has_one_name_and_a_goal() -> None:
    stages = {"fanout": {"figures": {"deliveries_per_s": 30_000.0}},
              "echo": {"figures": {"messages_per_s": 20_000.0}}}
    result = build({}, {}, stages, {}, [], 1.0)
    assert result["ratios"]["fanout_over_echo"] == 1.5
    assert "fanout_deliveries_over_echo" not in result["ratios"]
    [row] = [g for g in result["goals"] if g["goal"] == "fan-out deliveries / echo"]
    assert row["target"] == ">= 1.5 x" and row["met"] is True
