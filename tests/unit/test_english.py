"""English auction rules: proxy bidding, increments, reserve, soft close, buy now, close."""

import json

from market.auction import Auction, public_event
from market.errors import AUCTION_NOT_LIVE, BID_TOO_LOW, INVALID, SELF_BID
from market.money import increment_for
from tests.unit.factories import HOUR, SELLER, T0, Bidder, live, make_auction

END = T0 + HOUR


def types(events: list[dict]) -> list[str]:
    return [e["type"] for e in events]


def max_of(auction: Auction, bidder: str) -> int:
    return dict((b, m) for b, m, _ in auction.to_snapshot()["book"])[bidder]


def test_worked_example() -> None:
    b = live(start_price=1000)
    ack = b.ok("A", 1000, max_amount=5000)
    assert (ack["price"], ack["leader_id"]) == (1000, "A")
    ack = b.ok("B", 2000)
    assert (ack["price"], ack["leader_id"]) == (2050, "A")  # B is outbid by A's proxy at once
    ack = b.ok("B", 6000)
    assert (ack["price"], ack["leader_id"]) == (5100, "B")
    err = b.refused("C", 5150)
    assert err["code"] == BID_TOO_LOW
    assert err["min_bid"] == 5200
    assert b.auction.view(T0 + 1)["min_bid"] == 5200
    assert b.auction.bid_count == 3


def test_first_bid_minimum_is_start_price() -> None:
    b = live(start_price=1000)
    assert b.auction.view(T0)["min_bid"] == 1000
    assert b.refused("A", 999) == {"code": BID_TOO_LOW, "message": "bid is below the minimum",
                                   "min_bid": 1000}
    assert b.ok("A", 1000)["price"] == 1000


def test_start_price_zero_is_allowed() -> None:
    b = live(start_price=0)
    assert b.ok("A", 0)["price"] == 0
    assert b.refused("B", 4)["min_bid"] == 5


def test_lone_bidder_pays_start_price_whatever_the_amount() -> None:
    b = live(start_price=1000)
    assert b.ok("A", 3000)["price"] == 1000
    assert b.auction.view(T0)["min_bid"] == 1050


def test_minimum_next_bid_follows_the_ladder() -> None:
    b = live(start_price=2450)
    b.ok("A", 2450, max_amount=20_000)
    b.ok("B", 2500)  # price = 2500 + 100 (ladder above 2,500)
    assert b.auction.price == 2600
    assert b.refused("C", 2699)["min_bid"] == 2700


def test_fixed_increment_replaces_the_ladder() -> None:
    b = live(start_price=1000, increment=7)
    b.ok("A", 1000, max_amount=5000)
    assert b.ok("B", 2000)["price"] == 2007
    assert b.refused("C", 2013)["min_bid"] == 2014


def test_max_amount_below_amount_is_invalid() -> None:
    b = live()
    err = b.refused("A", 2000, max_amount=1999)
    assert err["code"] == INVALID
    assert b.auction.bid_count == 0


def test_invalid_amounts() -> None:
    b = live()
    for amount in (True, 1000.0, "1000", -5, 2**53 + 1, None):
        assert b.refused("A", amount)["code"] == INVALID  # type: ignore[arg-type]
    assert b.refused("A", 1000, max_amount=5000.0)["code"] == INVALID  # type: ignore[arg-type]
    out = b.auction.handle_bid("A", "", 1000, None, T0)  # empty req_id
    assert out.error is not None and out.error.code == INVALID


def test_challenger_takes_lead_and_pays_one_increment_over_old_max() -> None:
    b = live(start_price=1000)
    b.ok("A", 1000, max_amount=3000)
    ack = b.ok("B", 1100, max_amount=9000)
    assert (ack["price"], ack["leader_id"]) == (3100, "B")


def test_price_capped_at_leader_max() -> None:
    b = live(start_price=1000)
    b.ok("A", 1000, max_amount=3000)
    ack = b.ok("B", 2990)  # 2990 + 50 would exceed A's 3000, so price = 3000
    assert (ack["price"], ack["leader_id"]) == (3000, "A")


