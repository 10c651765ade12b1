"""REST route of a card × grader × grade's value (`actors.analytics.valuations`): the value,
its interval and confidence, and its inputs (the sales used, each adjusted by the index), read
from the persisted valuations; a grade never sold is derived from the card's other grades."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from actors.analytics.book import segment_parts
from actors.analytics.valuations import KIND, value_of
from gateway.analytics import card_exists, segment_of
from gateway.state import gateway_of
from market.valuation import DERIVED

routes = web.RouteTableDef()
MAX_GRADES = 64  # a card and grader's segments read to derive a grade never sold


@routes.get("/api/cards/{card_id}/value")
async def card_value(request: web.Request) -> web.Response:
    gateway = gateway_of(request)
    card_id = request.match_info["card_id"]
    key = segment_of(request, card_id)
    await card_exists(gateway, card_id)
    part = segment_parts(key)
    doc = await gateway.store.get_projection_doc(KIND, key)
    if doc is not None and (doc.get("value") or {}).get("method") != DERIVED:
        return web.json_response({**doc, "derived_from": None})
    # Derived (stored so, or a grade never sold): from the grades of that grader with sales.
    prefix = f"{card_id}|{part['grader']}|"
    rows = await gateway.store.scan_projection(KIND, prefix, prefix + "~", MAX_GRADES)
    return web.json_response(answer(part, doc, [d for _, d in rows]))


def answer(part: dict[str, Any], doc: dict[str, Any] | None,
           docs: list[dict[str, Any]]) -> dict[str, Any]:
    """The answer for a segment whose own doc is `doc` (None, or derived) from its grader's
    docs, read after it: a doc saved between the two reads is answered whole, so a value is
    never shown without the sales it was computed from."""
    own = next((d for d in docs if d.get("grade") == part["grade"]), None)
    if own is not None and (own.get("value") or {}).get("method") != DERIVED:
        return {**own, "derived_from": None}
    sources = [d["grade"] for d in docs
               if d.get("value") and d["value"].get("method") != DERIVED]
    if doc is not None:
        return {**doc, "derived_from": sources}
    return {**part, "value": value_of(docs, part["grade"]), "sales": [], "sales_365d": 0,
            "index": None, "computed_at": None, "derived_from": sources}
