"""The typed messages at the host's boundary: a bid frame becomes exactly one `PlaceBid`, and
every message survives Ray's pickling unchanged (Ray passes them between processes)."""

from __future__ import annotations

import pickle

import pytest
import ray.cloudpickle as cloudpickle

from actors.messages import (
    Acked,
    Activate,
    Cancel,
    FeedPage,
    GetView,
    PlaceBid,
    Refused,
    Viewed,
    refusal,
    refused,
)
from gateway.protocol import ProtocolError, parse_bid
from market.errors import BID_TOO_LOW, MarketError


def test_a_bid_frame_becomes_a_command_from_the_sockets_user() -> None:
    bid = parse_bid({"op": "bid", "req_id": 7, "auction_id": "a_1", "amount": 500,
                     "max_amount": 900, "bidder_id": "u_someone_else"})
    assert bid.command("u_me") == PlaceBid("a_1", "u_me", "int:7", 500, 900)
    # The int 7 and the string "7" are different requests of the same user.
    same_text = parse_bid({"op": "bid", "req_id": "7", "auction_id": "a_1", "amount": 500})
    assert same_text.command("u_me").req_id == "str:7" != bid.command("u_me").req_id


def test_a_malformed_bid_frame_is_refused_with_its_req_id() -> None:
    with pytest.raises(ProtocolError) as err:
        parse_bid({"op": "bid", "req_id": "r1", "auction_id": "a_1", "amount": 5,
                   "max_amount": 4})
    assert err.value.code == "INVALID" and err.value.req_id == "r1"


MESSAGES = [
    Activate("a_1"), PlaceBid("a_1", "u_1", "str:r", 100), PlaceBid("a_1", "u_1", "int:2", 1, 9),
    Cancel("a_1", by="u_1"), GetView("a_1"),
    Acked({"seq": 3, "price": 100, "leader_id": "u_1", "ends_at": 10, "bid_count": 1}),
    Viewed({"auction_id": "a_1", "status": "live"}),
    refused(BID_TOO_LOW, "low", min_bid=150),
    FeedPage("e", 4, False, [{"auction_id": "a_1", "seq": 4, "type": "started"}]),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_messages_cross_process_boundaries_unchanged(message: object) -> None:
    for dumps in (pickle.dumps, cloudpickle.dumps):
        copy = pickle.loads(dumps(message))
        assert copy == message and type(copy) is type(message)


def test_a_rule_refusal_keeps_its_details() -> None:
    reply = refusal(MarketError(BID_TOO_LOW, "low", min_bid=150))
    assert isinstance(reply, Refused)
    assert reply.code == BID_TOO_LOW and reply.error["min_bid"] == 150  # type: ignore[typeddict-item]
