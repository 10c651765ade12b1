"""REST routes (JSON). Errors are `{"error": {"code", "message"}}` with a 4xx status."""

from __future__ import annotations

import json
import math
import re
import secrets
from typing import Any

from aiohttp import web

from actors.clock import now_ms
from actors.messages import AuctionView, Cancel, Refused, Reply, Viewed
from gateway.auth import TokenError, hash_password, password_problem, verify_password
from gateway.listing import SCAN_LIMIT, ListQuery
from gateway.protocol import MAX_SINCE, parse_json, plain_int, valid_id
from gateway.state import gateway_of
from market.auction import Auction, parse_spec, public_event
from market.errors import (
    ASSET_NOT_FOUND,
    AUCTION_NOT_FOUND,
    INTERNAL,
    INVALID,
    NOT_OWNER,
    NOT_SELLER,
    RATE_LIMITED,
    UNAUTHORIZED,
    UNAVAILABLE,
    MarketError,
    error_dict,
    http_status,
)
from storage import Conflict
from storage.facts import encode_json
from storage.records import AuctionRecord, UserRecord

routes = web.RouteTableDef()

# The one definition of a valid username (the web page repeats it for its form check).
USERNAME = re.compile(r"[A-Za-z0-9_.-]{3,32}")
STATUSES = ("scheduled", "live", "closed", "cancelled")
MAX_METADATA_BYTES = 4096
MAX_LIMIT = 500


def json_answer(body: Any, status: int = 200) -> web.Response:
    """`web.json_response` for large bodies: encoded with msgspec."""
    return web.Response(body=encode_json(body), status=status, content_type="application/json")


def error_body(code: str, message: str, **details: Any) -> dict[str, Any]:
    """A REST error body: `{"error": {"code", "message", ...details}}`."""
    return {"error": error_dict(code, message, **details)}


class ApiError(web.HTTPException):
    """A REST refusal, answered with the code's status from the registry."""

    def __init__(self, code: str, message: str, retry_after: float | None = None,
                 **details: Any) -> None:
        self.status_code = http_status(code)
        headers = None
        if retry_after is not None:
            headers = {"Retry-After": str(max(1, math.ceil(retry_after)))}
        super().__init__(text=json.dumps(error_body(code, message, **details)),
                         content_type="application/json", headers=headers)

    @classmethod
    def of(cls, exc: MarketError) -> ApiError:
        """A market refusal as a REST one, its details (e.g. `available`) kept."""
        return cls(exc.code, exc.message, **exc.details)


def rate_limited(retry_after: float, what: str) -> ApiError:
    return ApiError(RATE_LIMITED, f"too many {what}; retry in {math.ceil(retry_after)} s",
                    retry_after)


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"


