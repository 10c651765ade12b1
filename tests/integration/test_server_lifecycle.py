"""`ece serve` as an operator runs it: SIGTERM closes sockets with 1001 and exits cleanly."""

from __future__ import annotations

import signal

import aiohttp
import pytest

from testkit.client import Api, connect, wait_for
from testkit.processes import start_ece

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_sigterm_closes_sockets_with_1001_and_keeps_acked_bids(start_server):
    server = start_server()
    async with aiohttp.ClientSession() as http:
        api = Api(server.base, http)
        seller, bidder = await api.signup("seller"), await api.signup("bidder")
        view = await api.auction(seller)
        ws = await connect(http, server.base, bidder)
        ack = await ws.bid(view["auction_id"], 1000)
        assert ack["op"] == "ack"
        assert "ECE is serving on http://127.0.0.1:" in server.log_path.read_text()
        server.proc.send_signal(signal.SIGTERM)
        await wait_for(lambda: ws.closed_code is not None, timeout=30, message="socket closed")
        assert ws.closed_code == 1001
    assert server.proc.wait(timeout=60) == 0  # a clean exit, not a kill
    server.stop()

    # Same port, same data dir, a new process.
    again = start_ece(server.log_path.parent / "again.log", {
        "ECE_PORT": str(server.port), "ECE_DATA_DIR": str(server.log_path.parent / "data")})
    try:
        again.wait_ready()
        async with aiohttp.ClientSession() as http:
            assert (await Api(again.base, http).get(view["auction_id"]))["seq"] == ack["seq"]
    finally:
        again.stop()
