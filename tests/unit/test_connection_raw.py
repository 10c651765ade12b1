"""Frames written straight to a WebSocket's transport (gateway/connection.py, `raw`): over a
real aiohttp server and client, every frame arrives whole, in the order it was sent, text as
text and binary as binary at every length encoding, whether it went at once or through the
queue; one message's bytes are built once for all its sockets; and a client that does not
read still fills its queue and is cut with 1013, its memory bounded."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest
from aiohttp import WSMsgType, web

from gateway.connection import Connection, ws_frame
from gateway.protocol import JSON, MSGPACK, encode

SIZES = [0, 1, 125, 126, 65_535, 65_536, 300_000]
QUEUE_FRAMES = 64  # each test socket's send queue  # every RFC 6455 length encoding's edges


class Served:
    """One aiohttp server whose /ws sockets get a `Connection` like gateway/ws.py's."""

    def __init__(self) -> None:
        self.conns: list[Connection] = []
        self.opened = asyncio.Event()

    async def handler(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=False, autoping=False)
        await ws.prepare(request)
        conn = Connection(ws, QUEUE_FRAMES, 0.2)
        conn.transport = request.transport
        conn.raw = True
        conn.writer = asyncio.get_running_loop().create_task(conn.write_loop())
        self.conns.append(conn)
        self.opened.set()
        async for _ in ws:  # read until the client closes (aiohttp answers the close)
            pass
        conn.closing = True
        conn.writer.cancel()
        return ws


@pytest.fixture
async def served() -> AsyncIterator[tuple[Served, str]]:
    served = Served()
    app = web.Application()
    app.router.add_get("/ws", served.handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield served, f"http://127.0.0.1:{port}/ws"
    await runner.cleanup()


async def _receive(ws: aiohttp.ClientWebSocketResponse, n: int) -> list[tuple[WSMsgType, object]]:
    got = []
    for _ in range(n):
        msg = await asyncio.wait_for(ws.receive(), 10)
        got.append((msg.type, msg.data))
    return got


async def test_frames_arrive_whole_and_in_order_at_once_or_queued(served) -> None:
    server, url = served
    async with aiohttp.ClientSession() as http, http.ws_connect(url, max_msg_size=0) as ws:
        await asyncio.wait_for(server.opened.wait(), 10)
        conn = server.conns[0]
        sent: list[tuple[WSMsgType, object]] = []
        for k, size in enumerate(SIZES):
            text = {"op": "t", "pad": "x" * size}
            conn.send(text)
            sent.append((WSMsgType.TEXT, None))
            conn.send({"op": "b", "k": k, "pad": "y" * size}, encoding=MSGPACK)
            sent.append((WSMsgType.BINARY, None))
        # Some went at once, the rest queued behind a full transport buffer; none lost.
        got = await _receive(ws, len(sent))
        assert [t for t, _ in got] == [t for t, _ in sent]
        texts = [d for t, d in got if t == WSMsgType.TEXT]
        assert [len(str(d)) for d in texts] == [len(f'{{"op":"t","pad":"{"x" * s}"}}')
                                               for s in SIZES]
        assert conn.written == len(sent) and not conn.closing


async def test_a_frame_waits_behind_what_is_queued(served) -> None:
    server, url = served
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        await asyncio.wait_for(server.opened.wait(), 10)
        conn = server.conns[0]
        conn.writing = True  # the writer holds a frame: nothing may overtake the queue
        conn.send({"op": "first"})
        assert conn.queue.qsize() == 1
        conn.writing = False
        conn.send({"op": "second"})  # the queue is not empty: it queues too
        assert conn.queue.qsize() == 2
        got = await _receive(ws, 2)
        assert [d for _, d in got] == ['{"op":"first"}', '{"op":"second"}']
        conn.send({"op": "third"})  # nothing waits: at once
        assert conn.queue.qsize() == 0
        assert (await _receive(ws, 1))[0][1] == '{"op":"third"}'


async def test_one_messages_bytes_are_built_once_for_all_its_sockets(served) -> None:
    server, url = served
    async with aiohttp.ClientSession() as http:
        clients = [await http.ws_connect(url) for _ in range(3)]
        await asyncio.wait_for(_until(lambda: len(server.conns) == 3), 10)
        cache: dict = {}
        for conn in server.conns:
            conn.send({"op": "event", "seq": 1}, cache)
        assert cache[("json", "wire")] == ws_frame('{"op":"event","seq":1}')
        for ws in clients:
            assert (await _receive(ws, 1))[0][1] == '{"op":"event","seq":1}'
            await ws.close()


async def test_a_client_that_does_not_read_is_still_cut_with_1013(served) -> None:
    server, url = served
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        await asyncio.wait_for(server.opened.wait(), 10)
        conn = server.conns[0]
        big = {"op": "event", "pad": "z" * 50_000}
        frame_bytes = len(ws_frame(encode(big, JSON)))
        # The client reads nothing: the transport's buffer passes the limit (then frames
        # queue), the queue passes its high-water mark, and after slow_client_s it is cut.
        for _ in range(2_000):
            conn.send(big)
            if conn.closing:
                break
            await asyncio.sleep(0.001)
        assert conn.closing
        assert conn.queue.qsize() <= QUEUE_FRAMES
        # What the transport holds is bounded as the queue is: written at once only below
        # the limit, then what aiohttp's writer hands it between its drains.
        assert conn.transport is not None
        assert conn.transport.get_write_buffer_size() < QUEUE_FRAMES * frame_bytes
        assert not ws.closed


async def _until(condition: Callable[[], bool]) -> None:
    while not condition():
        await asyncio.sleep(0.01)


def test_ws_frame_headers() -> None:
    assert ws_frame("") == b"\x81\x00"
    assert ws_frame(b"ab") == b"\x82\x02ab"
    assert ws_frame("a" * 126)[:4] == b"\x81\x7e\x00\x7e"
    assert ws_frame(b"a" * 65_536)[:10] == b"\x82\x7f" + (65_536).to_bytes(8, "big")
    assert ws_frame("é") == b"\x81\x02\xc3\xa9"  # the length is in bytes, not characters
