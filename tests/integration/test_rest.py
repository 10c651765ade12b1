"""Every REST route: success, and the errors a client can cause."""

from __future__ import annotations

import time

import jwt
import pytest

from testkit.client import connect, unique

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_healthz_and_metrics(ece_hosted):
    status, body = await ece_hosted.api.request("GET", "/healthz")
    assert (status, body["status"], body["seeding"]) == (200, "ok", False)
    assert isinstance(body["analytics"], dict)  # each projection's lag (filled within a second)
    status, text = await ece_hosted.api.request("GET", "/metrics")
    assert status == 200 and "ece_ws_connections" in text


async def test_signup_signin_and_me(ece_hosted):
    api = ece_hosted.api
    name = unique("Carla")
    status, body = await api.request("POST", "/api/users",
                                     json={"username": name, "password": "long-enough"})
    assert status == 201 and body["user_id"] and body["token"]
    # Usernames are unique regardless of case.
    status, body = await api.request("POST", "/api/users",
                                     json={"username": name.upper(), "password": "long-enough"})
    assert status == 409 and body["error"]["code"] == "USERNAME_TAKEN"
    for bad in ({"username": "x", "password": "long-enough"},
                {"username": name + "z", "password": "short"},
                {"username": 5, "password": "long-enough"}, []):
        status, body = await api.request("POST", "/api/users", json=bad)
        assert status == 400 and body["error"]["code"] == "INVALID", bad
    status, body = await api.request("POST", "/api/users", data=b"{not json",
                                     headers={"Content-Type": "application/json"})
    assert status == 400 and body["error"]["code"] == "INVALID"

    status, session = await api.request("POST", "/api/sessions",
                                        json={"username": name, "password": "long-enough"})
    assert status == 200 and session["token"]
    status, body = await api.request("POST", "/api/sessions",
                                     json={"username": name, "password": "wrong-password"})
    assert status == 401 and body["error"]["code"] == "UNAUTHORIZED"
    status, body = await api.request("POST", "/api/sessions",
                                     json={"username": "nobody-here", "password": "whatever1"})
    assert status == 401
    status, me = await api.request("GET", "/api/me",
                                   headers={"Authorization": f"Bearer {session['token']}"})
    assert status == 200 and me["username"] == name


async def test_tokens_are_checked(ece_hosted):
    api = ece_hosted.api
    user = await api.signup()
    forged = jwt.encode({"sub": user.user_id, "exp": int(time.time()) + 60}, "x" * 32,
                        algorithm="HS256")
    expired = jwt.encode({"sub": user.user_id, "exp": int(time.time()) - 5},
                         ece_hosted.settings.secret, algorithm="HS256")
    for token in (forged, expired, "garbage"):
        status, body = await api.request("POST", "/api/assets", json={"title": "x"},
                                         headers={"Authorization": f"Bearer {token}"})
        assert status == 401 and body["error"]["code"] == "UNAUTHORIZED"
    status, _ = await api.request("POST", "/api/assets", json={"title": "x"})
    assert status == 401


async def test_assets(ece_hosted):
    api = ece_hosted.api
    user = await api.signup()
    status, asset = await api.request("POST", "/api/assets", user,
                                      json={"title": "Charizard", "grade": "PSA 9",
                                            "owner_id": "someone-else"})
    assert status == 201
    assert (asset["owner_id"], asset["title"], asset["grade"]) == (user.user_id, "Charizard",
                                                                   "PSA 9")
    status, fetched = await api.request("GET", f"/api/assets/{asset['asset_id']}")
    assert status == 200 and fetched["owner_id"] == user.user_id
    status, mine = await api.request("GET", "/api/assets?owner=me", user)
    assert status == 200 and [a["asset_id"] for a in mine["assets"]] == [asset["asset_id"]]
    status, body = await api.request("GET", "/api/assets/c_doesnotexist")
    assert status == 404 and body["error"]["code"] == "ASSET_NOT_FOUND"
    for bad in ({"title": ""}, {"title": 7}, {}, {"title": "x", "blob": "y" * 5000}):
        status, body = await api.request("POST", "/api/assets", user, json=bad)
        assert status == 400 and body["error"]["code"] == "INVALID", bad


