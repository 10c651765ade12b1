"""Socket.IO at /socket.io/: /ws's semantics through python-socketio's client on each
transport (websocket, long-polling, and its default: polling upgraded to websocket), and the
attacks a Socket.IO endpoint invites (raw engine.io packets; polling's own: test_sio_polling)."""

from __future__ import annotations

import asyncio
import json

import pytest
import socketio

from gateway.sio import SIO, SioServer
from testkit.client import connect, wait_for
from tests.integration.conftest import gateway_with

pytestmark = pytest.mark.asyncio(loop_scope="session")

# python-socketio's transports: websocket only, long-polling only, and its default (None):
# long-polling first, upgraded to websocket.
TRANSPORTS = pytest.mark.parametrize("transport", ["websocket", "polling", None],
                                     ids=["websocket", "polling", "upgraded"])


class Client:
    """A python-socketio client recording every event it gets."""

    def __init__(self) -> None:
        self.sio = socketio.AsyncClient(reconnection=False)
        self.got: list[tuple[str, dict]] = []

        async def record(event: str, data: dict) -> None:
            self.got.append((event, data))

        self.sio.on("*", record)

    async def connect(self, base: str, token: str | None = None,
                      transport: str | None = "websocket") -> Client:
        await self.sio.connect(base, auth={"token": token} if token else None,
                               transports=[transport] if transport else None, wait_timeout=10)
        assert self.sio.transport() == (transport or "websocket")
        return self

    async def call(self, op: str, req_id: str | int | None = "r", **fields) -> dict:
        payload = {**fields, **({"req_id": req_id} if req_id is not None else {})}
        return await self.sio.call(op, payload, timeout=10)

    def events(self, auction_id: str) -> list[dict]:
        return [d for e, d in self.got if e == "event" and d.get("auction_id") == auction_id]

    def of(self, name: str) -> list[dict]:
        return [d for e, d in self.got if e == name]


async def client(ece, user=None, transport: str | None = "websocket") -> Client:
    return await Client().connect(ece.base, user.token if user else None, transport)


@TRANSPORTS
async def test_subscribe_bid_and_events_as_on_ws(ece_hosted, transport):
    api = ece_hosted.api
    seller, bidder = await api.signup("seller"), await api.signup("bidder")
    auction_id = (await api.auction(seller))["auction_id"]
    watcher = await client(ece_hosted, transport=transport)
    me = await client(ece_hosted, bidder, transport)
    signed_in = await wait_for(lambda: me.of("ack"), message="the connect's auth ack")
    assert signed_in[0]["user_id"] == bidder.user_id
    ws = await connect(ece_hosted.http, ece_hosted.base)  # /ws alongside, unchanged
    await ws.request({"op": "subscribe", "auction_id": auction_id})

    snapshot = await watcher.call("subscribe", auction_id=auction_id)
    assert snapshot["op"] == "snapshot" and snapshot["req_id"] == "r"
    assert snapshot["auction"]["auction_id"] == auction_id
    assert (await watcher.call("ping", req_id=7)) == {"op": "pong", "req_id": 7}
    ack = await me.call("bid", req_id="b1", auction_id=auction_id, amount=1000)
    assert ack["op"] == "ack" and ack["req_id"] == "b1" and ack["leader_id"] == bidder.user_id
    event = await wait_for(lambda: watcher.events(auction_id), message="the bid event")
    assert event[0]["type"] == "bid" and event[0]["seq"] == ack["seq"] == snapshot["seq"] + 1
    assert (await ws.wait_event(auction_id, "bid"))["seq"] == ack["seq"]
    # A retry of the same req_id answers the first outcome, as on /ws.
    again = await me.call("bid", req_id="b1", auction_id=auction_id, amount=1000)
    assert again["seq"] == ack["seq"]
    assert (await watcher.call("unsubscribe", auction_id=auction_id))["op"] == "ack"
    # Without a callback the answer is an event named after its op.
    await watcher.sio.emit("ping", {"req_id": "no-callback"})
    pong = await wait_for(lambda: watcher.of("pong"), message="pong event")
    assert pong == [{"op": "pong", "req_id": "no-callback"}]
    assert (await api.get(auction_id))["bid_count"] == 1
    sessions = _sio_server(ece_hosted).eio.sockets.values()
    assert {s.upgraded for s in sessions} == {transport != "polling"}
    for c in (watcher, me):
        await c.sio.disconnect()
    await ws.close()
    await wait_for(lambda: not _sio_server(ece_hosted).conns, message="the sessions gone")


