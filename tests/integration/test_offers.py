"""Trade offers end to end, on every store and hosting setting: an offer, a counter, an
accept that swaps cards and cash atomically; refusals; invalidation when an asset moves."""

from __future__ import annotations

import pytest

from testkit.client import Api, User, connect, unique, wait_for
from testkit.provenance import outsider_verifies

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def offer(api: Api, user: User, to: User, give: dict | None = None,
                want: dict | None = None, status: int = 201, **extra: object) -> dict:
    body = {"to_id": to.user_id, "give": give or {}, "want": want or {},
            "req_id": unique("o"), **extra}
    return await api.expect(status, "POST", "/api/offers", user, json=body)


async def act(api: Api, user: User, offer_id: str, action: str, status: int = 200,
              req_id: str | None = None, **body: object) -> dict:
    return await api.expect(status, "POST", f"/api/offers/{offer_id}/{action}", user,
                            json={"req_id": req_id or unique(action), **body})


async def refused(api: Api, user: User | None, path: str, body: dict | None = None) -> tuple:
    status, answer = await api.request("POST", path, user, json=body or {})
    if isinstance(answer, dict) and "error" in answer:
        return status, answer["error"]["code"]
    return status, answer


async def owner_of(api: Api, asset_id: str) -> str:
    return (await api.expect(200, "GET", f"/api/assets/{asset_id}"))["owner_id"]


async def test_offer_counter_accept_swaps_cards_and_cash_at_once(ece):
    api = ece.api
    alice, bob = await api.signup("alice"), await api.signup("bob")
    a1 = (await api.mint(alice, "Charizard PSA 9"))["asset_id"]
    b1 = (await api.mint(bob, "Charizard PSA 10"))["asset_id"]
    start_a, start_b = await api.balance(alice), await api.balance(bob)
    sock_a, sock_b = await connect(api.http, api.base, alice), await connect(api.http,
                                                                            api.base, bob)
    for sock in (sock_a, sock_b):
        await sock.request({"op": "subscribe", "channel": "me", "req_id": unique("s")})

    first = await offer(api, alice, bob, give={"assets": [a1], "cash": 20_000},
                        want={"assets": [b1]}, message="my 9 and $200 for your 10")
    assert first["status"] == "active" and first["seq"] == 1
    assert first["give"] == {"assets": [a1], "cash": 20_000}
    assert first["want"] == {"assets": [b1], "cash": 0}
    assert (first["from_name"], first["to_name"]) == (alice.username, bob.username)
    received = await sock_b.wait_mine("offer_received")
    assert received["offer"]["offer_id"] == first["offer_id"]
    assert received["offer"]["from_name"] == alice.username

    # Bob counters from his side: his 10 for her 9 and $300.
    counter = await act(api, bob, first["offer_id"], "counter", status=201, req_id="c-1",
                        give={"assets": [b1]}, want={"assets": [a1], "cash": 30_000})
    assert (counter["from_id"], counter["to_id"]) == (bob.user_id, alice.user_id)
    assert counter["parent_id"] == first["offer_id"] and counter["status"] == "active"
    again = await act(api, bob, first["offer_id"], "counter", status=201, req_id="c-1",
                      give={"assets": [b1]}, want={"assets": [a1], "cash": 30_000})
    assert again["offer_id"] == counter["offer_id"]  # a retry: the same counter
    parent = await api.expect(200, "GET", f"/api/offers/{first['offer_id']}", alice)
    assert parent["status"] == "countered" and parent["child_id"] == counter["offer_id"]

    settled = await act(api, alice, counter["offer_id"], "accept", req_id="acc-1")
    assert settled["status"] == "settled", settled
    assert await act(api, alice, counter["offer_id"], "accept", req_id="acc-1") == settled
    assert await owner_of(api, a1) == bob.user_id
    assert await owner_of(api, b1) == alice.user_id
    assert await api.balance(alice) == start_a - 30_000
    assert await api.balance(bob) == start_b + 30_000  # ECE_OFFER_FEE_BPS defaults to 0

    for sock in (sock_a, sock_b):
        update = await sock.wait_mine("offer_updated", status="settled")
        assert update["offer"]["offer_id"] == counter["offer_id"]
        moved = await sock.wait_mine("transfer_in")
        assert moved["ref"] == counter["offer_id"]
    for asset_id, owner in ((a1, bob), (b1, alice)):
        token = (await api.expect(200, "GET", f"/api/assets/{asset_id}"))["token_id"]
        chain = await api.expect(200, "GET", f"/api/tokens/{token}/provenance")
        last = chain["records"][-1]
        assert (last["kind"], last["to"], last["reason"], last["ref"]) == (
            "transfer", owner.user_id, "offer", counter["offer_id"])
        key = (await api.expect(200, "GET", "/api/tokens/key"))["public_key"]
        assert outsider_verifies(token, chain["records"], key)
    inbox = await api.expect(200, "GET", "/api/offers?box=in", alice)
    assert [o["offer_id"] for o in inbox["items"]] == [counter["offer_id"]]
    await sock_a.close()
    await sock_b.close()


