"""REST routes of the card catalog and the graded copies (assets) collectors own.

A card is a catalog entry; an asset is one graded copy of a card (or, minted before the
catalog, a titled card with free metadata), and every asset is a token whose id derives from
the asset id (`market.provenance.token_id_for`). The rules live in `market.catalog`.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any, cast

from aiohttp import web

from actors.clock import now_ms
from gateway.protocol import valid_id
from gateway.rest import ApiError, caller, json_body, new_id, query_int, take_quota
from gateway.state import Gateway, gateway_of
from market.catalog import (
    CATEGORIES,
    Card,
    grade_text,
    parse_card,
    parse_grading,
    query_terms,
    search_terms,
)
from market.errors import ASSET_NOT_FOUND, CARD_NOT_FOUND, FORBIDDEN, INVALID, MarketError
from market.provenance import mint_record, token_id_for
from storage import Conflict, sort_name
from storage.records import AssetRecord, CardRecord, ProvenanceRecord

routes = web.RouteTableDef()

MAX_METADATA_BYTES = 4096
MAX_CARDS_PAGE = 200
MAX_QUERY_CHARS = 200
MAX_QUERY_WORDS = 8
# What a graded mint's body may hold besides the card.
_GRADED_FIELDS = frozenset({"card_id", "grader", "grade", "cert"})


def _may_mint(gateway: Gateway, user_id: str) -> None:
    if gateway.settings.mint == "admin" and user_id not in gateway.settings.admins:
        raise ApiError(FORBIDDEN, "minting is restricted to admins")


def _refused(exc: MarketError) -> ApiError:
    return ApiError(exc.code, exc.message)


# ---- cards -------------------------------------------------------------------------------


def card_record(card: Card, now: int) -> CardRecord:
    """What the store keeps of a card: its fields and its search terms."""
    return CardRecord(**card.to_dict(), terms=search_terms(card),  # type: ignore[typeddict-item]
                      created_at=now)


def card_json(card: CardRecord) -> dict[str, Any]:
    return Card.from_dict(dict(card)).to_dict()


def _cursor(card: CardRecord) -> str:
    key = json.dumps([sort_name(card), card["card_id"]], ensure_ascii=False)
    return base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def _after(request: web.Request) -> tuple[str, str] | None:
    raw = request.query.get("cursor")
    if raw is None:
        return None
    try:
        if len(raw) > 400:
            raise ValueError("too long")
        value = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise ApiError(INVALID, "cursor: not one this server gave out") from exc
    if (not isinstance(value, list) or len(value) != 2
            or not all(isinstance(v, str) for v in value)):
        raise ApiError(INVALID, "cursor: not one this server gave out")
    return value[0], value[1]


@routes.get("/api/cards")
async def search_cards(request: web.Request) -> web.Response:
    query = request.query.get("q", "")
    if len(query) > MAX_QUERY_CHARS:
        raise ApiError(INVALID, f"q: at most {MAX_QUERY_CHARS} characters")
    category = request.query.get("category") or None
    if category is not None and category not in CATEGORIES:
        raise ApiError(INVALID, f"category must be one of {', '.join(CATEGORIES)}")
    set_name = request.query.get("set") or None
    if set_name is not None and len(set_name) > 80:
        raise ApiError(INVALID, "set: at most 80 characters")
    limit = query_int(request, "limit", 50, 1, MAX_CARDS_PAGE)
    terms = query_terms(query)
    if len(terms) > MAX_QUERY_WORDS:  # each word is a range scan in the store
        raise ApiError(INVALID, f"q: at most {MAX_QUERY_WORDS} words")
    cards = await gateway_of(request).store.search_cards(
        terms, category, set_name, limit + 1, _after(request))
    page, more = cards[:limit], len(cards) > limit
    return web.json_response({"items": [card_json(c) for c in page],
                              "next_cursor": _cursor(page[-1]) if more else None})


async def _card(gateway: Gateway, card_id: object) -> CardRecord:
    card = await gateway.store.get_card(card_id) if valid_id(card_id) else None
    if card is None:
        raise ApiError(CARD_NOT_FOUND, "no such card")
    return card


@routes.get("/api/cards/{card_id}")
async def get_card(request: web.Request) -> web.Response:
    gateway = gateway_of(request)
    card = await _card(gateway, request.match_info["card_id"])
    population = await gateway.store.population(card["card_id"])
    return web.json_response({**card_json(card), "population": population})


@routes.post("/api/cards")
async def create_card(request: web.Request) -> web.Response:
    user_id = caller(request)
    gateway = gateway_of(request)
    _may_mint(gateway, user_id)
    body = await json_body(request)
    try:
        card = parse_card(body, new_id("card"))
    except MarketError as exc:
        raise _refused(exc) from exc
    take_quota(request, "mints", user_id)
    record = card_record(card, now_ms())
    await gateway.store.create_card(record)
    return web.json_response(card_json(record), status=201)


# ---- assets ------------------------------------------------------------------------------


@routes.post("/api/assets")
async def create_asset(request: web.Request) -> web.Response:
    user_id = caller(request)
    gateway = gateway_of(request)
    _may_mint(gateway, user_id)
    body = await json_body(request)
    asset_id = new_id("c")
    if "card_id" in body:
        asset = await _graded(gateway, body, asset_id, user_id)
    else:
        asset = _titled(body, asset_id, user_id)
    take_quota(request, "mints", user_id)
    # The token's first provenance record, written with the asset in one store write.
    mint = cast(ProvenanceRecord, mint_record(
        asset_id_token(asset), user_id, asset["created_at"] or now_ms(), gateway.signer))
    try:
        await gateway.store.create_asset(asset, mint)
    except Conflict as exc:
        raise ApiError(exc.code, exc.message) from exc
    return web.json_response(asset_json(asset), status=201)


async def _graded(gateway: Gateway, body: dict[str, Any], asset_id: str,
                  owner_id: str) -> AssetRecord:
    """A graded copy of a catalog card: `{card_id, grader, grade?, cert?}` and nothing else."""
    unknown = sorted(set(body) - _GRADED_FIELDS)
    if unknown:
        raise ApiError(INVALID, f"{unknown[0]}: unknown field")
    card = await _card(gateway, body["card_id"])
    try:
        grading = parse_grading(body)
    except MarketError as exc:
        raise _refused(exc) from exc
    label = f"{grading.grader} {grade_text(grading.grade)}" if grading.grade else "Raw"
    return AssetRecord(
        asset_id=asset_id, owner_id=owner_id, title=card["name"],
        metadata={"set": card["set"], "year": card["year"], "grade": label},
        created_at=now_ms(), card_id=card["card_id"], grader=grading.grader,
        grade=grading.grade, cert=grading.cert, token_id=token_id_for(asset_id))


def _titled(body: dict[str, Any], asset_id: str, owner_id: str) -> AssetRecord:
    """A card outside the catalog: a title and free metadata (the first slice's mint)."""
    title = body.pop("title", None)
    if not isinstance(title, str) or not 1 <= len(title.strip()) <= 200:
        raise ApiError(INVALID, "title: 1-200 characters (or card_id for a catalog card)")
    # Its `grade`, if any, is the seller's own words (e.g. "PSA 9"); what only a catalog
    # copy carries (a grader's cert, a token) cannot be claimed in free metadata.
    for reserved in ("asset_id", "owner_id", "created_at", "listed_in", "token_id", "grader",
                     "cert"):
        body.pop(reserved, None)
    if len(json.dumps(body)) > MAX_METADATA_BYTES:
        raise ApiError(INVALID, f"metadata over {MAX_METADATA_BYTES} bytes")
    return AssetRecord(asset_id=asset_id, owner_id=owner_id, title=title.strip(),
                       metadata=body, created_at=now_ms(), token_id=token_id_for(asset_id))


ASSETS_PAGE = 200  # assets per page of GET /api/assets
MAX_ASSETS_PAGE = 500


def asset_id_token(asset: AssetRecord) -> str:
    """The asset's token id (derived from its id, so assets minted before tokens have one)."""
    return asset.get("token_id") or token_id_for(asset["asset_id"])


def asset_json(asset: AssetRecord) -> dict[str, Any]:
    graded: dict[str, Any] = {"card_id": asset.get("card_id"), "grader": asset.get("grader"),
                              "cert": asset.get("cert")} if asset.get("card_id") else {}
    if asset.get("grade") is not None:
        graded["grade"] = asset.get("grade")
    return {**asset.get("metadata", {}), "asset_id": asset["asset_id"],
            "owner_id": asset["owner_id"], "title": asset["title"],
            "listed_in": asset.get("listed_in"), "created_at": asset.get("created_at"),
            "token_id": asset_id_token(asset), "redeemed": bool(asset.get("redeemed")),
            **graded}


@routes.get("/api/assets")
async def list_assets(request: web.Request) -> web.Response:
    owner = request.query.get("owner", "me")
    owner_id = caller(request) if owner == "me" else owner
    if not valid_id(owner_id):
        raise ApiError(INVALID, "owner must be 'me' or a user id")
    limit = query_int(request, "limit", ASSETS_PAGE, 1, MAX_ASSETS_PAGE)
    after = request.query.get("cursor")
    if after is not None and not valid_id(after):
        raise ApiError(INVALID, "cursor: not one this server gave out")
    page = await gateway_of(request).store.list_assets(owner_id, limit + 1, after)
    more = len(page) > limit
    page = page[:limit]
    return web.json_response({"assets": [asset_json(a) for a in page],
                              "next_cursor": page[-1]["asset_id"] if more else None})


@routes.get("/api/assets/{asset_id}")
async def get_asset(request: web.Request) -> web.Response:
    asset_id = request.match_info["asset_id"]
    asset = await gateway_of(request).store.get_asset(asset_id) if valid_id(asset_id) else None
    if asset is None:
        raise ApiError(ASSET_NOT_FOUND, "no such asset")
    return web.json_response(asset_json(asset))
