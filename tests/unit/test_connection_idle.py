"""A socket's idle check (`Connection.watch_idle`), without a server: no whole frame for the
bound closes it 1008; frames heard keep it open; a writer that hands nothing over for the
bound while frames wait closes it 1013 (a client that sends but never reads)."""

from __future__ import annotations

import asyncio

import pytest

from gateway.connection import IDLE, TRY_AGAIN_LATER, Connection
from tests.unit.test_connection import FakeSocket, _open, _until

# The bound, and a frame every quarter of it below: an event-loop pause of over a second (a
# loaded machine) still leaves the socket heard in time.
IDLE_S = 2.0


class FakeTransport:
    def __init__(self, buffered: int = 0) -> None:
        self.buffered = buffered
        self.aborted = False

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def is_closing(self) -> bool:
        return self.aborted

    def abort(self) -> None:
        self.aborted = True


class Pings:
    """A ping frame sender (what `ws.ping` is): counts the pings the writer sent and, for a
    client that answers, has its pong heard."""

    def __init__(self, answers: bool) -> None:
        self.answers = answers
        self.sent = 0
        self.conn: Connection | None = None

    async def __call__(self) -> None:
        self.sent += 1
        if self.answers and self.conn is not None:
            self.conn.heard()  # the client's pong


def _watched(ws: FakeSocket, transport: FakeTransport, pings: Pings | None = None
             ) -> Connection:
    conn = _open(ws, queue=8, slow_client_s=60.0)
    conn.transport = transport  # type: ignore[assignment]
    if pings is None:
        conn.watch_idle(IDLE_S)
    else:
        pings.conn = conn
        conn.watch_idle(IDLE_S, IDLE_S / 4, pings)  # a ping every quarter of the bound
    return conn


@pytest.mark.asyncio
async def test_a_socket_that_completes_no_frame_is_closed_1008() -> None:
    ws, transport = FakeSocket(), FakeTransport()
    conn = _watched(ws, transport)
    await asyncio.wait_for(_until(lambda: transport.aborted), IDLE_S + 10)
    assert ws.closed_with == IDLE and conn.closing


@pytest.mark.asyncio
async def test_frames_heard_keep_a_socket_open() -> None:
    ws, transport = FakeSocket(), FakeTransport()
    conn = _watched(ws, transport)
    loop = asyncio.get_running_loop()
    until = loop.time() + 3 * IDLE_S
    while loop.time() < until:  # a frame (a pong, say) every quarter of the bound
        conn.heard()
        conn.send({"op": "pong"})
        await asyncio.sleep(IDLE_S / 4)
    assert not conn.closing and ws.closed_with is None
    conn.writer.cancel()


@pytest.mark.asyncio
async def test_a_writer_stalled_with_frames_waiting_is_cut_1013() -> None:
    ws, transport = FakeSocket(stalled=True), FakeTransport(buffered=70_000)
    conn = _watched(ws, transport)
    conn.send({"op": "pong"})  # the writer takes it and never gets it out
    loop = asyncio.get_running_loop()
    until = loop.time() + 5 * IDLE_S + 10
    while not transport.aborted and loop.time() < until:
        conn.heard()  # the client keeps sending (pongs of its own), never reads
        await asyncio.sleep(IDLE_S / 4)
    assert ws.closed_with == TRY_AGAIN_LATER


@pytest.mark.asyncio
async def test_a_quiet_client_is_pinged_and_its_pongs_keep_it_open() -> None:
    ws, transport, pings = FakeSocket(), FakeTransport(), Pings(answers=True)
    conn = _watched(ws, transport, pings)
    await asyncio.sleep(3 * IDLE_S)  # the span under test: the client says nothing itself
    assert not conn.closing and ws.closed_with is None
    assert pings.sent >= 3  # a ping every quarter of the bound, give or take a slow loop
    conn.writer.cancel()


@pytest.mark.asyncio
async def test_a_client_that_answers_no_ping_is_pinged_again_then_closed_1008() -> None:
    ws, transport, pings = FakeSocket(), FakeTransport(), Pings(answers=False)
    conn = _watched(ws, transport, pings)
    await asyncio.wait_for(_until(lambda: transport.aborted), IDLE_S + 10)
    assert ws.closed_with == IDLE and conn.closing and pings.sent >= 2
