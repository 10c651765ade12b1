"""Analytics end to end on a real server and its analytics actor: a sale settled on the
exchange reaches the card's history, values, the market tape and the `card:` and `market`
channels; the routes refuse malformed queries."""

from __future__ import annotations

import pytest

from testkit.client import Api, User, connect, unique, wait_for
from tests.integration.conftest import gateway_with

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def graded_copy(api: Api, owner: User, name: str) -> tuple[str, str]:
    card = await api.expect(201, "POST", "/api/cards", owner,
                            json={"name": name, "set": "Base Set", "number": "4/102",
                                  "year": 1999, "category": "pokemon"})
    cert = unique("c").replace("_", "")[-12:]
    asset = await api.expect(201, "POST", "/api/assets", owner,
                             json={"card_id": card["card_id"], "grader": "PSA", "grade": 9,
                                   "cert": cert})
    return card["card_id"], asset["asset_id"]


async def sell_by_offer(api: Api, seller: User, buyer: User, asset_id: str,
                        price: int) -> dict:
    made = await api.expect(201, "POST", "/api/offers", buyer,
                            json={"to_id": seller.user_id, "give": {"cash": price},
                                  "want": {"assets": [asset_id]}, "req_id": unique("o")})
    await api.expect(200, "POST", f"/api/offers/{made['offer_id']}/accept", seller,
                     json={"req_id": unique("a")})
    return made


@pytest.mark.parametrize("store", ["sqlite", "mongo"])
async def test_a_sale_reaches_history_values_tape_and_channels(ray_cluster, tmp_path, request,
                                                                store):
    overrides = {}
    if store == "mongo":
        from tests.integration.conftest import _mongo_url

        overrides["mongodb_uri"] = _mongo_url(request.getfixturevalue("mongo_uri"),
                                              unique("ece_an"))
    async with gateway_with(tmp_path, analytics=True, **overrides) as ece:
        api = ece.api
        seller, buyer, watcher = (await api.signup("sel"), await api.signup("buy"),
                                  await api.signup("w"))
        card_id, asset_id = await graded_copy(api, seller, unique("Charizard"))
        sock = await connect(api.http, api.base, watcher)
        await sock.request({"op": "subscribe", "channel": f"card:{card_id}",
                            "req_id": unique("s")})
        await sock.request({"op": "subscribe", "channel": "market", "req_id": unique("s")})

        made = await sell_by_offer(api, seller, buyer, asset_id, 12_345)

        history_path = f"/api/cards/{card_id}/history?grader=PSA&grade=9"

        async def sold() -> dict | None:
            # The sales list and the candles are saved by the prices projection's fold and
            # its save: wait for both (a page between them shows the sale without a candle).
            page = await api.expect(200, "GET", history_path)
            return page if page["sales"] and page["candles"] else None

        page = await wait_for(sold, timeout=30, message="the sale in the card's history")
        assert page["sales"] == [{"price": 12_345, "at": page["sales"][0]["at"],
                                  "source": "offer", "suspect": False, "reason": None,
                                  "ref": made["offer_id"]}]
        [candle] = page["candles"]
        assert (candle["open"], candle["close"], candle["volume"], candle["count"]) == (
            12_345, 12_345, 12_345, 1)
        values = await api.expect(200, "GET", f"/api/cards/{card_id}/values")
        [row] = values["values"]
        assert (row["grader"], row["grade"], row["value"], row["count"]) == ("PSA", 9, 12_345, 1)

        async def valued() -> dict | None:
            found = await api.expect(200, "GET", f"/api/cards/{card_id}/value?grader=PSA&grade=9")
            return found if found["value"] else None

        valuation = await wait_for(valued, timeout=30, message="the sale in the card's value")
        assert valuation["value"]["point"] == 12_345 and valuation["value"]["n"] == 1
        assert valuation["value"]["method"] == "sales"
        assert valuation["value"]["low"] <= 12_345 <= valuation["value"]["high"]
        [used] = valuation["sales"]
        assert used["price"] == 12_345 and used["adjusted"] == round(12_345 * used["factor"])
        other = await api.expect(200, "GET", f"/api/cards/{card_id}/value?grader=BGS&grade=9")
        assert other["value"] is None  # no sale of that grader: no value, never 0

        sale = await sock.expect(lambda m: m.get("channel") == f"card:{card_id}"
                                 and m.get("type") == "sale", timeout=30)
        assert sale["sale"]["price"] == 12_345 and sale["sale"]["card_id"] == card_id
        live_candle = await sock.expect(lambda m: m.get("type") == "candle", timeout=30)
        assert live_candle["candle"]["close"] == 12_345 and live_candle["interval"] in (
            "1d", "1w")
        ticker = await sock.expect(lambda m: m.get("channel") == "market"
                                   and m.get("type") == "sale", timeout=30)
        assert ticker["sale"]["card_id"] == card_id

        async def on_tape() -> bool:
            tape = await api.expect(200, "GET", "/api/market/sales?limit=5")
            return any(s["card_id"] == card_id for s in tape["sales"])

        await wait_for(on_tape, timeout=30, message="the sale on the market tape")
        market = await api.expect(200, "GET", "/api/analytics/market")
        assert market["sales_total"] >= 1
        health = await api.expect(200, "GET", "/healthz")
        assert set(health["analytics"]) == {"prices.0", "market", "valuations", "behaviour.0",
                                             "portfolio.0"}
        await sock.close()


