"""A hostile client against the trade-offer API: each attack gets a clear 4xx with a stable
code and changes nothing, races have one winner, money and cards are conserved."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import psutil
import pytest

import gateway.offers as gateway_offers
from gateway.auth import Tokens
from market import ledger
from testkit.client import Api, User, connect, unique, wait_for
from tests.integration.conftest import Ece, gateway_with

pytestmark = pytest.mark.asyncio(loop_scope="session")
HOUR_MS, DAY_MS = 3_600_000, 86_400_000


async def make(api: Api, frm: User, to: User, give: dict | None = None,
               want: dict | None = None, **extra: Any) -> dict:
    return await api.expect(201, "POST", "/api/offers", frm, json={
        "to_id": to.user_id, "give": give or {}, "want": want or {}, "req_id": unique("o"),
        **extra})


async def call(api: Api, user: User | None, path: str, body: Any = None,
               **kwargs: Any) -> tuple[int, Any]:
    """(status, the error code or the body)."""
    if body is not None:
        kwargs["json"] = body
    status, answer = await api.request("POST", path, user, **kwargs)
    if isinstance(answer, dict) and "error" in answer:
        return status, answer["error"]["code"]
    return status, answer


async def act(api: Api, user: User, offer_id: str, action: str, req_id: str | None = None,
              **body: Any) -> tuple[int, Any]:
    return await call(api, user, f"/api/offers/{offer_id}/{action}",
                      {"req_id": req_id or unique(action), **body})


async def view(api: Api, user: User, offer_id: str) -> dict:
    return await api.expect(200, "GET", f"/api/offers/{offer_id}", user)


async def cards(api: Api, user: User, n: int) -> list[str]:
    return [(await api.mint(user, f"card {i}"))["asset_id"] for i in range(n)]


async def snapshot(api: Api, users: list[User], assets: list[str]) -> tuple:
    """What an attack must not change: owners, balances, every offer each user sees."""
    owners = [(await api.expect(200, "GET", f"/api/assets/{a}"))["owner_id"] for a in assets]
    offers = [sorted((o["offer_id"], o["status"], o["seq"]) for o in (await api.expect(
        200, "GET", "/api/offers?limit=200", u))["items"]) for u in users]
    return owners, [await api.balance(u) for u in users], offers


async def chain(api: Api, asset_id: str) -> list[dict]:
    token = (await api.expect(200, "GET", f"/api/assets/{asset_id}"))["token_id"]
    return (await api.expect(200, "GET", f"/api/tokens/{token}/provenance"))["records"]


async def test_malformed_offers_are_refused_and_change_nothing(ece_hosted, monkeypatch):
    api = ece_hosted.api
    alice, bob = await api.signup("alice"), await api.signup("bob")
    a1, b1 = (await cards(api, alice, 1))[0], (await cards(api, bob, 1))[0]
    before = await snapshot(api, [alice, bob], [a1, b1])

    def ok(**kw: Any) -> dict:
        return {"to_id": bob.user_id, "give": {"assets": [a1]}, "req_id": unique("r"), **kw}

    bad = [
        *(ok(give={"assets": [a1], "cash": c}) for c in
          (True, False, 5.0, -1, 2**53 + 1, 10**400, "5", None, {"a": 1}, [1])),
        *(ok(give={"assets": v}) for v in (a1, {a1: 1}, None, [[a1]], [""], [1], [None])),
        ok(give=[a1]), ok(give="x"), ok(give=True), ok(give={"assets": [a1], "x": 1}),
        {**ok(), "to_id": 5}, {**ok(), "to_id": None}, {**ok(), "to_id": "\ud800"},
        {**ok(), "to_id": alice.user_id}, {**ok(), "to_id": "u_nobody"},
        {**ok(), "to_id": "u" * 161},
        {**ok(), "req_id": "r" * 161}, {**ok(), "req_id": 5}, {**ok(), "req_id": ""},
        {**ok(), "req_id": None}, {**ok(), "req_id": "\udc00x"},
        ok(message="m" * 501), ok(message=5), ok(message="a \ud800 b"), ok(message=["x"]),
        ok(unknown=1), ok(extra={"deep": [[[[1]]]]}),
        *(ok(expires_in=v) for v in (3599, 30 * 24 * 3600 + 1, 3600.5, 3600.0, True,
                                     "3600", 2**53, -1, 0)),
        *(ok(expires_at=v) for v in (0, -1, "1", 1.5, 2**53 + 1)),
        ok(expires_in=7200, expires_at=int(time.time() * 1000) + 2 * HOUR_MS),
        ok(give={"assets": [a1], "cash": 5}, want={"cash": 5}),  # cash on both sides
        ok(want={"assets": [a1]}), ok(give={"assets": [a1, a1]}), ok(give={"cash": 5}),
        ok(give={"assets": [f"c_{i}" for i in range(11)]}),
        [1], "x", None, 5,
    ]
    for body in bad:
        assert await call(api, alice, "/api/offers", body) == (400, "INVALID"), body
    huge = [ok(give={"assets": [f"c_{i}" for i in range(10_000)]}), ok(message="m" * 100_000)]
    for body in huge:
        assert await call(api, alice, "/api/offers", body) == (413, "INVALID")
    raw = [b"[" * 50_000 + b"]" * 50_000, b'{"a":' * 5000 + b"1" + b"}" * 5000,
           b'{"give": {"cash": NaN}}', b'{"to_id": "\xff"}', b"", b"{"]
    for data in raw:
        status, code = await call(api, alice, "/api/offers", data=data,
                                  headers={"Content-Type": "application/json"})
        assert status in (400, 413) and code == "INVALID", data[:20]
    assert await call(api, alice, "/api/offers", ok(give={"assets": [b1]})) == (403, "NOT_OWNER")
    assert await call(api, alice, "/api/offers", ok(give={}, want={"assets": [a1]})) == (
        403, "NOT_OWNER")
    assert await call(api, alice, "/api/offers", ok(give={"assets": ["c_0000"]})) == (
        404, "ASSET_NOT_FOUND")
    assert await snapshot(api, [alice, bob], [a1, b1]) == before

    # Expiry bounds, exact to the millisecond by the gateway's clock (frozen here).
    now = int(time.time() * 1000)
    monkeypatch.setattr(gateway_offers, "now_ms", lambda: now)
    body = {"to_id": bob.user_id, "give": {"assets": [a1]}}
    for expiry, accepted in (({"expires_in": 3600}, True), ({"expires_in": 3599}, False),
                             ({"expires_in": 30 * 24 * 3600}, True),
                             ({"expires_in": 30 * 24 * 3600 + 1}, False),
                             ({"expires_at": now + HOUR_MS}, True),
                             ({"expires_at": now + HOUR_MS - 1}, False),
                             ({"expires_at": now + 30 * DAY_MS}, True),
                             ({"expires_at": now + 30 * DAY_MS + 1}, False),
                             ({"expires_in": 3600, "expires_at": now + HOUR_MS}, False)):
        status, made = await call(api, alice, "/api/offers",
                                  {**body, **expiry, "req_id": unique("e")})
        if accepted:
            ahead = expiry.get("expires_at", now + expiry.get("expires_in", 0) * 1000)
            assert status == 201 and made["expires_at"] == ahead, expiry
        else:
            assert (status, made) == (400, "INVALID"), expiry


async def test_strangers_wrong_roles_and_bad_tokens_learn_and_change_nothing(ece_hosted):
    api, http, base = ece_hosted.api, ece_hosted.http, ece_hosted.base
    alice, bob, eve = (await api.signup("alice"), await api.signup("bob"),
                       await api.signup("eve"))
    a1, b1 = (await cards(api, alice, 1))[0], (await cards(api, bob, 1))[0]
    made = await make(api, alice, bob, {"assets": [a1]}, {"assets": [b1]})
    oid, ghost = made["offer_id"], "of_" + "0" * 24
    before = await snapshot(api, [alice, bob, eve], [a1, b1])
    counter = {"give": {"assets": [b1]}, "want": {"assets": [a1]}}
    for target in (oid, ghost):  # a stranger cannot tell an offer from no offer
        got = await api.request("GET", f"/api/offers/{target}", eve)
        assert got == (404, {"error": {"code": "OFFER_NOT_FOUND", "message": "no such offer"}})
        for action, extra in (("accept", {}), ("decline", {}), ("cancel", {}),
                              ("counter", counter)):
            assert await act(api, eve, target, action, **extra) == (404, "OFFER_NOT_FOUND")
    for who, action, extra in ((alice, "accept", {}), (alice, "decline", {}),
                               (alice, "counter", counter), (bob, "cancel", {})):
        assert await act(api, who, oid, action, **extra) == (403, "FORBIDDEN")
    assert await act(api, bob, oid, "accept", give={}) == (400, "INVALID")  # unknown field
    secret = ece_hosted.settings.signing_secret()
    expired = Tokens(secret, ttl_s=60, clock=lambda: time.time() - 3600)
    forged = Tokens("another-secret-of-at-least-thirty-two-bytes", ttl_s=3600)
    for tokens in (expired, forged):
        fake = User(bob.user_id, bob.username, tokens.issue(bob.user_id, bob.username))
        assert await act(api, fake, oid, "accept") == (401, "UNAUTHORIZED")
        assert (await api.request("GET", f"/api/offers/{oid}", fake))[0] == 401
    anonymous, stranger = await connect(http, base), await connect(http, base, eve)
    for op in ("make_offer", "accept_offer", "decline_offer", "cancel_offer", "counter_offer"):
        answer = await anonymous.request({"op": op, "offer_id": oid, "to_id": bob.user_id,
                                          "give": {"assets": [a1]}, "req_id": unique("w")})
        assert answer["code"] == "UNAUTHORIZED", op
    for op in ("accept_offer", "decline_offer", "cancel_offer"):
        for target in (oid, ghost, "x" * 5000):
            answer = await stranger.request({"op": op, "offer_id": target})
            assert answer["code"] == "OFFER_NOT_FOUND", (op, target)
    await anonymous.close()
    await stranger.close()
    assert await snapshot(api, [alice, bob, eve], [a1, b1]) == before


async def test_racing_commands_on_one_offer_have_exactly_one_winner(ece_hosted):
    api = ece_hosted.api
    alice, bob = await api.signup("alice"), await api.signup("bob")
    for race in ("accept", "accept"), ("accept", "decline"), ("accept", "counter"), (
            "counter", "counter"), ("accept", "cancel"), ("decline", "cancel"):
        a1, b1 = (*await cards(api, alice, 1), *await cards(api, bob, 1))
        start = (await snapshot(api, [alice, bob], []))[1]
        oid = (await make(api, alice, bob, {"assets": [a1], "cash": 50},
                          {"assets": [b1]}))["offer_id"]
        terms = {"give": {"assets": [b1]}, "want": {"assets": [a1], "cash": 10}}
        answers = await asyncio.gather(*(
            act(api, alice if x == "cancel" else bob, oid, x, **(terms if x == "counter" else {}))
            for x in race))
        assert sorted(a[0] for a in answers)[0] in (200, 201), (race, answers)
        assert sorted(a[0] for a in answers)[1] == 409, (race, answers)
        assert {a[1] for a in answers if a[0] == 409} <= {"OFFER_NOT_ACTIVE", "LIMIT_EXCEEDED"}
        settled = (await view(api, alice, oid))["status"] == "settled"
        moved = 50 if settled else 0
        owners, balances, _ = await snapshot(api, [alice, bob], [a1, b1])
        assert owners == ([bob.user_id, alice.user_id] if settled
                          else [alice.user_id, bob.user_id])
        assert balances == [start[0] - moved, start[1] + moved], race

    # A req_id belongs to one offer and one action.
    a1, a2 = await cards(api, alice, 2)
    o1 = await make(api, alice, bob, {"assets": [a1]}, req_id="same")
    o2 = await make(api, alice, bob, {"assets": [a2]})
    assert (await act(api, bob, o1["offer_id"], "decline", "R"))[1]["status"] == "declined"
    assert await act(api, bob, o1["offer_id"], "accept", "R") == (409, "OFFER_NOT_ACTIVE")
    assert (await act(api, bob, o2["offer_id"], "accept", "R"))[1]["status"] == "settled"
    again = await call(api, alice, "/api/offers", {"to_id": bob.user_id, "req_id": "same",
                                                   "give": {"assets": [a2]}})
    assert again[0] == 201 and again[1]["offer_id"] == o1["offer_id"]  # the first create

    # A refused counter leaves the offer as it was (it once left it wedged `countered`).
    carol = await api.signup("carol")
    a1, b1, c1 = [(await cards(api, u, 1))[0] for u in (alice, bob, carol)]
    oid = (await make(api, alice, bob, {"assets": [a1]}, {"assets": [b1]}))["offer_id"]
    assert await act(api, bob, oid, "counter", give={"assets": [c1]},
                     want={"assets": [a1]}) == (403, "NOT_OWNER")
    assert (await view(api, alice, oid))["status"] == "active"
    status, cancelled = await act(api, alice, oid, "cancel")
    assert status == 200 and cancelled["status"] == "cancelled"


async def test_a_counter_reusing_a_req_id_of_an_earlier_create(ece_hosted):
    api = ece_hosted.api
    alice, bob = await api.signup("alice"), await api.signup("bob")
    a1, b1, b2 = (*await cards(api, alice, 1), *await cards(api, bob, 2))
    earlier = await make(api, bob, alice, {"assets": [b2]}, {"cash": 100}, req_id="R")
    parent = await make(api, alice, bob, {"assets": [a1]}, {"assets": [b1]})
    status, answer = await act(api, bob, parent["offer_id"], "counter", "R",
                               give={"assets": [b1]}, want={"assets": [a1]})
    assert status == 201 or 400 <= status < 500, (status, answer)  # today: 503
    if status == 201:
        assert answer["offer_id"] != earlier["offer_id"]
    now = await view(api, alice, parent["offer_id"])
    assert now["child_id"] != earlier["offer_id"]
    assert (await act(api, bob, earlier["offer_id"], "cancel"))[0] == 200


async def test_a_flood_of_creates_is_rate_limited_and_memory_stays_flat(ray_cluster, tmp_path):
    async with gateway_with(tmp_path, create_per_min=1, create_burst=3) as ece:
        api = ece.api
        alice, bob = await api.signup("alice", funds=0), await api.signup("bob", funds=0)
        a1 = (await cards(api, alice, 1))[0]
        body = {"to_id": bob.user_id, "give": {"assets": [a1]}}
        made = [await make(api, alice, bob, {"assets": [a1]}, req_id=f"f{i}")
                for i in range(3)]
        async with api.http.post(api.base + "/api/offers", headers=alice.headers,
                                 json={**body, "req_id": "f3"}) as response:
            assert response.status == 429 and int(response.headers["Retry-After"]) >= 1
            assert (await response.json())["error"]["code"] == "RATE_LIMITED"
        again = await call(api, alice, "/api/offers", {**body, "req_id": "f0"})
        assert again[0] == 201 and again[1]["offer_id"] == made[0]["offer_id"]  # a retry
        me = psutil.Process()
        sizes = []
        for flood in range(2):
            answers = await asyncio.gather(*(call(api, alice, "/api/offers", {
                **body, "req_id": f"x{flood}-{i}-" + "q" * 100, "message": "m" * 500})
                for i in range(200)))
            assert {a for a in answers} == {(429, "RATE_LIMITED")}
            sizes.append(me.memory_info().rss)
        assert sizes[-1] - sizes[0] < 30 * 2**20, sizes
        page = await api.expect(200, "GET", "/api/offers?box=out&limit=200", alice)
        assert len(page["items"]) == 3


async def test_limits_and_refused_accepts_keep_offers_as_they_were(ece_hosted):
    api = ece_hosted.api
    alice, bob, carol = (await api.signup("alice"), await api.signup("bob", funds=1_000),
                         await api.signup("carol"))
    a1, a2, a3, a4 = await cards(api, alice, 4)
    poor = await make(api, alice, bob, {"assets": [a1]}, {"cash": 800})
    await api.expect(201, "POST", "/api/wallet/withdrawals", bob,
                     json={"amount": 500, "req_id": unique("w")})
    assert await act(api, bob, poor["offer_id"], "accept") == (409, "INSUFFICIENT_FUNDS")
    listed = await make(api, alice, bob, {"assets": [a2]}, {"cash": 10})
    await api.expect(201, "POST", "/api/auctions", alice,
                     json={"asset_id": a2, "start_price": 100, "duration_ms": 600_000})
    assert await act(api, bob, listed["offer_id"], "accept") == (409, "ASSET_LISTED")
    for made in (poor, listed):
        assert (await view(api, bob, made["offer_id"]))["status"] == "active"
    assert (await snapshot(api, [bob], [a1, a2]))[:2] == ([alice.user_id] * 2, [500])

    given = await make(api, alice, bob, {"assets": [a3]}, {"cash": 10})
    wanted = await make(api, carol, alice, {"cash": 10}, {"assets": [a3]})
    assert (await call(api, alice, f"/api/assets/{a3}/redeem"))[0] == 200
    for made in (given, wanted):
        got = await view(api, alice, made["offer_id"])
        assert (got["status"], got["reason"]) == ("invalidated", "asset_redeemed")
    assert await call(api, alice, "/api/offers", {"to_id": bob.user_id, "req_id": unique("r"),
                                                  "give": {"assets": [a3]}}) == (
        409, "ASSET_REDEEMED")

    # 50 active offers sent, then LIMIT_EXCEEDED (also to a burst of concurrent creates).
    dave = await api.signup("dave")
    d1 = (await cards(api, dave, 1))[0]
    body = {"to_id": bob.user_id, "give": {"assets": [d1]}}
    answers = await asyncio.gather(*(call(api, dave, "/api/offers",
                                          {**body, "req_id": f"n{i}"}) for i in range(60)))
    assert sorted(s for s, _ in answers) == [201] * 50 + [409] * 10
    assert {c for s, c in answers if s == 409} == {"LIMIT_EXCEEDED"}
    page = await api.expect(200, "GET", "/api/offers?box=out&status=active&limit=200", dave)
    assert len(page["items"]) == 50
    assert (await act(api, dave, page["items"][0]["offer_id"], "cancel"))[0] == 200
    assert (await call(api, dave, "/api/offers", {**body, "req_id": "n-last"}))[0] == 201
    assert (await call(api, dave, "/api/offers", {**body, "req_id": "n-more"})) == (
        409, "LIMIT_EXCEEDED")

    many = [await make(api, alice, u, {"assets": [a4]}, {"cash": 5}) for u in (bob, carol)]
    many.append(await make(api, carol, alice, {"cash": 7}, {"assets": [a4]}))
    assert (await act(api, bob, many[0]["offer_id"], "accept"))[1]["status"] == "settled"

    async def others_invalidated() -> bool:
        got = [await view(api, alice, m["offer_id"]) for m in many[1:]]
        return all((g["status"], g["reason"]) == ("invalidated", "asset_traded") for g in got)

    await wait_for(others_invalidated, message="the other offers of a4 invalidated")
    assert await act(api, carol, many[1]["offer_id"], "accept") == (409, "OFFER_NOT_ACTIVE")


async def test_dropped_connections_during_an_accept_swap_once_or_not_at_all(ece_hosted):
    api = ece_hosted.api
    alice, bob = await api.signup("alice"), await api.signup("bob")
    a1, a2, a3 = await cards(api, alice, 3)
    offers = [await make(api, alice, bob, {"assets": [a]}, {"cash": 77}) for a in (a1, a2, a3)]
    start = await api.balance(bob)
    port = int(api.base.rsplit(":", 1)[1])

    async def raw(offer_id: str, body: bytes, cut: int) -> None:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write((f"POST /api/offers/{offer_id}/accept HTTP/1.1\r\nHost: x\r\n"
                      f"Authorization: Bearer {bob.token}\r\nContent-Type: application/json"
                      f"\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body[:cut])
        await writer.drain()
        writer.close()

    body = json.dumps({"req_id": "drop-0"}).encode()
    await raw(offers[0]["offer_id"], body, len(body))  # whole request, then gone
    await raw(offers[1]["offer_id"], body, 5)  # half a body: never a command
    sock = await connect(api.http, api.base, bob)
    await sock.send({"op": "accept_offer", "offer_id": offers[2]["offer_id"], "req_id": "drop-2"})
    await sock.close()
    assert (await view(api, bob, offers[1]["offer_id"]))["status"] == "active"
    for made, req_id in ((offers[0], "drop-0"), (offers[2], "drop-2"), (offers[1], "drop-1")):
        status, answer = await act(api, bob, made["offer_id"], "accept", req_id)
        assert status == 200 and answer["status"] == "settled"
    for asset_id in (a1, a2, a3):
        records = await chain(api, asset_id)
        assert [r["kind"] for r in records] == ["mint", "transfer"]
        assert records[-1]["to"] == bob.user_id
    assert await api.balance(bob) == start - 3 * 77


async def test_a_websocket_offer_answer_names_its_request(ece_hosted):
    api = ece_hosted.api
    alice, bob = await api.signup("alice"), await api.signup("bob")
    a1 = (await cards(api, alice, 1))[0]
    sock = await connect(api.http, api.base, alice)
    req_id = unique("w").ljust(150, "q")
    await sock.send({"op": "make_offer", "to_id": bob.user_id, "give": {"assets": [a1]},
                     "req_id": req_id})
    answer = await sock.expect(lambda m: m.get("op") in ("ack", "error"))
    await sock.close()
    page = await api.expect(200, "GET", "/api/offers?box=out", alice)
    assert answer["req_id"] == req_id or (answer["op"] == "error" and not page["items"])


async def test_a_seller_cannot_preempt_the_second_chance_offer(ece_hosted):
    api = ece_hosted.api
    seller = await api.signup("s", funds=0)
    winner, runner_up = await api.signup("w", funds=1_000), await api.signup("r")
    auction = await api.auction(seller, start_price=100, duration_ms=5_000, soft_close_ms=0)
    auction_id = auction["auction_id"]
    ws_w, ws_r = (await connect(api.http, api.base, winner),
                  await connect(api.http, api.base, runner_up))
    await ws_r.request({"op": "subscribe", "channel": "me"})
    assert (await ws_r.bid(auction_id, 300))["op"] == "ack"
    assert (await ws_w.bid(auction_id, 800))["op"] == "ack"
    await call(api, seller, "/api/offers", {
        "to_id": runner_up.user_id, "give": {"assets": [auction["asset_id"]]},
        "want": {"cash": 90_000}, "req_id": f"second-chance:{auction_id}"})
    await api.expect(201, "POST", "/api/wallet/withdrawals", winner,
                     json={"amount": 1_000, "req_id": unique("w")})
    chance = await ws_r.wait_mine("second_chance", timeout=30, auction_id=auction_id)
    await asyncio.gather(ws_w.close(), ws_r.close())
    made = await view(api, runner_up, chance["offer_id"])
    assert chance["price"] == 300 and made["want"] == {"assets": [], "cash": 300}


async def accept(api: Api, user: User, offer_id: str) -> tuple[int, Any]:
    """Retried (same req_id) on 503, which the protocol calls transient (seen when a
    per-auction host is retired as its thread ends, failing what was sent to it)."""
    req_id = unique("accept")
    for _ in range(5):
        answer = await act(api, user, offer_id, "accept", req_id)
        if answer != (503, "UNAVAILABLE"):
            return answer
    return answer


async def test_a_swap_invalidates_the_other_offers_on_every_host(ray_cluster, tmp_path):
    async with gateway_with(tmp_path, auctions_per_actor=1) as ece:
        api = ece.api
        alice, *others = [await api.signup(f"u{i}-") for i in range(4)]
        a1 = (await cards(api, alice, 1))[0]
        many = [await make(api, alice, u, {"assets": [a1]}, {"cash": 5}) for u in others]
        assert (await act(api, others[0], many[0]["offer_id"], "accept"))[1]["status"] == (
            "settled")

        async def invalidated() -> bool:
            got = [await view(api, alice, m["offer_id"]) for m in many[1:]]
            return all(g["status"] == "invalidated" for g in got)

        await wait_for(invalidated, timeout=4, message="the other offers of a1 invalidated")


async def test_money_and_cards_are_conserved_through_conflicting_accepts(ece: Ece):
    api = ece.api
    users = [await api.signup(f"m{i}-", funds=10_000) for i in range(4)]
    deposits, withdrawn = 4 * 10_000, 0
    u0, u1, u2, u3 = users
    owned = {u.user_id: await cards(api, u, 2) for u in users}
    c0, c1, c3 = owned[u0.user_id], owned[u1.user_id], owned[u3.user_id]
    plan = [  # (maker, taker, give, want)
        (u0, u1, {"assets": [c0[0]], "cash": 3_000}, {"assets": [c1[0]]}),
        (u0, u3, {"assets": [c0[0], c0[1]]}, {"cash": 100}),  # c0[0] twice
        (u1, u2, {"assets": [c1[1]]}, {"cash": 9_000}),  # u2 can pay only one of these
        (u3, u2, {"assets": [c3[0]]}, {"cash": 9_000}),
        (u3, u0, {"cash": 9_500}, {"assets": [c0[1]]}),  # u3 also withdraws
    ]
    offers = [await make(api, m, t, g, w) for m, t, g, w in plan]
    withdrawal = api.request("POST", "/api/wallet/withdrawals", u3,
                             json={"amount": 600, "req_id": unique("w")})
    answers = await asyncio.gather(withdrawal, *(
        accept(api, t, o["offer_id"]) for (_, t, _, _), o in zip(plan, offers, strict=True)))
    withdrawn += 600 if answers[0][0] == 201 else 0
    for status, answer in answers[1:]:
        assert status == 200 or (status, answer) in (
            (409, "INSUFFICIENT_FUNDS"), (409, "ASSET_LISTED"), (409, "OFFER_NOT_ACTIVE"))
    expected = {u.user_id: 10_000 - (withdrawn if u == u3 else 0) for u in users}
    settled, fee_bps = set(), ece.settings.offer_fee_bps
    for (maker, taker, give, want), made in zip(plan, offers, strict=True):
        if (await view(api, maker, made["offer_id"]))["status"] != "settled":
            continue
        settled.add(made["offer_id"])
        cash, payer, payee = ((give["cash"], maker, taker) if give.get("cash")
                              else (want.get("cash", 0), taker, maker))
        expected[payer.user_id] -= cash
        expected[payee.user_id] += cash - ledger.fee(cash, fee_bps)
    assert settled, "no offer settled at all"
    balances = {u.user_id: await api.balance(u) for u in users}
    fees = (await ece.gateway.store.get_account(ledger.FEES))["balance"]
    assert balances == expected and min(balances.values()) >= 0
    assert sum(balances.values()) + fees == deposits - withdrawn
    for owner, assets in owned.items():
        for asset_id in assets:
            records = await chain(api, asset_id)
            transfers = [r for r in records if r["kind"] == "transfer"]
            refs = [r["ref"] for r in transfers]
            assert len(refs) == len(set(refs)) and set(refs) <= settled, records
            holder = owner
            for r in transfers:
                assert r["from"] == holder
                holder = r["to"]
            assert (await snapshot(api, [], [asset_id]))[0] == [holder]

