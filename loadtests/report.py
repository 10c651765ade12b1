"""Figures, ratios and goals from the stages' results; the printed table."""

from __future__ import annotations

from typing import Any

GB24 = 24 * 1024**3

STAGES = ("rules_engine", "echo", "ray_calls", "idle_connections", "e2e", "checked",
          "unchecked", "fanout", "inmemory", "baseline", "auctions_hosted", "auctions_per_actor",
          "offers")


def fig(stages: dict, stage: str, name: str) -> float | None:
    """A stage's figure, None when the stage is missing, failed or gave no number."""
    value = stages.get(stage, {}).get("figures", {}).get(name)
    return value if isinstance(value, (int, float)) else None


def figure_rows(stages: dict, rows: tuple[tuple[str, str, str, str, str], ...],
                only: set[str] | None = None) -> dict[str, dict[str, Any]]:
    """The report's figures from (key, stage, figure, unit, description) rows (of the stages
    in `only`, when given)."""
    return {key: {"value": fig(stages, stage, name), "unit": unit, "what": what.strip()}
            for key, stage, name, unit, what in rows if only is None or stage in only}


def add_stage(result: dict[str, Any], stages: dict[str, Any], wanted: set[str], stage: str,
              rows: tuple[tuple[str, str, str, str, str], ...]) -> bool:
    """A stage that reports its own figures: its `rows` (figure_rows) into the bench's
    `result` (in place), and the stage listed as missing when it failed or did not run.
    False when the stage was not wanted (nothing added)."""
    if stage not in wanted:
        return False
    result["figures"].update(figure_rows(stages, rows))
    mark_missing(result, stages, stage)
    return True


def mark_missing(result: dict[str, Any], stages: dict[str, Any], stage: str) -> None:
    """List `stage` in the result's missing stages when it failed or did not run."""
    if (stage not in stages or stages[stage].get("error")) and \
            stage not in result["missing_stages"]:
        result["missing_stages"].append(stage)


def goal(name: str, value: float | None, target: float, op: str, unit: str,
         note: str = "") -> dict[str, Any]:
    """One goal row: met or not (None: not measured), and by what factor it was missed."""
    met = None if value is None else (value >= target if op == ">=" else value <= target)
    gap = None
    if value is not None and not met and target:
        gap = round(target / value, 2) if op == ">=" and value else round(value / target, 2)
    return {"goal": name, "target": f"{op} {target:g} {unit}".strip(), "value": value,
            "met": met, "off_by_factor": gap, "note": note}


CLOSE_LAG_GOAL = "close lag p99"


def add_close_lag(result: dict[str, Any], stages: dict[str, Any], wanted: set[str],
                  auctions: int) -> None:
    """The close lag figure and its goal (issue 13: p99 <= 250 ms), when the stage was wanted."""
    if "close_lag" not in wanted:
        return
    lag = stages.get("close_lag", {}).get("figures", {}).get("close_lag_p99_ms")
    what = f"{auctions:,} auctions ending within 1 s, one host"
    result["figures"]["close_lag_p99_ms"] = {"value": lag, "unit": "ms",
                                            "what": f"close lag p99, {what}"}
    result["goals"].append(goal(CLOSE_LAG_GOAL, lag, 250, "<=", "ms", what))
    if lag is None:
        result["missing_stages"].append("close_lag")


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return round(a / b, 3)


