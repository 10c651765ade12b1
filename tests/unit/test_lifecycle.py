"""Time transitions, cancel, idempotency, public events and snapshots (all auction types)."""

import json

import pytest

from market.auction import ACKS_PER_BIDDER, Auction, BidOutcome, public_event
from market.errors import (
    AUCTION_NOT_LIVE,
    BID_TOO_LOW,
    HAS_BIDS,
    INVALID,
    NOT_SELLER,
    MarketError,
)
from market.money import increment_for
from tests.unit.factories import HOUR, SELLER, T0, Bidder, live, make_auction, make_spec

END = T0 + HOUR


# ---- advance / next_deadline ---------------------------------------------------------------

def test_new_auction_is_scheduled_with_no_events() -> None:
    a = make_auction()
    assert (a.status, a.seq, a.price, a.leader_id, a.bid_count) == ("scheduled", 0, None, None, 0)
    assert (a.winner_id, a.final_price, a.ends_at, a.is_finished) == (None, None, END, False)
    assert a.next_deadline() == T0
    assert a.advance(T0 - 1) == []


def test_started_is_emitted_once() -> None:
    a = make_auction()
    events = a.advance(T0)
    assert events == [{"auction_id": "auc-1", "seq": 1, "type": "started", "at": T0}]
    assert a.status == "live" and a.next_deadline() == END
    assert a.advance(T0 + 5) == []


def test_started_and_closed_when_both_due() -> None:
    a = make_auction()
    events = a.advance(END + 5)
    assert [(e["type"], e["seq"]) for e in events] == [("started", 1), ("closed", 2)]
    assert a.status == "closed" and a.next_deadline() is None


def test_advance_does_not_touch_finished_auctions() -> None:
    b = live()
    b.advance(END)
    assert b.advance(END + HOUR) == []
    assert b.auction.seq == 2


# ---- cancel ----------------------------------------------------------------------------------

def test_seller_can_cancel_before_first_bid() -> None:
    a = make_auction()
    events = a.cancel(SELLER, T0 - 10)
    assert [e["type"] for e in events] == ["cancelled"]
    assert a.status == "cancelled" and a.is_finished and a.next_deadline() is None
    assert a.view(T0)["min_bid"] is None
    out = a.handle_bid("A", "r1", 1000, None, T0 + 1)
    assert out.error is not None and out.error.code == AUCTION_NOT_LIVE
    assert out.events == []  # a cancelled auction never starts

    b = live()
    assert [e["type"] for e in b.auction.cancel(SELLER, T0 + 1)] == ["cancelled"]


def test_only_seller_can_cancel() -> None:
    a = make_auction()
    with pytest.raises(MarketError) as info:
        a.cancel("A", T0)
    assert info.value.code == NOT_SELLER
    assert a.status == "scheduled" and a.seq == 0


def test_cannot_cancel_after_first_bid() -> None:
    b = live()
    b.ok("A", 1000)
    seq = b.auction.seq
    with pytest.raises(MarketError) as info:
        b.auction.cancel(SELLER, T0 + 2)
    assert info.value.code == HAS_BIDS
    assert b.auction.seq == seq and b.auction.status == "live"


def test_cannot_cancel_when_over() -> None:
    b = live()
    b.advance(END)
    with pytest.raises(MarketError) as info:
        b.auction.cancel(SELLER, END + 1)
    assert info.value.code == AUCTION_NOT_LIVE

    a = make_auction()
    a.cancel(SELLER, T0)
    with pytest.raises(MarketError) as info:
        a.cancel(SELLER, T0)
    assert info.value.code == AUCTION_NOT_LIVE

    # Past ends_at but not yet advanced: refused without emitting or mutating anything.
    c = live()
    with pytest.raises(MarketError) as info:
        c.auction.cancel(SELLER, END)
    assert info.value.code == AUCTION_NOT_LIVE
    assert c.auction.status == "live" and c.auction.seq == 1


# ---- idempotency -----------------------------------------------------------------------------

