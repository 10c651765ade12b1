"""Marketplace routes on every store and hosting setting: redeeming a card (its token burned),
the auction list's search, filters and sorting, and owned assets in pages."""

from __future__ import annotations

import pytest

from testkit.client import unique

pytestmark = pytest.mark.asyncio(loop_scope="session")


def card_body(name: str, category: str = "pokemon", **fields) -> dict:
    return {"name": name, "set": "Base Set", "number": "4/102", "year": 1999,
            "category": category, **fields}


async def graded(api, user, card_id: str, grader: str = "PSA", grade: float = 9) -> dict:
    return await api.expect(201, "POST", "/api/assets", user,
                            json={"card_id": card_id, "grader": grader, "grade": grade,
                                  "cert": unique("c").replace("-", "").replace("_", "")[:20]})


async def test_the_owner_redeems_a_card_and_its_token_is_burned(ece):
    api = ece.api
    owner, other = await api.signup("o"), await api.signup("x")
    card = await api.expect(201, "POST", "/api/cards", owner, json=card_body("Redeemable"))
    asset = await graded(api, owner, card["card_id"])
    path = f"/api/assets/{asset['asset_id']}/redeem"

    status, body = await api.request("POST", path, other)
    assert status == 403 and body["error"]["code"] == "NOT_OWNER"
    listed = await graded(api, owner, card["card_id"])
    await api.expect(201, "POST", "/api/auctions", owner,
                     json={"asset_id": listed["asset_id"], "start_price": 100,
                           "duration_ms": 600_000})
    status, body = await api.request("POST", f"/api/assets/{listed['asset_id']}/redeem", owner)
    assert status == 409 and body["error"]["code"] == "ASSET_LISTED"

    redeemed = await api.expect(200, "POST", path, owner)
    assert redeemed["redeemed"] is True and redeemed["owner_id"] == owner.user_id
    assert await api.expect(200, "POST", path, owner) == redeemed  # a retry answers the same
    chain = await api.expect(200, "GET", f"/api/tokens/{asset['token_id']}/provenance")
    assert [r["kind"] for r in chain["records"]] == ["mint", "redeem"]
    checked = await api.expect(200, "GET", f"/api/tokens/{asset['token_id']}/verify")
    assert (checked["ok"], checked["records"], checked["problems"]) == (True, 2, [])
    status, _ = await api.request("GET", "/api/tokens/123/verify")
    assert status == 404
    status, body = await api.request("POST", "/api/auctions", owner,
                                     json={"asset_id": asset["asset_id"], "start_price": 100,
                                           "duration_ms": 600_000})
    assert status == 409 and body["error"]["code"] == "ASSET_REDEEMED"
    status, _ = await api.request("POST", "/api/assets/nope/redeem", owner)
    assert status == 404


async def test_the_live_list_searches_filters_and_sorts(ece):
    api = ece.api
    seller = await api.signup("s")
    tag = unique("zq").lower().replace("-", "").replace("_", "")
    pika = await api.expect(201, "POST", "/api/cards", seller,
                            json=card_body(f"Pikachu {tag}"))
    jordan = await api.expect(201, "POST", "/api/cards", seller,
                              json=card_body(f"Jordan {tag}", "basketball",
                                             player="Michael Jordan"))
    listings = []
    for card, grader, grade, price in ((pika, "PSA", 10, 5_000), (pika, "BGS", 8.5, 900),
                                       (jordan, "PSA", 9, 20_000)):
        asset = await graded(api, seller, card["card_id"], grader, grade)
        listings.append(await api.expect(201, "POST", "/api/auctions", seller, json={
            "asset_id": asset["asset_id"], "start_price": price, "duration_ms": 600_000}))
    ids = [v["auction_id"] for v in listings]

    async def found(query: str) -> list[str]:
        body = await api.expect(200, "GET", f"/api/auctions?status=live&q={tag}&{query}")
        assert body["next_cursor"] is None
        return [v["auction_id"] for v in body["auctions"]]

    assert sorted(await found("")) == sorted(ids)
    assert sorted(await found("category=pokemon")) == sorted(ids[:2])
    assert await found("grader=PSA&sort=price_desc") == [ids[2], ids[0]]
    assert await found("grade_min=9&grade_max=9.5") == [ids[2]]
    assert await found("price_max=1000") == [ids[1]]
    assert await found("sort=price_asc") == [ids[1], ids[0], ids[2]]
    assert await found(f"card_id={pika['card_id']}&sort=price_asc") == [ids[1], ids[0]]
    body = await api.expect(200, "GET", f"/api/auctions?status=live&q=michael+{tag}")
    [view] = body["auctions"]
    assert view["card"]["player"] == "Michael Jordan" and "terms" not in view["card"]
    assert (view["card"]["grader"], view["card"]["grade"]) == ("PSA", 9)
    for bad in ("grader=XYZ", "sort=cheapest", "grade_min=11", "price_min=-1",
                "ending_within=abc", "q=" + "x" * 201, "type=swiss"):
        status, answer = await api.request("GET", f"/api/auctions?status=live&{bad}")
        assert status == 400 and answer["error"]["code"] == "INVALID", bad


async def test_owned_assets_come_in_pages(ece):
    api = ece.api
    owner = await api.signup("o")
    minted = [await api.mint(owner, f"Card {n}") for n in range(5)]
    seen, cursor = [], None
    while True:
        page = await api.expect(200, "GET", "/api/assets?owner=me&limit=2" + (
            f"&cursor={cursor}" if cursor else ""), owner)
        seen += [a["asset_id"] for a in page["assets"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(a["asset_id"] for a in minted)
