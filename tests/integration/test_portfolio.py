"""Portfolios end to end on a real server with its analytics and portfolio actors, on both
stores: a card bought for cash shows with its cost basis and value; the seller's P/L is
realised; when a comparable copy sells, the holder's `me` channel gets a `portfolio` event
with the new value, and `GET /api/portfolio` agrees."""

from __future__ import annotations

import pytest

from testkit.client import connect, unique, wait_for
from tests.integration.conftest import gateway_with
from tests.integration.test_analytics import graded_copy, sell_by_offer

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.mark.parametrize("store", ["sqlite", "mongo"])
async def test_a_bought_card_is_valued_and_revalued_live(ray_cluster, tmp_path, request,
                                                          store):
    overrides = {}
    if store == "mongo":
        from tests.integration.conftest import _mongo_url

        overrides["mongodb_uri"] = _mongo_url(request.getfixturevalue("mongo_uri"),
                                              unique("ece_pf"))
    async with gateway_with(tmp_path, analytics=True, portfolio=True, **overrides) as ece:
        api = ece.api
        seller, buyer, other = (await api.signup("sel"), await api.signup("buy"),
                                await api.signup("oth"))
        card_id, asset_id = await graded_copy(api, seller, unique("Mewtwo"))
        await sell_by_offer(api, seller, buyer, asset_id, 10_000)

        async def holding() -> dict | None:
            mine = await api.expect(200, "GET", "/api/portfolio", buyer)
            held = [h for h in mine["holdings"] if h["asset_id"] == asset_id]
            return mine if held and held[0]["value"] else None

        mine = await wait_for(holding, timeout=60, message="the bought card, valued")
        [held] = mine["holdings"]
        assert (held["card_id"], held["grader"], held["grade"]) == (card_id, "PSA", 9)
        assert held["cost_basis"] == 10_000 and held["basis_how"] == "purchase"
        assert held["value"]["point"] == 10_000 and held["pnl"] == 0
        assert mine["totals"]["value"] == 10_000 and mine["totals"]["holdings"] == 1
        assert mine["allocation"]["grader"] == {"PSA": 1.0}
        assert mine["risk"]["shown"] is False and mine["risk"]["reason"]

        async def realised() -> dict | None:
            theirs = await api.expect(200, "GET", "/api/portfolio", seller)
            return theirs if theirs["totals"]["realised_pnl"] else None

        theirs = await wait_for(realised, timeout=60, message="the seller's realised P/L")
        assert theirs["totals"]["realised_pnl"] == 10_000  # minted (basis 0), no fee here
        assert theirs["holdings"] == []

        # The buyer watches their channel; a comparable copy sells between two others.
        sock = await connect(api.http, api.base, buyer)
        await sock.request({"op": "subscribe", "channel": "me", "req_id": unique("m")})
        cert = unique("c").replace("_", "")[-12:]
        twin = await api.expect(201, "POST", "/api/assets", seller,
                                json={"card_id": card_id, "grader": "PSA", "grade": 9,
                                      "cert": cert})
        await sell_by_offer(api, seller, other, twin["asset_id"], 20_000)
        # (An event of the purchase itself may still be on its way: it is not this one.)
        event = await sock.expect(lambda m: m.get("type") == "portfolio"
                                  and m["total"]["value"] != 10_000, timeout=60)
        assert event["channel"] == "me" and "seq" not in event
        [changed] = event["changed"]
        assert changed["asset_id"] == asset_id
        assert changed["value"]["point"] == 15_000  # the median of 10,000 and 20,000
        assert event["total"]["value"] == 15_000 and isinstance(event["at"], int)

        async def caught_up() -> dict | None:  # the whole portfolio follows the event
            mine = await api.expect(200, "GET", "/api/portfolio", buyer)
            return mine if mine["computed_at"] >= event["at"] else None

        mine = await wait_for(caught_up, timeout=60, message="the portfolio as of the event")
        assert mine["totals"]["value"] == 15_000 and mine["holdings"][0]["pnl"] == 5_000
        history = await api.expect(200, "GET", "/api/portfolio/history?range=1m", buyer)
        assert history["points"][-1]["value"] == 15_000
        assert history["points"][-1]["inflow"] == 10_000  # the purchase: a flow
        await sock.close()


async def test_portfolio_routes_need_a_token_and_check_the_range(ece_hosted):
    api = ece_hosted.api
    for path in ("/api/portfolio", "/api/portfolio/history"):
        status, _ = await api.request("GET", path)
        assert status == 401
    user = await api.signup("p")
    status, answer = await api.request("GET", "/api/portfolio/history?range=5y", user)
    assert status == 400 and answer["error"]["code"] == "INVALID"
    empty = await api.expect(200, "GET", "/api/portfolio", user)
    assert empty["holdings"] == [] and empty["totals"]["value"] == 0
    assert empty["risk"]["shown"] is False and empty["public"] is False
    await api.expect(200, "PUT", "/api/portfolio/visibility", user, json={"public": True})
    assert (await api.expect(200, "GET", "/api/portfolio", user))["public"] is True