def test_tie_goes_to_who_reached_the_maximum_first() -> None:
    b = live(start_price=1000)
    b.ok("A", 1000, max_amount=5000)
    ack = b.ok("B", 5000)
    assert (ack["price"], ack["leader_id"]) == (5000, "A")
    # ...and the same with the challenger being a proxy bid
    b2 = live(start_price=1000)
    b2.ok("A", 1000, max_amount=5000)
    ack = b2.ok("B", 1100, max_amount=5000)
    assert (ack["price"], ack["leader_id"]) == (5000, "A")


def test_outbid_bidder_who_comes_back_with_the_same_max_as_leader_loses_tie() -> None:
    b = live(start_price=1000)
    b.ok("A", 1000, max_amount=2000)
    b.ok("B", 1050, max_amount=4000)  # B leads at 2050
    ack = b.ok("A", 2100, max_amount=4000)  # A reaches 4000 later than B did
    assert (ack["price"], ack["leader_id"]) == (4000, "B")


def test_leader_raising_own_max_does_not_move_price() -> None:
    b = live(start_price=1000)
    b.ok("A", 1000, max_amount=2000)
    b.ok("B", 1200)
    assert b.auction.price == 1250
    out = b.bid("A", 1300, max_amount=9000)
    assert types(out.events) == ["raised"]
    assert out.ack is not None
    assert (out.ack["price"], out.ack["leader_id"], out.ack["bid_count"]) == (1250, "A", 2)
    assert max_of(b.auction, "A") == 9000
    # B now needs to beat 9000 to lead; a bid of 5000 is outbid by the proxy at 5100.
    assert b.ok("B", 5000)["price"] == 5100


def test_leader_raise_must_be_one_increment_above_own_max() -> None:
    b = live(start_price=1000)
    b.ok("A", 1000, max_amount=5000)
    err = b.refused("A", 1050)  # effective max 1050 <= 5000
    assert err["code"] == BID_TOO_LOW
    assert err["min_bid"] == 5100  # 5,000 + the ladder's 100 at 5,000
    assert b.refused("A", 1050, max_amount=5000)["min_bid"] == 5100
    assert b.refused("A", 1050, max_amount=5099)["min_bid"] == 5100
    # the ordinary minimum still applies to the amount
    assert b.refused("A", 1049, max_amount=9000)["min_bid"] == 1050
    assert b.auction.bid_count == 1
    assert max_of(b.auction, "A") == 5000
    assert types(b.bid("A", 1050, max_amount=5100).events) == ["raised"]
    assert max_of(b.auction, "A") == 5100


def test_one_cent_raise_is_refused_and_changes_nothing() -> None:
    b = live(start_price=1000, soft_close_ms=60_000)
    b.ok("A", 1000, max_amount=5000)
    before = b.auction.to_snapshot()
    out = b.bid("A", 5001, now=END - 1_000)
    assert out.events == [] and out.error is not None
    assert (out.error.code, out.error.details) == (BID_TOO_LOW, {"min_bid": 5100})
    assert b.auction.to_snapshot() == before


def test_leader_raise_uses_the_fixed_increment_when_set() -> None:
    b = live(start_price=1000, increment=7)
    b.ok("A", 1000, max_amount=5000)
    assert b.refused("A", 5006)["min_bid"] == 5007
    assert types(b.bid("A", 5007).events) == ["raised"]


def test_raised_event_shape_and_public_copy() -> None:
    b = live(start_price=1000)
    b.ok("A", 1000, max_amount=2000)
    b.ok("B", 1200)  # A leads at 1250, bid_count 2
    out = b.bid("A", 1300, max_amount=9000, req_id="r-up", now=T0 + 7)
    (raised,) = out.events
    assert raised == {"auction_id": "auc-1", "seq": 4, "type": "raised", "at": T0 + 7,
                      "bidder_id": "A", "amount": 1300, "max_amount": 9000, "req_id": "r-up",
                      "price": 1250, "leader_id": "A", "bid_count": 2}
    assert out.ack == {"seq": 4, "price": 1250, "leader_id": "A", "ends_at": END, "bid_count": 2}
    assert public_event(raised, "english") == {"auction_id": "auc-1", "seq": 4,
                                               "type": "raised", "at": T0 + 7}
    view = b.auction.view(T0 + 8)
    assert (view["price"], view["leader_id"], view["bid_count"]) == (1250, "A", 2)


