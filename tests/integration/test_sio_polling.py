"""Socket.IO over HTTP long-polling, attacked with raw Engine.IO requests: every wait on the
client is bounded, every bad request answered with a 4xx, and the sessions an attacker leaves
are dropped, their memory and connection slots released (python-socketio's own clients over
polling: test_socketio)."""

from __future__ import annotations

import asyncio
import json

import pytest

from gateway.eio import MAX_QUEUED
from gateway.sio import SIO, SioServer
from testkit.client import wait_for
from tests.integration.conftest import Ece, gateway_with

pytestmark = pytest.mark.asyncio(loop_scope="session")

PATH = "/socket.io/?EIO=4&transport=polling"


def heartbeat(ece: Ece, interval: float = 30.0, timeout: float = 2.0) -> SioServer:
    """This gateway's Engine.IO heartbeat (and so its deadlines) made short for a test."""
    server: SioServer = ece.runner.app[SIO]
    server.eio.ping_interval, server.eio.ping_timeout = interval, timeout
    return server


async def handshake(ece: Ece) -> tuple[int, str]:
    async with ece.http.get(ece.base + PATH) as response:
        return response.status, await response.text()


async def post(ece: Ece, sid: str, body: str | bytes, **kwargs) -> int:
    async with ece.http.post(f"{ece.base}{PATH}&sid={sid}", data=body, **kwargs) as response:
        return response.status


async def poll(ece: Ece, sid: str, query: str = "") -> tuple[int, str]:
    async with ece.http.get(f"{ece.base}{PATH}&sid={sid}{query}") as response:
        return response.status, await response.text()


async def packets(ece: Ece, sid: str, count: int) -> list[str]:
    """The next `count` packets the session's polls bring."""
    got: list[str] = []
    while len(got) < count:
        status, answer = await poll(ece, sid)
        assert status == 200, answer
        got += answer.split("\x1e")
    return got


async def session(ece: Ece) -> str:
    """A polling session connected to the namespace "/": its Engine.IO id."""
    status, opened = await handshake(ece)
    assert status == 200 and opened.startswith("0{"), opened
    sid = json.loads(opened[1:])["sid"]
    assert await post(ece, sid, "40") == 200
    status, connected = await poll(ece, sid)
    assert status == 200 and connected.startswith("40{"), connected
    return sid


async def raw_status(ece: Ece, sid: str, head: str, body: bytes = b"") -> int:
    """The status of a POST written by hand (headers that lie, a body that never ends)."""
    port = int(ece.base.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"POST {PATH}&sid={sid} HTTP/1.1\r\nHost: x\r\n{head}\r\n".encode() + body)
        line = await asyncio.wait_for(reader.readline(), 10)
        return int(line.split()[1])
    finally:
        writer.close()


def gone(ece: Ece) -> bool:
    """No session left anywhere: Engine.IO's, Socket.IO's, the gateway's and its counts."""
    server: SioServer = ece.runner.app[SIO]
    gateway = ece.gateway
    return not (server.eio.sockets or server.conns or server.environ or gateway.connections
                or len(gateway.conns_by_ip))


async def test_bad_posts_get_4xx_and_the_session_serves_on(ray_cluster, tmp_path):
    async with gateway_with(tmp_path) as ece:
        server = heartbeat(ece)
        sid = await session(ece)
        garbage: list[str | bytes] = [
            b"\xff\xfe4x",  # not UTF-8
            "x", "9",  # no packet type, an unknown one
            "2", "5", "6", "0",  # a ping, an upgrade, a noop, an open: never posted
            "4a\x1e\x1e4b",  # an empty packet
            "b!!not-base64", "d=",  # bad base64, JSONP's form without its field
        ]
        for body in garbage:
            assert await post(ece, sid, body) == 400, body
        assert (await poll(ece, sid, "&j=0"))[0] == 400  # JSONP is not served

        async def chunks():
            yield b"42[\"ping\",{}]"
        assert await post(ece, sid, chunks()) == 411  # chunked: no length to check first
        # The session still serves, and a bad Socket.IO packet is answered as on a websocket.
        assert await post(ece, sid, '42["ping",{"req_id":1}]\x1e421["ping",{"x":NaN}]') == 200
        pong, error = await packets(ece, sid, 2)
        assert pong == '42["pong",{"op":"pong","req_id":1}]'
        assert error.startswith('431[{"op":"error","code":"INVALID"')
        # One poll at a time: a second one while the first waits is refused.
        first = asyncio.create_task(poll(ece, sid))
        await wait_for(lambda: server.eio.sockets[sid].polling, message="the first poll")
        assert (await poll(ece, sid))[0] == 400
        assert await post(ece, sid, '42["ping",{"req_id":2}]') == 200
        assert (await first)[1] == '42["pong",{"op":"pong","req_id":2}]'
        # A body never finished: 408 after pingTimeout, and the session still serves.
        assert await raw_status(ece, sid, "Content-Length: 100\r\n", b'42["ping"') == 408
        assert await post(ece, sid, "3") == 200
        # Over maxPayload (64 KiB): 413, refused on its Content-Length, and the session ends
        # (as a websocket's frame over it closes with 1009).
        assert await raw_status(ece, sid, "Content-Length: 1000000000\r\n") == 413
        assert await post(ece, sid, "3") == 400
        await wait_for(lambda: gone(ece), message="the session and its slots released")
        other = await session(ece)
        assert await post(ece, other, "4" + "x" * 70_000) == 413
        await wait_for(lambda: gone(ece), message="the session and its slots released")


