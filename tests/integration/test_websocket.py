"""Every WebSocket op, resume with `since`, and every bad input the issue lists."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import socket
import time

import jwt
import msgpack
import pytest

from testkit.client import connect, wait_for
from tests.integration.conftest import gateway_with, port_of

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_ping_subscribe_unsubscribe_in_both_encodings(ece_hosted):
    api = ece_hosted.api
    seller, bidder = await api.signup("seller"), await api.signup("bidder")
    view = await api.auction(seller)
    auction_id = view["auction_id"]
    ws = await connect(ece_hosted.http, ece_hosted.base, bidder, encoding="msgpack")
    pong = await ws.request({"op": "ping"})
    assert pong["op"] == "pong"
    snapshot = await ws.request({"op": "subscribe", "auction_id": auction_id})
    assert snapshot["op"] == "snapshot" and snapshot["seq"] == snapshot["auction"]["seq"]
    assert snapshot["auction"]["title"] == "Test Card"
    assert snapshot["auction"]["auction_id"] == auction_id
    await ws.bid(auction_id, 1000)
    event = await ws.wait_event(auction_id, "bid")
    assert (event["bidder_id"], event["amount"], event["price"], event["bid_count"]) == (
        bidder.user_id, 1000, 1000, 1)
    ack = await ws.request({"op": "unsubscribe", "auction_id": auction_id})
    assert ack["op"] == "ack"
    other = await connect(ece_hosted.http, ece_hosted.base, await api.signup("o"))
    bid_ack = await other.bid(auction_id, 1050)
    # The unsubscribed socket sees no more events (checked after a ping round trip that
    # follows the bid's publication on the same gateway).
    watcher = await connect(ece_hosted.http, ece_hosted.base)
    await watcher.request({"op": "subscribe", "auction_id": auction_id})
    await ws.request({"op": "ping"})
    assert all(e["seq"] < bid_ack["seq"] for e in ws.events(auction_id))
    for s in (ws, other, watcher):
        await s.close()


async def test_answers_use_the_request_encoding(ece_hosted):
    ws = await connect(ece_hosted.http, ece_hosted.base)
    await ws.send({"op": "ping", "req_id": "j"}, encoding="json")
    await ws.send({"op": "ping", "req_id": "m"}, encoding="msgpack")
    raw = []
    # Read raw frames to see the frame types the server chose.
    await ws.close()
    raw_ws = await ece_hosted.http.ws_connect(ece_hosted.base.replace("http", "ws") + "/ws")
    await raw_ws.send_str(json.dumps({"op": "ping", "req_id": 1}))
    raw.append(await raw_ws.receive(timeout=5))
    await raw_ws.send_bytes(msgpack.packb({"op": "ping", "req_id": 2}))
    raw.append(await raw_ws.receive(timeout=5))
    assert raw[0].type.name == "TEXT" and json.loads(raw[0].data)["req_id"] == 1
    assert raw[1].type.name == "BINARY" and msgpack.unpackb(raw[1].data)["req_id"] == 2
    await raw_ws.close()


async def test_bid_errors(ece_hosted):
    api = ece_hosted.api
    seller, bidder = await api.signup("seller"), await api.signup("bidder")
    view = await api.auction(seller)
    auction_id = view["auction_id"]
    anon = await connect(ece_hosted.http, ece_hosted.base)
    assert (await anon.bid(auction_id, 1000))["code"] == "UNAUTHORIZED"
    seller_ws = await connect(ece_hosted.http, ece_hosted.base, seller)
    assert (await seller_ws.bid(auction_id, 1000))["code"] == "SELF_BID"
    ws = await connect(ece_hosted.http, ece_hosted.base, bidder)
    missing = await ws.bid("a_0123456789abcdef", 1000)
    assert missing["code"] == "AUCTION_NOT_FOUND"
    low = await ws.bid(auction_id, 999)
    assert low["code"] == "BID_TOO_LOW" and low["min_bid"] == 1000
    scheduled = await api.auction(seller, starts_at=int(time.time() * 1000) + 60_000)
    assert scheduled["status"] == "scheduled"
    assert (await ws.bid(scheduled["auction_id"], 1000))["code"] == "AUCTION_NOT_LIVE"
    status, _ = await api.request("POST", f"/api/auctions/{scheduled['auction_id']}/cancel",
                                  seller)
    assert status == 200
    assert (await ws.bid(scheduled["auction_id"], 1000))["code"] == "AUCTION_NOT_LIVE"
    # Nothing above changed the live auction.
    assert (await api.get(auction_id))["bid_count"] == 0
    for s in (anon, seller_ws, ws):
        await s.close()


async def test_bad_input_gets_clear_errors_and_changes_nothing(ece_hosted):
    api = ece_hosted.api
    seller, bidder = await api.signup("seller"), await api.signup("bidder")
    view = await api.auction(seller)
    auction_id = view["auction_id"]
    ws = await connect(ece_hosted.http, ece_hosted.base, bidder)
    bystander = await connect(ece_hosted.http, ece_hosted.base, await api.signup("by"))

    await ws.ws.send_str("{not json")
    await ws.ws.send_bytes(b"\xc1\xff\x00garbage")
    await ws.ws.send_str("[1, 2, 3]")
    await ws.ws.send_str(json.dumps({"no_op": True}))
    await ws.ws.send_str(json.dumps({"op": "teleport", "req_id": "t"}))
    await wait_for(lambda: len([m for m in ws.messages if m.get("op") == "error"]) >= 5)
    assert all(m["code"] == "INVALID" for m in ws.messages if m.get("op") == "error")

    bad_bids = [
        {"auction_id": auction_id},  # no amount
        {"auction_id": auction_id, "amount": "1000"},
        {"auction_id": auction_id, "amount": 1000.0},
        {"auction_id": auction_id, "amount": True},
        {"auction_id": auction_id, "amount": -5},
        {"auction_id": auction_id, "amount": 2**53 + 1},
        {"auction_id": auction_id, "amount": 1000, "max_amount": 999},
        {"auction_id": auction_id, "amount": 1000, "max_amount": 1.5},
        {"auction_id": 42, "amount": 1000},
        {"auction_id": "bad id with spaces", "amount": 1000},
        {"amount": 1000},
    ]
    for i, fields in enumerate(bad_bids):
        answer = await ws.request({"op": "bid", "req_id": f"bad{i}", **fields})
        assert answer["op"] == "error" and answer["code"] == "INVALID", fields
    no_req = await ws.ws.send_str(json.dumps({"op": "bid", "auction_id": auction_id,
                                              "amount": 1000}))
    assert no_req is None
    await wait_for(lambda: any(m.get("op") == "error" and "req_id" in m.get("message", "")
                               for m in ws.messages))
    # The server kept serving: the bystander bids fine, and no bad bid counted.
    assert (await bystander.bid(auction_id, 1000))["op"] == "ack"
    assert (await api.get(auction_id))["bid_count"] == 1
    await ws.close()
    await bystander.close()


async def test_oversized_frame_closes_with_1009(ece_hosted):
    ws = await connect(ece_hosted.http, ece_hosted.base)
    await ws.ws.send_str(json.dumps({"op": "ping", "pad": "x" * (70 * 1024)}))
    await wait_for(lambda: ws.closed_code is not None, message="close")
    assert ws.closed_code == 1009
    healthy = await connect(ece_hosted.http, ece_hosted.base)
    assert (await healthy.request({"op": "ping"}))["op"] == "pong"
    await healthy.close()


async def test_invalid_or_expired_token_is_unauthorized(ece_hosted):
    api = ece_hosted.api
    user = await api.signup()
    view = await api.auction(await api.signup("seller"))
    expired = jwt.encode({"sub": user.user_id, "exp": int(time.time()) - 1},
                         ece_hosted.settings.secret, algorithm="HS256")
    for token in (expired, "not-a-token"):
        ws = await ece_hosted.http.ws_connect(
            ece_hosted.base.replace("http", "ws") + f"/ws?token={token}")
        first = json.loads((await ws.receive(timeout=5)).data)
        assert first["code"] == "UNAUTHORIZED"
        await ws.send_str(json.dumps({"op": "bid", "req_id": 1, "auction_id": view["auction_id"],
                                      "amount": 1000}))
        answer = json.loads((await ws.receive(timeout=5)).data)
        assert answer["code"] == "UNAUTHORIZED"
        await ws.close()
    assert (await api.get(view["auction_id"]))["bid_count"] == 0


async def test_resume_with_since_after_a_dropped_connection(ece_hosted):
    api = ece_hosted.api
    seller, a, b = [await api.signup(p) for p in ("seller", "a", "b")]
    view = await api.auction(seller, start_price=100)
    auction_id = view["auction_id"]
    ws_a = await connect(ece_hosted.http, ece_hosted.base, a)
    ws_b = await connect(ece_hosted.http, ece_hosted.base, b)
    watcher = await connect(ece_hosted.http, ece_hosted.base)
    await watcher.request({"op": "subscribe", "auction_id": auction_id})
    ack = await ws_a.bid(auction_id, 100)
    await wait_for(lambda: watcher.events(auction_id)
                   and watcher.events(auction_id)[-1]["seq"] == ack["seq"])
    last_seen = watcher.events(auction_id)[-1]["seq"]
    await watcher.close()  # dropped

    price = ack["price"]
    for turn in range(6):  # bids while the watcher is away
        bidder = ws_b if turn % 2 == 0 else ws_a
        answer = await bidder.bid(auction_id, price + 25)
        price = answer["price"]
    final_seq = answer["seq"]

    back = await connect(ece_hosted.http, ece_hosted.base)
    await back.send({"op": "subscribe", "auction_id": auction_id, "since": last_seen})
    await wait_for(lambda: back.events(auction_id)
                   and back.events(auction_id)[-1]["seq"] == final_seq, message="catch up")
    seqs = [e["seq"] for e in back.events(auction_id)]
    assert seqs == list(range(last_seen + 1, final_seq + 1))  # no gap, no duplicate
    assert not [m for m in back.messages if m.get("op") == "snapshot"]
    # And live events continue after the replay.
    live = await ws_b.bid(auction_id, price + 25)
    await wait_for(lambda: back.events(auction_id)[-1]["seq"] == live["seq"])
    seqs = [e["seq"] for e in back.events(auction_id)]
    assert seqs == list(range(last_seen + 1, live["seq"] + 1))

    # A `since` from the future cannot be served from the log: a fresh snapshot instead.
    fresh = await connect(ece_hosted.http, ece_hosted.base)
    snap = await fresh.request({"op": "subscribe", "auction_id": auction_id, "since": 10**6})
    assert snap["op"] == "snapshot" and snap["seq"] == live["seq"]
    for s in (ws_a, ws_b, back, fresh):
        await s.close()


async def test_rate_limit_is_transient_and_per_user(ray_cluster, tmp_path):
    async with gateway_with(tmp_path, rate_per_s=5.0, rate_burst=5.0, send_queue=8) as ece:
        http, base, api = ece.http, ece.base, ece.api
        seller, greedy, calm = [await api.signup(p) for p in ("s", "greedy", "calm")]
        view = await api.auction(seller, start_price=100)
        ws = await connect(http, base, greedy)
        answers = await asyncio.gather(*(
            ws.bid(view["auction_id"], 100 + 100 * i, req_id=f"g{i}") for i in range(12)))
        limited = [a for a in answers if a.get("code") == "RATE_LIMITED"]
        assert limited, "a burst over the limit must be throttled"
        assert len(limited) < 12
        # Another user is not affected by the greedy one.
        calm_ws = await connect(http, base, calm)
        assert (await calm_ws.bid(view["auction_id"], 10_000))["op"] == "ack"
        # RATE_LIMITED is not remembered: the same req_id succeeds once tokens refill.
        retry_id = limited[0]["req_id"]

        async def retried():
            ws.messages.clear()  # forget the earlier answers that carry the same req_id
            answer = await ws.bid(view["auction_id"], 50_000, req_id=retry_id)
            return answer if answer["op"] == "ack" else None

        assert (await wait_for(retried, timeout=5))["op"] == "ack"
        await ws.close()
        await calm_ws.close()


def _raw_ws_connect(port: int, path: str) -> socket.socket:
    """A hand-made WebSocket client with a tiny receive buffer, that never reads."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                  "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    response = b""
    while b"\r\n\r\n" not in response:
        response += sock.recv(1)
    assert b" 101 " in response.split(b"\r\n")[0]
    return sock