def test_self_raises_in_soft_close_window_never_extend() -> None:
    b = live(start_price=1000, soft_close_ms=60_000)
    b.ok("A", 1000, max_amount=2000)
    b.ok("B", 1500)  # A leads at 1550
    maximum = 2000
    for i in range(35):
        maximum += increment_for(maximum)
        out = b.bid("A", maximum, now=END - 30_000 + i * 100)
        assert types(out.events) == ["raised"]
        assert out.ack is not None
        assert (out.ack["ends_at"], out.ack["bid_count"], out.ack["price"]) == (END, 2, 1550)
    a = b.auction
    assert (a.ends_at, a.bid_count, a.price, a.leader_id) == (END, 2, 1550, "A")
    assert max_of(a, "A") == maximum
    closed = b.advance(END)
    assert types(closed) == ["closed"]
    assert (closed[0]["winner_id"], closed[0]["final_price"]) == ("A", 1550)
    assert b.replayed().to_snapshot() == a.to_snapshot()


def test_challenger_matching_a_raised_maximum_loses_the_tie() -> None:
    b = live(start_price=1000)
    b.ok("A", 1000, max_amount=2000)
    b.ok("A", 1050, max_amount=6000)  # raise
    ack = b.ok("B", 6000)
    assert (ack["price"], ack["leader_id"]) == (6000, "A")
    ack = b.ok("C", 6100, max_amount=6000 + 100)
    assert (ack["price"], ack["leader_id"]) == (6100, "C")


def test_replay_and_snapshot_with_raises_rebuild_the_same_state() -> None:
    b = live(start_price=1000, reserve_price=3000, soft_close_ms=60_000)
    b.ok("A", 1000, max_amount=2000)
    b.ok("B", 1500)
    b.ok("A", 1600, max_amount=2500, now=END - 10_000)  # raise below the reserve
    b.ok("B", 2600, max_amount=2600, now=END - 9_000)  # B leads at 2600
    b.ok("B", 2700, max_amount=2700 + 100, now=END - 8_000)  # B raises
    b.ok("A", 2800, max_amount=4000, now=END)  # extended earlier, so still live
    b.advance(b.auction.ends_at)
    assert b.auction.status == "closed"
    final = b.auction.to_snapshot()
    assert "raised" in types(b.events)
    assert b.replayed().to_snapshot() == final
    for i in range(len(b.events) + 1):
        resumed = Auction.from_snapshot(json.loads(json.dumps(
            Auction.replay(b.auction.spec, b.events[:i]).to_snapshot())))
        for event in b.events[i:]:
            resumed.apply(event)
        assert resumed.to_snapshot() == final
    rebuilt = b.replayed()
    for n in range(1, 7):
        assert rebuilt.handle_bid("A" if n in (1, 3, 6) else "B", f"req-{n}", 0, None,
                                  END + HOUR).ack is not None
    assert rebuilt.to_snapshot() == final


def test_reserve_price_jumps_to_reserve_when_leader_max_reaches_it() -> None:
    b = live(start_price=1000, reserve_price=4000)
    ack = b.ok("A", 1000, max_amount=5000)
    assert ack["price"] == 4000  # lone bidder, but the reserve pulls the price up
    view = b.auction.view(T0 + 1)
    assert view["reserve_met"] is True
    assert "reserve_price" not in view
    assert 4000 not in (v for k, v in view.items() if k != "price")


def test_reserve_below_leader_max_keeps_competitive_price() -> None:
    b = live(start_price=1000, reserve_price=2000)
    b.ok("A", 1000, max_amount=5000)
    assert b.auction.price == 2000
    assert b.ok("B", 3000)["price"] == 3100  # above the reserve: ordinary proxy price