async def test_create_get_list_and_cancel_auctions(ece_hosted):
    api = ece_hosted.api
    seller, other = await api.signup("seller"), await api.signup("other")
    asset = await api.mint(seller)
    body = {"asset_id": asset["asset_id"], "start_price": 1000, "duration_ms": 60_000,
            "reserve_price": 5000}
    status, body403 = await api.request("POST", "/api/auctions", other, json=body)
    assert status == 403 and body403["error"]["code"] == "NOT_OWNER"
    status, view = await api.request("POST", "/api/auctions", seller, json=body)
    assert status == 201
    assert view["status"] == "live" and view["reserve_met"] is False
    assert view["type"] == "english" and view["seller_id"] == seller.user_id
    assert "reserve_price" not in view or view["reserve_price"] is None
    status, again = await api.request("POST", "/api/auctions", seller, json=body)
    assert status == 409 and again["error"]["code"] == "ASSET_LISTED"

    fetched = await api.get(view["auction_id"])
    for key in ("auction_id", "asset_id", "seller_id", "type", "status", "price", "leader_id",
                "bid_count", "reserve_met", "starts_at", "ends_at", "winner_id",
                "final_price", "seq"):
        assert key in fetched, key
    status, listing = await api.request("GET", "/api/auctions?status=live")
    assert status == 200
    assert view["auction_id"] in [a["auction_id"] for a in listing["auctions"]]
    status, bad = await api.request("GET", "/api/auctions?status=sleeping")
    assert status == 400 and bad["error"]["code"] == "INVALID"
    status, missing = await api.request("GET", "/api/auctions/a_0000000000000000")
    assert status == 404 and missing["error"]["code"] == "AUCTION_NOT_FOUND"

    status, _denied = await api.request("POST", f"/api/auctions/{view['auction_id']}/cancel",
                                       other)
    assert status == 403
    status, cancelled = await api.request("POST",
                                          f"/api/auctions/{view['auction_id']}/cancel", seller)
    assert status == 200 and cancelled["status"] == "cancelled"
    status, listing = await api.request("GET", "/api/auctions?status=cancelled")
    assert view["auction_id"] in [a["auction_id"] for a in listing["auctions"]]
    # The card can be listed again once the cancellation released it.
    from testkit.client import wait_for

    async def relisted() -> bool:
        status, _ = await api.request("POST", "/api/auctions", seller, json=body)
        return status == 201

    await wait_for(relisted, timeout=3, message="asset released after cancel")


async def test_cancel_after_a_bid_is_refused(ece_hosted):
    api = ece_hosted.api
    seller, bidder = await api.signup("seller"), await api.signup("bidder")
    view = await api.auction(seller)
    ws = await connect(ece_hosted.http, ece_hosted.base, bidder)
    assert (await ws.bid(view["auction_id"], 1000))["op"] == "ack"
    status, body = await api.request("POST", f"/api/auctions/{view['auction_id']}/cancel",
                                     seller)
    assert status == 409 and body["error"]["code"] == "HAS_BIDS"
    await ws.close()


async def test_invalid_auction_specs(ece_hosted):
    api = ece_hosted.api
    seller = await api.signup("seller")
    asset = await api.mint(seller)
    base = {"asset_id": asset["asset_id"], "start_price": 1000, "duration_ms": 60_000}
    for change in ({"start_price": -1}, {"start_price": 10.5}, {"start_price": True},
                   {"start_price": "1000"}, {"start_price": 2**53 + 1}, {"type": "raffle"},
                   {"duration_ms": 0}, {"reserve_price": 10}, {"asset_id": None},
                   {"type": "dutch"}):
        status, body = await api.request("POST", "/api/auctions", seller, json=base | change)
        assert status == 400 and body["error"]["code"] == "INVALID", change
    status, body = await api.request("POST", "/api/auctions", seller,
                                     json=base | {"asset_id": "c_missing0000"})
    assert status == 404


async def test_events_route_and_unknown_route(ece_hosted):
    api = ece_hosted.api
    seller, bidder = await api.signup("seller"), await api.signup("bidder")
    view = await api.auction(seller)
    ws = await connect(ece_hosted.http, ece_hosted.base, bidder)
    await ws.bid(view["auction_id"], 1000, max_amount=9000)
    status, body = await api.request("GET", f"/api/auctions/{view['auction_id']}/events")
    assert status == 200
    assert [e["type"] for e in body["events"]] == ["started", "bid"]
    assert "max_amount" not in body["events"][1]
    status, body = await api.request("GET", "/api/nothing-here")
    assert status == 404 and body["error"]["code"] == "NOT_FOUND"
    await ws.close()


async def test_dutch_price_falls_in_every_read(ece_hosted):
    api = ece_hosted.api
    seller = await api.signup("seller")
    view = await api.auction(seller, type="dutch", start_price=10_000, floor_price=1_000,
                             step=100, step_ms=200)
    from testkit.client import wait_for

    async def fallen_everywhere() -> bool:
        single = await api.get(view["auction_id"])
        _, listing = await api.request("GET", "/api/auctions?status=live")
        listed = next(a for a in listing["auctions"] if a["auction_id"] == view["auction_id"])
        return single["price"] < 10_000 and listed["price"] < 10_000 and (
            listed["min_bid"] == listed["price"])

    await wait_for(fallen_everywhere, timeout=5, message="dutch price falling in reads")
