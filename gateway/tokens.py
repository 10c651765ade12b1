"""REST routes of the token registry: the exchange's public key, each token's ERC-721 metadata
and image, and its signed provenance chain (which anyone can verify with the public key only:
`ece verify-provenance`, or `market.provenance.verify_chain`)."""

from __future__ import annotations

import hashlib
from typing import Any, cast
from xml.sax.saxutils import escape

from aiohttp import web

from actors.clock import now_ms
from gateway.catalog import asset_id_token, asset_json
from gateway.protocol import valid_id
from gateway.rest import ApiError, caller
from gateway.state import Gateway, gateway_of
from market.catalog import grade_text
from market.errors import (
    ASSET_NOT_FOUND,
    INVALID,
    NOT_OWNER,
    PROVENANCE_CONFLICT,
    TOKEN_NOT_FOUND,
    UNAVAILABLE,
    MarketError,
)
from market.provenance import (
    Record,
    is_token_id,
    next_record,
    public_key_b64,
    token_metadata,
    verify_chain,
)
from storage import Conflict
from storage.records import AssetRecord, ProvenanceRecord

routes = web.RouteTableDef()


@routes.get("/api/tokens/key")
async def public_key(request: web.Request) -> web.Response:
    return web.json_response({"alg": "Ed25519",
                              "public_key": public_key_b64(gateway_of(request).signer)})


async def _asset(gateway: Gateway, token_id: str) -> AssetRecord:
    asset = await gateway.store.get_asset_by_token(token_id) if is_token_id(token_id) else None
    if asset is None:
        raise ApiError(TOKEN_NOT_FOUND, "no such token")
    return asset


async def _card_of(gateway: Gateway, asset: AssetRecord) -> dict[str, Any]:
    """The catalog card of a graded copy; for a card outside the catalog, what it says."""
    card_id = asset.get("card_id")
    card = await gateway.store.get_card(card_id) if card_id else None
    if card is not None:
        return dict(card)
    metadata = asset.get("metadata") or {}
    return {"name": asset["title"], "set": metadata.get("set"), "year": metadata.get("year")}


@routes.get("/api/tokens/{token_id}")
async def metadata(request: web.Request) -> web.Response:
    gateway = gateway_of(request)
    token_id = request.match_info["token_id"]
    asset = await _asset(gateway, token_id)
    base = f"{request.scheme}://{request.host}"
    body = token_metadata(await _card_of(gateway, asset), asset_json(asset), token_id,
                          f"{base}/api/tokens/{token_id}/provenance",
                          f"{base}/api/tokens/{token_id}/image.svg")
    return web.json_response(body)


@routes.get("/api/tokens/{token_id}/provenance")
async def provenance(request: web.Request) -> web.Response:
    token_id = request.match_info["token_id"]
    records = await gateway_of(request).store.load_provenance(token_id) if is_token_id(
        token_id) else None
    if records is None:
        raise ApiError(TOKEN_NOT_FOUND, "no such token")
    return web.json_response({"token_id": token_id, "records": records})


@routes.get("/api/tokens/{token_id}/verify")
async def verify(request: web.Request) -> web.Response:
    """The server's own check of a token's chain (hashes, links, owners, signatures), for a
    browser whose WebCrypto lacks Ed25519; anyone can redo it with the public key."""
    gateway = gateway_of(request)
    token_id = request.match_info["token_id"]
    records = await gateway.store.load_provenance(token_id) if is_token_id(token_id) else None
    if records is None:
        raise ApiError(TOKEN_NOT_FOUND, "no such token")
    key = public_key_b64(gateway.signer)
    problems = verify_chain(token_id, cast(list[Record], records), key)
    return web.json_response({
        "token_id": token_id, "ok": not problems, "records": len(records), "public_key": key,
        "problems": [{"index": p.index, "seq": p.seq, "kind": p.kind, "message": p.message}
                     for p in problems]})