# (key, stage, figure, unit, description)
FIGURES = (
    ("echo_messages_per_s", "echo", "messages_per_s", "msg/s", "echo limit (bare aiohttp WS)"),
    ("rules_bids_per_s", "rules_engine", "bids_per_s", "bids/s", "rules engine alone"),
    ("ray_calls_per_s", "ray_calls", "calls_per_s", "calls/s",
     "Ray no-op actor calls, 64 in flight"),
    ("ray_call_p50_ms", "ray_calls", "serial_p50_ms", "ms", "  Ray call round trip p50, serial"),
    ("ray_call_cpu_us_paced", "ray_calls", "paced_cpu_us_per_call", "us",
     "  CPU per Ray call, caller + actor, one at a time at 100/s"),
    ("e2e_bids_per_s", "e2e", "bids_per_s", "bids/s", "end to end, saturating (answered)"),
    ("e2e_accepted_per_s", "e2e", "accepted_per_s", "bids/s", "  of which accepted"),
    ("e2e_ack_p99_ms", "e2e", "ack_p99_ms", "ms", "  bid->ack p99 at saturation"),
    ("e2e_event_p99_ms", "e2e", "event_p99_ms", "ms", "  bid->event p99 at saturation"),
    ("half_rate_bids_per_s", "e2e", "half_rate_bids_per_s", "bids/s", "half rate (open loop)"),
    ("half_rate_ack_p99_ms", "e2e", "half_rate_ack_p99_ms", "ms", "  bid->ack p99 at half rate"),
    ("half_rate_event_p99_ms", "e2e", "half_rate_event_p99_ms", "ms",
     "  bid->event p99 at half rate"),
    ("light_ack_p99_ms", "e2e", "light_ack_p99_ms", "ms",
     "  bid->ack p99 at light load (fixed low rate)"),
    ("light_event_p99_ms", "e2e", "light_event_p99_ms", "ms",
     "  bid->event p99 at light load"),
    ("checked_bids_per_s", "checked", "bids_per_s", "bids/s",
     "end to end, joined gateway, buying-power check on"),
    ("unchecked_bids_per_s", "unchecked", "bids_per_s", "bids/s",
     "end to end, joined gateway, buying-power check off"),
    ("baseline_bids_per_s", "baseline", "bids_per_s", "bids/s",
     "baseline (BATCHING=0: a Ray call per bid)"),
    ("baseline_ack_p99_ms", "baseline", "ack_p99_ms", "ms", "  bid->ack p99, baseline"),
    ("fanout_deliveries_per_s", "fanout", "deliveries_per_s", "deliveries/s",
     "fan-out: one auction, many watchers"),
    ("fanout_event_p99_ms", "fanout", "event_p99_ms", "ms", "  bid->event p99, fan-out"),
    ("idle_bytes_per_connection", "idle_connections", "bytes_per_connection", "B",
     "gateway RSS per idle WebSocket"),
    ("idle_connections", "idle_connections", "connections", "sockets", "  idle sockets open"),
    ("hosted_bytes_per_auction", "auctions_hosted", "bytes_per_auction", "B",
     "host RSS per live auction (500/actor)"),
    ("hosted_live_auctions", "auctions_hosted", "live_auctions", "auctions", "  auctions live"),
    ("per_actor_bytes_per_auction", "auctions_per_actor", "bytes_per_auction", "B",
     "host RSS per live auction (1/actor)"),
    ("per_actor_live_auctions", "auctions_per_actor", "live_auctions", "auctions",
     "  auctions live"),
    ("offers_swaps_per_s", "offers", "swaps_per_s", "swaps/s",
     "trade offers: accepted swaps end to end (16 clients)"),
    ("offers_accept_settled_p99_ms", "offers", "accept_settled_p99_ms", "ms",
     "  accept->settled p99"),
    ("embedded_bids_per_s", "e2e", "bids_per_s", "bids/s", "durability: SQLite file store"),
    ("inmemory_bids_per_s", "inmemory", "bids_per_s", "bids/s",
     "durability: in-memory store"),
)


# (label, stage, sub-result holding answered_per_s / ack_ms / event_ms)
LATENCIES = (
    ("echo round trip (limit)", "echo", "details"),
    ("end to end, saturating", "e2e", "saturated"),
    ("end to end, half rate", "e2e", "half_rate"),
    ("end to end, light load", "e2e", "light"),
    ("in-memory store, saturating", "inmemory", "saturated"),
    ("buying-power check on, saturating", "checked", "saturated"),
    ("buying-power check off, saturating", "unchecked", "saturated"),
    ("naive baseline, saturating", "baseline", "saturated"),
    ("fan-out, 1 auction", "fanout", "details"),
    ("hot auction, closed loop", "hot_auction", "saturated"),
)


def latencies(stages: dict) -> dict[str, dict[str, Any]]:
    out = {}
    for label, stage, sub in LATENCIES:
        part = stages.get(stage, {}).get(sub)
        if not isinstance(part, dict):
            continue
        ack = part.get("ack_ms") or part.get("rtt_ms") or {}
        out[label] = {
            "rate_per_s": part.get("answered_per_s") or stages[stage]["figures"].get(
                "messages_per_s"),
            "target_per_s": part.get("target_per_s"),
            "ack_ms": {k: ack.get(k) for k in ("p50", "p95", "p99")},
            "event_ms": {k: (part.get("event_ms") or {}).get(k) for k in ("p50", "p95", "p99")},
        }
    return out


