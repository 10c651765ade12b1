"""Two offers for the same card, accepted at the same moment through two gateway processes.

Seller S owns card C; buyers B1 and B2 each offer S cash for C (each offer its own thread, so
with ECE_AUCTIONS_PER_ACTOR=1 each is served by a host actor of its own - checked in the
store - and at the default setting both by one host). S then accepts both at once, one accept
through each of two `ece serve` processes sharing one Ray cluster and one store. Exactly one
swap may happen: one offer `settled`, the other `invalidated` or `failed` (or its accept
refused OFFER_NOT_ACTIVE / ASSET_LISTED, and then invalidated by the settled swap); C has one
owner, the winner; the winner's cash moved once (less the offer fee), the loser's never; C's
token chain has exactly one new transfer, naming the winning offer, and still verifies.

Several rounds with fresh cards, on the shared SQLite file and on MongoDB (mongoeco).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path

import aiohttp
import pytest

from storage import open_store
from testkit.client import Api, User, unique, wait_for
from testkit.processes import Managed, ray_address_of
from testkit.provenance import outsider_verifies

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(400)]

ROUNDS = 5
FEE_BPS = 300  # the offer fee, so the seller's side of the cash leg is not the plain price
FINAL = {"settled", "failed", "declined", "cancelled", "expired", "countered", "invalidated"}
REFUSALS = {"OFFER_NOT_ACTIVE", "ASSET_LISTED"}  # how the losing accept may be turned away
SETTLE_WAIT_S = 60  # an offer's end, polled for
RETRIES_503 = 5  # a 503 is transient by the API's contract: retried with the same req_id


def fee(amount: int) -> int:
    return amount * FEE_BPS // 10_000


def mongo_url(uri: str, db_name: str) -> str:
    """The same MongoDB server, a database of its own (as tests/integration/conftest does)."""
    scheme_host, _, rest = uri.partition("://")
    host, _, query = rest.partition("/")
    query = query.split("?", 1)[1] if "?" in query else ""
    return f"{scheme_host}://{host}/{db_name}" + (f"?{query}" if query else "")


@pytest.fixture(params=[("500", "sqlite"), ("1", "sqlite"), ("500", "mongo"), ("1", "mongo")],
                ids=["hosted", "per-offer", "hosted-mongo", "per-offer-mongo"])
def setup(request) -> dict[str, str]:
    """The servers' environment for this run: hosting setting and store."""
    per_actor, store = request.param
    env = {"ECE_AUCTIONS_PER_ACTOR": per_actor, "ECE_OFFER_FEE_BPS": str(FEE_BPS)}
    if store == "mongo":
        env["ECE_MONGODB_URI"] = mongo_url(request.getfixturevalue("mongo_uri"),
                                           unique("ece_race_"))
    return env


class Hosts:
    """Which host serves each offer, read from the store (the API does not show it)."""

    def __init__(self, env: dict[str, str], data_dir: Path) -> None:
        self.mongo = env.get("ECE_MONGODB_URI")
        self.db_path = data_dir / "ece.db"
        self.store = None

    async def __aenter__(self) -> Hosts:
        if self.mongo:
            self.store = open_store(self.mongo)
            await self.store.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.store is not None:
            await self.store.close()

    async def of(self, offer_id: str) -> str | None:
        if self.store is not None:
            record = await self.store.get_offer(offer_id)
            return None if record is None else record.get("host")
        with contextlib.closing(sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True,
                                                timeout=10)) as db:
            row = db.execute("SELECT host FROM offers WHERE offer_id=?", (offer_id,)).fetchone()
        return None if row is None else row[0]


async def make_offer(api: Api, buyer: User, seller: User, asset_id: str, cash: int) -> dict:
    return await api.expect(201, "POST", "/api/offers", buyer, json={
        "to_id": seller.user_id, "give": {"cash": cash}, "want": {"assets": [asset_id]},
        "req_id": unique("race")})