async def json_body(request: web.Request) -> dict:
    """The request's JSON object: UTF-8, no NaN/Infinity, bounded nesting; else 400."""
    charset = (request.charset or "utf-8").lower()
    if charset not in ("utf-8", "utf8"):
        raise ApiError(INVALID, "body must be UTF-8 JSON")
    raw = await request.read()
    try:
        body = parse_json(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(INVALID, f"body must be JSON: {str(exc)[:80]}") from exc
    if not isinstance(body, dict):
        raise ApiError(INVALID, "body must be a JSON object")
    return body


def query_int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    """An integer query parameter in low..high (a 400 otherwise, never a clamp or a 500)."""
    raw = request.query.get(name)
    if raw is None:
        return default
    value = plain_int(raw, low, high)
    if value is None:
        raise ApiError(INVALID, f"{name} must be an integer in {low}..{high}")
    return value


def caller(request: web.Request) -> str:
    """The authenticated user id, from the bearer token only."""
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        raise ApiError(UNAUTHORIZED, "Authorization: Bearer <token> required")
    try:
        identity = gateway_of(request).tokens.verify(header[7:].strip())
    except TokenError as exc:
        raise ApiError(UNAUTHORIZED, "invalid or expired token") from exc
    return identity.user_id


def _credentials(body: dict) -> tuple[str, str]:
    username, password = body.get("username"), body.get("password")
    if not isinstance(username, str) or USERNAME.fullmatch(username) is None:
        raise ApiError(INVALID, "username: 3-32 letters, digits, '_', '.' or '-'")
    if not isinstance(password, str):
        raise ApiError(INVALID, "password must be a string")
    problem = password_problem(password, username)
    if problem is not None:
        raise ApiError(INVALID, f"password: {problem}")
    return username, password


def _throttle_auth(request: web.Request, username: str | None) -> None:
    """Sign-in and sign-up tries per client IP and per username (429 with Retry-After)."""
    gateway = gateway_of(request)
    wait = gateway.auth_by_ip.take(request.remote or "?")
    if wait is None and username is not None:
        wait = gateway.auth_by_user.take(username.casefold()[:64])
    if wait is not None:
        raise rate_limited(wait, "sign-in attempts")


def take_quota(request: web.Request, kind: str, user_id: str) -> None:
    """Per-user quota on what costs storage or a host slot (mints, listings)."""
    wait = gateway_of(request).quotas[kind].take(user_id)
    if wait is not None:
        raise rate_limited(wait, kind)


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    gateway = gateway_of(request)
    if not gateway.ready:
        raise ApiError(UNAVAILABLE, "starting")
    return web.json_response({"status": "ok", "seeding": gateway.seeding,
                              "analytics": gateway.lag})


@routes.post("/api/users")
async def create_user(request: web.Request) -> web.Response:
    body = await json_body(request)
    _throttle_auth(request, None)
    username, password = _credentials(body)
    gateway = gateway_of(request)
    user = UserRecord(user_id=new_id("u"), username=username,
                      password_hash=await hash_password(password), created_at=now_ms())
    try:
        await gateway.store.create_user(user)
    except Conflict as exc:
        raise ApiError(exc.code, "username is taken") from exc
    token = gateway.tokens.issue(user["user_id"], username)
    return web.json_response({"user_id": user["user_id"], "username": username,
                              "token": token}, status=201)


@routes.post("/api/sessions")
async def create_session(request: web.Request) -> web.Response:
    body = await json_body(request)
    username, password = body.get("username"), body.get("password")
    if not isinstance(username, str) or not isinstance(password, str):
        raise ApiError(INVALID, "username and password are required strings")
    if len(username) > 64 or len(password) > 256:
        raise ApiError(UNAUTHORIZED, "wrong username or password")
    _throttle_auth(request, username)
    gateway = gateway_of(request)
    user = await gateway.store.get_user_by_username(username)
    if not await verify_password(user["password_hash"] if user else None, password):
        raise ApiError(UNAUTHORIZED, "wrong username or password")
    assert user is not None
    token = gateway.tokens.issue(user["user_id"], user["username"])
    return web.json_response({"user_id": user["user_id"], "username": user["username"],
                              "token": token})


@routes.get("/api/me")
async def me(request: web.Request) -> web.Response:
    user = await gateway_of(request).store.get_user(caller(request))
    if user is None:
        raise ApiError(UNAUTHORIZED, "unknown user")
    return web.json_response({"user_id": user["user_id"], "username": user["username"]})


@routes.post("/api/auctions")
async def create_auction(request: web.Request) -> web.Response:
    user_id = caller(request)
    body = await json_body(request)
    asset_id = body.get("asset_id")
    if not valid_id(asset_id):
        raise ApiError(INVALID, "asset_id is required")
    gateway = gateway_of(request)
    auction_id = new_id("a")
    now = now_ms()
    try:
        spec = parse_spec(body, auction_id=auction_id, asset_id=asset_id, seller_id=user_id,
                          now=now)
    except MarketError as exc:
        raise ApiError(INVALID, exc.message) from exc
    # A cheap early refusal, so a bad request never places (or starts) a host actor; the
    # authoritative, race-free check is the store's atomic listing in the host's create.
    asset = await gateway.store.get_asset(asset_id)
    if asset is None:
        raise ApiError(ASSET_NOT_FOUND, "no such asset")
    if asset["owner_id"] != user_id:
        raise ApiError(NOT_OWNER, "you do not own this asset")
    take_quota(request, "listings", user_id)
    record = AuctionRecord(auction_id=auction_id, asset_id=asset_id, seller_id=user_id,
                           spec=spec.to_dict(), view=Auction(spec).view(now),
                           status="scheduled", seq=0, created_at=now)
    view = _auction_of(await gateway.router.create(record))
    return web.json_response(await gateway.enrich(view), status=201)


def _auction_of(reply: Reply) -> AuctionView:
    """The auction a create or cancel answered with, or its refusal as an ApiError."""
    if isinstance(reply, Viewed):
        return reply.auction
    if isinstance(reply, Refused):
        raise ApiError(reply.code, reply.error.get("message", reply.code))
    raise ApiError(INTERNAL, f"unexpected reply {type(reply).__name__}")


@routes.get("/api/auctions")
async def list_auctions(request: web.Request) -> web.Response:
    status = request.query.get("status")
    if status is not None and status not in STATUSES:
        raise ApiError(INVALID, f"status must be one of {', '.join(STATUSES)}")
    limit = query_int(request, "limit", 200, 1, MAX_LIMIT)
    try:
        query = ListQuery.parse(request.query)
    except MarketError as exc:
        raise ApiError.of(exc) from exc
    gateway = gateway_of(request)
    if not query.filters:
        views = await gateway.store.list_auctions(status=status, limit=limit)
        return web.json_response({"auctions": await gateway.present_all(views),
                                  "next_cursor": None})
    views = await gateway.store.list_auctions(status=status, limit=SCAN_LIMIT)
    picked = query.select(await gateway.present_all(views, terms=True), now_ms(), limit)
    for view in picked:
        if view.get("card"):
            view["card"] = {k: v for k, v in view["card"].items() if k != "terms"}
    return web.json_response({"auctions": picked, "next_cursor": None})


async def _record(request: web.Request) -> AuctionRecord:
    auction_id = request.match_info["auction_id"]
    record = await gateway_of(request).store.get_auction(auction_id) if valid_id(
        auction_id) else None
    if record is None:
        raise ApiError(AUCTION_NOT_FOUND, "no such auction")
    return record


@routes.get("/api/auctions/{auction_id}")
async def get_auction(request: web.Request) -> web.Response:
    record = await _record(request)
    return web.json_response(await gateway_of(request).present(record["view"]))


@routes.get("/api/auctions/{auction_id}/events")
async def auction_events(request: web.Request) -> web.Response:
    record = await _record(request)
    since = query_int(request, "since", 0, 0, MAX_SINCE)
    limit = query_int(request, "limit", 200, 1, MAX_LIMIT)
    events = await gateway_of(request).store.load_events(record["auction_id"], since, limit)
    kind = record["spec"]["type"]
    return web.json_response({"events": [public_event(e, kind) for e in events]})


@routes.post("/api/auctions/{auction_id}/cancel")
async def cancel_auction(request: web.Request) -> web.Response:
    user_id = caller(request)
    record = await _record(request)
    if record["seller_id"] != user_id:
        raise ApiError(NOT_SELLER, "only the seller can cancel")
    gateway = gateway_of(request)
    view = _auction_of(await gateway.router.send(Cancel(record["auction_id"], by=user_id)))
    return web.json_response(await gateway.enrich(view))


@routes.get("/api/trades")
async def list_trades(request: web.Request) -> web.Response:
    asset_id = request.query.get("asset_id")
    user = request.query.get("user")
    user_id = caller(request) if user == "me" else user
    for value in (asset_id, user_id):
        if value is not None and not valid_id(value):
            raise ApiError(INVALID, "asset_id and user must be ids")
    trades = await gateway_of(request).store.list_trades(asset_id=asset_id, user_id=user_id)
    return web.json_response({"trades": trades, "next_cursor": None})  # the newest 200
