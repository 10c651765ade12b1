"""Two gateway processes on one Ray cluster and one store serve the same auction consistently."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from testkit.client import Api, connect, wait_for
from testkit.processes import ray_address_of

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_two_gateway_processes_agree(start_server):
    first = start_server()
    second = start_server(ECE_RAY_ADDRESS=ray_address_of(first))
    async with aiohttp.ClientSession() as http:
        api1, api2 = Api(first.base, http), Api(second.base, http)
        seller = await api1.signup("seller")
        bidders = [await api1.signup("x"), await api2.signup("y")]
        view = await api2.auction(seller, start_price=100)  # created through gateway 2
        auction_id = view["auction_id"]
        # A token from one gateway is good on the other (one secret, kept in the data dir).
        ws1 = await connect(http, first.base, bidders[0])
        ws2 = await connect(http, second.base, bidders[1], encoding="msgpack")
        watch1, watch2 = await connect(http, first.base), await connect(http, second.base)
        for watcher in (watch1, watch2):
            assert (await watcher.request({"op": "subscribe", "auction_id": auction_id}))[
                "op"] == "snapshot"

        async def bid_many(ws, offset: int) -> list[dict]:
            answers = []
            for i in range(15):
                answers.append(await ws.bid(auction_id, 100 + 300 * i + offset,
                                            req_id=f"{offset}-{i}"))
            return answers

        results = await asyncio.gather(bid_many(ws1, 0), bid_many(ws2, 150))
        acks = [a for r in results for a in r if a["op"] == "ack"]
        assert acks, "some bids must be accepted"
        final = await api1.get(auction_id)
        assert final == await api2.get(auction_id)
        bids, raises = await api1.accepted_bids(auction_id)
        assert bids + raises == len(acks) and final["bid_count"] == bids

        # Both gateways' watchers saw the same events, in order, without gaps.
        await wait_for(lambda: all(w.events(auction_id)
                                   and w.events(auction_id)[-1]["seq"] == final["seq"]
                                   for w in (watch1, watch2)), message="both caught up")
        seen1 = [(e["seq"], e["type"], e.get("price")) for e in watch1.events(auction_id)]
        seen2 = [(e["seq"], e["type"], e.get("price")) for e in watch2.events(auction_id)]
        assert seen1 == seen2
        first_seq = seen1[0][0]
        assert [s for s, _, _ in seen1] == list(range(first_seq, final["seq"] + 1))
        for ws in (ws1, ws2, watch1, watch2):
            await ws.close()
    assert second.stop() == 0
    assert first.stop() == 0
