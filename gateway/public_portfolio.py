"""Opt-in public portfolios, like PSA's set registry: a user makes theirs public
(`PUT /api/portfolio/visibility`) and anyone may then read it at
`GET /api/users/{user_id}/portfolio`, without what it cost or made them: the holdings with
their values, the total value and its range, allocation, diversification and liquidity.
Whatever is not on the lists below (cost basis, P/L, return, risk) never leaves."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.rest import ApiError, caller, json_answer, json_body
from gateway.state import gateway_of
from market.errors import INVALID, PORTFOLIO_NOT_FOUND, UNAUTHORIZED, UNAVAILABLE
from market.offers import MAX_ID_LEN
from market.portfolio import portfolio_view

routes = web.RouteTableDef()

# What a public portfolio shows (a list of what may leave, not of what may not).
PUBLIC_HOLDING = ("asset_id", "card_id", "grader", "grade", "position", "value", "days_to_sell")
PUBLIC_TOTALS = ("value", "low", "high", "holdings", "unvalued")
PUBLIC_PARTS = ("allocation", "diversification", "liquidity", "computed_at")


def public_view(doc: dict[str, Any]) -> dict[str, Any]:
    """The portfolio `doc` (as `GET /api/portfolio` answers it) without its private money."""
    totals = doc.get("totals") or {}
    return {
        "holdings": [{k: h.get(k) for k in PUBLIC_HOLDING} for h in doc.get("holdings") or []],
        "totals": {k: totals.get(k) for k in PUBLIC_TOTALS},
        **{k: doc.get(k) for k in PUBLIC_PARTS},
    }


def served(request: web.Request) -> None:
    """Refuse a portfolio route on a gateway started with ECE_PORTFOLIOS=0."""
    if not gateway_of(request).settings.portfolios:
        raise ApiError(UNAVAILABLE, "portfolios are off on this server (ECE_PORTFOLIOS=0)")


async def is_public(request: web.Request, user_id: str) -> bool:
    """Whether `user_id` (the caller) has made their portfolio public."""
    user = await gateway_of(request).store.get_user(user_id)
    if user is None:
        raise ApiError(UNAUTHORIZED, "unknown user")
    return bool(user.get("portfolio_public"))


@routes.get("/api/portfolio/visibility")
async def my_visibility(request: web.Request) -> web.Response:
    served(request)
    return web.json_response({"public": await is_public(request, caller(request))})


@routes.put("/api/portfolio/visibility")
async def set_visibility(request: web.Request) -> web.Response:
    served(request)
    user_id = caller(request)
    body = await json_body(request)
    public = body.get("public")
    if set(body) != {"public"} or not isinstance(public, bool):
        raise ApiError(INVALID, 'body must be {"public": true} or {"public": false}')
    if not await gateway_of(request).store.set_portfolio_public(user_id, public):
        raise ApiError(UNAUTHORIZED, "unknown user")
    return web.json_response({"public": public})


@routes.get("/api/users/{user_id}/portfolio")
async def public_portfolio(request: web.Request) -> web.Response:
    served(request)
    user_id = request.match_info["user_id"]
    if len(user_id) > MAX_ID_LEN:
        raise ApiError(INVALID, f"a user id has at most {MAX_ID_LEN} characters")
    store = gateway_of(request).store
    user = await store.get_user(user_id)
    if user is None or not user.get("portfolio_public"):  # the same answer for both
        raise ApiError(PORTFOLIO_NOT_FOUND, "no public portfolio for this user")
    doc = await store.get_projection_doc("portfolio", user_id)
    if doc is None:  # nothing held yet (or not folded yet): an empty portfolio
        doc = {**portfolio_view([], {}, {}, {}, 0), "computed_at": None}
    return json_answer({"user_id": user_id, "username": user["username"], **public_view(doc)})