async def test_refusals_change_nothing(ece):
    api = ece.api
    alice, bob, eve = (await api.signup("alice"), await api.signup("bob"),
                       await api.signup("eve"))
    a1 = (await api.mint(alice))["asset_id"]
    b1 = (await api.mint(bob))["asset_id"]
    bad_bodies = [
        {"to_id": alice.user_id, "give": {"assets": [a1]}},  # to yourself
        {"to_id": bob.user_id, "give": {"cash": 5}},  # no asset anywhere
        {"to_id": bob.user_id, "give": {"assets": [a1], "cash": 5}, "want": {"cash": 5}},
        {"to_id": bob.user_id, "give": {"assets": [a1]}, "want": {"assets": [a1]}},
        {"to_id": bob.user_id, "give": {"assets": [a1, a1]}},
        {"to_id": bob.user_id, "give": {"assets": [a1], "cash": -1}},
        {"to_id": bob.user_id, "give": {"assets": [a1], "cash": 1.5}},
        {"to_id": bob.user_id, "give": {"assets": [a1]}, "expires_in": 60},
        {"to_id": bob.user_id, "give": {"assets": [f"x{i}" for i in range(11)]}},
        {"to_id": "u_nobody", "give": {"assets": [a1]}},
        {"to_id": bob.user_id, "give": {"assets": [a1]}, "extra": {"deep": [[[1]]]}},
    ]
    for body in bad_bodies:
        status, code = await refused(api, alice, "/api/offers", {**body, "req_id": unique("r")})
        assert (status, code) == (400, "INVALID"), body
    status, code = await refused(api, alice, "/api/offers",
                                 {"to_id": bob.user_id, "give": {"assets": [b1]},
                                  "req_id": unique("r")})
    assert (status, code) == (403, "NOT_OWNER")
    status, code = await refused(api, alice, "/api/offers",
                                 {"to_id": bob.user_id, "give": {"assets": [a1]}})
    assert (status, code) == (400, "INVALID")  # no req_id

    made = await offer(api, alice, bob, give={"assets": [a1]}, want={"assets": [b1]})
    path = f"/api/offers/{made['offer_id']}"
    status, _ = await api.request("GET", path, eve)
    assert status == 404
    assert await refused(api, eve, path + "/accept", {"req_id": "x"}) == (404, "OFFER_NOT_FOUND")
    assert await refused(api, alice, path + "/accept", {"req_id": "x"}) == (403, "FORBIDDEN")
    assert await refused(api, bob, path + "/cancel", {"req_id": "x"}) == (403, "FORBIDDEN")
    assert (await refused(api, None, path + "/accept", {"req_id": "x"}))[0] == 401
    assert (await refused(api, bob, path + "/explode", {"req_id": "x"}))[0] == 404

    counter = await act(api, bob, made["offer_id"], "counter", status=201,
                        give={"assets": [b1]}, want={"assets": [a1], "cash": 100})
    assert await refused(api, bob, path + "/counter", {
        "req_id": unique("c"), "give": {"assets": [b1]}, "want": {"assets": [a1]}}) == (
        409, "LIMIT_EXCEEDED")
    declined = await act(api, alice, counter["offer_id"], "decline", req_id="d-1")
    assert declined["status"] == "declined"
    assert await act(api, alice, counter["offer_id"], "decline", req_id="d-1") == declined
    assert await refused(api, alice, f"/api/offers/{counter['offer_id']}/accept",
                         {"req_id": "late"}) == (409, "OFFER_NOT_ACTIVE")
    assert await owner_of(api, a1) == alice.user_id and await owner_of(api, b1) == bob.user_id