def test_reserve_not_reached_keeps_price_and_reports_unmet() -> None:
    b = live(start_price=1000, reserve_price=4000)
    b.ok("A", 1000, max_amount=3000)
    b.ok("B", 2000)
    assert (b.auction.price, b.auction.leader_id) == (2050, "A")
    assert b.auction.view(T0 + 1)["reserve_met"] is False
    # A raise below the reserve moves nothing public.
    assert types(b.bid("A", 2100, max_amount=3500).events) == ["raised"]
    assert (b.auction.price, b.auction.bid_count) == (2050, 2)
    # Raising to the reserve moves the price exactly to the reserve: a public price change,
    # so an ordinary bid (counted, and it may extend a soft close).
    out = b.bid("A", 2100, max_amount=4500)
    assert types(out.events) == ["bid"]
    assert out.ack is not None
    assert (out.ack["price"], out.ack["leader_id"], out.ack["bid_count"]) == (4000, "A", 3)
    assert b.auction.view(T0 + 1)["reserve_met"] is True
    # Once met, further raises are private again.
    assert types(b.bid("A", 4600, max_amount=6000).events) == ["raised"]
    assert (b.auction.price, b.auction.bid_count) == (4000, 3)


def test_reserve_not_met_at_close_means_no_winner() -> None:
    b = live(start_price=1000, reserve_price=4000)
    b.ok("A", 1000, max_amount=3000)
    events = b.advance(END)
    assert types(events) == ["closed"]
    assert events[0]["winner_id"] is None and events[0]["final_price"] is None
    view = b.auction.view(END)
    assert (view["status"], view["winner_id"], view["final_price"]) == ("closed", None, None)
    assert view["reserve_met"] is False


def test_reserve_met_is_none_without_reserve() -> None:
    b = live()
    assert b.auction.view(T0)["reserve_met"] is None
    b.ok("A", 1000)
    assert b.auction.view(T0)["reserve_met"] is None
    assert live(reserve_price=1500).auction.view(T0)["reserve_met"] is False


def test_close_at_ends_at_sells_to_leader_at_price() -> None:
    b = live(start_price=1000)
    b.ok("A", 1000, max_amount=5000)
    b.ok("B", 2000)
    assert b.advance(END - 1) == []
    events = b.advance(END)
    assert types(events) == ["closed"]
    closed = events[0]
    assert (closed["winner_id"], closed["final_price"], closed["reason"]) == ("A", 2050, "time")
    a = b.auction
    assert (a.status, a.winner_id, a.final_price, a.is_finished) == ("closed", "A", 2050, True)
    assert a.next_deadline() is None
    assert b.advance(END + 10) == []  # closing happens once


def test_close_without_bids_has_no_winner() -> None:
    b = live()
    closed = b.advance(END)[0]
    assert (closed["winner_id"], closed["final_price"]) == (None, None)


def test_bids_before_start_and_after_close_are_not_live() -> None:
    auction = make_auction()
    b = Bidder(auction)
    err = b.refused("A", 1000, now=T0 - 1)
    assert err["code"] == AUCTION_NOT_LIVE
    assert auction.status == "scheduled" and auction.seq == 0
    out = b.bid("A", 1000, now=T0)  # exactly at starts_at: started, then accepted
    assert out.ack is not None and types(out.events) == ["started", "bid"]
    out = b.bid("B", 5000, now=END)  # exactly at ends_at: closed first, then refused
    assert types(out.events) == ["closed"]
    assert out.error is not None and out.error.code == AUCTION_NOT_LIVE
    assert auction.winner_id == "A"


def test_seller_cannot_bid() -> None:
    b = live()
    assert b.refused(SELLER, 5000)["code"] == SELF_BID
    assert b.auction.bid_count == 0


def test_soft_close_extends_when_bid_lands_in_window() -> None:
    b = live(soft_close_ms=60_000)
    now = END - 30_000
    out = b.bid("A", 1000, now=now)
    assert types(out.events) == ["bid", "extended"]
    assert out.events[1]["ends_at"] == now + 60_000
    assert out.ack == {"seq": out.events[1]["seq"], "price": 1000, "leader_id": "A",
                       "ends_at": now + 60_000, "bid_count": 1}
    assert b.auction.ends_at == now + 60_000
    assert b.auction.next_deadline() == now + 60_000
    # the old end no longer closes it
    assert b.advance(END) == []
    # another late bid extends again
    later = now + 59_000
    out = b.bid("B", 1050, now=later)
    assert types(out.events) == ["bid", "extended"]
    assert b.auction.ends_at == later + 60_000
    assert types(b.advance(later + 60_000)) == ["closed"]
    assert b.auction.winner_id == "B"


