"""A closed WebSocket is freed as it closes, by reference counts: nothing of its server side
waits for the cyclic garbage collector. A thousand bidders disconnecting at once (the
capacity stage's sockets, at each step's end) left 427,070 objects to one young-generation
collection of the gateway, a pause of 427 ms for every socket it served."""

from __future__ import annotations

import gc
import weakref

import pytest

from testkit.client import connect, wait_for

pytestmark = pytest.mark.asyncio(loop_scope="session")


def freed(refs: list[weakref.ref]):
    return lambda: all(ref() is None for ref in refs)


async def test_a_closed_socket_is_freed_without_the_garbage_collector(ece_hosted):
    ece = ece_hosted
    seller, watcher = [await ece.api.signup(p) for p in ("sel", "watch")]
    auction = await ece.api.auction(seller, start_price=100, duration_ms=600_000)
    aid = auction["auction_id"]
    gateway = ece.gateway
    gc.collect()
    gc.disable()  # only reference counts free anything now: a cycle keeps its objects
    try:
        for round_ in range(3):
            watching = await connect(ece.http, ece.base, watcher)
            await watching.request({"op": "subscribe", "auction_id": aid})
            bidder = await ece.api.signup(f"bid{round_}")
            bidding = await connect(ece.http, ece.base, bidder, encoding="msgpack")
            await bidding.request({"op": "subscribe", "auction_id": aid})
            await bidding.request({"op": "subscribe", "channel": "me"})
            answer = await bidding.bid(aid, 100 * (round_ + 1))
            assert answer["op"] == "ack", answer
            await watching.wait_event(aid, "bid")
            # The server's side of both sockets (each holds its Connection, request,
            # protocol and transport alive, or is held by them).
            server_side = [weakref.ref(conn.ws) for conn in gateway.connections]
            assert len(server_side) == 2
            await bidding.close()
            await watching.close()
            await wait_for(lambda: not gateway.connections, timeout=10,
                           message="the server to let both sockets go")
            await wait_for(freed(server_side), timeout=10,
                           message="the closed sockets to be freed")
    finally:
        gc.enable()