async def test_an_asset_that_moves_invalidates_every_other_offer_naming_it(ece):
    api = ece.api
    alice, bob, carol = (await api.signup("alice"), await api.signup("bob"),
                         await api.signup("carol"))
    a1 = (await api.mint(alice))["asset_id"]
    a2 = (await api.mint(alice))["asset_id"]
    to_bob = await offer(api, alice, bob, give={"assets": [a1]}, want={"cash": 1_000})
    to_carol = await offer(api, alice, carol, give={"assets": [a1, a2]}, want={"cash": 5_000})
    from_carol = await offer(api, carol, alice, give={"cash": 700}, want={"assets": [a2]})

    assert (await act(api, bob, to_bob["offer_id"], "accept"))["status"] == "settled"
    # The invalidation follows the swap's commit (it is not part of the accept's answer).
    async def invalidated() -> dict | None:
        got = await api.expect(200, "GET", f"/api/offers/{to_carol['offer_id']}", carol)
        return got if got["status"] == "invalidated" else None

    got = await wait_for(invalidated, message="the other offer on a1 invalidated")
    assert got["reason"] == "asset_traded"
    # The offer on a2 alone is untouched, and can still be accepted.
    still = await api.expect(200, "GET", f"/api/offers/{from_carol['offer_id']}", alice)
    assert still["status"] == "active"

    # A listed card cannot be taken: the accept is refused and the offer stays active.
    listed = await api.expect(201, "POST", "/api/auctions", alice,
                              json={"asset_id": a2, "start_price": 100,
                                    "duration_ms": 600_000})
    assert await refused(api, alice, f"/api/offers/{from_carol['offer_id']}/accept",
                         {"req_id": "x"}) == (409, "ASSET_LISTED")
    still = await api.expect(200, "GET", f"/api/offers/{from_carol['offer_id']}", alice)
    assert still["status"] == "active" and listed["asset_id"] == a2


async def test_a_failed_payment_gives_the_runner_up_a_second_chance_offer(ece):
    api = ece.api
    seller = await api.signup("s", funds=0)
    winner, runner_up = await api.signup("w", funds=1_000), await api.signup("r", funds=1_000)
    view = await api.auction(seller, "Gold Card", start_price=100, duration_ms=5_000,
                             soft_close_ms=0)
    auction_id, asset_id = view["auction_id"], view["asset_id"]
    ws_w, ws_r = await connect(api.http, api.base, winner), await connect(api.http, api.base,
                                                                         runner_up)
    await ws_r.request({"op": "subscribe", "channel": "me"})
    assert (await ws_r.bid(auction_id, 300))["op"] == "ack"
    assert (await ws_w.bid(auction_id, 800))["op"] == "ack"
    # The winner spends the money before the close: the sale cannot be paid.
    await api.expect(201, "POST", "/api/wallet/withdrawals", winner,
                     json={"amount": 1_000, "req_id": "gone"})

    chance = await ws_r.wait_mine("second_chance", timeout=30, auction_id=auction_id)
    offer_id = chance["offer_id"]
    assert offer_id and chance["price"] == 300
    made = await api.expect(200, "GET", f"/api/offers/{offer_id}", runner_up)
    assert (made["from_id"], made["to_id"], made["status"]) == (
        seller.user_id, runner_up.user_id, "active")
    assert made["give"] == {"assets": [asset_id], "cash": 0}
    assert made["want"] == {"assets": [], "cash": 300}
    assert made["expires_at"] == chance["expires_at"]

    settled = await act(api, runner_up, offer_id, "accept")
    assert settled["status"] == "settled"
    assert await owner_of(api, asset_id) == runner_up.user_id
    assert await api.balance(runner_up) == 700 and await api.balance(seller) == 300
    for ws in (ws_w, ws_r):
        await ws.close()