@routes.post("/api/assets/{asset_id}/redeem")
async def redeem(request: web.Request) -> web.Response:
    """The owner takes the physical card out of the vault: a signed `redeem` record burns
    the token (no more listing, offering or transfer). Idempotent: a burned token of the
    caller answers as the first call did."""
    user_id = caller(request)
    gateway = gateway_of(request)
    asset_id = request.match_info["asset_id"]
    asset = await gateway.store.get_asset(asset_id) if valid_id(asset_id) else None
    if asset is None:
        raise ApiError(ASSET_NOT_FOUND, "no such asset")
    if asset["owner_id"] != user_id:
        raise ApiError(NOT_OWNER, "you do not own this asset")
    if asset.get("redeemed"):
        return web.json_response(asset_json(asset))
    token_id = asset_id_token(asset)
    chain = await gateway.store.load_provenance(token_id)
    if not chain:
        raise ApiError(INVALID, "this card was minted before tokens: it has no token to burn")
    try:
        record = next_record(token_id, cast(Record, chain[-1]), "redeem", frm=user_id,
                             to=None, at=now_ms(), signer=gateway.signer)
        await gateway.store.append_provenance(token_id, cast(ProvenanceRecord, record))
    except MarketError as exc:
        raise ApiError.of(exc) from exc
    except Conflict as exc:
        now = await gateway.store.get_asset(asset_id)
        if now is not None and now.get("redeemed") and now["owner_id"] == user_id:
            return web.json_response(asset_json(now))  # a concurrent retry redeemed it
        if exc.code == PROVENANCE_CONFLICT:  # it moved meanwhile (sold)
            raise ApiError(UNAVAILABLE, "the card changed hands meanwhile; retry") from exc
        raise ApiError(exc.code, exc.message) from exc
    redeemed = await gateway.store.get_asset(asset_id)
    assert redeemed is not None
    await gateway.router.invalidate_offers([asset_id], "asset_redeemed")
    return web.json_response(asset_json(redeemed))


@routes.get("/api/tokens/{token_id}/image.svg")
async def image(request: web.Request) -> web.Response:
    gateway = gateway_of(request)
    token_id = request.match_info["token_id"]
    asset = await _asset(gateway, token_id)
    card = await _card_of(gateway, asset)
    return web.Response(text=card_svg(card, asset), content_type="image/svg+xml",
                        headers={"Cache-Control": "public, max-age=300",
                                 "Content-Security-Policy": "default-src 'none'"})


def card_svg(card: dict[str, Any], asset: AssetRecord) -> str:
    """The web room's card look, drawn by the server: a hue from the asset id, the initial,
    the name, the set and year, and the grade slab. Every text is XML-escaped."""
    hue = int(hashlib.sha256(asset["asset_id"].encode()).hexdigest()[:4], 16) % 360
    name = str(card.get("name") or asset["title"])
    set_name, year = card.get("set"), card.get("year")
    if year is not None and str(year) in str(set_name or ""):
        year = None  # "2003 Topps Chrome" says it already
    detail = " · ".join(str(x) for x in (set_name, year) if x)
    grader = asset.get("grader")
    slab = ("RAW" if grader == "RAW" else f"{grader} {grade_text(asset.get('grade'))}"
            if grader else "")
    lines = [
        '<svg xmlns="http://www.w3.org/2000/svg" width="300" height="420" viewBox="0 0 300 420">',
        "<defs><linearGradient id='g' x1='0' y1='0' x2='1' y2='1'>"
        f"<stop offset='0' stop-color='hsl({hue},70%,45%)'/>"
        f"<stop offset='1' stop-color='hsl({(hue + 60) % 360},70%,25%)'/></linearGradient></defs>",
        "<rect width='300' height='420' rx='18' fill='url(#g)'/>",
        "<rect x='12' y='12' width='276' height='396' rx='12' fill='none' "
        "stroke='rgba(255,255,255,0.5)'/>",
        "<text x='150' y='200' font-size='96' text-anchor='middle' fill='white' "
        f"font-family='sans-serif' font-weight='700'>{escape(name[:1].upper() or '?')}</text>",
        "<text x='150' y='270' font-size='20' text-anchor='middle' fill='white' "
        f"font-family='sans-serif' font-weight='600'>{escape(name[:28])}</text>",
        "<text x='150' y='298' font-size='14' text-anchor='middle' fill='white' "
        f"font-family='sans-serif' opacity='0.8'>{escape(detail[:40])}</text>",
    ]
    if slab:
        lines.append("<rect x='90' y='330' width='120' height='40' rx='8' fill='white'/>"
                     "<text x='150' y='357' font-size='18' text-anchor='middle' "
                     f"font-family='sans-serif' font-weight='700'>{escape(slab)}</text>")
    lines.append("</svg>")
    return "\n".join(lines)
