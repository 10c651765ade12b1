"""REST routes of the analytics: a card's price history and values, the market indexes,
movers and tape, users' bidding behaviour. Every answer is read from the projections'
persisted results (`actors.analytics`); nothing is recomputed per request.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from actors.analytics.market import INDEX_INTERVALS
from actors.analytics.market import MOVER_WINDOWS as MOVERS
from gateway.rest import ApiError, caller, query_int
from gateway.state import Gateway, gateway_of
from market.behaviour import empty_summary
from market.catalog import CATEGORIES, RAW, segment_key
from market.errors import CARD_NOT_FOUND, INDEX_NOT_FOUND, INVALID, MarketError
from market.prices import INTERVALS

routes = web.RouteTableDef()

MAX_MS = 2**53 - 1
MAX_CANDLES = 2_000
MAX_SALES_PAGE = 200
MAX_MOVERS = 50
MAX_TAPE = 50
MOVER_WINDOWS = tuple(MOVERS)
_CURSOR = re.compile(r"[0-9]{13}\|[0-9]{12}")
_SET_NAME_MAX = 80


def _choice(request: web.Request, name: str, choices: tuple[str, ...], default: str) -> str:
    value = request.query.get(name, default)
    if value not in choices:
        raise ApiError(INVALID, f"{name} must be one of {', '.join(choices)}")
    return value


def _segment_of(request: web.Request, card_id: str) -> str:
    grader = request.query.get("grader", "")
    text = request.query.get("grade")
    grade: float | None = None
    if grader.strip().upper() == RAW and text is not None:
        raise ApiError(INVALID, "a RAW copy has no grade")
    if text is not None:
        try:
            grade = float(text)
        except ValueError:
            raise ApiError(INVALID, "grade must be a number from 1 to 10 in halves") from None
    try:
        return segment_key(card_id, grader, grade)
    except MarketError as exc:
        raise ApiError(INVALID, exc.message) from exc


def _window(request: web.Request) -> tuple[int, int]:
    start = query_int(request, "from", 0, 0, MAX_MS)
    end = query_int(request, "to", MAX_MS, 0, MAX_MS)
    if end < start:
        raise ApiError(INVALID, "to must not be before from")
    return start, end


async def _card_exists(gateway: Gateway, card_id: str) -> None:
    if await gateway.store.get_card(card_id) is None:
        raise ApiError(CARD_NOT_FOUND, f"no card {card_id!r}")


@routes.get("/api/cards/{card_id}/history")
async def card_history(request: web.Request) -> web.Response:
    gateway = gateway_of(request)
    card_id = request.match_info["card_id"]
    segment = _segment_of(request, card_id)
    interval = _choice(request, "interval", INTERVALS, "1d")
    start, end = _window(request)
    limit = query_int(request, "limit", 50, 1, MAX_SALES_PAGE)
    cursor = request.query.get("cursor")
    if cursor is not None and not _CURSOR.fullmatch(cursor):
        raise ApiError(INVALID, "cursor must be the one a previous page gave")
    await _card_exists(gateway, card_id)
    store = gateway.store
    prefix = f"{segment}|{interval}|"
    # The newest MAX_CANDLES of the window (a chart ends now), in time order.
    candles = (await store.scan_projection("candle", prefix + _bound(start), prefix + _bound(end),
                                           MAX_CANDLES, reverse=True))[::-1]
    sales_end = f"{segment}|{_bound(end)}"
    if cursor:  # a cursor only narrows the window
        sales_end = min(sales_end, f"{segment}|{cursor}")
    page = await store.scan_projection("sale", f"{segment}|{_bound(start)}", sales_end, limit + 1,
                                       reverse=True)
    more = len(page) > limit
    page = page[:limit]
    card, grader, grade = segment.split("|")
    return web.json_response({
        "card_id": card, "grader": grader, "grade": None if grade == "-" else _num(grade),
        "interval": interval,
        "candles": [doc for _, doc in candles],
        "sales": [_sale(doc) for _, doc in page],
        "cursor": page[-1][0].split("|", 3)[3] if more and page else None,
    })


def _bound(t: int) -> str:
    """A time as the keys hold it (13 digits); past the last 13-digit time (the year 2286),
    "~", which sorts after every digit."""
    return f"{t:013d}" if t < 10**13 else "~"


def _num(text: str) -> float | int:
    value = float(text)
    return int(value) if value.is_integer() else value


def _sale(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: doc.get(k) for k in ("price", "at", "source", "suspect", "reason", "ref")}


@routes.get("/api/cards/{card_id}/values")
async def card_values(request: web.Request) -> web.Response:
    gateway = gateway_of(request)
    card_id = request.match_info["card_id"]
    try:
        segment_key(card_id, RAW, None)
    except MarketError as exc:
        raise ApiError(INVALID, exc.message) from exc
    await _card_exists(gateway, card_id)
    # "|" < "}": every key of the card's segments sorts between these.
    rows = await gateway.store.scan_projection("segment", f"{card_id}|", f"{card_id}}}", 100)
    return web.json_response({"card_id": card_id, "values": [doc for _, doc in rows]})


def _index_segment(request: web.Request) -> str:
    segment = request.query.get("segment", "market")
    kind, _, name = segment.partition(":")
    if segment == "market" or (kind == "category" and name in CATEGORIES) or (
            kind == "set" and 0 < len(name) <= _SET_NAME_MAX):
        return segment
    raise ApiError(INVALID, "segment must be market, category:<category> or set:<set name>")


@routes.get("/api/market/index")
async def market_index(request: web.Request) -> web.Response:
    segment = _index_segment(request)
    interval = _choice(request, "interval", INDEX_INTERVALS, "1w")
    start, end = _window(request)
    doc = await gateway_of(request).store.get_projection_doc("index", f"{interval}|{segment}")
    if doc is None:
        raise ApiError(INDEX_NOT_FOUND, f"no {interval} index for {segment!r}")
    points = [p for p in doc["points"] if start <= p["t"] < end]
    return web.json_response({**doc, "points": points})


@routes.get("/api/market/segments")
async def market_segments(request: web.Request) -> web.Response:
    found = await gateway_of(request).store.get_projection_doc("market", "segments")
    segments = []
    for doc in (found or {}).get("segments", []):
        segment = doc["segment"]
        kind, _, name = segment.partition(":")
        segments.append({"segment": segment, "kind": kind,
                         "label": "Whole market" if segment == "market" else name,
                         "method": doc.get("method")})
    order = {"market": 0, "category": 1, "set": 2}
    segments.sort(key=lambda s: (order.get(s["kind"], 3), s["label"]))
    return web.json_response({"segments": segments})


@routes.get("/api/market/movers")
async def market_movers(request: web.Request) -> web.Response:
    window = _choice(request, "window", MOVER_WINDOWS, "7d")
    limit = query_int(request, "limit", 10, 1, MAX_MOVERS)
    doc = await gateway_of(request).store.get_projection_doc("movers", window)
    doc = doc or {"window": window, "gainers": [], "losers": [], "most_traded": []}
    return web.json_response({**doc, **{k: doc[k][:limit]
                                        for k in ("gainers", "losers", "most_traded")}})


@routes.get("/api/market/sales")
async def market_sales(request: web.Request) -> web.Response:
    limit = query_int(request, "limit", 30, 1, MAX_TAPE)
    doc = await gateway_of(request).store.get_projection_doc("market", "tape")
    return web.json_response({"sales": (doc or {}).get("sales", [])[:limit]})


@routes.get("/api/analytics/me")
async def my_behaviour(request: web.Request) -> web.Response:
    user_id = caller(request)
    doc = await gateway_of(request).store.get_projection_doc("behaviour", user_id)
    return web.json_response(doc or empty_summary(user_id))


@routes.get("/api/analytics/market")
async def market_analytics(request: web.Request) -> web.Response:
    gateway = gateway_of(request)
    store = gateway.store
    sales = await store.get_projection_doc("market", "summary") or {}
    behaviour = await store.get_projection_doc("behaviour_market", "summary") or {}
    return web.json_response({**behaviour, **sales,
                              "sales_total": int(sales.get("sales_total", 0)),
                              "lag": gateway.lag})