async def accept(api: Api, seller: User, offer_id: str, req_id: str,
                 start: asyncio.Event | None = None) -> tuple[int, dict, int]:
    """(status, body, 503s met) of an accept; a 503 is retried with the same req_id."""
    if start is not None:
        await start.wait()
    unavailable = 0
    while True:
        status, body = await api.request("POST", f"/api/offers/{offer_id}/accept", seller,
                                         json={"req_id": req_id})
        if status != 503 or unavailable >= RETRIES_503:
            return status, body, unavailable
        unavailable += 1
        await asyncio.sleep(0.2 * unavailable)


async def final_offer(api: Api, user: User, offer_id: str) -> dict:
    async def ended() -> dict | None:
        body = await api.expect(200, "GET", f"/api/offers/{offer_id}", user)
        return body if body["status"] in FINAL else None

    return await wait_for(ended, timeout=SETTLE_WAIT_S, interval=0.05,
                          message=f"offer {offer_id} to end")


async def offer_postings(api: Api, user: User) -> list[str]:
    """The refs (offer ids) of the user's `offer` postings, oldest first."""
    body = await api.expect(200, "GET", "/api/wallet?limit=200", user)
    assert body["next_cursor"] is None
    return [p["ref"] for p in reversed(body["postings"]) if p["cause"] == "offer"]


async def owned(api: Api, user: User) -> set[str]:
    body = await api.expect(200, "GET", f"/api/assets?owner={user.user_id}&limit=200")
    return {a["asset_id"] for a in body["assets"]}


async def chain_of(api: Api, asset_id: str) -> tuple[str, list[dict]]:
    token = (await api.expect(200, "GET", f"/api/assets/{asset_id}"))["token_id"]
    return token, (await api.expect(200, "GET", f"/api/tokens/{token}/provenance"))["records"]


