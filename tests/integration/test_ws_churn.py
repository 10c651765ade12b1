"""A socket churning subscribe/unsubscribe (analytics channels and an auction, JSON and
msgpack): every frame is answered - an ack, or past the frame rate's burst a RATE_LIMITED
error - the server keeps answering others during the churn, and holds no subscription once
the sockets close."""

from __future__ import annotations

import pytest

from testkit.client import Socket, connect, unique, wait_for

pytestmark = pytest.mark.asyncio(loop_scope="session")

BATCH = 100  # frames sent before the client waits for their answers
FRAMES = 3_000


def churn(auction_id: str, card_id: str, frames: int) -> list[dict]:
    targets = [{"channel": f"card:{card_id}"}, {"channel": "market"}, {"auction_id": auction_id}]
    return [{"op": "subscribe" if i % 2 == 0 else "unsubscribe", **targets[i // 2 % 3],
             "req_id": f"c{i}"} for i in range(frames)]


async def setup(ece, encoding: str) -> tuple[list[dict], Socket, Socket]:
    seller, churner, other = [await ece.api.signup(p) for p in ("sel", "churn", "other")]
    auction = await ece.api.auction(seller, start_price=500, duration_ms=600_000)
    card = await ece.api.expect(201, "POST", "/api/cards", seller, json={
        "name": unique("Churn"), "set": "Base Set", "number": "4/102", "year": 1999,
        "category": "pokemon"})
    sock = await connect(ece.http, ece.base, churner, encoding=encoding)
    probe = await connect(ece.http, ece.base, other)
    return churn(auction["auction_id"], card["card_id"], FRAMES), sock, probe


def answered_or_closed(sock: Socket, count: int) -> bool:
    return len(sock.messages) >= count or sock.closed_code is not None


@pytest.mark.parametrize("encoding", ["json", "msgpack"])
async def test_churn_is_answered_frame_for_frame_and_others_too(ece_hosted, encoding):
    ece = ece_hosted
    frames, sock, probe = await setup(ece, encoding)
    for start in range(0, FRAMES, BATCH):
        for message in frames[start:start + BATCH]:
            await sock.send(message)
        await wait_for(lambda n=start + BATCH: answered_or_closed(sock, n), timeout=30,
                       message="the batch's answers")
        if start == FRAMES // 2:  # others are answered during the churn
            assert (await probe.request({"op": "ping"}, timeout=20))["op"] == "pong"
    assert sock.closed_code is None
    assert len(sock.messages) == FRAMES  # silence for none: one answer per frame
    errors = [m.get("code") for m in sock.messages if m["op"] == "error"]
    assert set(errors) <= {"RATE_LIMITED", "OVERLOADED"}, set(errors)
    # 3,000 frames in ~15 s are more than 200 a second after a burst of 400.
    assert "RATE_LIMITED" in errors
    acks = [m for m in sock.messages if m["op"] in ("ack", "snapshot")]
    assert {m["req_id"] for m in acks} <= {f["req_id"] for f in frames}
    # Still served (the bucket refills at 200 frames a second), and so is everybody else.
    assert (await sock.request({"op": "ping"}, timeout=20))["op"] == "pong"
    assert (await probe.request({"op": "ping"}))["op"] == "pong"
    await sock.close()
    await probe.close()
    gateway = ece.gateway
    await wait_for(lambda: gateway.channels.subscribers() == 0 and gateway.hub.registered() == 0
                   and not gateway.connections, timeout=20, message="nothing left registered")