async def test_errors_carry_the_ws_codes(ece_hosted):
    api = ece_hosted.api
    user = await api.signup("u")
    auction_id = (await api.auction(await api.signup("seller")))["auction_id"]
    anon = await client(ece_hosted)
    assert (await anon.call("bid", auction_id=auction_id, amount=1000))["code"] == "UNAUTHORIZED"
    for fields in ({"auction_id": auction_id, "amount": "1000"},
                   {"auction_id": auction_id, "amount": 1.5}, {"amount": 1000}):
        answer = await anon.call("bid", **fields)
        assert (answer["op"], answer["code"], answer["req_id"]) == ("error", "INVALID", "r")
    assert (await anon.call("teleport"))["code"] == "INVALID"
    assert (await anon.call("subscribe", req_id=None, auction_id=auction_id))["code"] == "INVALID"
    assert (await anon.sio.call("bid", [1, 2], timeout=10))["code"] == "INVALID"
    assert (await anon.call("subscribe", auction_id="a_nope"))["code"] == "AUCTION_NOT_FOUND"
    # `auth` signs an open socket in; a forged token leaves it anonymous.
    assert (await anon.call("auth", token="forged.token.x"))["code"] == "UNAUTHORIZED"
    assert (await anon.call("auth", token=user.token))["user_id"] == user.user_id
    assert (await anon.call("bid", auction_id=auction_id, amount=1000))["op"] == "ack"
    # A bad token at connect: an `error` event, and the socket stays anonymous.
    bad = await Client().connect(ece_hosted.base, "not-a-token")
    error = await wait_for(lambda: bad.of("error"), message="error event")
    assert error[0]["code"] == "UNAUTHORIZED"
    assert (await bad.call("bid", auction_id=auction_id, amount=2000))["code"] == "UNAUTHORIZED"
    assert (await api.get(auction_id))["bid_count"] == 1
    for c in (anon, bad):
        await c.sio.disconnect()


@TRANSPORTS
async def test_resume_with_since_after_a_disconnect(ece_hosted, transport):
    api = ece_hosted.api
    seller, a, b = [await api.signup(p) for p in ("seller", "a", "b")]
    auction_id = (await api.auction(seller, start_price=100))["auction_id"]
    bidders = [await client(ece_hosted, a, transport), await client(ece_hosted, b, transport)]
    watcher = await client(ece_hosted, transport=transport)
    await watcher.call("subscribe", auction_id=auction_id)
    ack = await bidders[0].call("bid", req_id="first", auction_id=auction_id, amount=100)
    await wait_for(lambda: any(e["seq"] == ack["seq"] for e in watcher.events(auction_id)))
    last_seen = watcher.events(auction_id)[-1]["seq"]
    await watcher.sio.disconnect()
    price = ack["price"]
    for turn in range(6):  # bids while the watcher is away
        answer = await bidders[turn % 2 == 0].call("bid", req_id=f"t{turn}",
                                                   auction_id=auction_id, amount=price + 25)
        price = answer["price"]
    back = await client(ece_hosted, transport=transport)
    resumed = await back.call("subscribe", auction_id=auction_id, since=last_seen)
    assert resumed["op"] == "ack" and resumed["seq"] == answer["seq"]
    live = await bidders[0].call("bid", req_id="live", auction_id=auction_id, amount=price + 25)
    await wait_for(lambda: back.events(auction_id)
                   and back.events(auction_id)[-1]["seq"] == live["seq"], message="catch up")
    seqs = [e["seq"] for e in back.events(auction_id)]
    assert seqs == list(range(last_seen + 1, live["seq"] + 1))  # no gap, no duplicate
    assert not back.of("snapshot")
    for c in (*bidders, back):
        await c.sio.disconnect()


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_frames_are_rate_limited_and_connections_capped(ray_cluster, tmp_path,
                                                              transport):
    async with gateway_with(tmp_path, frame_rate=0.1, frame_burst=5, max_conn_per_ip=2) as ece:
        c = await client(ece, transport=transport)
        answers = await asyncio.gather(*(c.call("ping", req_id=i) for i in range(20)))
        codes = [a.get("code") for a in answers]
        assert codes.count("RATE_LIMITED") >= 14 and codes.count(None) <= 6
        # Each callback gets its own answer (a refused one carries no req_id, as on /ws:
        # it is refused before it is parsed).
        assert all(a.get("req_id", i) == i for i, a in enumerate(answers))
        other = await client(ece, transport="polling" if transport == "websocket" else None)
        with pytest.raises(socketio.exceptions.ConnectionError):
            await client(ece, transport=transport)  # a third from this address, as on /ws
        for s in (c, other):
            await s.sio.disconnect()
        await wait_for(lambda: len(ece.gateway.conns_by_ip) == 0, message="counts released")