def test_soft_close_boundaries() -> None:
    b = live(soft_close_ms=60_000)
    out = b.bid("A", 1000, now=END - 60_000)  # exactly soft_close_ms remaining: no extension
    assert types(out.events) == ["bid"]
    out = b.bid("B", 1050, now=END - 59_999)
    assert types(out.events) == ["bid", "extended"]


def test_soft_close_disabled_with_zero() -> None:
    b = live(soft_close_ms=0)
    out = b.bid("A", 1000, now=END - 1)
    assert types(out.events) == ["bid"]
    assert b.auction.ends_at == END


def test_buy_now_ends_auction_at_once() -> None:
    b = live(start_price=1000, buy_now_price=8000, reserve_price=3000)
    assert b.auction.view(T0)["buy_now_price"] == 8000
    out = b.bid("A", 9000, now=T0 + 5)
    assert types(out.events) == ["bid", "closed"]
    bid, closed = out.events
    assert (bid["price"], bid["leader_id"], bid["bid_count"]) == (8000, "A", 1)
    assert (closed["winner_id"], closed["final_price"], closed["reason"]) == ("A", 8000, "buy_now")
    assert out.ack == {"seq": closed["seq"], "price": 8000, "leader_id": "A",
                       "ends_at": T0 + 5, "bid_count": 1}
    a = b.auction
    assert (a.status, a.winner_id, a.final_price, a.ends_at) == ("closed", "A", 8000, T0 + 5)
    assert b.refused("B", 20_000, now=T0 + 6)["code"] == AUCTION_NOT_LIVE


def test_buy_now_exact_amount_and_only_before_first_bid() -> None:
    b = live(start_price=1000, buy_now_price=8000)
    assert types(b.bid("A", 8000).events) == ["bid", "closed"]

    b = live(start_price=1000, buy_now_price=8000)
    b.ok("A", 1000)
    assert b.auction.view(T0)["buy_now_price"] is None  # gone once a bid is placed
    out = b.bid("B", 9000)
    assert types(out.events) == ["bid"]  # an ordinary bid now
    assert out.ack is not None and out.ack["price"] == 1050
    assert b.auction.status == "live"


def test_buy_now_needs_the_amount_not_just_the_max() -> None:
    b = live(start_price=1000, buy_now_price=8000)
    out = b.bid("A", 1000, max_amount=10_000)
    assert types(out.events) == ["bid"]
    assert b.auction.status == "live"


def test_bid_count_counts_bids_not_proxy_or_self_raises() -> None:
    b = live(start_price=1000)
    b.ok("A", 1000, max_amount=10_000)
    for i, amount in enumerate((2000, 3000, 4000)):
        assert b.ok("B", amount)["bid_count"] == i + 2
    assert b.auction.bid_count == 4
    assert b.ok("A", 4200, max_amount=20_000)["bid_count"] == 4  # the leader's raise
    assert b.auction.bid_count == 4
    assert b.auction.leader_id == "A"


def test_a_refused_bid_leaves_no_garbage_for_the_collector() -> None:
    """A refusal is remembered (a retry gets it again) without the frames that raised it:
    with them, every refusal left a reference cycle through its caller's frames (a host's
    whole batch) that only a garbage collection frees."""
    import gc

    def refuse_some() -> list:
        b = live(start_price=1000)
        b.ok("A", 1000)
        errors = [b.auction.handle_bid("B", f"r{i}", 1000, None, T0 + 1).error
                  for i in range(50)]
        assert all(e is not None and e.code == BID_TOO_LOW for e in errors)
        return [e.__traceback__ for e in errors]

    gc.collect()
    was = gc.isenabled()
    gc.disable()
    try:
        assert refuse_some() == [None] * 50
        assert gc.collect() == 0  # nothing unreachable that refcounts did not free
    finally:
        if was:
            gc.enable()
