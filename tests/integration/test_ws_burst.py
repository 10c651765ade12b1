"""A client that sends a burst of frames and reads its answers is served in full: the
gateway stops reading its frames while its answers back up (back-pressure) instead of
cutting it off with 1013, which stays for clients that do not read (test_websocket.py)."""

from __future__ import annotations

import asyncio
import collections
import json

import pytest

from tests.integration.conftest import gateway_with
from tests.integration.test_analytics_attacks import RawSocket

pytestmark = pytest.mark.asyncio(loop_scope="session")

BIDS = 1_200  # more than a socket's bids in flight (MAX_SOCKET_INFLIGHT) and its queue
QUEUE = 256  # ECE_SEND_QUEUE: small, so that the burst's answers alone overflow it


async def test_a_burst_of_bids_within_the_limits_is_answered_in_full(ray_cluster, tmp_path):
    """Sign-in, a subscribe to the auction and 1,200 bids in one TCP write, within the frame
    and bid rate limits, from a client that reads all the while: every bid is answered (ack
    or a refusal by the auction's rules, never OVERLOADED), the socket stays open, and the
    auction's events arrive too."""
    async with gateway_with(tmp_path, send_queue=QUEUE, frame_rate=1e6, frame_burst=2 * BIDS,
                            rate_per_s=1e6, rate_burst=1e6) as ece:
        api = ece.api
        seller, bidder = await api.signup("seller"), await api.signup("bidder")
        auction_id = (await api.auction(seller, start_price=100))["auction_id"]
        raw = await RawSocket.open(ece.base)
        burst = [RawSocket.text({"op": "auth", "token": bidder.token, "req_id": "auth"}),
                 RawSocket.text({"op": "subscribe", "auction_id": auction_id, "req_id": "sub"})]
        burst += [RawSocket.text({"op": "bid", "auction_id": auction_id, "amount": 100 + 10 * i,
                                  "req_id": f"b{i}"}) for i in range(BIDS)]
        wanted = {f"b{i}" for i in range(BIDS)}
        answers: dict[str, dict] = {}
        events: list[dict] = []

        async def read() -> int | None:
            while wanted - answers.keys():
                opcode, payload = await raw.read_frame()
                if opcode == 0x8:  # a close frame: its code
                    return int.from_bytes(payload[:2], "big")
                message = json.loads(payload) if opcode == 0x1 else {}
                if message.get("op") == "event":
                    events.append(message)
                elif message.get("req_id") in wanted:
                    answers[message["req_id"]] = message
            return None

        reader = asyncio.get_running_loop().create_task(read())
        raw.writer.write(b"".join(burst))  # one write: the server reads it in a few gulps
        closed_with = await asyncio.wait_for(reader, 60)
        codes = collections.Counter(a.get("code", a["op"]) for a in answers.values())
        assert closed_with is None, (closed_with, len(answers), codes)
        assert answers.keys() == wanted
        assert not {"OVERLOADED", "RATE_LIMITED", "INTERNAL"} & codes.keys(), codes
        assert codes["ack"] >= 1, codes
        acked = max(a["seq"] for a in answers.values() if a["op"] == "ack")
        # The events of the accepted bids follow (the feed may still be delivering them).
        while not events or events[-1]["seq"] < acked:
            opcode, payload = await asyncio.wait_for(raw.read_frame(), 30)
            assert opcode == 0x1, opcode
            message = json.loads(payload)
            if message.get("op") == "event":
                events.append(message)
        seqs = [e["seq"] for e in events]
        assert seqs == sorted(set(seqs)), "events out of order or repeated"
        raw.abort()
