"""A socket's back-pressure rule (gateway/connection.py), without a server: a reader that
outpaces the writer waits instead of being cut; a client that does not read is cut with
1013 once its queue stays backed up; answers still owed hold the reader without a deadline."""

from __future__ import annotations

import asyncio

import pytest

from gateway.connection import Connection


class FakeSocket:
    """The `WebSocketResponse` a writer sees: it takes frames, or (stalled) never returns."""

    def __init__(self, stalled: bool = False) -> None:
        self.frames: list[str] = []
        self.stalled = stalled
        self.closed_with: int | None = None

    async def send_str(self, frame: str) -> None:
        if self.stalled:  # a client that does not read: the transport never drains
            await asyncio.Event().wait()
        self.frames.append(frame)

    async def close(self, code: int, message: bytes) -> None:
        self.closed_with = code


def _open(ws: FakeSocket, queue: int, slow_client_s: float) -> Connection:
    conn = Connection(ws, queue, slow_client_s)  # type: ignore[arg-type]
    conn.writer = asyncio.get_running_loop().create_task(conn.write_loop())
    return conn


async def _read_burst(conn: Connection, frames: int) -> None:
    """What the endpoint's reader does for each frame of a burst: answer, then wait if backed up."""
    for i in range(frames):
        if conn.closing:
            return
        conn.send({"op": "pong", "req_id": i})
        if conn.backed_up():
            await conn.drained()


@pytest.mark.asyncio
async def test_a_burst_larger_than_the_queue_is_answered_in_full() -> None:
    ws = FakeSocket()
    conn = _open(ws, queue=8, slow_client_s=5.0)
    await _read_burst(conn, 1_000)
    await asyncio.wait_for(_until(lambda: len(ws.frames) == 1_000), 5)
    assert not conn.closing and ws.closed_with is None
    assert [f'"req_id":{i}}}' in f for i, f in enumerate(ws.frames)] == [True] * 1_000
    conn.writer.cancel()


@pytest.mark.asyncio
async def test_a_client_that_does_not_read_is_cut_with_1013_and_its_queue_stays_bounded() -> None:
    ws = FakeSocket(stalled=True)
    conn = _open(ws, queue=8, slow_client_s=0.05)
    await asyncio.wait_for(_read_burst(conn, 1_000), 5)
    assert conn.closing
    assert conn.queue.qsize() <= 8
    await asyncio.wait_for(_until(lambda: ws.closed_with is not None), 5)
    assert ws.closed_with == 1013


@pytest.mark.asyncio
async def test_answers_owed_hold_the_reader_without_a_deadline() -> None:
    ws = FakeSocket()
    conn = _open(ws, queue=8, slow_client_s=0.0)  # any deadline would have passed at once
    conn.inflight = conn.high_water  # bids sent on, not yet answered
    waiting = asyncio.get_running_loop().create_task(conn.drained())
    for _ in range(10):
        await asyncio.sleep(0)
    assert not waiting.done() and not conn.closing
    conn.inflight = 0  # answered (and written)
    conn.settled()
    await asyncio.wait_for(waiting, 5)
    assert not conn.closing
    conn.writer.cancel()


async def _until(condition) -> None:
    while not condition():
        await asyncio.sleep(0)
