"""Sealed-bid second-price (Vickrey): hidden bids, second price, reserve, replacement."""

from market.auction import public_event
from market.errors import BID_TOO_LOW
from tests.unit.factories import HOUR, T0, live

END = T0 + HOUR
SEALED = {"type": "sealed", "start_price": 1_000}


def test_bids_are_hidden_while_live() -> None:
    b = live(**SEALED)
    ack = b.ok("A", 5_000)
    assert ack == {"seq": 2, "price": None, "leader_id": None, "ends_at": END, "bid_count": 1}
    ack = b.ok("B", 7_000)
    assert (ack["price"], ack["leader_id"], ack["bid_count"]) == (None, None, 2)
    view = b.auction.view(T0 + 1)
    assert (view["price"], view["leader_id"], view["bid_count"]) == (None, None, 2)
    assert view["min_bid"] == 1_000
    assert (b.auction.price, b.auction.leader_id) == (None, None)
    for event in b.events:
        pub = public_event(event, "sealed")
        assert "max_amount" not in pub and "req_id" not in pub
        if event["type"] == "bid":
            assert (pub["bidder_id"], pub["amount"], pub["price"], pub["leader_id"]) == (
                None, None, None, None)
            assert pub["bid_count"] == event["bid_count"]
            assert 5_000 not in pub.values() and 7_000 not in pub.values()


def test_highest_wins_and_pays_second_highest() -> None:
    b = live(**SEALED)
    b.ok("A", 5_000)
    b.ok("B", 7_000)
    b.ok("C", 6_000)
    closed = b.advance(END)[0]
    assert (closed["winner_id"], closed["final_price"], closed["price"]) == ("B", 6_000, 6_000)
    view = b.auction.view(END)
    assert (view["winner_id"], view["final_price"], view["price"], view["leader_id"]) == (
        "B", 6_000, 6_000, "B")


def test_single_bidder_pays_start_price() -> None:
    b = live(**SEALED)
    b.ok("A", 9_000)
    closed = b.advance(END)[0]
    assert (closed["winner_id"], closed["final_price"]) == ("A", 1_000)


def test_reserve_sets_the_floor_of_the_price() -> None:
    b = live(**SEALED, reserve_price=4_000)
    b.ok("A", 5_000)
    b.ok("B", 2_000)
    assert b.auction.view(T0 + 1)["reserve_met"] is None  # not revealed while live
    closed = b.advance(END)[0]
    assert (closed["winner_id"], closed["final_price"]) == ("A", 4_000)
    assert b.auction.view(END)["reserve_met"] is True


def test_second_price_above_reserve_wins_over_reserve() -> None:
    b = live(**SEALED, reserve_price=4_000)
    b.ok("A", 5_000)
    b.ok("B", 4_500)
    assert b.advance(END)[0]["final_price"] == 4_500


def test_highest_below_reserve_means_no_winner() -> None:
    b = live(**SEALED, reserve_price=4_000)
    b.ok("A", 3_999)
    b.ok("B", 2_000)
    closed = b.advance(END)[0]
    assert (closed["winner_id"], closed["final_price"]) == (None, None)
    view = b.auction.view(END)
    assert (view["price"], view["leader_id"], view["reserve_met"]) == (None, None, False)


def test_no_bids_no_winner() -> None:
    b = live(**SEALED)
    closed = b.advance(END)[0]
    assert closed["winner_id"] is None
    assert b.auction.view(END)["reserve_met"] is None


def test_tie_goes_to_the_earliest_bid() -> None:
    b = live(**SEALED)
    b.ok("A", 5_000)
    b.ok("B", 5_000)
    closed = b.advance(END)[0]
    assert (closed["winner_id"], closed["final_price"]) == ("A", 5_000)


def test_replacement_must_be_an_increment_higher_and_is_not_counted() -> None:
    b = live(**SEALED)
    b.ok("A", 5_000)
    b.ok("B", 6_000)
    err = b.refused("A", 5_000)
    assert (err["code"], err["min_bid"]) == (BID_TOO_LOW, 5_100)  # 5,000 + ladder's 100
    assert b.refused("A", 4_000)["min_bid"] == 5_100
    assert b.refused("A", 5_001)["min_bid"] == 5_100
    out = b.bid("A", 8_000)
    assert [e["type"] for e in out.events] == ["raised"]
    assert out.ack is not None and out.ack["bid_count"] == 2  # bidders with a bid
    assert b.auction.bid_count == 2
    closed = b.advance(END)[0]
    # A's replaced bid counts once: second price is B's 6,000, not A's old 5,000.
    assert (closed["winner_id"], closed["final_price"]) == ("A", 6_000)


def test_replacement_event_shape_and_public_copy() -> None:
    b = live(**SEALED)
    b.ok("A", 5_000)
    out = b.bid("A", 5_100, req_id="again", now=T0 + 9)
    (raised,) = out.events
    assert raised == {"auction_id": "auc-1", "seq": 3, "type": "raised", "at": T0 + 9,
                      "bidder_id": "A", "amount": 5_100, "max_amount": 5_100,
                      "req_id": "again", "price": None, "leader_id": None, "bid_count": 1}
    assert out.ack == {"seq": 3, "price": None, "leader_id": None, "ends_at": END,
                       "bid_count": 1}
    assert public_event(raised, "sealed") == {"auction_id": "auc-1", "seq": 3,
                                              "type": "raised", "at": T0 + 9}
    assert b.replayed().to_snapshot() == b.auction.to_snapshot()


def test_replacement_moves_tie_order() -> None:
    b = live(**SEALED)
    b.ok("A", 4_000)
    b.ok("B", 5_000)
    b.ok("A", 5_000)  # A reaches 5,000 after B did
    assert b.advance(END)[0]["winner_id"] == "B"


def test_below_start_price_is_too_low() -> None:
    b = live(**SEALED)
    err = b.refused("A", 999)
    assert (err["code"], err["min_bid"]) == (BID_TOO_LOW, 1_000)


def test_no_soft_close_for_sealed() -> None:
    b = live(**SEALED)
    out = b.bid("A", 1_000, now=END - 1)
    assert [e["type"] for e in out.events] == ["bid"]
    assert b.auction.ends_at == END
