"""Money over REST and the WebSocket, on every store and hosting setting: deposits and
withdrawals (idempotent, never below zero), the buying-power check on bids, and a sale
that moves price + premium from the winner and price - fee to the seller."""

from __future__ import annotations

import pytest

from testkit.client import connect, unique, wait_for

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_deposits_and_withdrawals_are_idempotent_and_never_overdraw(ece):
    api = ece.api
    user = await api.signup("w", funds=0)
    wallet = await api.expect(200, "GET", "/api/wallet", user)
    assert (wallet["balance"], wallet["available"], wallet["postings"]) == (0, 0, [])

    first = await api.deposit(user, 5_000, req_id="d-1")
    assert (first["amount"], first["balance"]) == (5_000, 5_000)
    assert await api.deposit(user, 5_000, req_id="d-1") == first  # a retry: the same body
    status, reused = await api.request("POST", "/api/wallet/deposits", user,
                                       json={"amount": 999, "req_id": "d-1"})
    assert status == 400 and "another amount" in reused["error"]["message"]
    assert await api.balance(user) == 5_000

    body = {"amount": 7_000, "req_id": "w-1"}
    status, refused = await api.request("POST", "/api/wallet/withdrawals", user, json=body)
    assert status == 409 and refused["error"]["code"] == "INSUFFICIENT_FUNDS"
    assert (refused["error"]["available"], refused["error"]["required"]) == (5_000, 7_000)
    assert await api.balance(user) == 5_000  # nothing moved

    out = await api.expect(201, "POST", "/api/wallet/withdrawals", user,
                           json={"amount": 1_500, "req_id": "w-2"})
    assert (out["amount"], out["balance"]) == (1_500, 3_500)
    again = await api.expect(201, "POST", "/api/wallet/withdrawals", user,
                             json={"amount": 1_500, "req_id": "w-2"})
    assert again == out and await api.balance(user) == 3_500

    for bad in ({"amount": 0, "req_id": "x"}, {"amount": -5, "req_id": "x"},
                {"amount": 1.5, "req_id": "x"}, {"amount": True, "req_id": "x"},
                {"amount": 2**53 + 1, "req_id": "x"}, {"amount": 10**10 + 1, "req_id": "x"},
                {"amount": 5}, {"amount": 5, "req_id": ""},
                {"amount": 5, "req_id": "r" * 161}):
        status, answer = await api.request("POST", "/api/wallet/deposits", user, json=bad)
        assert status == 400 and answer["error"]["code"] == "INVALID", bad
    status, _ = await api.request("POST", "/api/wallet/deposits", json={"amount": 5,
                                                                        "req_id": "x"})
    assert status == 401
    assert await api.balance(user) == 3_500


async def test_postings_page_newest_first(ece):
    api = ece.api
    user = await api.signup("p", funds=0)
    for n in range(5):
        await api.deposit(user, 100 + n, req_id=f"p{n}")
    seen, cursor = [], None
    while True:
        page = await api.expect(200, "GET", "/api/wallet?limit=2" + (
            f"&cursor={cursor}" if cursor else ""), user)
        seen += page["postings"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [p["amount"] for p in seen] == [104, 103, 102, 101, 100]
    assert [p["ref"] for p in seen] == ["p4", "p3", "p2", "p1", "p0"]
    assert [p["balance"] for p in seen] == [510, 406, 303, 201, 100]
    assert {p["cause"] for p in seen} == {"deposit"}
    status, _ = await api.request("GET", "/api/wallet?cursor=abc", user)
    assert status == 400


async def test_a_bid_beyond_buying_power_is_refused_until_funded(ece):
    api = ece.api
    seller = await api.signup("s")
    bidder = await api.signup("b", funds=0)
    view = await api.auction(seller, start_price=1_000)
    ws = await connect(ece.http, ece.base, bidder)
    refused = await ws.bid(view["auction_id"], 1_000, max_amount=3_000)
    assert (refused["op"], refused["code"]) == ("error", "INSUFFICIENT_FUNDS")
    assert (refused["available"], refused["required"]) == (0, 3_000)
    assert (await api.get(view["auction_id"]))["bid_count"] == 0  # the host never saw it

    await api.deposit(bidder, 2_000)
    refused = await ws.bid(view["auction_id"], 1_000, max_amount=3_000)
    assert refused.get("code") == "INSUFFICIENT_FUNDS" and refused["available"] == 2_000
    accepted = await ws.bid(view["auction_id"], 1_000, max_amount=2_000)
    assert accepted["op"] == "ack" and accepted["leader_id"] == bidder.user_id
    await ws.close()


async def test_the_premium_counts_and_a_sale_moves_money_and_card(ray_cluster, tmp_path):
    from tests.integration.conftest import gateway_with

    async with gateway_with(tmp_path, buyer_premium_bps=1_000, seller_fee_bps=500) as ece:
        api = ece.api
        seller, buyer = await api.signup("s", funds=0), await api.signup("b", funds=0)
        await api.deposit(buyer, 1_100)
        view = await api.auction(seller, start_price=1_000, duration_ms=5_000,
                                 soft_close_ms=0)
        ws = await connect(ece.http, ece.base, buyer)
        refused = await ws.bid(view["auction_id"], 1_001)  # 1001 + 100 premium > 1100
        assert refused.get("code") == "INSUFFICIENT_FUNDS" and refused["required"] == 1_101
        ack = await ws.bid(view["auction_id"], 1_000)
        assert ack["op"] == "ack"

        async def sold():
            trades = (await api.expect(200, "GET", f"/api/trades?asset_id={view['asset_id']}"))
            return trades["trades"] or None

        [trade] = await wait_for(sold, timeout=30, message="sale settled")
        assert (trade["price"], trade["premium"], trade["seller_fee"]) == (1_000, 100, 50)
        assert await api.balance(buyer) == 0
        assert await api.balance(seller) == 950
        asset = await api.expect(200, "GET", f"/api/assets/{view['asset_id']}")
        assert asset["owner_id"] == buyer.user_id
        await ws.close()


async def test_deposits_can_be_for_admins_only(ray_cluster, tmp_path):
    from tests.integration.conftest import gateway_with

    async with gateway_with(tmp_path, deposits="admin") as ece:
        user = await ece.api.signup(unique("u"), funds=0)
        status, body = await ece.api.request("POST", "/api/wallet/deposits", user,
                                             json={"amount": 100, "req_id": "x"})
        assert status == 403 and body["error"]["code"] == "FORBIDDEN"
        assert await ece.api.balance(user) == 0
