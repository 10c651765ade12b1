"""A closed Socket.IO session is freed as it closes, by reference counts, as a closed /ws
socket is (test_ws_garbage): nothing of its server side waits for the cyclic garbage
collector, whose young-generation pause grows with every session it has to free."""

from __future__ import annotations

import gc

import pytest
from aiohttp import web

from gateway.eio import Websocket
from gateway.sio import SioConnection
from testkit.client import wait_for
from tests.integration.test_socketio import client

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_a_closed_session_is_freed_without_the_garbage_collector(ece_hosted, transport):
    ece = ece_hosted
    seller = await ece.api.signup(f"sgsel{transport}")
    auction = await ece.api.auction(seller, start_price=100, duration_ms=600_000)
    aid = auction["auction_id"]
    gateway = ece.gateway
    gc.collect()
    gc.disable()  # only reference counts free anything now: a cycle keeps its objects
    before = live_sessions()  # other tests' sockets still open, if any
    try:
        for round_ in range(3):
            bidder = await ece.api.signup(f"sg{transport}{round_}")
            me = await client(ece, bidder, transport)
            answer = await me.call("subscribe", auction_id=aid)
            assert answer.get("op") != "error", answer
            answer = await me.call("bid", req_id=f"b{round_}", auction_id=aid,
                                   amount=100 * (round_ + 1))
            assert answer["op"] == "ack", answer
            assert len(gateway.connections) == 1 and live_sessions() > before
            await me.sio.disconnect()
            await wait_for(lambda: not gateway.connections, timeout=10,
                           message="the server to let the session go")
            await wait_for(lambda: live_sessions() == before, timeout=10,
                           message="the closed session to be freed")
    finally:
        gc.enable()


SERVER_SIDE = (SioConnection, Websocket, web.WebSocketResponse)


def live_sessions() -> int:
    """Server-side sessions still in memory: our connection, Engine.IO's websocket and
    aiohttp's (with the collector off, one left in a cycle stays here; one freed by
    reference counts is gone)."""
    return sum(isinstance(o, SERVER_SIDE) for o in gc.get_objects())