def _masked_text_frame(text: str) -> bytes:
    payload = text.encode()
    mask = os.urandom(4)
    header = bytes([0x81])
    length = len(payload)
    header += bytes([0x80 | length]) if length < 126 else bytes([0x80 | 126]) + length.to_bytes(
        2, "big")
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def _close_code(data: bytes) -> int | None:
    """Walk server frames (unmasked) and return the close code, if a close frame came."""
    at = 0
    while at + 2 <= len(data):
        opcode, length = data[at] & 0x0F, data[at + 1] & 0x7F
        at += 2
        if length == 126:
            length, at = int.from_bytes(data[at:at + 2], "big"), at + 2
        elif length == 127:
            length, at = int.from_bytes(data[at:at + 8], "big"), at + 8
        if opcode == 0x8:
            return int.from_bytes(data[at:at + 2], "big")
        at += length
    return None


async def test_slow_client_is_disconnected_with_1013(ray_cluster, tmp_path):
    """A client that sends requests and reads nothing: once its answers have filled the
    kernel's buffers (they grow to a few MiB) and back up into its send queue for
    ECE_SLOW_CLIENT_MS, it is cut with 1013. (Until then back-pressure stops the server from
    reading its frames, test_ws_burst.py: it sends only while the server reads.)"""
    async with gateway_with(tmp_path, send_queue=8, frame_rate=1e6, frame_burst=1e6) as ece:
        http, gateway = ece.http, ece.gateway
        port = port_of(ece.runner)
        sock = await asyncio.to_thread(_raw_ws_connect, port, "/ws")
        conn = await wait_for(lambda: next(iter(gateway.connections), None), timeout=10)
        # A JSON value that is not an object: answered by an INVALID error of ~90 bytes.
        chunk = _masked_text_frame("1") * 1_000
        for _ in range(1_000):  # at most 90 MB of answers (a few MiB fill the buffers)
            # A chunk more only while the server reads: none is left unread at the cut.
            await wait_for(lambda: conn.closing or conn.resume is None, timeout=30,
                           message="the server reading again, or the cut")
            if conn.closing:
                break
            await asyncio.to_thread(sock.sendall, chunk)
        assert conn.closing, "slow client not cut off"
        # Now read what was sent: it ends with a close frame, code 1013.
        sock.settimeout(15)
        data = b""
        with contextlib.suppress(OSError):
            while b"send queue full" not in data[-64:]:  # the close frame's reason
                got = await asyncio.to_thread(sock.recv, 65536)
                if not got:
                    break
                data += got
        sock.close()
        assert _close_code(data) == 1013
        # The server still serves others.
        ws = await connect(http, ece.base)
        assert (await ws.request({"op": "ping"}))["op"] == "pong"
        await ws.close()


