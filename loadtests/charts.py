"""Charts of the benchmark's results (matplotlib, Agg backend: no display needed), as PNGs in
`loadtests/results/`."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def capacity_chart(series: dict[str, list[dict[str, Any]]], knees: dict[str, float | None],
                   target_ms: float, path: Path, note: str = "") -> Path | None:
    """p50 and p99 bid->ack against the offered rate, one colour per server (`series`: label
    -> sweep steps with offered_per_s, ack_p50_ms, ack_p99_ms), the latency target as a line
    and each server's knee (its capacity) marked; `note` under the title (the machine's load).
    None when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    colours = ("tab:blue", "tab:orange", "tab:green", "tab:red")
    for (label, steps), colour in zip(series.items(), colours, strict=False):
        ordered = sorted(steps, key=lambda s: s["offered_per_s"])
        rates = [s["offered_per_s"] for s in ordered]
        ax.plot(rates, [s["ack_p99_ms"] for s in ordered], "o-", color=colour,
                label=f"{label} p99")
        ax.plot(rates, [s["ack_p50_ms"] for s in ordered], "s--", color=colour, alpha=0.6,
                label=f"{label} p50")
        knee = knees.get(label)
        if knee:
            ax.axvline(knee, color=colour, linestyle=":", linewidth=1.2)
            # At the top of the plot (x in data, y in axes), boxed: legible over any line.
            ax.annotate(f"{label} capacity\n{knee:,.0f}/s", (knee, 0.98),
                        xycoords=ax.get_xaxis_transform(), textcoords="offset points",
                        xytext=(4, 0), va="top", color=colour, fontsize=8,
                        bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8})
    ax.axhline(target_ms, color="black", linewidth=1, label=f"target p99 {target_ms:g} ms")
    ax.set_xscale("log")
    ax.set_yscale("log")
    plain = FuncFormatter(lambda value, _: f"{value:g}")
    for axis in (ax.xaxis, ax.yaxis):  # labels at 1-2-5 steps, as 200 (not 2x10^2)
        axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        axis.set_major_formatter(plain)
        axis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("offered bids/s (Poisson, open loop)")
    ax.set_ylabel("bid->ack latency, ms (from the intended send time)")
    ax.set_title("Capacity at a latency target" + (f"\n{note}" if note else ""), fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