def test_duplicate_req_id_returns_same_ack_without_events() -> None:
    b = live(start_price=1000)
    first = b.bid("A", 1000, max_amount=5000, req_id="x")
    b.ok("B", 2000)
    before = b.auction.to_snapshot()
    again = b.bid("A", 1000, max_amount=5000, req_id="x", now=T0 + 100)
    assert again == BidOutcome(events=[], ack=first.ack, error=None)
    assert b.auction.to_snapshot() == before
    # even a different amount under the same key is the same request
    assert b.bid("A", 9999, req_id="x").ack == first.ack
    # ...but the same req_id from another bidder is a different request
    assert b.bid("C", 3000, req_id="x").ack is not None


def test_duplicate_does_not_even_advance_time() -> None:
    b = live()
    first = b.bid("A", 1000, req_id="x")
    again = b.bid("A", 1000, req_id="x", now=END + 1)
    assert again.events == [] and again.ack == first.ack
    assert b.auction.status == "live"


def test_duplicate_of_a_rejected_bid_returns_the_same_error() -> None:
    b = live(start_price=1000)
    first = b.bid("A", 500, req_id="x")
    assert first.error is not None and first.error.code == BID_TOO_LOW
    again = b.bid("A", 5000, req_id="x")  # would be fine as a new request
    assert again.events == [] and again.ack is None
    assert again.error is first.error
    assert b.auction.bid_count == 0


def test_ack_includes_extension_and_survives_replay_and_snapshot() -> None:
    b = live(start_price=1000)
    out = b.bid("A", 1000, req_id="late", now=END - 1000)
    assert out.ack is not None and out.ack["seq"] == 3 and out.ack["ends_at"] == END - 1000 + 60_000
    for rebuilt in (b.replayed(), Auction.from_snapshot(json.loads(json.dumps(
            b.auction.to_snapshot())))):
        again = rebuilt.handle_bid("A", "late", 1000, None, END)
        assert again.events == [] and again.ack == out.ack


def test_rejections_are_not_part_of_the_snapshot() -> None:
    b = live()
    before = b.auction.to_snapshot()
    b.bid("A", 1, req_id="bad")
    assert b.auction.to_snapshot() == before


def test_another_bidders_refusals_do_not_evict_mine() -> None:
    a = make_auction(start_price=1000)
    early = a.handle_bid("A", "mine", 1000, None, T0 - 1)
    assert early.error is not None and early.error.code == AUCTION_NOT_LIVE
    for i in range(1_000):  # B's traffic before the start...
        assert a.handle_bid("B", f"b{i}", 1000, None, T0 - 1).error is not None
    for i in range(1_000):  # ...and after it
        assert a.handle_bid("B", f"c{i}", 1, None, T0 + 1).error is not None
    assert a.status == "live"
    again = a.handle_bid("A", "mine", 1000, None, T0 + 2)
    assert again.events == [] and again.ack is None and again.error is early.error
    assert a.bid_count == 0


def test_refusals_are_remembered_256_per_bidder_oldest_evicted_first() -> None:
    a = make_auction(start_price=1000)
    first = [a.handle_bid("A", f"r{i}", 1000, None, T0 - 1) for i in range(ACKS_PER_BIDDER + 1)]
    assert all(o.error is not None and o.error.code == AUCTION_NOT_LIVE for o in first)
    assert a.handle_bid("A", "r1", 1000, None, T0 + 1).error is first[1].error
    # r0 was A's oldest refusal and was evicted by A's own 257th: judged anew, now accepted.
    assert a.handle_bid("A", "r0", 1000, None, T0 + 1).ack is not None


def _sealed_raises(b: Bidder, bidder: str, count: int, amount: int = 1000) -> int:
    """`count` accepted sealed bids by one bidder (a first bid, then replacements)."""
    for _ in range(count):
        b.ok(bidder, amount)
        amount += increment_for(amount)
    return amount