async def test_overloaded_is_transient(ray_cluster, tmp_path):
    async with gateway_with(tmp_path, max_inflight=2, rate_per_s=1e6, rate_burst=1e6) as ece:
        http, base, api = ece.http, ece.base, ece.api
        seller = await api.signup("s")
        bidders = [await api.signup(f"b{i}") for i in range(3)]
        view = await api.auction(seller, start_price=100)
        sockets = [await connect(http, base, b) for b in bidders]
        answers = await asyncio.gather(*(
            s.bid(view["auction_id"], 100 + 1000 * j + i, req_id=f"o{i}-{j}")
            for i, s in enumerate(sockets) for j in range(10)))
        overloaded = [a for a in answers if a.get("code") == "OVERLOADED"]
        assert overloaded, "more than 2 bids in flight must be refused"
        accepted = [a for a in answers if a["op"] == "ack"]
        bids, raises = await api.accepted_bids(view["auction_id"])
        assert bids + raises == len(accepted)
        assert (await api.get(view["auction_id"]))["bid_count"] == bids
        # Not remembered: the same req_id goes through once the gateway has room.
        retry = overloaded[0]
        owner = next(s for s in sockets if retry in s.messages)
        owner.messages.clear()
        answer = await owner.bid(view["auction_id"], 10**7, req_id=retry["req_id"])
        assert answer["op"] == "ack"
        for s in sockets:
            await s.close()


async def test_auth_op_signs_in_an_open_socket(ece_hosted):
    api = ece_hosted.api
    user = await api.signup("late")
    view = await api.auction(await api.signup("seller"))
    ws = await connect(ece_hosted.http, ece_hosted.base)  # anonymous at first
    assert (await ws.bid(view["auction_id"], 1000))["code"] == "UNAUTHORIZED"
    refused = await ws.request({"op": "auth", "token": "forged.token.value"})
    assert refused["op"] == "error" and refused["code"] == "UNAUTHORIZED"
    answer = await ws.request({"op": "auth", "token": user.token})
    assert answer["op"] == "ack" and answer["user_id"] == user.user_id
    ack = await ws.bid(view["auction_id"], 1000)
    assert ack["op"] == "ack" and ack["leader_id"] == user.user_id
    await ws.close()
