"""Opt-in public portfolios on a real server: private until the owner says otherwise (and the
same 404 for a private portfolio as for no such user), readable by anyone once public,
without the cost basis, P/L or return; hostile ids and bodies are 400s or 404s, never 500s."""

from __future__ import annotations

import pytest

from testkit.client import unique, wait_for
from tests.integration.conftest import gateway_with
from tests.integration.test_analytics import graded_copy, sell_by_offer

pytestmark = pytest.mark.asyncio(loop_scope="session")

VISIBILITY = "/api/portfolio/visibility"
HOLDING_KEYS = {"asset_id", "card_id", "grader", "grade", "position", "value", "days_to_sell"}
TOTAL_KEYS = {"value", "low", "high", "holdings", "unvalued"}
TOP_KEYS = {"user_id", "username", "holdings", "totals", "allocation", "diversification",
            "liquidity", "computed_at"}


def public_path(user_id: str) -> str:
    return f"/api/users/{user_id}/portfolio"


async def test_visibility_needs_a_token_and_a_strict_body(ece_hosted):
    api = ece_hosted.api
    for method, kwargs in (("GET", {}), ("PUT", {"json": {"public": True}})):
        status, answer = await api.request(method, VISIBILITY, **kwargs)
        assert status == 401 and answer["error"]["code"] == "UNAUTHORIZED"
    user = await api.signup("vis")
    assert await api.expect(200, "GET", VISIBILITY, user) == {"public": False}
    bad = [{"data": b"not json", "headers": {"Content-Type": "application/json"}},
           {"data": b"\xff\xfe", "headers": {"Content-Type": "application/json"}},
           {"data": b""},
           {"json": {"public": "yes"}}, {"json": {"public": 1}}, {"json": {"public": 0}},
           {"json": {"public": None}}, {"json": {}}, {"json": {"public": True, "also": 1}},
           {"json": {"Public": True}}, {"json": [True]}, {"json": True},
           {"json": {"public": [True]}}, {"json": {"public": "ü" * 5000}}]
    for kwargs in bad:
        status, answer = await api.request("PUT", VISIBILITY, user, **kwargs)
        assert status == 400 and answer["error"]["code"] == "INVALID", kwargs
    assert await api.expect(200, "GET", VISIBILITY, user) == {"public": False}


async def test_a_portfolio_is_private_until_made_public(ece_hosted):
    api = ece_hosted.api
    owner, stranger = await api.signup("own"), await api.signup("str")
    status, answer = await api.request("GET", public_path(owner.user_id))
    assert status == 404 and answer["error"]["code"] == "PORTFOLIO_NOT_FOUND"
    status, unknown = await api.request("GET", public_path("u_0000000000000000"))
    assert status == 404 and unknown["error"] == answer["error"]  # not told apart

    assert await api.expect(200, "PUT", VISIBILITY, owner, json={"public": True}) == \
        {"public": True}
    assert await api.expect(200, "GET", VISIBILITY, owner) == {"public": True}
    for viewer in (None, stranger, owner):  # no token needed; anyone's is fine
        shown = await api.expect(200, "GET", public_path(owner.user_id), viewer)
        assert set(shown) == TOP_KEYS
        assert (shown["user_id"], shown["username"]) == (owner.user_id, owner.username)
        assert shown["holdings"] == [] and set(shown["totals"]) == TOTAL_KEYS
        assert shown["totals"]["value"] == 0
    # The stranger's own portfolio stays private.
    status, _ = await api.request("GET", public_path(stranger.user_id))
    assert status == 404

    assert await api.expect(200, "PUT", VISIBILITY, owner, json={"public": False}) == \
        {"public": False}
    status, answer = await api.request("GET", public_path(owner.user_id))
    assert status == 404 and answer["error"]["code"] == "PORTFOLIO_NOT_FOUND"


async def test_hostile_user_ids_are_never_a_500(ece_hosted):
    api = ece_hosted.api
    owner = await api.signup("hid")
    await api.expect(200, "PUT", VISIBILITY, owner, json={"public": True})
    status, _ = await api.request("GET", public_path("u" * 10_240))  # over the line limit
    assert status == 400
    status, answer = await api.request("GET", public_path("u" * 1_000))
    assert status == 400 and answer["error"]["code"] == "INVALID"
    for user_id in ("%C3%BC%E2%80%AE%F0%9F%98%80", "%00", "%FF%FE", "..%2F..%2Fportfolio",
                    f"{owner.user_id}%20", owner.user_id.upper(), "'%20OR%20'1'='1"):
        status, answer = await api.request("GET", public_path(user_id))
        assert status == 404 and answer["error"]["code"] == "PORTFOLIO_NOT_FOUND", user_id


async def test_a_public_portfolio_shows_values_but_not_money(ray_cluster, tmp_path):
    async with gateway_with(tmp_path, analytics=True, portfolio=True) as ece:
        api = ece.api
        seller, buyer = await api.signup("sel"), await api.signup("buy")
        card_id, asset_id = await graded_copy(api, seller, unique("Mewtwo"))
        await sell_by_offer(api, seller, buyer, asset_id, 10_000)
        await api.expect(200, "PUT", VISIBILITY, buyer, json={"public": True})

        async def valued() -> dict | None:
            shown = await api.expect(200, "GET", public_path(buyer.user_id))
            held = [h for h in shown["holdings"] if h["asset_id"] == asset_id]
            return shown if held and held[0]["value"] else None

        shown = await wait_for(valued, timeout=60, message="the bought card, valued, in public")
        [held] = shown["holdings"]
        assert set(held) == HOLDING_KEYS
        assert (held["card_id"], held["grader"], held["grade"]) == (card_id, "PSA", 9)
        assert held["value"]["point"] == 10_000
        assert set(shown["totals"]) == TOTAL_KEYS
        assert shown["totals"]["value"] == 10_000 and shown["totals"]["holdings"] == 1
        assert shown["allocation"]["grader"] == {"PSA": 1.0}
        assert shown["diversification"]["effective_n"] == pytest.approx(1.0)
        assert "share_over" in shown["liquidity"]
        assert set(shown) == TOP_KEYS  # no risk, nothing else
        # The owner's own view still has the money the public one leaves out.
        mine = await api.expect(200, "GET", "/api/portfolio", buyer)
        assert mine["holdings"][0]["cost_basis"] == 10_000
        assert mine["totals"]["cost_basis"] == 10_000