async def test_sessions_that_stop_polling_are_dropped(ray_cluster, tmp_path):
    async with gateway_with(tmp_path) as ece:
        server = heartbeat(ece, interval=1.0, timeout=2.0)
        opened = json.loads((await handshake(ece))[1][1:])["sid"]  # never polls at all
        stopped = await session(ece)  # polled once
        blind = await session(ece)  # posts pongs, never fetches the pings they answer
        assert {opened, stopped, blind} == set(server.eio.sockets)
        assert len(server.conns) == ece.gateway.conns_by_ip.count("127.0.0.1") == 3
        pongs = 0

        async def refused() -> bool:
            nonlocal pongs
            pongs += 1
            return await post(ece, blind, "3") == 400

        await wait_for(refused, timeout=20, message="the blind ponger dropped")
        assert pongs > 10  # it was answered for a while: pongs alone do not keep it
        await wait_for(lambda: gone(ece), timeout=20, message="all three dropped")


async def test_a_flood_of_handshakes_meets_the_connection_limit(ray_cluster, tmp_path):
    async with gateway_with(tmp_path, max_conn_per_ip=3) as ece:
        server = heartbeat(ece, interval=1.0, timeout=2.0)
        answers = await asyncio.gather(*(handshake(ece) for _ in range(20)))
        assert sorted(status for status, _ in answers) == [200] * 3 + [401] * 17
        refusals = [json.loads(body) for status, body in answers if status == 401]
        assert {r["code"] for r in refusals} == {"LIMIT_EXCEEDED"}
        assert len(server.eio.sockets) == 3  # a refused handshake keeps nothing
        # Never polled: dropped by the heartbeat, and their slots are free again.
        await wait_for(lambda: gone(ece), timeout=20, message="the unpolled sessions dropped")
        assert (await handshake(ece))[0] == 200


async def test_a_session_that_never_takes_its_packets_is_dropped(ray_cluster, tmp_path):
    async with gateway_with(tmp_path) as ece:
        heartbeat(ece)
        sid = await session(ece)
        # Connecting to namespaces that do not exist: each refusal queued for a poll that
        # never comes, until the session's queue is full.
        statuses = [await post(ece, sid, "\x1e".join(f"40/n{i}," for i in range(16)))
                    for _ in range(MAX_QUEUED // 16 + 2)]
        assert statuses[0] == 200 and statuses[-1] == 400
        await wait_for(lambda: gone(ece), message="the session and its slots released")


async def test_an_upgrade_that_never_probes_gives_way_to_polling(ray_cluster, tmp_path):
    async with gateway_with(tmp_path) as ece:
        server = heartbeat(ece)
        sid = await session(ece)
        ws = await ece.http.ws_connect(
            f"{ece.base.replace('http', 'ws', 1)}/socket.io/?EIO=4&transport=websocket&sid={sid}")
        assert (await poll(ece, sid)) == (200, "6")  # upgrading: polls get a noop
        assert (await ws.receive(timeout=10)).type.name in ("CLOSE", "CLOSED")  # no probe
        await wait_for(lambda: not server.eio.sockets[sid].upgrading, message="upgrade ended")
        assert await post(ece, sid, '42["ping",{"req_id":3}]') == 200
        assert (await poll(ece, sid)) == (200, '42["pong",{"op":"pong","req_id":3}]')
        await ws.close()
