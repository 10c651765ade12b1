"""REST routes of the analytics: a card's price history and values, the market indexes,
movers and tape, users' bidding behaviour. Every answer is read from the projections'
persisted results (`actors.analytics`); nothing is recomputed per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
from typing import Any
from weakref import WeakKeyDictionary

from aiohttp import web
from cachetools import LRUCache
from prometheus_client import Counter

from actors.analytics.market import INDEX_INTERVALS
from actors.analytics.market import MOVER_WINDOWS as MOVERS
from gateway.rest import ApiError, caller, query_int
from gateway.state import Gateway, gateway_of
from market.behaviour import empty_summary
from market.catalog import CATEGORIES, RAW, segment_key
from market.errors import CARD_NOT_FOUND, INDEX_NOT_FOUND, INVALID, MarketError
from market.prices import INTERVALS
from storage import Store
from storage.facts import encode_json

routes = web.RouteTableDef()

MAX_MS = 2**53 - 1
MAX_CANDLES = 2_000
MAX_SALES_PAGE = 200
MAX_MOVERS = 50
MAX_TAPE = 50
MOVER_WINDOWS = tuple(MOVERS)
_CURSOR = re.compile(r"[0-9]{13}\|[0-9]{12}")
_SET_NAME_MAX = 80
HISTORY_CACHE_BYTES = 64 * 1024**2  # encoded history answers kept, per gateway
ENTRY_OVERHEAD = 512  # bytes a kept answer costs beyond its body (key, tuple, ETag)


def _choice(request: web.Request, name: str, choices: tuple[str, ...], default: str) -> str:
    value = request.query.get(name, default)
    if value not in choices:
        raise ApiError(INVALID, f"{name} must be one of {', '.join(choices)}")
    return value


def segment_of(request: web.Request, card_id: str) -> str:
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


async def card_exists(gateway: Gateway, card_id: str) -> None:
    if await gateway.store.get_card(card_id) is None:
        raise ApiError(CARD_NOT_FOUND, f"no card {card_id!r}")


@routes.get("/api/cards/{card_id}/history")
async def card_history(request: web.Request) -> web.Response:
    """A segment's candles and a page of its sales. The encoded answer is kept (`Answers`)
    under the normalised request and the segment's version, which the price projection
    saves after the segment's sales and candles: a version read before them is never newer
    than what they show, so a kept answer is never older than a fresh one would be."""
    gateway = gateway_of(request)
    card_id = request.match_info["card_id"]
    segment = segment_of(request, card_id)
    interval = _choice(request, "interval", INTERVALS, "1d")
    start, end = _window(request)
    limit = query_int(request, "limit", 50, 1, MAX_SALES_PAGE)
    cursor = request.query.get("cursor")
    if cursor is not None and not _CURSOR.fullmatch(cursor):
        raise ApiError(INVALID, "cursor must be the one a previous page gave")
    answers = answers_of(gateway)
    found = await gateway.store.get_projection_doc("segment", segment)
    key = None if found is None or found.get("version") is None else (
        segment, interval, start, end, limit, cursor,
        found["version"], found.get("count", 0) + found.get("suspect_count", 0))
    kept = answers.get(key)
    result = "uncached" if key is None else "miss" if kept is None else "hit"  # as counted
    if kept is None:  # (the card exists: it was checked when the answer was kept)
        if found is None:  # no sale of the segment yet: is there such a card at all?
            await card_exists(gateway, card_id)  # (a segment doc is only made for a card's sale)
        body = await _history(gateway.store, segment, interval, start, end, limit, cursor)
        kept = answers.put(key, body)
    body, etag = kept
    headers = {"ETag": etag, "Cache-Control": "no-cache", "X-Cache": result}
    if any(tag.value in (etag[1:-1], "*") for tag in request.if_none_match or ()):
        return web.Response(status=304, headers=headers)
    return web.Response(body=body, content_type="application/json", charset="utf-8",
                        headers=headers)


async def _history(store: Store, segment: str, interval: str, start: int, end: int,
                   limit: int, cursor: str | None) -> bytes:
    prefix = f"{segment}|{interval}|"
    sales_end = f"{segment}|{_bound(end)}"
    if cursor:  # a cursor only narrows the window
        sales_end = min(sales_end, f"{segment}|{cursor}")
    # The newest MAX_CANDLES of the window (a chart ends now), put in time order below.
    newest_first, page = await asyncio.gather(
        store.scan_projection("candle", prefix + _bound(start), prefix + _bound(end),
                              MAX_CANDLES, reverse=True),
        store.scan_projection("sale", f"{segment}|{_bound(start)}", sales_end, limit + 1,
                              reverse=True))
    candles = newest_first[::-1]
    more = len(page) > limit
    page = page[:limit]
    card, grader, grade = segment.split("|")
    return encode_json({
        "card_id": card, "grader": grader, "grade": None if grade == "-" else _num(grade),
        "interval": interval,
        "candles": [doc for _, doc in candles],
        "sales": [_sale(doc) for _, doc in page],
        "cursor": page[-1][0].split("|", 3)[3] if more and page else None,
    })


class Answers:
    """The encoded history answers of one gateway: least recently used first out, at most
    HISTORY_CACHE_BYTES of them; hits and misses counted in the gateway's metrics."""

    def __init__(self, gateway: Gateway, max_bytes: int = HISTORY_CACHE_BYTES) -> None:
        self._kept: LRUCache[tuple[Any, ...], tuple[bytes, str]] = LRUCache(
            max_bytes, getsizeof=lambda kept: len(kept[0]) + ENTRY_OVERHEAD)
        self._looked = Counter("ece_history_cache", "Card history answers, by cache result"
                               " (uncached: the segment has no version yet)", ["result"],
                               registry=gateway.metrics.registry)

    def get(self, key: tuple[Any, ...] | None) -> tuple[bytes, str] | None:
        kept = None if key is None else self._kept.get(key)
        self._looked.labels("uncached" if key is None else "miss" if kept is None
                            else "hit").inc()
        return kept

    def put(self, key: tuple[Any, ...] | None, body: bytes) -> tuple[bytes, str]:
        """The answer and its ETag (a hash of the bytes), kept if it has a key."""
        kept = (body, f'"{hashlib.blake2b(body, digest_size=16).hexdigest()}"')
        if key is not None:
            with contextlib.suppress(ValueError):  # larger than the whole cache
                self._kept[key] = kept
        return kept

    @property
    def bytes(self) -> int:
        return int(self._kept.currsize)


_answers: WeakKeyDictionary[Gateway, Answers] = WeakKeyDictionary()


def answers_of(gateway: Gateway) -> Answers:
    found = _answers.get(gateway)
    if found is None:
        found = _answers[gateway] = Answers(gateway)
    return found


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
    await card_exists(gateway, card_id)
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