async def test_one_card_two_offers_accepted_at_once_through_two_gateways(
        start_server, setup, tmp_path):
    first: Managed = start_server(**setup)
    second: Managed = start_server(**setup, ECE_RAY_ADDRESS=ray_address_of(first))
    per_offer = setup["ECE_AUCTIONS_PER_ACTOR"] == "1"
    story: list[str] = []

    def why(extra: str = "") -> str:
        return "\n".join([extra, *story])

    async with aiohttp.ClientSession() as http, Hosts(setup, tmp_path / "data") as hosts:
        apis = (Api(first.base, http), Api(second.base, http))
        seller = await apis[0].signup("seller", funds=0)
        buyers = (await apis[0].signup("buyer1"), await apis[1].signup("buyer2"))
        everyone = (seller, *buyers)
        key = (await apis[1].expect(200, "GET", "/api/tokens/key"))["public_key"]
        balances = {u.user_id: await apis[0].balance(u) for u in everyone}
        total, fees_paid = sum(balances.values()), 0
        seller_refs: list[str] = []
        buyer_refs: dict[str, list[str]] = {b.user_id: [] for b in buyers}
        wins = [0, 0]  # by which gateway the settled accept came

        for rnd in range(ROUNDS):
            card = (await apis[rnd % 2].mint(seller, f"Race card {rnd}"))["asset_id"]
            token, chain_before = await chain_of(apis[0], card)
            cash = (10_000 + 100 * rnd, 10_500 + 100 * rnd)  # tells the two legs apart
            # Two threads, made at once through the two gateways.
            offers = await asyncio.gather(*(
                make_offer(apis[i], buyers[i], seller, card, cash[i]) for i in (0, 1)))
            ids = [o["offer_id"] for o in offers]
            assert all(o["status"] == "active" for o in offers), why(f"{offers}")
            placed = [await hosts.of(i) for i in ids]
            story.append(f"round {rnd}: offers {ids} on hosts {placed}")
            if per_offer:
                assert None not in placed and placed[0] != placed[1], why(
                    "with ECE_AUCTIONS_PER_ACTOR=1 each offer's thread has a host of its own")

            # S accepts both at the same moment: offer i through gateway (i + rnd) % 2.
            start = asyncio.Event()
            req_ids = [unique(f"acc{rnd}-{i}-") for i in (0, 1)]
            racing = [asyncio.ensure_future(accept(apis[(i + rnd) % 2], seller, ids[i],
                                                   req_ids[i], start)) for i in (0, 1)]
            await asyncio.sleep(0)  # both wait at the start line
            start.set()
            answers = await asyncio.gather(*racing)
            finals = [await final_offer(apis[i], buyers[i], ids[i]) for i in (0, 1)]
            story.append(f"round {rnd}: answers {[(s, b.get('status', b)) for s, b, _ in answers]}"
                         f" finals {[(f['status'], f.get('reason')) for f in finals]}")

            # ---- exactly one settles; the other is invalidated or failed
            statuses = [f["status"] for f in finals]
            assert statuses.count("settled") == 1, why(f"round {rnd}: {finals}")
            w = statuses.index("settled")
            loser = 1 - w
            assert statuses[loser] in ("invalidated", "failed"), why(f"round {rnd}: {finals}")
            wins[(w + rnd) % 2] += 1
            for i, (status, body, _) in enumerate(answers):
                where = f"round {rnd}: accept of offer {i} -> {status} {body}"
                if status == 200:
                    assert body["offer_id"] == ids[i], why(where)
                    # `accepted` only if the swap outlasted the answer's wait: then it ended
                    assert body["status"] in ("accepted", finals[i]["status"]), why(where)
                else:
                    assert i == loser and status == 409, why(where)
                    assert body["error"]["code"] in REFUSALS, why(where)
            # A retry of the winning accept, through the other gateway: the same outcome.
            again = await apis[(w + rnd + 1) % 2].expect(
                200, "POST", f"/api/offers/{ids[w]}/accept", seller, json={"req_id": req_ids[w]})
            assert again == finals[w], why(f"round {rnd}: retried accept {again}")

            # ---- one owner, the winner, the card unlocked
            winner, other = buyers[w], buyers[loser]
            asset = await apis[rnd % 2].expect(200, "GET", f"/api/assets/{card}")
            assert (asset["owner_id"], asset["listed_in"]) == (winner.user_id, None), why(
                f"round {rnd}: {asset}")
            holders = [u.username for u in everyone if card in await owned(apis[0], u)]
            assert holders == [winner.username], why(f"round {rnd}: {card} held by {holders}")

            # ---- the cash moved once: the winner's leg, never the loser's
            balances[winner.user_id] -= cash[w]
            balances[seller.user_id] += cash[w] - fee(cash[w])
            actual = {u.user_id: await apis[(rnd + 1) % 2].balance(u) for u in everyone}
            assert actual == balances, why(f"round {rnd}: balances {actual} != {balances}")
            seller_refs.append(ids[w])
            buyer_refs[winner.user_id].append(ids[w])
            assert await offer_postings(apis[0], seller) == seller_refs, why(f"round {rnd}")
            for b in buyers:
                assert await offer_postings(apis[1], b) == buyer_refs[b.user_id], why(
                    f"round {rnd}: {b.username}'s offer postings")
            fees_paid += fee(cash[w])
            assert sum(actual.values()) + fees_paid == total, why(f"round {rnd}: {actual}")

            # ---- exactly one new transfer on the token, the winning offer's, and it verifies
            _, chain = await chain_of(apis[(rnd + 1) % 2], card)
            assert chain[:len(chain_before)] == chain_before, why(f"round {rnd}: chain rewritten")
            new = chain[len(chain_before):]
            assert [(r["kind"], r["from"], r["to"], r["reason"], r["ref"]) for r in new] == [
                ("transfer", seller.user_id, winner.user_id, "offer", ids[w])], why(
                f"round {rnd}: new records {new}")
            assert not any(r.get("ref") == ids[loser] for r in chain), why(f"round {rnd}")
            assert outsider_verifies(token, chain, key), why(f"round {rnd}: chain does not verify")
            assert other.user_id not in {r.get("to") for r in chain}, why(f"round {rnd}")

        story.append(f"settled accepts by gateway: {wins}")
        print("\n".join(story))  # with -s: where the offers ran and how each race went
    assert second.stop() == 0
    assert first.stop() == 0
