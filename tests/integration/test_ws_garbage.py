"""A closed WebSocket is freed as it closes, by reference counts: nothing of its server side
is left for the cyclic garbage collector. A thousand bidders disconnecting at once (the
capacity stage's sockets, at each step's end) left 427,070 objects to one young-generation
collection of the gateway, a pause of 427 ms for every socket it served."""

from __future__ import annotations

import gc
from collections import Counter

import pytest

from testkit.client import connect, wait_for

pytestmark = pytest.mark.asyncio(loop_scope="session")


def garbage_types() -> Counter[str]:
    """What a full collection finds unreachable now, by type (module.qualname)."""
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        found = Counter(f"{type(o).__module__}.{type(o).__qualname__}" for o in gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    return found


async def test_a_closed_socket_leaves_no_cycle_on_the_server(ece_hosted):
    ece = ece_hosted
    seller, watcher = [await ece.api.signup(p) for p in ("sel", "watch")]
    auction = await ece.api.auction(seller, start_price=100, duration_ms=600_000)
    aid = auction["auction_id"]
    gateway = ece.gateway
    gc.collect()  # what earlier tests left
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
        await bidding.close()
        await watching.close()
        await wait_for(lambda: not gateway.connections, timeout=10,
                       message="the server to let both sockets go")
    found = garbage_types()
    ours = {t: n for t, n in found.items()
            if t.startswith(("gateway.", "aiohttp.web", "aiohttp._websocket"))}
    print(found.most_common(40))
    assert ours == {}
