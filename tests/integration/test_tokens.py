"""Tokens over REST on every store and hosting setting: ERC-721 metadata and image, and a
provenance chain that an outsider verifies with the published public key only — from the
mint through an auction's sale — and that catches a record edited behind the server's back."""

from __future__ import annotations

import asyncio
import json
import sqlite3

import pytest

from gateway.verify import verify_token
from testkit.client import connect, unique, wait_for
from testkit.provenance import outsider_verifies

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def graded_card(api, user, name: str | None = None) -> dict:
    card = await api.expect(201, "POST", "/api/cards", user, json={
        "name": name or unique("Mewtwo"), "set": "Base Set", "number": "10/102", "year": 1999,
        "category": "pokemon", "character": "Mewtwo"})
    return await api.expect(201, "POST", "/api/assets", user, json={
        "card_id": card["card_id"], "grader": "PSA", "grade": 9,
        "cert": str(abs(hash(unique("c"))))[:12]})


async def test_a_sold_tokens_chain_verifies_with_the_public_key_only(ece):
    api = ece.api
    seller, buyer = await api.signup("tok-s"), await api.signup("tok-b")
    asset = await graded_card(api, seller)
    token_id = asset["token_id"]
    key = (await api.expect(200, "GET", "/api/tokens/key"))["public_key"]
    assert (await api.expect(200, "GET", "/api/tokens/key"))["alg"] == "Ed25519"

    meta = await api.expect(200, "GET", f"/api/tokens/{token_id}")
    traits = {a["trait_type"]: a["value"] for a in meta["attributes"]}
    assert traits["Grader"] == "PSA" and traits["Grade"] == 9 and traits["Set"] == "Base Set"
    assert meta["image"].endswith(f"/api/tokens/{token_id}/image.svg")

    chain = await api.expect(200, "GET", f"/api/tokens/{token_id}/provenance")
    assert [r["kind"] for r in chain["records"]] == ["mint"]
    assert chain["records"][0]["to"] == seller.user_id

    listed = await api.expect(201, "POST", "/api/auctions", seller, json={
        "asset_id": asset["asset_id"], "start_price": 1000, "buy_now_price": 5000,
        "duration_ms": 600_000})
    ws = await connect(api.http, api.base, buyer)
    ack = await ws.bid(listed["auction_id"], 5000)
    assert ack["op"] == "ack"
    await ws.close()

    async def sold() -> list[dict] | None:
        records = (await api.expect(200, "GET", f"/api/tokens/{token_id}/provenance"))["records"]
        return records if len(records) == 2 else None

    records = await wait_for(sold, timeout=30, message="the sale's transfer record")
    transfer = records[1]
    assert (transfer["kind"], transfer["from"], transfer["to"], transfer["reason"],
            transfer["ref"], transfer["price"]) == (
        "transfer", seller.user_id, buyer.user_id, "auction", listed["auction_id"], 5000)
    assert outsider_verifies(token_id, records, key)
    assert await asyncio.to_thread(verify_token, api.base, token_id) == 0
    owned = await api.expect(200, "GET", f"/api/assets/{asset['asset_id']}")
    assert owned["owner_id"] == buyer.user_id


async def test_an_edited_record_is_caught(ece_hosted, capsys):
    api = ece_hosted.api
    owner = await api.signup("tamper")
    asset = await graded_card(api, owner)
    token_id = asset["token_id"]
    assert await asyncio.to_thread(verify_token, api.base, token_id) == 0

    # Someone with access to the database changes who the card was minted to.
    path = ece_hosted.settings.store_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as db:
        (text,) = db.execute("SELECT record FROM provenance WHERE token_id=? AND seq=1",
                             (token_id,)).fetchone()
        record = json.loads(text)
        record["to"] = "u_thief"
        db.execute("UPDATE provenance SET record=? WHERE token_id=? AND seq=1",
                   (json.dumps(record), token_id))
    capsys.readouterr()
    assert await asyncio.to_thread(verify_token, api.base, token_id) == 1
    assert "hash" in capsys.readouterr().out
    chain = await api.expect(200, "GET", f"/api/tokens/{token_id}/provenance")
    key = (await api.expect(200, "GET", "/api/tokens/key"))["public_key"]
    assert not outsider_verifies(token_id, chain["records"], key)
    checked = await api.expect(200, "GET", f"/api/tokens/{token_id}/verify")
    assert checked["ok"] is False and {p["kind"] for p in checked["problems"]} >= {"hash"}


async def test_token_refusals_and_a_safe_image(ece_hosted):
    api = ece_hosted.api
    user = await api.signup("svg")
    asset = await graded_card(api, user, name="<script>alert(1)</script> & co")
    status, svg = await api.request("GET", f"/api/tokens/{asset['token_id']}/image.svg")
    assert status == 200 and svg.startswith("<svg") and "<script>" not in svg
    assert "&lt;script&gt;" in svg
    for token_id in ("1", "0", "-5", "x" * 80, str(2**256), "00" + asset["token_id"]):
        for suffix in ("", "/provenance", "/image.svg"):
            status, body = await api.request("GET", f"/api/tokens/{token_id}{suffix}")
            assert status == 404 and body["error"]["code"] == "TOKEN_NOT_FOUND", (token_id,
                                                                                  suffix)
    assert await asyncio.to_thread(verify_token, api.base, "123") == 2
    assert await asyncio.to_thread(verify_token, "file:///etc/passwd", "123") == 2