@pytest.mark.parametrize("path", [
    "/api/cards/nope!/history?grader=PSA&grade=9",
    "/api/cards/card_x/history?grader=XYZ&grade=9",
    "/api/cards/card_x/history?grader=PSA&grade=11",
    "/api/cards/card_x/history?grader=PSA&grade=9&interval=1h",
    "/api/cards/card_x/history?grader=PSA&grade=9&from=-1",
    "/api/cards/card_x/history?grader=PSA&grade=9&from=10&to=5",
    "/api/cards/card_x/history?grader=PSA&grade=9&limit=100000",
    "/api/cards/card_x/history?grader=PSA&grade=9&cursor=x",
    "/api/cards/card_x/value?grader=PSA&grade=11",
    "/api/cards/card_x/value?grader=RAW&grade=9",
    "/api/cards/card_x/value?grader=PSA&grade=nan",
    "/api/market/index?segment=category:nope",
    "/api/market/index?segment=planet:mars",
    "/api/market/index?interval=1d",
    "/api/market/movers?window=1y",
    "/api/market/movers?limit=0",
    "/api/market/sales?limit=9999999999999999999999",
])
async def test_malformed_queries_are_400(ece_hosted, path):
    status, answer = await ece_hosted.api.request("GET", path)
    assert status == 400 and answer["error"]["code"] == "INVALID", (path, answer)


async def test_unknown_card_is_404_and_my_behaviour_needs_a_token(ece_hosted):
    api = ece_hosted.api
    status, answer = await api.request("GET", "/api/cards/card_none/history?grader=RAW")
    assert (status, answer["error"]["code"]) == (404, "CARD_NOT_FOUND")
    status, answer = await api.request("GET", "/api/cards/card_none/value?grader=PSA&grade=9")
    assert (status, answer["error"]["code"]) == (404, "CARD_NOT_FOUND")
    status, answer = await api.request("GET", "/api/market/index?segment=set:Nowhere")
    assert (status, answer["error"]["code"]) == (404, "INDEX_NOT_FOUND")
    status, _ = await api.request("GET", "/api/analytics/me")
    assert status == 401


async def test_channel_names_are_checked_and_bounded_per_socket(ece_hosted):
    api = ece_hosted.api
    sock = await connect(api.http, api.base)
    bad = await sock.request({"op": "subscribe", "channel": "card:../etc", "req_id": "b"})
    assert bad["op"] == "error" and bad["code"] == "INVALID"
    for i in range(20):
        ok = await sock.request({"op": "subscribe", "channel": f"card:c{i}", "req_id": f"s{i}"})
        assert ok["op"] == "ack"
    over = await sock.request({"op": "subscribe", "channel": "card:c99", "req_id": "s99"})
    assert over["op"] == "error" and over["code"] == "OVERLOADED"
    again = await sock.request({"op": "subscribe", "channel": "card:c0", "req_id": "s0b"})
    assert again["op"] == "ack"  # one already followed is no new channel
    await sock.close()
