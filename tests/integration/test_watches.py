"""Watches end to end on a real server and its analytics actor: signed-in users who subscribe
to an auction's live channel are recorded as its watchers (once, only while it is open, never
for made-up auctions), and once it closes the behaviour analytics count the auctions each
watched against those they bid on. `/metrics` counts the watch writes by outcome."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from testkit.client import connect, unique, wait_for
from tests.integration.conftest import gateway_with

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.mark.parametrize("store", ["sqlite", "mongo"])
async def test_watchers_and_bidders_reach_my_behaviour(ray_cluster, tmp_path, request, store):
    overrides = {}
    if store == "mongo":
        from tests.integration.conftest import _mongo_url

        overrides["mongodb_uri"] = _mongo_url(request.getfixturevalue("mongo_uri"),
                                              unique("ece_w"))
    async with gateway_with(tmp_path, analytics=True, **overrides) as ece:
        api, gateway = ece.api, ece.gateway
        seller, bidder, watcher, late = [await api.signup(p)
                                         for p in ("sel", "bid", "watch", "late")]
        # Long enough for the subscribes and the bid to land before the end on a loaded
        # machine.
        auction = await api.auction(seller, start_price=500, duration_ms=8_000,
                                    soft_close_ms=0)
        auction_id = auction["auction_id"]
        socks = {u.user_id: await connect(ece.http, ece.base, u)
                 for u in (seller, bidder, watcher)}
        anonymous = await connect(ece.http, ece.base)
        for sock in (*socks.values(), anonymous):
            answer = await sock.request({"op": "subscribe", "auction_id": auction_id})
            assert answer["op"] == "snapshot", answer
        # Watched again (another socket of the same user): still one watch, the first.
        again = await connect(ece.http, ece.base, watcher)
        await again.request({"op": "subscribe", "auction_id": auction_id})
        # A client naming auctions that do not exist stores nothing.
        hostile = socks[watcher.user_id]
        for n in range(40):
            answer = await hostile.request({"op": "subscribe", "auction_id": f"a_nope{n}"})
            assert (answer["op"], answer.get("code")) == ("error", "AUCTION_NOT_FOUND"), answer
        ack = await socks[bidder.user_id].bid(auction_id, 500)
        assert ack["op"] == "ack", ack

        async def watchers() -> list[tuple[str, int]]:
            return await gateway.store.auction_watchers(auction_id)

        expected = {seller.user_id, bidder.user_id, watcher.user_id}
        found = await wait_for(lambda: _when(watchers(), lambda w: {u for u, _ in w} == expected),
                               timeout=15, message="the three watches stored")
        assert len(found) == 3  # the anonymous socket is nobody; the second one no new watch
        # The second socket's watch was answered as a repeat: nothing dropped, nothing failed.
        await wait_for(lambda: _when(watch_writes(api), lambda w: w["unchanged"] == 1),
                       timeout=15, message="the repeat counted")
        assert await watch_writes(api) == {"stored": 3, "unchanged": 1, "dropped": 0,
                                           "failed": 0}
        for n in range(40):
            assert await gateway.store.auction_watchers(f"a_nope{n}") == []

        closed = await socks[bidder.user_id].wait_event(auction_id, "closed", timeout=20)
        assert closed["winner_id"] == bidder.user_id
        # Subscribing after the close is no watch.
        late_sock = await connect(ece.http, ece.base, late)
        assert (await late_sock.request({"op": "subscribe", "auction_id": auction_id}))[
            "op"] == "snapshot"
        assert await gateway.store.record_watch(late.user_id, auction_id, closed["at"]) is False
        await wait_for(lambda: _when(watch_writes(api), lambda w: w["unchanged"] == 2),
                       timeout=15, message="the late watch counted (the store refused it)")

        async def behaviour_of(user) -> dict | None:
            mine = await api.expect(200, "GET", "/api/analytics/me", user)
            return mine if mine["auctions_watched"] or mine["auctions_bid"] else None

        mine = await wait_for(lambda: behaviour_of(watcher), timeout=30,
                              message="the watcher's behaviour")
        assert (mine["auctions_watched"], mine["watched_and_bid"], mine["auctions_bid"],
                mine["bids"], mine["watched_bid_share"]) == (1, 0, 0, 0, 0.0), mine
        theirs = await wait_for(lambda: behaviour_of(bidder), timeout=30,
                                message="the bidder's behaviour")
        assert (theirs["auctions_watched"], theirs["watched_and_bid"], theirs["auctions_bid"],
                theirs["watched_bid_share"]) == (1, 1, 1, 1.0), theirs
        # The seller's own watch is no buyer's: not counted.
        sellers = await api.expect(200, "GET", "/api/analytics/me", seller)
        assert sellers["auctions_watched"] == 0, sellers
        lates = await api.expect(200, "GET", "/api/analytics/me", late)
        assert lates["auctions_watched"] == 0, lates
        market = await api.expect(200, "GET", "/api/analytics/market")
        assert market["watchers_per_auction"] == {"mean": 2.0, "median": 2.0}, market
        assert market["watcher_bid_share"] == 0.5, market
        assert (await watch_writes(api))["dropped"] == 0
        for sock in (*socks.values(), anonymous, again, late_sock):
            await sock.close()


async def watch_writes(api) -> dict[str, float]:
    """`ece_watch_writes_total` by outcome, as `/metrics` shows it."""
    status, text = await api.request("GET", "/metrics")
    assert status == 200
    return {sample.labels["outcome"]: sample.value
            for family in text_string_to_metric_families(text) if family.name == "ece_watch_writes"
            for sample in family.samples if sample.name == "ece_watch_writes_total"}


async def _when(value, test):
    """`await value` if `test` of it holds, else None (for wait_for)."""
    got = await value
    return got if test(got) else None
