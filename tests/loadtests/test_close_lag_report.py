"""Stage close_lag in the bench's result: its figure, its goal (issue 13: p99 <= 250 ms), and
a missing stage noted."""

from __future__ import annotations

from loadtests import report


def test_the_close_lag_figure_and_goal_join_the_report() -> None:
    def built(stages: dict) -> dict:
        result: dict = {"figures": {}, "goals": [], "missing_stages": []}
        report.add_close_lag(result, stages, {"close_lag"}, 2000)
        return result

    met = built({"close_lag": {"figures": {"close_lag_p99_ms": 16.2}}})
    assert met["figures"]["close_lag_p99_ms"]["value"] == 16.2
    assert [(g["goal"], g["met"]) for g in met["goals"]] == [(report.CLOSE_LAG_GOAL, True)]
    late = built({"close_lag": {"figures": {"close_lag_p99_ms": 500.0}}})
    assert late["goals"][0]["met"] is False and late["goals"][0]["off_by_factor"] == 2.0
    lost = built({})
    assert lost["goals"][0]["met"] is None and lost["missing_stages"] == ["close_lag"]
    unwanted: dict = {"figures": {}, "goals": [], "missing_stages": []}
    report.add_close_lag(unwanted, {}, {"e2e"}, 2000)
    assert unwanted == {"figures": {}, "goals": [], "missing_stages": []}
