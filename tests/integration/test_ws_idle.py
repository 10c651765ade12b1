"""Clients that hold a socket without ever reading: one trickling the bytes of a frame it
never finishes (each byte used to put off the heartbeat's ping), one pinging and never
reading its pongs (aiohttp wrote those past the send queue, so the slow-client cut never
fired). Each is closed within a few seconds of its bound; a quiet client that answers the
server's pings is not."""

from __future__ import annotations

import asyncio
import time

import pytest

from gateway.connection import IDLE
from testkit.client import connect, wait_for
from tests.integration.conftest import gateway_with
from tests.integration.test_analytics_attacks import RawSocket

pytestmark = pytest.mark.asyncio(loop_scope="session")

IDLE_MS = 6_000  # ECE_IDLE_CLIENT_MS for the trickling client
# ... and for the quiet client, on a gateway of its own: the server pings it every 5 s and
# wants the pong within 2.5 s, so a loaded machine's late pong does not close it.
QUIET_IDLE_MS = 15_000


async def test_a_client_trickling_an_unfinished_frame_is_closed(ray_cluster, tmp_path):
    async with (gateway_with(tmp_path, idle_client_ms=QUIET_IDLE_MS) as calm,
                gateway_with(tmp_path, idle_client_ms=IDLE_MS) as ece):
        quiet = await connect(calm.http, calm.base)  # says nothing, answers pings
        quiet_since = time.monotonic()
        await wait_for(lambda: len(calm.gateway.connections) == 1, message="quiet served")
        connections = ece.gateway.connections
        raw = await RawSocket.open(ece.base)
        await wait_for(lambda: len(connections) == 1, message="the trickler served")
        frame = RawSocket.text({"op": "ping", "req_id": "x" * 100})  # a minute of trickle
        started, sent = time.monotonic(), 0
        while connections and time.monotonic() - started < 45:
            try:
                await raw.write(frame[sent:sent + 1])
            except ConnectionError:
                break
            sent += 1
            await asyncio.sleep(0.5)  # the attack's pace (one byte per half second)
        held = time.monotonic() - started
        assert sent < len(frame), "the frame was finished: this tested nothing"
        assert not connections, f"still served after {held:.1f} s"
        assert held < IDLE_MS / 1000 + 20.0, held  # loose: the bound, not the frame's minute
        # Read only now: what the server said before dropping it was pings (it heard no
        # whole frame), then a close frame, 1008.
        try:
            opcode, payload = await asyncio.wait_for(raw.read_frame(), 10)
            while opcode == 0x9:
                opcode, payload = await asyncio.wait_for(raw.read_frame(), 10)
            assert (opcode, int.from_bytes(payload[:2], "big")) == (0x8, IDLE)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the reset overtook the close frame: dropped all the same
        raw.abort()

        # The quiet client has said nothing for one and a half times its bound and is still
        # served: its pongs count as frames heard.
        await asyncio.sleep(max(0.0, quiet_since + 1.5 * QUIET_IDLE_MS / 1000
                                - time.monotonic()))
        assert quiet.closed_code is None
        assert (await quiet.request({"op": "ping"}))["op"] == "pong"
        await quiet.close()


async def test_a_client_pinging_and_never_reading_is_cut(ray_cluster, tmp_path):
    """Pings in one write, their pongs never read: the pongs wait in the send queue like any
    frame, so the queue fills and the socket is closed 1013, instead of the reader waiting
    forever for the client to take pongs written past the queue."""
    async with gateway_with(tmp_path, send_queue=64, frame_rate=1e6, frame_burst=1e6,
                            slow_client_ms=1_000) as ece:
        connections = ece.gateway.connections
        raw = await RawSocket.open(ece.base, rcvbuf=4096)
        await wait_for(lambda: len(connections) == 1, message="the socket served")
        raw.writer.write(RawSocket.frame(0x9, b"p" * 125) * 20_000)  # 2.6 MB of pings
        await wait_for(lambda: not connections, timeout=20, message="the pinger cut")
        raw.abort()