def test_acks_are_remembered_256_per_bidder_oldest_evicted_first() -> None:
    b = live(type="sealed", start_price=1000)
    mine = b.bid("B", 1000, req_id="b-first")
    _sealed_raises(b, "A", ACKS_PER_BIDDER + 1)  # req-1 .. req-257
    acks = b.auction.to_snapshot()["acks"]
    assert len(acks) == ACKS_PER_BIDDER + 1
    assert sum(1 for bidder, _, _ in acks if bidder == "A") == ACKS_PER_BIDDER
    assert "req-1" not in {r for _, r, _ in acks}
    # B's only ack survived A's traffic; A's second-oldest is still answered the same.
    assert b.bid("B", 1, req_id="b-first").ack == mine.ack
    second = b.auction.handle_bid("A", "req-2", 0, None, T0 + 2)
    assert second.events == [] and second.ack is not None and second.ack["seq"] == 4
    # A's oldest was evicted: the retry is judged anew (a replacement below A's bid).
    again = b.bid("A", 1000, req_id="req-1")
    assert again.error is not None and again.error.code == BID_TOO_LOW
    # Replay evicts exactly like live.
    assert b.replayed().to_snapshot() == b.auction.to_snapshot()


def test_snapshot_stays_bounded_with_10000_accepted_bids() -> None:
    b = live(type="sealed", start_price=1000)
    amount = _sealed_raises(b, "A", 300)
    size_300 = len(json.dumps(b.auction.to_snapshot()))
    _sealed_raises(b, "A", 9_700, amount)
    snap = b.auction.to_snapshot()
    assert len(snap["acks"]) == ACKS_PER_BIDDER
    assert len(json.dumps(snap)) < size_300 * 1.2
    assert snap["version"] == 2
    clone = Auction.from_snapshot(json.loads(json.dumps(snap)))
    assert clone.to_snapshot() == snap
    assert Auction.from_snapshot(clone.to_snapshot()).to_snapshot() == snap
    assert b.replayed().to_snapshot() == snap


def test_version_1_snapshot_is_read_and_trimmed() -> None:
    b = live(type="sealed", start_price=1000)
    b.ok("B", 1000)
    _sealed_raises(b, "A", ACKS_PER_BIDDER + 20)
    current = b.auction.to_snapshot()
    # A version-1 snapshot held every ack ever given, sorted by (bidder_id, req_id) (so
    # "req-10" sorts before "req-2": the order says nothing about age).
    every_ack = [[e["bidder_id"], e["req_id"],
                  {"seq": e["seq"], "price": None, "leader_id": None, "ends_at": END,
                   "bid_count": e["bid_count"]}]
                 for e in b.events if e["type"] in ("bid", "raised")]
    assert len(every_ack) == ACKS_PER_BIDDER + 21
    v1 = dict(current, version=1, acks=sorted(every_ack, key=lambda row: row[:2]))
    assert Auction.from_snapshot(json.loads(json.dumps(v1))).to_snapshot() == current
    with pytest.raises(ValueError):
        Auction.from_snapshot(dict(current, version=3))


def test_req_id_with_type_prefix_of_132_characters_is_accepted() -> None:
    b = live()
    req_id = "str:" + "x" * 128
    assert len(req_id) == 132
    out = b.bid("A", 1000, req_id=req_id)
    assert out.ack is not None
    assert b.bid("A", 1000, req_id=req_id).ack == out.ack
    too_long = b.bid("A", 5000, req_id="x" * 161)
    assert too_long.error is not None and too_long.error.code == INVALID


def test_returned_ack_is_a_copy() -> None:
    b = live()
    ack = b.ok("A", 1000)
    ack["price"] = 1
    assert b.auction.to_snapshot()["acks"][0][2]["price"] == 1000


# ---- public events -----------------------------------------------------------------------------

def test_public_event_strips_private_fields_english() -> None:
    b = live()
    out = b.bid("A", 1000, max_amount=5000, req_id="secret")
    bid = out.events[0]
    assert bid["max_amount"] == 5000 and bid["req_id"] == "secret"
    pub = public_event(bid, "english")
    assert pub == {"auction_id": "auc-1", "seq": 2, "type": "bid", "at": T0 + 1,
                   "bidder_id": "A", "amount": 1000, "price": 1000, "leader_id": "A",
                   "bid_count": 1, "min_bid": 1050}
    assert "max_amount" in bid  # the original is untouched


