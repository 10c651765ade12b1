"""`ece status`'s judgement (`assess`) and its rendering, on hand-built cluster views."""

from __future__ import annotations

import copy
from typing import Any

from gateway.status import Limits, _redacted, assess, render

NODE_A, NODE_B = "a" * 56, "b" * 56


def healthy() -> dict[str, Any]:
    return {
        "instance": "ece",
        "nodes": [{"node_id": NODE_A, "address": "10.0.0.1", "alive": True, "cpus": 4.0,
                   "hosts": 1, "auctions": 3, "commands_per_s": 12.0},
                  {"node_id": NODE_B, "address": "10.0.0.2", "alive": True, "cpus": 4.0,
                   "hosts": 1, "auctions": 2, "commands_per_s": 0.0}],
        "hosts": [{"name": "ece:host:0", "placed": 3, "node_id": NODE_A, "auctions": 3,
                   "offer_threads": 0, "commands_per_s": 12.0},
                  {"name": "ece:host:1", "placed": 2, "node_id": NODE_B, "auctions": 2,
                   "offer_threads": 1, "commands_per_s": 0.0}],
        "directory_error": None,
        "store": {"url": "sqlite:///x.db", "read_ms": 1.2},
        "projections": {"market": {"checkpoint": 9, "facts_behind": 0, "seconds_behind": 0.0}},
    }


def test_a_healthy_cluster_has_no_problems() -> None:
    assert assess(healthy(), Limits()) == []
    assert render(healthy(), []).splitlines()[0] == "instance ece: healthy"


def test_each_unhealthy_part_is_named() -> None:
    cases = {
        "no live Ray node": lambda s: [n.update(alive=False) for n in s["nodes"]],
        "directory: ValueError": lambda s: s.update(directory_error="ValueError: gone"),
        "host ece:host:1: TimeoutError": lambda s: s["hosts"][1].update(error="TimeoutError"),
        "host ece:host:1 runs on a node that is not alive":
            lambda s: s["nodes"][1].update(alive=False),
        "store: OperationFailure": lambda s: s.update(store={"url": "m", "error":
                                                             "OperationFailure: down"}),
        "store: a one-row read took 2500 ms": lambda s: s["store"].update(read_ms=2500.0),
        "projection market: 61 s behind": lambda s: s["projections"]["market"].update(
            seconds_behind=61.0, facts_behind=4),
    }
    for expected, breaks in cases.items():
        status = copy.deepcopy(healthy())
        breaks(status)
        problems = assess(status, Limits())
        assert any(p.startswith(expected) for p in problems), (expected, problems)
        assert "UNHEALTHY" in render(status, problems).splitlines()[0]


def test_a_host_below_normal_priority_is_shown_with_the_setting_that_fixes_it() -> None:
    status = healthy()
    status["hosts"][1]["nice"] = 15
    lines = render(status, assess(status, Limits())).splitlines()
    assert lines[0] == "instance ece: healthy"  # slower, not broken
    assert [line for line in lines if "nice" in line] == [
        "  host ece:host:1 on bbbbbbbbbbbb: 2 auctions, 1 offer threads, 0.0 commands/s, "
        "at nice 15 (its node's Ray starts workers below normal priority: "
        "docs/operations.md, A cluster)"]


def test_the_lag_limit_is_the_operators() -> None:
    status = healthy()
    status["projections"]["market"].update(seconds_behind=30.0, facts_behind=2)
    assert assess(status, Limits()) == []
    assert assess(status, Limits(max_lag_s=10.0)) != []


def test_a_store_password_is_never_printed() -> None:
    assert _redacted("mongodb://ece:s3cret@db.internal:27017/ece") == \
        "mongodb://ece:***@db.internal:27017/ece"
    assert _redacted("sqlite:///data/ece.db") == "sqlite:///data/ece.db"


def test_a_store_url_that_cannot_be_opened_is_a_store_problem_without_its_password() -> None:
    import asyncio
    from pathlib import Path

    from gateway.config import Settings
    from gateway.status import _store

    settings = Settings(data_dir=Path("/tmp/ece-status-test"),
                        mongodb_uri="notmongo://ece:s3cret@db.internal/ece")
    health, lag = asyncio.run(_store(settings, Limits()))
    assert health["error"] and lag == {}
    assert "s3cret" not in str(health)
