"""What a hostile client tries against the gateway: each answered with a 4xx, nothing kept."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest
import websocket

from gateway.auth import Tokens
from testkit.client import PASSWORD, User, connect, unique, wait_for
from tests.integration.conftest import Ece, gateway_with

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def _quiet(ece: Ece) -> bool:
    """No subscribe of this gateway is still being answered."""
    return not ece.gateway.hub._tasks


# ---- bounded memory ------------------------------------------------------------------------


async def test_subscribes_finishing_after_the_socket_closed_leave_nothing(ece_hosted):
    api = ece_hosted.api
    seller = await api.signup("seller")
    auction_ids = [(await api.auction(seller))["auction_id"] for _ in range(3)]
    hub = ece_hosted.gateway.hub
    url = ece_hosted.base.replace("http", "ws", 1) + "/ws"
    for _ in range(20):
        # Anonymous: a few hundred subscribes, then the socket is dropped before they answer.
        ws = await ece_hosted.http.ws_connect(url)
        for i in range(200):
            await ws.send_json({"op": "subscribe", "auction_id": auction_ids[i % 3]})
        await ws.close()
    # Subscribe then unsubscribe at once: the subscribe finishes after the unsubscribe.
    ws = await ece_hosted.http.ws_connect(url)
    for auction_id in auction_ids:
        await ws.send_json({"op": "subscribe", "auction_id": auction_id})
        await ws.send_json({"op": "unsubscribe", "auction_id": auction_id})
    await ws.send_json({"op": "ping", "req_id": "p"})
    while (await ws.receive_json(timeout=10)).get("op") != "pong":
        pass
    await wait_for(lambda: _quiet(ece_hosted), timeout=20, message="subscribes answered")
    assert hub.registered() == 0
    assert hub.subs == {} and hub.host_of == {}
    assert all(not auctions for auctions in hub.host_auctions.values())
    await ws.close()


def _burst(url: str, frames: list[dict]) -> list[dict]:
    """Send every frame in one TCP write (so the server reads them all at once); answers."""
    ws = websocket.create_connection(url, timeout=10)
    try:
        ws.sock.sendall(b"".join(
            websocket.ABNF.create_frame(json.dumps(f), websocket.ABNF.OPCODE_TEXT).format()
            for f in frames))
        return [json.loads(ws.recv()) for _ in frames]
    finally:
        ws.close()


async def test_subscribes_in_flight_per_socket_are_capped(ece_hosted):
    """A burst of subscribes is not queued without bound (each costs store reads): past the
    per-socket cap they are refused OVERLOADED at once, and retrying later works."""
    seller = await ece_hosted.api.signup("seller")
    auction_id = (await ece_hosted.api.auction(seller))["auction_id"]
    url = ece_hosted.base.replace("http", "ws", 1) + "/ws"
    frames = [{"op": "subscribe", "auction_id": auction_id, "req_id": i} for i in range(100)]
    answers = await asyncio.to_thread(_burst, url, frames)
    codes = [a.get("code", a["op"]) for a in answers]
    assert codes.count("OVERLOADED") >= 1, codes
    # Each is answered: a snapshot, a refusal, or (overtaken by a later subscribe of the
    # same auction) an ack that says it is not the subscription that stands.
    assert set(codes) <= {"snapshot", "OVERLOADED", "ack"}
    assert all(a.get("subscribed") is False for a in answers if a["op"] == "ack")
    assert {a["req_id"] for a in answers} == set(range(100))
    await wait_for(lambda: _quiet(ece_hosted), message="subscribes answered")
    assert ece_hosted.gateway.hub.registered() == 0


async def test_subscriptions_per_socket_are_capped(ray_cluster, tmp_path):
    async with gateway_with(tmp_path, max_subscriptions=3) as ece:
        seller = await ece.api.signup("seller")
        ids = [(await ece.api.auction(seller))["auction_id"] for _ in range(4)]
        sock = await connect(ece.http, ece.base)
        for auction_id in ids[:3]:
            assert (await sock.request({"op": "subscribe", "auction_id": auction_id}))[
                "op"] == "snapshot"
        refused = await sock.request({"op": "subscribe", "auction_id": ids[3]})
        assert refused["code"] == "LIMIT_EXCEEDED"
        # Subscribing again to one it holds is not a new one; freeing one makes room.
        assert (await sock.request({"op": "subscribe", "auction_id": ids[0]}))["op"] == "snapshot"
        await sock.request({"op": "unsubscribe", "auction_id": ids[1]})
        assert (await sock.request({"op": "subscribe", "auction_id": ids[3]}))["op"] == "snapshot"
        await sock.close()


async def test_connections_per_address_and_per_user_are_capped(ray_cluster, tmp_path):
    async with gateway_with(tmp_path, max_conn_per_ip=3, max_conn_per_user=2) as ece:
        user = await ece.api.signup("many")
        mine = [await connect(ece.http, ece.base, user) for _ in range(2)]
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await connect(ece.http, ece.base, user)
        assert refused.value.status == 409
        anonymous = await connect(ece.http, ece.base)
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await connect(ece.http, ece.base)
        assert refused.value.status == 409
        # A closed socket frees its place.
        await mine[0].close()

        async def reconnects():
            try:
                return await connect(ece.http, ece.base, user)
            except aiohttp.WSServerHandshakeError:
                return None

        again = await wait_for(reconnects, timeout=10, message="a freed place")
        for sock in (mine[1], anonymous, again):
            await sock.close()
        gateway = ece.gateway
        await wait_for(lambda: len(gateway.conns_by_ip) == 0, message="counters released")
        assert len(gateway.conns_by_user) == 0


async def test_frames_are_rate_limited_before_they_are_decoded(ray_cluster, tmp_path):
    async with gateway_with(tmp_path, frame_rate=0.1, frame_burst=5) as ece:
        sock = await connect(ece.http, ece.base)
        for _ in range(30):
            await sock.ws.send_str("{not json")
        await wait_for(lambda: len(sock.messages) == 30, message="30 answers")
        codes = [m["code"] for m in sock.messages]
        assert codes.count("INVALID") <= 5
        assert codes.count("RATE_LIMITED") >= 25
        await sock.close()


# ---- authentication ------------------------------------------------------------------------


async def test_sign_in_is_throttled_per_username_and_per_address(ray_cluster, tmp_path):
    async with gateway_with(tmp_path, auth_user_burst=3, auth_user_per_min=1,
                            auth_ip_burst=8, auth_ip_per_min=1) as ece:
        api = ece.api
        victim = await api.signup("victim")
        statuses = []
        for _ in range(5):
            statuses.append((await api.request("POST", "/api/sessions", json={
                "username": victim.username, "password": "wrong-password-1"}))[0])
        assert statuses[:3] == [401, 401, 401] and statuses[3:] == [429, 429]
        async with ece.http.post(ece.base + "/api/sessions", json={
                "username": victim.username, "password": PASSWORD}) as response:
            assert response.status == 429  # even the right password waits: no oracle
            assert int(response.headers["Retry-After"]) >= 1
            assert (await response.json())["error"]["code"] == "RATE_LIMITED"
        # Other usernames from the same address: the per-address bucket (8) runs out too.
        others = [(await api.request("POST", "/api/sessions", json={
            "username": f"nobody{i}", "password": "wrong-password-1"}))[0] for i in range(6)]
        assert 429 in others
        status, body = await api.request("POST", "/api/users", json={
            "username": unique("late"), "password": "a-fine-password-9"})
        assert status == 429 and body["error"]["code"] == "RATE_LIMITED"


async def test_websocket_stays_responsive_during_a_sign_in_flood(ece_hosted):
    api = ece_hosted.api
    user = await api.signup("flood")
    sock = await connect(ece_hosted.http, ece_hosted.base)
    flood = [asyncio.create_task(api.request("POST", "/api/sessions", json={
        "username": user.username, "password": f"wrong-password-{i}"})) for i in range(40)]
    rtts = []
    while not all(task.done() for task in flood):
        started = time.monotonic()
        await sock.request({"op": "ping"})
        rtts.append(time.monotonic() - started)
    await asyncio.gather(*flood)
    assert len(rtts) >= 2, "the flood ended before a ping could be measured"
    assert max(rtts) < 3.0, rtts  # argon2 runs on its own small pool, never on the loop
    await sock.close()


@pytest.mark.parametrize(("username", "password", "why"), [
    ("shorty", "nine-char", "too short"),
    ("commoner", "password123", "common"),
    ("commoner", "qwertyuiop", "common"),
    ("selfish_name", "selfish_name-2024", "contains the username"),
    ("alice\n", "a-fine-password-9", "trailing newline"),
    ("ali ce", "a-fine-password-9", "space"),
])
async def test_weak_passwords_and_bad_usernames_are_refused(ece_hosted, username, password, why):
    status, body = await ece_hosted.api.request("POST", "/api/users", json={
        "username": username, "password": password})
    assert status == 400 and body["error"]["code"] == "INVALID", why


async def test_a_failed_auth_clears_the_sockets_identity(ece_hosted):
    api = ece_hosted.api
    seller, bidder = await api.signup("seller"), await api.signup("bidder")
    view = await api.auction(seller)
    sock = await connect(ece_hosted.http, ece_hosted.base, bidder)
    assert (await sock.bid(view["auction_id"], 1000))["op"] == "ack"
    failed = await sock.request({"op": "auth", "token": "not-a-token"})
    assert failed["code"] == "UNAUTHORIZED"
    refused = await sock.bid(view["auction_id"], 5000)
    assert refused["code"] == "UNAUTHORIZED"
    assert (await api.get(view["auction_id"]))["bid_count"] == 1
    await sock.close()


async def test_a_socket_whose_token_expired_is_anonymous(ece_hosted):
    api = ece_hosted.api
    seller, bidder = await api.signup("seller"), await api.signup("bidder")
    view = await api.auction(seller)
    short = Tokens(ece_hosted.settings.signing_secret(), ttl_s=2)
    user = User(bidder.user_id, bidder.username, short.issue(bidder.user_id, bidder.username))
    sock = await connect(ece_hosted.http, ece_hosted.base, user)
    assert (await sock.bid(view["auction_id"], 1000))["op"] == "ack"
    amounts = iter(range(2000, 10**6, 1000))

    async def refused() -> bool:
        answer = await sock.bid(view["auction_id"], next(amounts))
        return answer.get("code") == "UNAUTHORIZED"

    await wait_for(refused, timeout=15, interval=0.2, message="the expired token refused")
    await sock.close()


async def test_admins_are_user_ids_not_usernames(ray_cluster, tmp_path):
    async with gateway_with(tmp_path, mint="admin", admins=("root",)) as ece:
        api = ece.api
        status, body = await api.request("POST", "/api/users", json={
            "username": "root", "password": "a-fine-password-9"})
        assert status == 201
        squatter = User(body["user_id"], "root", body["token"])
        status, body = await api.request("POST", "/api/assets", squatter, json={"title": "x"})
        assert status == 403 and body["error"]["code"] == "FORBIDDEN"
    async with gateway_with(tmp_path, mint="admin") as ece:
        admin = await ece.api.signup("admin")
        object.__setattr__(ece.gateway.settings, "admins", (admin.user_id,))
        assert (await ece.api.request("POST", "/api/assets", admin,
                                      json={"title": "x"}))[0] == 201


# ---- quotas and bad input ------------------------------------------------------------------


async def test_minting_and_listing_have_per_user_quotas(ray_cluster, tmp_path):
    async with gateway_with(tmp_path, create_burst=3, create_per_min=1) as ece:
        api = ece.api
        user, other = await api.signup("minter"), await api.signup("other")
        codes = [(await api.request("POST", "/api/assets", user, json={"title": f"c{i}"}))[0]
                 for i in range(4)]
        assert codes == [201, 201, 201, 429]
        assert (await api.request("POST", "/api/assets", other, json={"title": "o"}))[0] == 201
        _, assets = await api.request("GET", "/api/assets", user)
        assert len(assets["assets"]) == 3
        listed = []
        for asset in assets["assets"]:
            async with ece.http.post(ece.base + "/api/auctions", headers=user.headers, json={
                    "asset_id": asset["asset_id"], "start_price": 100,
                    "duration_ms": 600_000}) as response:
                listed.append(response.status)
        assert listed == [201, 201, 201]
        extra = (await api.request("POST", "/api/assets", other, json={"title": "o2"}))[1]
        for _ in range(3):
            await api.request("POST", "/api/auctions", other, json={
                "asset_id": extra["asset_id"], "start_price": 100, "duration_ms": 600_000,
                "reserve_price": 1})  # refused INVALID: costs no listing
        async with ece.http.post(ece.base + "/api/auctions", headers=other.headers, json={
                "asset_id": extra["asset_id"], "start_price": 100,
                "duration_ms": 600_000}) as response:
            assert response.status == 201


async def test_starts_at_more_than_thirty_days_ahead_is_refused(ece_hosted):
    api = ece_hosted.api
    seller = await api.signup("seller")
    asset = await api.mint(seller)
    far = int(time.time() * 1000) + 31 * 86_400_000
    status, body = await api.request("POST", "/api/auctions", seller, json={
        "asset_id": asset["asset_id"], "start_price": 100, "starts_at": far,
        "duration_ms": 60_000})
    assert status == 400 and body["error"]["code"] == "INVALID"
    assert (await api.request("GET", f"/api/assets/{asset['asset_id']}"))[1]["listed_in"] is None


@pytest.mark.parametrize("query", [
    "limit=-1", "limit=0", "limit=501", "limit=-99999999999999999999", "limit=1e3",
    "limit=%EF%BC%91", "status=bogus",
])
async def test_bad_list_queries_are_400(ece_hosted, query):
    status, body = await ece_hosted.api.request("GET", f"/api/auctions?{query}")
    assert status == 400 and body["error"]["code"] == "INVALID"


async def test_bad_event_queries_are_400(ece_hosted):
    seller = await ece_hosted.api.signup("seller")
    auction_id = (await ece_hosted.api.auction(seller))["auction_id"]
    for query in ("since=99999999999999999999", "since=-1", "limit=0", "limit=1001"):
        status, body = await ece_hosted.api.request(
            "GET", f"/api/auctions/{auction_id}/events?{query}")
        assert status == 400 and body["error"]["code"] == "INVALID", query


@pytest.mark.parametrize(("body", "content_type"), [
    ('{"title": "x"}', "application/json; charset=bogus"),
    ('{"title": "x", "grade": NaN}', "application/json"),
    ('{"title": "x", "grade": Infinity}', "application/json"),
    ("[" * 20_000 + "]" * 20_000, "application/json"),
    ('{"title": "x", "m": ' + "[" * 40 + "]" * 40 + "}", "application/json"),
    (b'{"title": "\xff"}', "application/json"),
])
async def test_malformed_bodies_are_400_and_store_nothing(ece_hosted, body, content_type):
    user = await ece_hosted.api.signup("minter")
    status, answer = await ece_hosted.api.request(
        "POST", "/api/assets", user, data=body, headers={"Content-Type": content_type})
    assert status == 400 and answer["error"]["code"] == "INVALID"
    assert (await ece_hosted.api.request("GET", "/api/assets", user))[1]["assets"] == []


async def test_a_full_length_req_id_is_accepted(ece_hosted):
    api = ece_hosted.api
    seller, bidder = await api.signup("seller"), await api.signup("bidder")
    view = await api.auction(seller)
    sock = await connect(ece_hosted.http, ece_hosted.base, bidder)
    answer = await sock.bid(view["auction_id"], 1000, req_id="r" * 128)
    assert answer["op"] == "ack", answer
    again = await sock.bid(view["auction_id"], 1000, req_id="r" * 128)
    assert again["seq"] == answer["seq"]
    # One character more is not a valid req_id: refused, and the refusal cannot echo it.
    await sock.send({"op": "bid", "auction_id": view["auction_id"], "amount": 1000,
                     "req_id": "r" * 129})
    refused = await sock.expect(lambda m: m.get("op") == "error" and "req_id" not in m)
    assert refused["code"] == "INVALID"
    await sock.close()


# ---- clocks and shutdown -------------------------------------------------------------------


async def test_a_live_dutch_price_comes_from_the_hosts_clock(ece_hosted, monkeypatch):
    api = ece_hosted.api
    seller = await api.signup("seller")
    view = await api.auction(seller, type="dutch", start_price=10_000, floor_price=1_000,
                             step=100, step_ms=60_000)
    # This gateway's clock runs an hour fast; the host's does not, and it judges the bids.
    fast = int(time.time() * 1000) + 3_600_000
    monkeypatch.setattr("gateway.views.now_ms", lambda: fast)
    shown = await api.get(view["auction_id"])
    assert shown["price"] >= 9_800, shown
    _, listing = await api.request("GET", "/api/auctions?status=live&limit=500")
    mine = next(a for a in listing["auctions"] if a["auction_id"] == view["auction_id"])
    assert mine["price"] >= 9_800


async def test_a_request_during_shutdown_is_not_a_500(ray_cluster, tmp_path):
    async with gateway_with(tmp_path) as ece:
        api = ece.api
        user = await api.signup("late")
        # The shutdown's first step (sockets closed, not ready) has run; handlers still
        # being served must find the store open.
        await ece.runner.app.shutdown()
        status, body = await api.request("GET", "/api/assets", user)
        assert status == 200, body
        status, body = await api.request("GET", "/healthz")
        assert status == 503 and body["error"]["code"] == "UNAVAILABLE"


async def test_listing_beyond_the_host_cap_is_overloaded_and_keeps_nothing(ray_cluster,
                                                                            tmp_path):
    async with gateway_with(tmp_path, auctions_per_actor=1, max_hosts=1) as ece:
        api = ece.api
        seller = await api.signup("seller")
        await api.auction(seller)
        asset = await api.mint(seller)
        status, body = await api.request("POST", "/api/auctions", seller, json={
            "asset_id": asset["asset_id"], "start_price": 100, "duration_ms": 600_000})
        assert status == 503 and body["error"]["code"] == "OVERLOADED"
        assert (await api.request("GET", f"/api/assets/{asset['asset_id']}"))[1][
            "listed_in"] is None
