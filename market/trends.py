"""Trends of a value series and the market's movers: pure numpy maths.

Series are parallel arrays `t` (int epoch ms UTC, ascending) and `values` (floats: an index, or
a value in cents). Changes are ratios minus 1 (0.05 = +5%). Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from market.prices import DAY_MS

FloatArray = npt.NDArray[np.float64]
MOVER_KEYS: tuple[str, ...] = ("gainers", "losers", "most_traded")


def _value_at(t: npt.NDArray[np.int64], values: FloatArray, when: int) -> float | None:
    """The value of the last point with t <= when; None if none, NaN or zero."""
    i = int(np.searchsorted(t, when, side="right")) - 1
    if i < 0:
        return None
    v = float(values[i])
    return None if math.isnan(v) or v == 0 else v


def pct_change(t: npt.ArrayLike, values: npt.ArrayLike, now: int, days: int) -> float | None:
    """v(now) / v(now - days·DAY_MS) - 1, v(x) = value of the last point with t <= x;
    None when either point is missing, NaN or zero. `t` ascending."""
    ts = np.asarray(t, dtype=np.int64)
    vs = np.asarray(values, dtype=np.float64)
    if ts.ndim != 1 or ts.shape != vs.shape:
        raise ValueError("t and values must be 1-D of the same length")
    v_now = _value_at(ts, vs, now)
    v_then = _value_at(ts, vs, now - days * DAY_MS)
    if v_now is None or v_then is None:
        return None
    return v_now / v_then - 1.0


def moving_average(values: npt.ArrayLike, n: int) -> FloatArray:
    """Trailing mean of the last n values at each point (same length); NaN for the first
    n - 1 points, and for windows holding a NaN."""
    if n < 1:
        raise ValueError("n must be at least 1")
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1:
        raise ValueError("values must be 1-D")
    out = np.full(v.shape, np.nan)
    if v.size >= n:
        out[n - 1:] = np.lib.stride_tricks.sliding_window_view(v, n).mean(axis=1)
    return out


def _change(row: Mapping[str, Any]) -> float | None:
    now, then = row.get("value_now"), row.get("value_then")
    if now is None or then is None or not now > 0 or not then > 0:
        return None
    return round(float(now) / float(then) - 1.0, 4)


def _tie_key(row: Mapping[str, Any]) -> tuple[str, str, bool, float]:
    grade = row.get("grade")
    return (str(row["card_id"]), str(row["grader"]), grade is not None,
            0.0 if grade is None else float(grade))


def movers(rows: Sequence[Mapping[str, Any]], limit: int) -> dict[str, list[dict[str, Any]]]:
    """Top segments by change and by trading, each list at most `limit` long.

    rows: {card_id, grader, grade, value_now, value_then, volume, count}. change =
    value_now / value_then - 1 rounded to 4 places, when both values are present and > 0.
    gainers: change > 0, largest first; losers: change < 0, most negative first;
    most_traded: count > 0, by count then volume, largest first. Ties: card_id, grader,
    grade (RAW first) ascending. Items: {card_id, grader, grade, change, volume}.
    """
    if limit < 0:
        raise ValueError("limit must be >= 0")
    items = [
        ({"card_id": r["card_id"], "grader": r["grader"], "grade": r.get("grade"),
          "change": _change(r), "volume": int(r.get("volume") or 0)},
         int(r.get("count") or 0), _tie_key(r))
        for r in rows
    ]
    gainers = sorted((x for x in items if (x[0]["change"] or 0) > 0),
                     key=lambda x: (-x[0]["change"], x[2]))
    losers = sorted((x for x in items if (x[0]["change"] or 0) < 0),
                    key=lambda x: (x[0]["change"], x[2]))
    traded = sorted((x for x in items if x[1] > 0),
                    key=lambda x: (-x[1], -x[0]["volume"], x[2]))
    return {
        key: [dict(x[0]) for x in chosen[:limit]]
        for key, chosen in zip(MOVER_KEYS, (gainers, losers, traded), strict=True)
    }