def test_public_event_shows_a_leading_bid_at_the_price() -> None:
    b = live(start_price=1000)
    bid = b.bid("A", 3000).events[0]  # lone bidder: leads at the start price
    pub = public_event(bid, "english")
    assert (pub["amount"], pub["price"], pub["leader_id"]) == (1000, 1000, "A")
    assert 3000 not in pub.values()
    assert bid["amount"] == 3000  # the original is untouched
    # An outbid bidder's amount stays: it is below the price anyway.
    outbid = b.bid("B", 1500).events[0]
    assert (outbid["leader_id"], public_event(outbid, "english")["amount"]) == ("A", 1500)
    # A challenger who takes the lead shows the price, not what they offered.
    lead = b.bid("C", 9000).events[0]
    assert (lead["leader_id"], lead["price"]) == ("C", 3100)
    assert public_event(lead, "english")["amount"] == 3100


def test_public_event_buy_now_and_dutch_show_the_price_paid() -> None:
    b = live(start_price=1000, buy_now_price=8000)
    bid = b.bid("A", 9000).events[0]
    assert public_event(bid, "english")["amount"] == 8000
    d = live(type="dutch", start_price=10_000, floor_price=5_000, step=1_000, step_ms=60_000)
    bid = d.bid("A", 12_000).events[0]
    assert public_event(bid, "dutch")["amount"] == 10_000


def test_public_event_leaves_other_events_alone() -> None:
    b = live()
    b.ok("A", 1000)
    closed = b.advance(END)[0]
    assert public_event(closed, "sealed") == closed
    assert public_event(b.events[0], "english") == b.events[0]


def test_view_never_reveals_proxy_maximum_or_reserve_value() -> None:
    # (Once the reserve is met the price itself jumps to it, which is public by design.)
    b = live(start_price=1000, reserve_price=43_210)
    b.ok("A", 1000, max_amount=9_876)
    b.ok("B", 1100)
    view = b.auction.view(T0 + 1)
    assert view["price"] == 1150 and view["reserve_met"] is False
    text = json.dumps(view)
    assert "9876" not in text
    assert "43210" not in text


# ---- snapshots and replay ----------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["english", "sealed", "dutch"])
def test_snapshot_round_trip_through_json(kind: str) -> None:
    extra = {"floor_price": 100, "step": 10, "step_ms": 1000} if kind == "dutch" else {}
    b = live(type=kind, **extra)
    b.ok("A", 1000, max_amount=3000)
    snap = b.auction.to_snapshot()
    clone = Auction.from_snapshot(json.loads(json.dumps(snap)))
    assert clone.to_snapshot() == snap
    assert clone.view(T0 + 2) == b.auction.view(T0 + 2)
    assert b.replayed().to_snapshot() == snap
    assert snap["seq"] == b.auction.seq


def test_apply_rejects_gaps_and_foreign_events() -> None:
    a = make_auction()
    with pytest.raises(ValueError):
        a.apply({"auction_id": "auc-1", "seq": 2, "type": "started", "at": T0})
    with pytest.raises(ValueError):
        a.apply({"auction_id": "other", "seq": 1, "type": "started", "at": T0})
    with pytest.raises(ValueError):
        a.apply({"auction_id": "auc-1", "seq": 1, "type": "nonsense", "at": T0})
    assert a.seq == 0


def test_seq_is_consecutive_across_commands() -> None:
    b = Bidder(Auction(make_spec(soft_close_ms=60_000)))
    b.bid("A", 1000, now=T0)
    b.bid("B", 1050, now=END - 10)
    b.bid("C", 1, now=END - 5)
    b.advance(END + 60_000)
    assert [e["seq"] for e in b.events] == list(range(1, len(b.events) + 1))
    assert [e["type"] for e in b.events] == ["started", "bid", "bid", "extended", "closed"]
