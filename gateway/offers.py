"""Trade offers at the edge: REST routes and the functions the WebSocket ops share.

The rules are `market.offers`'; a live offer (active or accepted) is served by the host of its
thread (`actors.offer_desk`), where every command about it runs serially. The gateway checks
what it can alone (shape, who may see the offer), routes the rest, and answers commands about
offers that are over from the store: a retry gets its first outcome, anything else its
refusal.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from actors.clock import now_ms
from actors.messages import OfferCommand, OfferReply, OfferViewed
from gateway.rest import ApiError, caller, json_body, query_int, rate_limited
from gateway.state import Gateway, gateway_of
from market.errors import (
    INVALID,
    NOT_FOUND,
    OFFER_NOT_FOUND,
    RATE_LIMITED,
    UNAVAILABLE,
    MarketError,
)
from market.offers import (
    ACCEPT,
    ACTIONS,
    ACTIVE,
    COUNTER,
    EXPIRED,
    MAX_ID_LEN,
    STATUSES,
    Offer,
    Terms,
    offer_id_for,
    public,
)
from storage.base import LIVE_OFFER_STATUSES
from storage.records import OfferRecord

routes = web.RouteTableDef()

PAGE = 50
MAX_PAGE = 200
# How long an accept's answer waits for its swap; past it the offer is answered `accepted`
# and its end arrives on both users' channels.
ACCEPT_WAIT_S = 20.0
TERMS_FIELDS = ("give", "want", "message", "expires_in", "expires_at")


def offer_json(record: Mapping[str, Any], now: int | None = None) -> dict[str, Any]:
    """An offer as its parties see it. One whose time is up reads `expired` even in the
    instant before its host stores that (which it does at `expires_at`, to the ms)."""
    view = public(record)
    if view["status"] == ACTIVE and (now or now_ms()) >= view["expires_at"]:
        view["status"] = EXPIRED
    return view


def _only(body: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    """Refuse unknown fields: a misspelt `expires_in` must not pass as the default."""
    extra = sorted(set(body) - set(allowed))
    if extra:
        raise MarketError(INVALID, f"unknown field {extra[0][:40]!r}", field=extra[0][:40])


def _req_id(body: Mapping[str, Any]) -> str:
    req_id = body.get("req_id")
    if not isinstance(req_id, str) or not 0 < len(req_id) <= MAX_ID_LEN:
        raise MarketError(INVALID, f"req_id: a string of 1..{MAX_ID_LEN} characters",
                          field="req_id")
    return req_id


async def _answer(gateway: Gateway, reply: OfferReply) -> dict[str, Any]:
    if isinstance(reply, OfferViewed):
        return await gateway.named(offer_json(reply.offer))
    raise MarketError(reply.error["code"], reply.error["message"],
                      **{k: v for k, v in reply.error.items() if k not in ("code", "message")})


async def make_offer(gateway: Gateway, user_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """Create an offer from `user_id` (idempotent by `req_id`)."""
    _only(body, ("req_id", "to_id", *TERMS_FIELDS))
    req_id = _req_id(body)
    to_id = body.get("to_id")
    if not isinstance(to_id, str) or not 0 < len(to_id) <= MAX_ID_LEN:
        raise MarketError(INVALID, "to_id: the user the offer is for", field="to_id")
    now = now_ms()
    offer = Offer(offer_id_for(user_id, req_id), user_id, to_id, Terms.parse(body, now), now)
    stored = await gateway.store.get_offer(offer.offer_id)
    if stored is not None and stored["from_id"] == user_id:
        return await gateway.named(offer_json(stored))  # a retried create
    if await gateway.username_of(to_id) is None:
        raise MarketError(INVALID, "to_id: no such user", field="to_id")
    wait = gateway.quotas["offers"].take(user_id)
    if wait is not None:
        raise MarketError(RATE_LIMITED, "too many offers; retry shortly", retry_after=wait)
    command = OfferCommand(offer.offer_id, offer.thread_id, "create", by=user_id,
                           req_id=req_id, offer=offer.to_dict())
    return await _answer(gateway, await gateway.router.create_offer(command))


async def act_on_offer(gateway: Gateway, user_id: str, offer_id: str, action: str,
                       body: Mapping[str, Any]) -> dict[str, Any]:
    """Accept, decline, cancel or counter (idempotent by `req_id`): the offer after it (for
    a counter, the counter; for an accept, the offer once its swap ended)."""
    _only(body, ("req_id", *TERMS_FIELDS) if action == COUNTER else ("req_id",))
    req_id = _req_id(body)
    terms: dict[str, Any] | None = None
    if action == COUNTER:
        Terms.parse(body, now_ms())  # a malformed counter is refused here already
        terms = {k: body[k] for k in TERMS_FIELDS if k in body}
    record = await _visible(gateway, user_id, offer_id)
    if record["status"] not in LIVE_OFFER_STATUSES:
        return await _replay(gateway, record, action, user_id, req_id)
    command = OfferCommand(offer_id, record["thread_id"], action, by=user_id, req_id=req_id,
                           terms=terms)
    try:
        reply = await asyncio.wait_for(gateway.router.send_offer(command), ACCEPT_WAIT_S)
    except TimeoutError:
        if action != ACCEPT:
            raise MarketError(UNAVAILABLE, "the offer's host is slow to answer; retry") from None
        # The swap takes longer: the offer is `accepted`; its end comes on the user channel.
        return await gateway.named(offer_json(await _visible(gateway, user_id, offer_id)))
    return await _answer(gateway, reply)


async def _replay(gateway: Gateway, record: OfferRecord, action: str, user_id: str,
                  req_id: str) -> dict[str, Any]:
    """A command about an offer that is over: its first outcome if a retry, else refused."""
    offer = Offer.from_dict(record)
    child = await gateway.store.get_offer(offer.child_id) if offer.child_id else None
    answer = offer.replay(action, user_id, req_id,
                          child is not None and child["status"] == ACTIVE)
    return await gateway.named(offer_json(child if answer == "child" and child is not None
                                          else record))


async def _visible(gateway: Gateway, user_id: str, offer_id: str) -> OfferRecord:
    """The offer if `user_id` is one of its parties; 404 to anyone else, as if none."""
    record = await gateway.store.get_offer(offer_id) if len(offer_id) <= MAX_ID_LEN else None
    if record is None or user_id not in (record["from_id"], record["to_id"]):
        raise MarketError(OFFER_NOT_FOUND, "no such offer")
    return record


def _cursor(raw: str | None) -> tuple[int, str] | None:
    if raw is None:
        return None
    at, _, offer_id = raw.partition(".")
    if not (at.isascii() and at.isdigit() and 0 < len(at) <= 16 and 0 < len(offer_id)
            <= MAX_ID_LEN):
        raise MarketError(INVALID, "cursor: not one this server gave out", field="cursor")
    return int(at), offer_id


async def list_offers(gateway: Gateway, user_id: str, query: Mapping[str, str],
                      limit: int) -> dict[str, Any]:
    box = query.get("box")
    if box not in (None, "in", "out"):
        raise MarketError(INVALID, "box: in or out", field="box")
    status = query.get("status")
    if status is not None and status not in STATUSES:
        raise MarketError(INVALID, f"status: one of {', '.join(STATUSES)}", field="status")
    page = await gateway.store.list_offers(user_id, box, status, limit + 1,
                                           _cursor(query.get("cursor")))
    more = len(page) > limit
    page = page[:limit]
    now = now_ms()
    last = page[-1] if page else None
    return {"items": [await gateway.named(offer_json(r, now)) for r in page],
            "next_cursor": f"{last['created_at']}.{last['offer_id']}" if more and last
            else None}


# ---- REST ------------------------------------------------------------------------------


async def _rest(coroutine: Any) -> Any:
    try:
        return await coroutine
    except MarketError as exc:
        if exc.code == RATE_LIMITED:
            raise rate_limited(float(exc.details.get("retry_after", 1)), "offers") from exc
        raise ApiError.of(exc) from exc


@routes.post("/api/offers")
async def create(request: web.Request) -> web.Response:
    user_id = caller(request)
    body = await json_body(request)
    offer = await _rest(make_offer(gateway_of(request), user_id, body))
    return web.json_response(offer, status=201)


@routes.get("/api/offers")
async def index(request: web.Request) -> web.Response:
    user_id = caller(request)
    limit = query_int(request, "limit", PAGE, 1, MAX_PAGE)
    page = await _rest(list_offers(gateway_of(request), user_id, request.query, limit))
    return web.json_response(page)


@routes.get("/api/offers/{offer_id}")
async def show(request: web.Request) -> web.Response:
    user_id = caller(request)
    record = await _rest(_visible(gateway_of(request), user_id,
                                  request.match_info["offer_id"]))
    return web.json_response(await gateway_of(request).named(offer_json(record)))


@routes.post("/api/offers/{offer_id}/{action}")
async def act(request: web.Request) -> web.Response:
    user_id = caller(request)
    action = request.match_info["action"]
    if action not in ACTIONS:
        raise ApiError(NOT_FOUND, "no such route")
    body = await json_body(request)
    offer = await _rest(act_on_offer(gateway_of(request), user_id,
                                     request.match_info["offer_id"], action, body))
    return web.json_response(offer, status=201 if action == COUNTER else 200)

