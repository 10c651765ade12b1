"""How concentrated and how liquid a collection is: pure numpy.

A *position* is one card × grader × grade (`market.catalog.segment_key`): several copies of it
are one exposure. Weights are shares of the total value of the holdings that have a value
(a holding without one is left out and counted, never valued at 0). Concentration is the
Herfindahl–Hirschman index HHI = Σ w² (1/N for N equal positions, 1 for one) and the effective
number of positions 1/HHI, overall and by an attribute of the card (category, set, player,
grader, era). A warning is raised when one card, player or set holds more than `threshold`
of the value (default 25%, as Ghostfolio's concentration rules).

Liquidity: a segment's buyers are taken to arrive as a Poisson process at its rate over the
last year, so the expected wait for the next sale is days_to_sell = 365 / sales in the last
365 days, capped at MAX_DAYS_TO_SELL (also the figure for a segment with no sale). Pure: no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

ATTRIBUTES: tuple[str, ...] = ("category", "set", "player", "grader", "era")
WARN_ON: tuple[str, ...] = ("card", "player", "set")
THRESHOLD = 0.25
UNKNOWN = "unknown"  # the label of a holding without the attribute
MAX_DAYS_TO_SELL = 730
ILLIQUID_DAYS = 90
YEAR_DAYS = 365

FloatArray = npt.NDArray[np.float64]


def weights(labels: Sequence[str], values: Sequence[float | None]) -> dict[str, float]:
    """Each label's share of the total value (labels repeated: summed; None values left out),
    largest first; {} when nothing has a positive value."""
    if len(labels) != len(values):
        raise ValueError("labels and values must have the same length")
    kept = [(lab, float(v)) for lab, v in zip(labels, values, strict=True) if v is not None]
    if any(v < 0 for _, v in kept):
        raise ValueError("values must be >= 0")
    if not kept:
        return {}
    names, inverse = np.unique(np.array([k for k, _ in kept], dtype=object),
                               return_inverse=True)
    sums = np.bincount(inverse.ravel(), np.array([v for _, v in kept]), names.size)
    total = float(sums.sum())
    if total <= 0:
        return {}
    order = np.lexsort((names.astype(str), -sums))
    return {str(names[i]): float(sums[i]) / total for i in order}


def hhi(w: Mapping[str, float] | Sequence[float]) -> float:
    """Σ w² of shares summing to 1 (NaN for none)."""
    x = np.fromiter(w.values() if isinstance(w, Mapping) else w, dtype=np.float64)
    return float(np.sum(x * x)) if x.size else float("nan")


def effective_n(w: Mapping[str, float] | Sequence[float]) -> float:
    """1 / HHI: the number of equal positions that would be as concentrated."""
    return 1.0 / hhi(w)


def _summary(w: dict[str, float]) -> dict[str, Any]:
    if not w:
        return {"hhi": None, "effective_n": None, "weights": {}}
    return {"hhi": hhi(w), "effective_n": effective_n(w), "weights": w}


def diversification(holdings: Sequence[Mapping[str, Any]], threshold: float = THRESHOLD,
                    attributes: Sequence[str] = ATTRIBUTES,
                    warn_on: Sequence[str] = WARN_ON) -> dict[str, Any]:
    """The diversification panel. holdings: {position (its segment key), card_id, value (cents
    or None), and the attributes}. Returns {hhi, effective_n, weights (per position), by:
    {attribute: {hhi, effective_n, weights}}, warnings: [{by, label, share}] (shares >
    threshold in the `warn_on` dimensions, "card" meaning card_id, largest first; a player or
    set whose share is all one card's is left to that card's warning), unvalued
    (holdings left out for want of a value)}."""
    values = [h.get("value") for h in holdings]
    overall = _summary(weights([str(h["position"]) for h in holdings], values))
    by = {a: _summary(weights([str(h.get(a) or UNKNOWN) for h in holdings], values))
          for a in attributes}
    cards = weights([str(h["card_id"]) for h in holdings], values)
    warnings: list[dict[str, Any]] = []
    for dim in warn_on:
        key = "card_id" if dim == "card" else dim
        w = by[dim]["weights"] if dim in by else weights(
            [str(h.get(key) or UNKNOWN) for h in holdings], values)
        # A player or set whose whole share is one card says nothing the card's warning
        # does not: left out.
        top = {} if dim == "card" else _top_card(holdings, key, cards)
        warnings += [{"by": dim, "label": label, "share": share}
                     for label, share in w.items() if share > threshold and label != UNKNOWN
                     and not math.isclose(top.get(label, -1.0), share, rel_tol=1e-9)]
    warnings.sort(key=lambda x: (-x["share"], x["by"], x["label"]))
    return {**overall, "by": by, "warnings": warnings, "threshold": threshold,
            "unvalued": sum(v is None for v in values)}


def _top_card(holdings: Sequence[Mapping[str, Any]], key: str,
              cards: Mapping[str, float]) -> dict[str, float]:
    """label of `key` -> the largest share one card of that label holds."""
    top: dict[str, float] = {}
    for h in holdings:
        label = str(h.get(key) or UNKNOWN)
        top[label] = max(top.get(label, 0.0), cards.get(str(h["card_id"]), 0.0))
    return top


def days_to_sell(sales_last_year: npt.ArrayLike) -> FloatArray:
    """Expected days to sell for segments with these sale counts over the last 365 days:
    365 / count, capped at MAX_DAYS_TO_SELL (a count of 0 gives the cap)."""
    c = np.asarray(sales_last_year, dtype=np.float64)
    if bool(np.any(c < 0)):
        raise ValueError("counts must be >= 0")
    with np.errstate(divide="ignore"):
        out: FloatArray = np.minimum(YEAR_DAYS / c, float(MAX_DAYS_TO_SELL))
    return out


def liquidity(values: Sequence[float | None], sales_last_year: Sequence[int],
              days: float = ILLIQUID_DAYS) -> dict[str, Any]:
    """The liquidity panel: days_to_sell per holding; share_over (of the value, holdings with a
    value only) that would take more than `days`; the value-weighted mean days to sell. Shares
    None when nothing has a value."""
    if len(values) != len(sales_last_year):
        raise ValueError("values and sales_last_year must have the same length")
    d = days_to_sell(sales_last_year)
    has = np.array([v is not None for v in values], dtype=bool)
    v = np.array([0.0 if x is None else float(x) for x in values], dtype=np.float64)
    total = float(v[has].sum())
    return {
        "days_to_sell": [round(float(x), 1) for x in d],
        "share_over_days": days,
        "share_over": float(v[has & (d > days)].sum()) / total if total > 0 else None,
        "mean_days": float(np.dot(v[has], d[has])) / total if total > 0 else None,
    }