def build(params: dict, machine: dict, stages: dict, costs: dict, errors: list[str],
          elapsed_s: float) -> dict[str, Any]:
    figures = figure_rows(stages, FIGURES)
    v = {k: f["value"] for k, f in figures.items()}

    hosted = v["hosted_bytes_per_auction"]
    per_actor = v["per_actor_bytes_per_auction"]
    fit_hosted = int(GB24 / hosted) if hosted else None
    fit_per_actor = int(GB24 / per_actor) if per_actor else None
    figures["hosted_auctions_in_24gb"] = {
        "value": fit_hosted, "unit": "auctions",
        "what": "EXTRAPOLATED: 24 GiB / host RSS per auction (500/actor)"}
    figures["per_actor_auctions_in_24gb"] = {
        "value": fit_per_actor, "unit": "auctions",
        "what": "EXTRAPOLATED: 24 GiB / host RSS per auction (1/actor)"}

    ratios = {
        "e2e_over_baseline": _ratio(v["e2e_bids_per_s"], v["baseline_bids_per_s"]),
        "checked_over_unchecked": _ratio(v["checked_bids_per_s"], v["unchecked_bids_per_s"]),
        "e2e_over_echo": _ratio(v["e2e_bids_per_s"], v["echo_messages_per_s"]),
        "e2e_over_rules_engine": _ratio(v["e2e_bids_per_s"], v["rules_bids_per_s"]),
        "baseline_over_ray_calls": _ratio(v["baseline_bids_per_s"], v["ray_calls_per_s"]),
        "embedded_over_inmemory": _ratio(v["embedded_bids_per_s"], v["inmemory_bids_per_s"]),
        "half_rate_achieved_over_target": _ratio(
            v["half_rate_bids_per_s"], (v["e2e_bids_per_s"] or 0) / 2 or None),
        "per_actor_over_hosted_memory": _ratio(per_actor, hosted),
        # Event deliveries/s to many watchers of one auction over echoed messages/s.
        "fanout_over_echo": _ratio(v["fanout_deliveries_per_s"], v["echo_messages_per_s"]),
    }

    goals = [
        goal("end-to-end / baseline", ratios["e2e_over_baseline"], 10, ">=", "x"),
        goal("end-to-end / echo", ratios["e2e_over_echo"], 0.30, ">=", "x"),
        goal("with / without buying-power check", ratios["checked_over_unchecked"], 0.95, ">=",
             "x", "two joined gateways differing in ECE_BALANCE_CHECK only, back to back"),
        goal("p99 bid->ack at half rate", v["half_rate_ack_p99_ms"], 20, "<=", "ms"),
        goal("p99 bid->event at half rate", v["half_rate_event_p99_ms"], 50, "<=", "ms"),
        goal("live auctions in 24 GB (500/actor)", fit_hosted, 10_000, ">=", "auctions",
             "extrapolated from measured host RSS per auction"),
        goal("fan-out deliveries / echo", ratios["fanout_over_echo"], 1.5, ">=", "x",
             "one encoded frame to many sockets should beat request/response echo"),
        goal("gateway memory per idle connection",
             round(v["idle_bytes_per_connection"] / 1024, 1)
             if v["idle_bytes_per_connection"] is not None else None, 30, "<=", "KiB"),
    ]
    missing = [s for s in STAGES if s not in stages or stages[s].get("error")]
    return {
        "elapsed_s": round(elapsed_s, 1),
        "machine": machine,
        "parameters": params,
        "costs": costs,
        "figures": figures,
        "ratios": ratios,
        "latencies": latencies(stages),
        "goals": goals,
        "stages": stages,
        "missing_stages": missing,
        "errors": errors,
    }


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if abs(value) >= 100:
            return f"{value:,.0f}"
        return f"{value:.2f}" if abs(value) >= 1 else f"{value:.3f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def table(result: dict[str, Any]) -> str:
    lines = []
    lines.append(f"{'figure':<52} {'value':>14}  unit")
    lines.append("-" * 78)
    for fig in result["figures"].values():
        lines.append(f"{fig['what']:<52} {_fmt(fig['value']):>14}  {fig['unit']}")
    lines.append("")
    lines.append(f"{'latency, ms (bid->ack | bid->event)':<30} {'rate/s':>8}  "
                 f"{'p50':>7} {'p95':>7} {'p99':>7} | {'p50':>7} {'p95':>7} {'p99':>7}")
    lines.append("-" * 96)
    for label, row in result.get("latencies", {}).items():
        a, e = row["ack_ms"], row["event_ms"]
        lines.append(f"{label:<30} {_fmt(row['rate_per_s']):>8}  "
                     f"{_fmt(a['p50']):>7} {_fmt(a['p95']):>7} {_fmt(a['p99']):>7} | "
                     f"{_fmt(e['p50']):>7} {_fmt(e['p95']):>7} {_fmt(e['p99']):>7}")
    lines.append("")
    lines.append(f"{'ratio':<52} {'value':>14}")
    lines.append("-" * 78)
    for key, value in result["ratios"].items():
        lines.append(f"{key:<52} {_fmt(value):>14}")
    lines.append("")
    lines.append(f"{'goal':<40} {'target':>16} {'measured':>12}  met")
    lines.append("-" * 78)
    for g in result["goals"]:
        met = {True: "MET", False: "MISSED", None: "n/a"}[g["met"]]
        if g["met"] is False and g["off_by_factor"]:
            met += f" (x{g['off_by_factor']})"
        lines.append(f"{g['goal']:<40} {g['target']:>16} {_fmt(g['value']):>12}  {met}")
    if result["errors"]:
        lines.append("")
        lines.append("errors: " + "; ".join(result["errors"]))
    return "\n".join(lines)
