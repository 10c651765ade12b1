"""A user's portfolio as the API shows it (`GET /api/portfolio`), composed from the holdings
fold (`market.holdings`), the segments' values (`market.valuation`) and the maths of
`market.performance`, `market.risk` and `market.diversification`. Pure: no I/O, no clock.

Totals add up the holdings that have a value; a holding without one is listed with value None
and counted in `totals.unvalued`, never valued at 0. The total's range adds the holdings' lows
and highs: it assumes their errors move together, so it is wider than an independent sum would
be — the cautious reading. The risk series is today's holdings priced back by their segments'
indexes (`holdings_series`): the risk of what is held now, not of past holdings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from market.diversification import diversification, liquidity, weights
from market.holdings import Lot
from market.performance import unrealised_pnl
from market.risk import report, shown
from market.valuation import Valuation

ALLOCATION_BY: tuple[str, ...] = ("category", "set", "grader")
IndexSeries = tuple[npt.ArrayLike, npt.ArrayLike]  # (t, value) of a segment's index


class Series(NamedTuple):
    """A daily series for the risk panel: `returns` (n) between `days` (n + 1), and the
    market index's returns on the same days (None: no beta)."""

    days: npt.ArrayLike
    returns: npt.ArrayLike
    market: npt.ArrayLike | None = None


def era(year: Any) -> str | None:
    """A card's era for diversification: its decade ("1990s"); None without a year."""
    return f"{int(year) // 10 * 10}s" if isinstance(year, int) and year > 0 else None


def attributes(lot: Lot, card: Mapping[str, Any] | None) -> dict[str, Any]:
    card = card or {}
    return {"category": card.get("category"), "set": card.get("set"),
            "player": card.get("player") or card.get("character"), "grader": lot.grader,
            "era": era(card.get("year"))}


def interpolated_level(index_t: npt.ArrayLike, index_value: npt.ArrayLike,
                       at: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """An index's level at any time, log-linear between its points (flat beyond them). A
    weekly index read as steps would make six days of seven show no move at all."""
    t = np.asarray(index_t, dtype=np.float64)
    v = np.asarray(index_value, dtype=np.float64)
    out: npt.NDArray[np.float64] = np.exp(np.interp(np.asarray(at, dtype=np.float64), t,
                                                    np.log(v)))
    return out


def holdings_series(points: Mapping[str, int], now: int, days: npt.ArrayLike,
                    index_of: Mapping[str, IndexSeries]) -> npt.NDArray[np.float64]:
    """Σ over positions of today's value (`points`: position -> cents, copies included) moved
    back over `days` by the position's index (`index_of`, `interpolated_level`; a position
    without one keeps its value flat)."""
    d = np.asarray(days, dtype=np.int64)
    total = np.zeros(d.size, dtype=np.float64)
    for position, point in points.items():
        idx = index_of.get(position)
        if idx is None or not np.asarray(idx[0]).size:
            total += float(point)
            continue
        level = interpolated_level(*idx, d)
        total += float(point) * level / interpolated_level(*idx, [now])[0]
    return total


def _holding(lot: Lot, value: Valuation | None, days_to_sell: float) -> dict[str, Any]:
    point = value.point if value is not None else None
    return {"asset_id": lot.asset_id, "card_id": lot.card_id, "grader": lot.grader,
            "grade": lot.grade, "position": lot.position,
            "value": value._asdict() if value is not None else None,
            "cost_basis": lot.basis, "basis_how": lot.how, "acquired_at": lot.acquired_at,
            "pnl": None if lot.basis is None else unrealised_pnl(point, lot.basis),
            "days_to_sell": days_to_sell}


def _risk(values: Sequence[int], confidences: Sequence[str | None], series: Series | None,
          risk_free: float) -> dict[str, Any]:
    n = int(np.asarray(series.returns).size) if series is not None else 0
    ok, reason = shown(values, confidences, n)
    out: dict[str, Any] = {"shown": ok}
    if not ok or series is None:
        return {**out, "reason": reason}
    return {**report(series.returns, series.days, series.market, risk_free), **out}


def totals(lots: Sequence[Lot], values: Mapping[str, Valuation | None], realised: int,
           twr: float | None) -> dict[str, Any]:
    """The `totals` of a portfolio (docs/protocol.md): sums over the holdings that have a
    value (and, for P/L, a known basis); value, low and high are None when there are holdings
    and none has a value. Cheap: a live event's total is computed with it before the view."""
    vals = [values.get(lot.position) for lot in lots]
    valued = [v for v in vals if v is not None]
    bases = [lot.basis for lot in lots if lot.basis is not None]
    pnl = [v.point - lot.basis for lot, v in zip(lots, vals, strict=True)
           if v is not None and lot.basis is not None]
    some = bool(valued) or not lots  # holdings, none valued: no total (never 0)
    return {"value": sum(v.point for v in valued) if some else None,
            "low": sum(v.low for v in valued) if some else None,
            "high": sum(v.high for v in valued) if some else None, "cost_basis": sum(bases),
            "unrealised_pnl": sum(pnl), "realised_pnl": int(realised), "twr": twr,
            "holdings": len(lots), "unvalued": len(lots) - len(valued),
            "unknown_basis": len(lots) - len(bases)}


def portfolio_view(lots: Sequence[Lot], values: Mapping[str, Valuation | None],
                   cards: Mapping[str, Mapping[str, Any]], sales_last_year: Mapping[str, int],
                   realised: int, twr: float | None = None, series: Series | None = None,
                   risk_free: float = 0.0, threshold: float = 0.25) -> dict[str, Any]:
    """The `GET /api/portfolio` body (docs/protocol.md) of the holdings `lots`.

    values: position -> its value (None or absent: no value); cards: card_id -> the catalog
    record; sales_last_year: position -> its vetted sales in the last 365 days; realised:
    the account's realised P/L; twr: its time-weighted return (None: not enough history)."""
    ordered = sorted(lots, key=lambda lot: (lot.position, lot.asset_id))
    vals = [values.get(lot.position) for lot in ordered]
    points = [v.point if v is not None else None for v in vals]
    liq = liquidity(points, [int(sales_last_year.get(lot.position, 0)) for lot in ordered])
    holdings = [_holding(lot, v, d)
                for lot, v, d in zip(ordered, vals, liq["days_to_sell"], strict=True)]
    attrs = [attributes(lot, cards.get(lot.card_id)) for lot in ordered]
    div = diversification([{"position": lot.position, "card_id": lot.card_id, "value": p, **a}
                           for lot, p, a in zip(ordered, points, attrs, strict=True)],
                          threshold=threshold)
    return {
        "holdings": holdings,
        "totals": totals(ordered, values, realised, twr),
        "allocation": {a: weights([str(x.get(a) or "unknown") for x in attrs], points)
                       for a in ALLOCATION_BY},
        "risk": _risk([p or 0 for p in points], [v.confidence if v else None for v in vals],
                      series, risk_free),
        "diversification": div,
        "liquidity": {k: v for k, v in liq.items() if k != "days_to_sell"},
    }
