"""REST routes of the portfolio: the caller's holdings with their values, P/L, allocation,
risk, diversification and liquidity, and its value over time. Read from the portfolio
projections' persisted results (`actors.portfolio`); nothing is recomputed per request."""

from __future__ import annotations

import time
from typing import Any

import msgspec
from aiohttp import web

from actors.portfolio.projection import SNAP
from gateway.public_portfolio import is_public, served
from gateway.rest import ApiError, caller, json_answer
from gateway.state import gateway_of
from market.errors import INVALID
from market.portfolio import portfolio_view
from market.prices import DAY_MS

routes = web.RouteTableDef()
RANGES = {"1m": 31, "1y": 366, "all": None}
MAX_DAYS = 3 * 366  # days one history answer holds at most
_TOP_LEVEL = msgspec.json.Decoder(dict[str, msgspec.Raw]).decode


@routes.get("/api/portfolio")
async def my_portfolio(request: web.Request) -> web.Response:
    served(request)
    user = caller(request)
    raw = await gateway_of(request).store.get_projection_json("portfolio", user)
    # The stored document's fields pass through as they are (no decoding of 1,000 holdings
    # to encode them again); nothing held yet (or not folded yet): an empty portfolio.
    doc: dict[str, Any] = (_TOP_LEVEL(raw) if raw is not None else
                           {**portfolio_view([], {}, {}, {}, 0), "computed_at": None})
    return json_answer({**doc, "public": await is_public(request, user)})


@routes.get("/api/portfolio/history")
async def my_history(request: web.Request) -> web.Response:
    served(request)
    user = caller(request)
    span = request.query.get("range", "1y")
    if span not in RANGES:
        raise ApiError(INVALID, f"range must be one of {', '.join(RANGES)}")
    days = RANGES[span]
    now = int(time.time() * 1000)
    start = 0 if days is None else now - now % DAY_MS - days * DAY_MS
    store = gateway_of(request).store
    low, high = f"{user}|{start:013d}", f"{user}|\U0010ffff"
    snaps = await store.scan_projection(SNAP, low, high, MAX_DAYS, reverse=True)
    flows = dict(await store.scan_projection("portfolio_flows", low, high, MAX_DAYS,
                                             reverse=True))
    points: list[dict[str, Any]] = []
    for key, snap in reversed(snaps):
        flow = flows.get(key) or {}
        points.append({**snap, "inflow": flow.get("inflow", 0),
                       "outflow": flow.get("outflow", 0)})
    return json_answer({"range": span, "points": points})