async def _raw(ece):
    """An engine.io websocket, connected to the namespace "/"."""
    ws = await ece.http.ws_connect(
        ece.base.replace("http", "ws", 1) + "/socket.io/?EIO=4&transport=websocket")
    assert (await ws.receive(timeout=5)).data.startswith("0{")
    await ws.send_str("40")
    assert (await ws.receive(timeout=5)).data.startswith("40{")
    return ws


async def _next(ws) -> str:
    while True:
        msg = await ws.receive(timeout=5)
        if msg.type.name != "TEXT":
            return f"closed {ws.close_code}"
        if msg.data != "2":  # an engine.io ping
            return msg.data


def _sio_server(ece) -> SioServer:
    return ece.runner.app[SIO]


async def test_attacks_get_clear_errors_and_keep_memory_bounded(ece_hosted):
    ws = await _raw(ece_hosted)
    deep = "[" * 5000 + "]" * 5000
    bad = [
        '421["ping",{"x":' + deep + "}]",  # nested far too deep
        '422["ping",{"x":NaN}]',  # not JSON
        '423["ping",{"x":1}',  # truncated
        "424[]",  # no event name
        '425[7,{}]',  # a name that is not a string
        '426["ping","text"]',  # a payload that is not an object
        '427["teleport",{"req_id":1}]',  # an unknown event
    ]
    for i, packet in enumerate(bad, start=1):
        await ws.send_str(packet)
        answer = await _next(ws)
        assert answer.startswith(f"43{i}["), answer
        assert json.loads(answer[len(f"43{i}"):])[0]["code"] == "INVALID"
    # Binary attachments: refused before anything is buffered, however many are announced.
    await ws.send_str('451-9["bid",{"_placeholder":true,"num":0}]')
    assert json.loads((await _next(ws))[3:])[0]["code"] == "INVALID"  # "439[...]"
    for _ in range(20):
        await ws.send_bytes(b"\x00" * 60_000)
        assert '"INVALID"' in await _next(ws)
    server = _sio_server(ece_hosted)
    assert server._binary_packet == {}
    # Other namespaces are refused one by one, and hold nothing.
    for n in range(50):
        await ws.send_str(f"40/n{n},")
        assert (await _next(ws)).startswith(f"44/n{n},")
    await ws.send_str('42/n1,["ping",{"req_id":1}]')
    assert '"INVALID"' in await _next(ws)
    assert set(server.manager.rooms) <= {"/"}
    # Still serving this socket; then one frame over 64 KiB closes it (1009, as /ws).
    await ws.send_str('42["ping",{"req_id":"ok"}]')
    assert await _next(ws) == '42["pong",{"op":"pong","req_id":"ok"}]'
    await ws.send_str('42["ping",{"pad":"' + "x" * 70_000 + '"}]')
    assert await _next(ws) == "closed 1009"
    await wait_for(lambda: not server.conns, message="the session gone")
    healthy = await client(ece_hosted)
    assert (await healthy.call("ping"))["op"] == "pong"
    await healthy.sio.disconnect()


async def test_a_refused_connect_carries_the_error_as_json(ece_hosted):
    """connect_error is `{"message", "data": <the /ws error body>}`, parseable by any client
    (python-socketio's own refusal would send str() of a dict)."""
    ws = await ece_hosted.http.ws_connect(
        ece_hosted.base.replace("http", "ws", 1) + "/socket.io/?EIO=4&transport=websocket")
    assert (await ws.receive(timeout=5)).data.startswith("0{")
    await ws.send_str('40{"token":5}')
    packet = (await ws.receive(timeout=5)).data
    assert packet.startswith("44")
    refusal = json.loads(packet[2:])
    assert refusal["data"]["op"] == "error" and refusal["data"]["code"] == "INVALID"
    assert refusal["message"] == refusal["data"]["message"]
    await ws.close()
