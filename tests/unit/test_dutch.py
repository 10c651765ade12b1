"""Dutch auction: falling price, first acceptable bid wins at the current price."""

from market.auction import public_event
from market.errors import AUCTION_NOT_LIVE, BID_TOO_LOW, SELF_BID
from tests.unit.factories import HOUR, SELLER, T0, Bidder, live, make_auction

END = T0 + HOUR
DUTCH = {"type": "dutch", "start_price": 10_000, "floor_price": 7_000, "step": 1_000,
         "step_ms": 60_000}


def test_price_schedule_falls_by_step_every_step_ms_down_to_floor() -> None:
    b = live(**DUTCH)
    a = b.auction
    expected = {
        T0: 10_000, T0 + 59_999: 10_000,
        T0 + 60_000: 9_000, T0 + 119_999: 9_000,
        T0 + 120_000: 8_000,
        T0 + 180_000: 7_000, T0 + 240_000: 7_000, T0 + 30 * 60_000: 7_000,
    }
    for now, price in expected.items():
        assert a.current_price(now) == price, now
        view = a.view(now)
        assert (view["price"], view["min_bid"]) == (price, price)
    view = a.view(T0)
    assert (view["floor_price"], view["step"], view["step_ms"]) == (7_000, 1_000, 60_000)
    assert view["buy_now_price"] is None and view["reserve_met"] is None


def test_floor_not_multiple_of_step_stops_at_floor() -> None:
    b = live(**{**DUTCH, "floor_price": 7_500})
    assert b.auction.current_price(T0 + 180_000) == 7_500


def test_schedule_counts_from_starts_at_even_if_started_late() -> None:
    b = Bidder(make_auction(**DUTCH))
    out = b.bid("A", 9_000, now=T0 + 60_000)  # first contact 1 minute after starts_at
    assert [e["type"] for e in out.events] == ["started", "bid", "closed"]
    assert b.auction.final_price == 9_000


def test_first_bid_at_or_above_current_price_wins_at_current_price() -> None:
    b = live(**DUTCH)
    now = T0 + 130_000  # price 8,000
    out = b.bid("A", 9_500, now=now)
    assert [e["type"] for e in out.events] == ["bid", "closed"]
    bid, closed = out.events
    assert (bid["amount"], bid["price"], bid["leader_id"], bid["bid_count"]) == (
        9_500, 8_000, "A", 1)
    assert (closed["winner_id"], closed["final_price"], closed["reason"]) == ("A", 8_000, "bid")
    assert out.ack == {"seq": closed["seq"], "price": 8_000, "leader_id": "A", "ends_at": now,
                       "bid_count": 1}
    view = b.auction.view(now + 999_999)
    assert (view["status"], view["price"], view["winner_id"], view["final_price"]) == (
        "closed", 8_000, "A", 8_000)
    assert view["min_bid"] is None
    assert b.refused("B", 20_000, now=now + 1)["code"] == AUCTION_NOT_LIVE
    # The winner's bid is public at the price paid, not at what they offered.
    assert public_event(bid, "dutch")["amount"] == 8_000
    assert 9_500 not in public_event(bid, "dutch").values()
    assert "max_amount" not in public_event(bid, "dutch")


def test_bid_below_current_price_is_too_low_with_current_price() -> None:
    b = live(**DUTCH)
    err = b.refused("A", 8_999, now=T0 + 60_000)
    assert (err["code"], err["min_bid"]) == (BID_TOO_LOW, 9_000)
    assert b.auction.status == "live" and b.auction.bid_count == 0
    assert b.ok("A", 8_000, now=T0 + 120_000)["price"] == 8_000  # later, it is enough


def test_no_bid_by_ends_at_closes_unsold() -> None:
    b = live(**DUTCH)
    events = b.advance(END)
    assert [e["type"] for e in events] == ["closed"]
    assert (events[0]["winner_id"], events[0]["final_price"]) == (None, None)
    view = b.auction.view(END)
    assert (view["status"], view["price"], view["winner_id"]) == ("closed", None, None)


def test_seller_and_early_bids_refused() -> None:
    b = Bidder(make_auction(**DUTCH))
    assert b.refused("A", 10_000, now=T0 - 1)["code"] == AUCTION_NOT_LIVE
    assert b.refused(SELLER, 10_000, now=T0)["code"] == SELF_BID


def test_soft_close_does_not_apply_to_dutch() -> None:
    b = live(**DUTCH)
    out = b.bid("A", 7_000, now=END - 1)
    assert [e["type"] for e in out.events] == ["bid", "closed"]
