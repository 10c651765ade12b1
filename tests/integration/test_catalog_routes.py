"""The card catalog and graded copies over REST, on every store and hosting setting: search
with pagination, the population of a card, graded mints with their refusals."""

from __future__ import annotations

import pytest

from market.provenance import token_id_for
from testkit.client import unique

pytestmark = pytest.mark.asyncio(loop_scope="session")


def card_body(name: str, **fields) -> dict:
    return {"name": name, "set": "Base Set", "number": "4/102", "year": 1999,
            "category": "pokemon", **fields}


async def test_cards_are_created_searched_and_paged(ece):
    api = ece.api
    admin = await api.signup("cat")
    tag = unique("zq").lower()  # a word no other test's card has
    created = [await api.expect(201, "POST", "/api/cards", admin,
                                json=card_body(f"Charizard {tag} {i:02d}", player=None))
               for i in range(7)]
    assert all(c["card_id"].startswith("card_") for c in created)
    assert created[0]["name"] == f"Charizard {tag} 00" and created[0]["year"] == 1999

    # Every page is in name order and the cursor walks all of them exactly once.
    seen: list[str] = []
    cursor = None
    while True:
        query = f"/api/cards?q=char+{tag.upper()}&limit=3" + (f"&cursor={cursor}" if cursor else "")
        page = await api.expect(200, "GET", query)
        seen += [c["card_id"] for c in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [c["card_id"] for c in created]
    assert (await api.expect(200, "GET", f"/api/cards?q={tag}&category=magic"))["items"] == []
    assert len((await api.expect(200, "GET",
                                 f"/api/cards?q={tag}&set=Base+Set"))["items"]) == 7


async def test_graded_copies_count_in_the_population_and_certs_are_unique(ece):
    api = ece.api
    owner = await api.signup("own")
    card = await api.expect(201, "POST", "/api/cards", owner,
                            json=card_body(unique("Blastoise"), variant="Holo"))
    cert = unique("9").replace("_", "")[-12:]
    psa10 = await api.expect(201, "POST", "/api/assets", owner,
                             json={"card_id": card["card_id"], "grader": "PSA", "grade": 10,
                                   "cert": cert})
    assert (psa10["grader"], psa10["grade"], psa10["cert"]) == ("PSA", 10, cert.upper())
    assert psa10["token_id"] == token_id_for(psa10["asset_id"]) and psa10["owner_id"] == (
        owner.user_id)
    # The same certificate number is another grader's business, not PSA's.
    await api.expect(201, "POST", "/api/assets", owner,
                     json={"card_id": card["card_id"], "grader": "BGS", "grade": 9.5,
                           "cert": cert})
    await api.expect(201, "POST", "/api/assets", owner,
                     json={"card_id": card["card_id"], "grader": "RAW"})
    status, body = await api.request("POST", "/api/assets", owner,
                                     json={"card_id": card["card_id"], "grader": "PSA",
                                           "grade": 9, "cert": cert})
    assert status == 409 and body["error"]["code"] == "CERT_EXISTS"

    got = await api.expect(200, "GET", f"/api/cards/{card['card_id']}")
    population = {(row["grader"], row["grade"]): row["count"] for row in got["population"]}
    assert population == {("PSA", 10): 1, ("BGS", 9.5): 1, ("RAW", None): 1}
    mine = await api.expect(200, "GET", "/api/assets?owner=me", owner)
    assert sorted(a["grader"] for a in mine["assets"]) == ["BGS", "PSA", "RAW"]


async def test_catalog_refusals(ece_hosted):
    api = ece_hosted.api
    user = await api.signup("bad")
    card = await api.expect(201, "POST", "/api/cards", user, json=card_body(unique("Venusaur")))
    for body in (card_body("X", year=1700), card_body("X", category="stamps"),
                 card_body("X", card_id="card_mine"), card_body("X", secret=1), {},
                 card_body("", set="Base Set")):
        status, answer = await api.request("POST", "/api/cards", user, json=body)
        assert status == 400 and answer["error"]["code"] == "INVALID", body
    status, _ = await api.request("POST", "/api/cards", json=card_body("Anon"))
    assert status == 401
    for body in ({"card_id": card["card_id"], "grader": "PSA", "grade": 10.2, "cert": "1"},
                 {"card_id": card["card_id"], "grader": "PSA", "grade": True, "cert": "1"},
                 {"card_id": card["card_id"], "grader": "PSA", "grade": 9, "cert": 123},
                 {"card_id": card["card_id"], "grader": "PSA", "grade": 9},
                 {"card_id": card["card_id"], "grader": "RAW", "grade": 9},
                 {"card_id": card["card_id"], "grader": "XYZ", "grade": 9, "cert": "1"},
                 {"card_id": card["card_id"], "grader": "PSA", "grade": 9, "cert": "1",
                  "title": "smuggled"}):
        status, answer = await api.request("POST", "/api/assets", user, json=body)
        assert status == 400 and answer["error"]["code"] == "INVALID", body
    # A card outside the catalog cannot claim a grader's certificate or a token of its own.
    titled = await api.expect(201, "POST", "/api/assets", user,
                              json={"title": "Mine", "grader": "PSA", "cert": "77",
                                    "token_id": "1", "grade": "PSA 10 (my words)"})
    assert "grader" not in titled and "cert" not in titled and "card_id" not in titled
    assert titled["token_id"] == token_id_for(titled["asset_id"])
    assert titled["grade"] == "PSA 10 (my words)"
    for card_id in ("card_nope", "../../etc", "x" * 65):
        status, answer = await api.request("POST", "/api/assets", user,
                                           json={"card_id": card_id, "grader": "RAW"})
        assert status == 404 and answer["error"]["code"] == "CARD_NOT_FOUND", card_id
    for card_id in ("card_nope", "x" * 65, "a%20b"):
        status, answer = await api.request("GET", f"/api/cards/{card_id}")
        assert status == 404 and answer["error"]["code"] == "CARD_NOT_FOUND", card_id
    for query in ("q=" + "a" * 201, "q=" + "+".join("abcdefghi"), "limit=0", "limit=201",
                  "limit=-1", "category=stamps", "cursor=%%%", "cursor=bm90IGpzb24",
                  "cursor=WzEsMl0"):
        status, answer = await api.request("GET", f"/api/cards?{query}")
        assert status == 400 and answer["error"]["code"] == "INVALID", query
    # Punctuation separates words and is never a wildcard: a query of nothing else is an
    # empty query, and one inside a word only splits it.
    everything = await api.expect(200, "GET", "/api/cards?limit=5")
    for query in ("%25", "_", ".*", "%5C", "%25%25_"):
        assert await api.expect(200, "GET", f"/api/cards?q={query}&limit=5") == everything
    name = card["name"]
    split = await api.expect(200, "GET", f"/api/cards?q={name[:4]}%25{name[4:]}")
    assert card["card_id"] not in [c["card_id"] for c in split["items"]]
