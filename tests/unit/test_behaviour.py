"""market.behaviour: facts of closed auctions (from the real rules engine) and user metrics."""

from __future__ import annotations

from typing import Any
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from market import behaviour
from market.auction import Auction, public_event
from market.behaviour import (
    TIMING_BUCKETS,
    AuctionFacts,
    Bid,
    BidColumns,
    UserBehaviour,
    auction_facts,
    empty_summary,
    timing_buckets,
)
from market.spec import parse_spec

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z: hours of day are easy to read off
MINUTE, HOUR, DAY = 60_000, 3_600_000, 86_400_000
END = T0 + 3 * DAY

Script = list[tuple[int, str, int, int | None]]  # at, bidder, amount, max_amount


def run(bids: Script, *, auction_id: str = "a1", kind: str = "english",
        close: bool = True, **terms: Any) -> tuple[dict[str, Any], dict[str, Any], list[dict]]:
    """Run bids through the rules engine; the stored spec, final view and full event log."""
    raw: dict[str, Any] = {"type": kind, "start_price": 1000, "ends_at": END, **terms}
    if kind == "dutch":
        raw.update(floor_price=100, step=100, step_ms=HOUR)
    spec = parse_spec(raw, auction_id=auction_id, asset_id="asset", seller_id="seller", now=T0)
    auction = Auction(spec)
    events = auction.advance(T0)
    for at, bidder, amount, max_amount in bids:
        outcome = auction.handle_bid(bidder, f"req{len(events)}", amount, max_amount, at)
        assert outcome.ok, outcome.error
        events.extend(outcome.events)
    if close and not auction.is_finished:
        events.extend(auction.advance(auction.ends_at + 1_000))
    return spec.to_dict(), auction.view(auction.ends_at + 1_000), events


def facts_of(bids: Script, **kw: Any) -> AuctionFacts:
    return auction_facts(*run(bids, **kw))


# ---- facts ----------------------------------------------------------------------------


def test_facts_of_an_english_auction_with_proxies_reserve_and_soft_close() -> None:
    spec, view, events = run([
        (T0 + HOUR, "alice", 1000, 2000),  # a proxy bid
        (T0 + 2 * HOUR, "bob", 1100, None),  # outbid at once by alice's maximum
        (T0 + 3 * HOUR, "alice", 5000, None),  # lifts the price to the reserve: a public bid
        (END - 10_000, "carol", 5100, None),  # a snipe: extends to END + 50 s
        (END + 30_000, "alice", 6000, 8000),  # inside the new window: extends again
    ], reserve_price=3000)
    facts = auction_facts(spec, view, list(reversed(events)))  # any order: taken by seq
    assert facts.auction_id == "a1" and facts.seller_id == "seller" and facts.type == "english"
    assert facts.ends_at == END
    assert facts.extensions == 2
    assert facts.closed_at == END + 30_000 + MINUTE
    assert facts.soft_close_ms == MINUTE
    assert (facts.winner, facts.price, facts.reserve_met) == ("alice", 5200, True)
    assert facts.columns.bidder == ("alice", "bob", "alice", "carol", "alice")
    assert facts.columns.amount == (1000, 1100, 5000, 5100, 6000)
    assert facts.columns.is_proxy == (True, False, False, False, True)
    assert facts.columns.leading == (True, False, True, True, True)
    assert facts.columns.accepted == (True,) * 5
    assert facts.columns.deadline == (END, END, END, END, END + 50_000)
    assert facts.bidders == ("alice", "bob", "carol")
    assert facts.bids[3] == Bid("carol", 5100, END - 10_000, END, False, True, True)

    users = UserBehaviour()
    users.add(facts)
    alice = users.summary("alice")
    assert alice["bids"] == 3 and alice["auctions_bid"] == 1 and alice["auctions_won"] == 1
    assert alice["timing_histogram"] == {">24h": 2, "24h-1h": 0, "1h-10m": 0, "10m-1m": 0,
                                         "<1m": 1}
    assert alice["snipe_share"] == pytest.approx(1 / 3)
    assert alice["proxy_share"] == pytest.approx(2 / 3)
    assert users.summary("carol")["snipe_share"] == 1.0
    assert users.summary("bob")["win_rate"] == 0.0


def test_unsold_below_reserve_and_no_reserve() -> None:
    below = facts_of([(T0 + HOUR, "a", 1000, None), (T0 + 2 * HOUR, "b", 2000, None)],
                     reserve_price=50_000)
    assert (below.winner, below.price, below.reserve_met, below.sold) == (None, None, False,
                                                                          False)
    assert below.closed_at == END
    free = facts_of([(T0 + HOUR, "a", 1000, None)])
    assert (free.winner, free.price, free.reserve_met) == ("a", 1000, None)
    nobody = facts_of([])
    assert nobody.bids == () and nobody.columns == BidColumns((), (), (), (), (), (), ())
    assert (nobody.winner, nobody.price, nobody.extensions) == (None, None, 0)


def test_raise_by_the_leader_is_a_proxy_bid() -> None:
    facts = facts_of([
        (T0 + HOUR, "p", 1000, 10_000),
        (T0 + 2 * HOUR, "p", 20_000, None),  # the leader raises their maximum: `raised`
        (T0 + 3 * HOUR, "q", 2000, None),
    ])
    assert facts.columns.bidder == ("p", "p", "q")
    assert facts.columns.is_proxy == (True, True, False)
    assert facts.columns.leading == (True, True, False)


def test_dutch_and_sealed_facts() -> None:
    dutch = facts_of([(T0 + 2 * HOUR + 5, "d", 900, 5000)], kind="dutch")
    assert (dutch.winner, dutch.price, dutch.closed_at) == ("d", 800, T0 + 2 * HOUR + 5)
    assert dutch.soft_close_ms == 0 and dutch.columns.is_proxy == (False,)
    assert dutch.columns.deadline == (END,)

    sealed = facts_of([
        (T0 + HOUR, "x", 2000, None),
        (T0 + 2 * HOUR, "y", 3000, 9000),
        (END - 5_000, "x", 4000, None),  # a replacement bid: `raised`
        (END - 2_000, "z", 1500, None),
    ], kind="sealed")
    assert sealed.columns.bidder == ("x", "y", "x", "z")
    assert sealed.columns.is_proxy == (False,) * 4 and sealed.columns.leading == (False,) * 4
    assert (sealed.winner, sealed.price, sealed.extensions) == ("x", 3000, 0)
    assert sealed.soft_close_ms == 0  # never extended: snipes are the last 60 s
    users = UserBehaviour()
    users.add(sealed)
    assert users.summary("x")["snipe_share"] == 0.5
    assert users.summary("z")["timing_histogram"]["<1m"] == 1


def test_public_event_log_gives_less_but_still_counts() -> None:
    spec, view, events = run([
        (T0 + HOUR, "p", 1000, 10_000),
        (T0 + 2 * HOUR, "p", 20_000, None),
        (T0 + 3 * HOUR, "q", 2000, None),
    ])
    public = [public_event(e, "english") for e in events]
    facts = auction_facts(spec, view, public)
    assert facts.columns.bidder == ("p", "q")  # the raise is reduced to the bare fact
    assert facts.columns.is_proxy == (False, False)  # maxima are private
    assert facts.winner == "p"

    spec, view, events = run([(T0 + HOUR, "x", 2000, None), (T0 + 2 * HOUR, "y", 3000, None)],
                             kind="sealed")
    hidden = auction_facts(spec, view, [public_event(e, "sealed") for e in events])
    assert hidden.columns.bidder == () and hidden.winner == "y"
    users = UserBehaviour()
    users.add(hidden)
    assert users.summary("y")["auctions_bid"] == 1 and users.summary("y")["auctions_won"] == 1


# ---- user metrics ---------------------------------------------------------------------


def test_sniper_bids_land_in_the_last_bucket() -> None:
    users = UserBehaviour()
    for n in range(3):
        users.add(facts_of([
            (T0 + HOUR, "early", 1000, None),
            (END - 30_000, "sniper", 5000, None),
            (END + 20_000, "early", 6000, None),  # inside the extension
            (END + 20_000 + 59_000, "sniper", 9000, None),  # 1 s before the new end
        ], auction_id=f"s{n}"))
    users.add(facts_of([(T0 + HOUR, "early", 1000, None), (END - 10_000, "sniper", 5000, None)],
                       auction_id="hard", soft_close_ms=0))
    sniper = users.summary("sniper")
    assert sniper["bids"] == 7
    assert sniper["timing_histogram"] == {">24h": 0, "24h-1h": 0, "1h-10m": 0, "10m-1m": 0,
                                          "<1m": 7}
    assert sniper["snipe_share"] == 1.0
    assert sniper["auctions_won"] == 4 and sniper["win_rate"] == 1.0
    early = users.summary("early")
    assert early["timing_histogram"][">24h"] == 4 and early["snipe_share"] == pytest.approx(3 / 7)
    market = users.market_summary()
    assert market["extensions_per_auction"] == pytest.approx(9 / 4)  # 3 in each soft close


def test_proxy_share() -> None:
    users = UserBehaviour()
    users.add(facts_of([
        (T0 + HOUR, "p", 1000, 10_000),
        (T0 + 2 * HOUR, "p", 20_000, None),
        (T0 + 3 * HOUR, "q", 2000, None),
    ], auction_id="x"))
    users.add(facts_of([(T0 + HOUR, "p", 1000, None)], auction_id="y"))
    assert users.summary("p")["proxy_share"] == pytest.approx(2 / 3)
    assert users.summary("q")["proxy_share"] == 0.0


def test_win_rate_and_overpay() -> None:
    users = UserBehaviour()
    # w loses three auctions to a higher maximum and wins three: at 6100, 1000 and 1000.
    for n in range(3):
        users.add(facts_of([(T0 + HOUR, "w", 1000, 2000), (T0 + 2 * HOUR, "rich", 3000, 9000)],
                           auction_id=f"lost{n}"), 1500)
    users.add(facts_of([(T0 + HOUR, "v", 1000, 6000), (T0 + 2 * HOUR, "w", 6000, 9000)],
                       auction_id="won1"), 5000)
    users.add(facts_of([(T0 + HOUR, "w", 1000, None)], auction_id="won2"), 2000)
    users.add(facts_of([(T0 + HOUR, "w", 1000, None)], auction_id="won3"), None)  # no value
    w = users.summary("w")
    assert (w["auctions_bid"], w["auctions_won"]) == (6, 3)
    assert w["win_rate"] == 0.5
    assert w["overpay_auctions"] == 2
    assert w["avg_overpay"] == pytest.approx(((6100 / 5000 - 1) + (1000 / 2000 - 1)) / 2)
    assert users.summary("rich")["avg_overpay"] == pytest.approx(2050 / 1500 - 1)
    assert users.summary("v")["avg_overpay"] is None and users.summary("v")["win_rate"] == 0.0


def test_active_hours_and_unknown_users() -> None:
    users = UserBehaviour()
    users.add(facts_of([(T0 + 5 * HOUR + 10 * MINUTE, "h", 1000, None),
                        (T0 + DAY + 5 * HOUR, "k", 1100, None),
                        (T0 + 23 * HOUR + 59 * MINUTE, "h", 2000, None)]))
    hours = users.summary("h")["active_hours"]
    assert len(hours) == 24 and hours[5] == 1 and hours[23] == 1 and sum(hours) == 2
    assert users.summary("h")["auctions_watched"] == 0
    assert users.summary("h")["watched_bid_share"] is None
    ghost = users.summary("ghost")
    assert ghost["bids"] == 0 and ghost["win_rate"] is None and ghost["avg_overpay"] is None
    assert list(ghost["timing_histogram"]) == list(TIMING_BUCKETS)
    assert ghost == empty_summary("ghost")
    assert "ghost" not in users and "h" in users and len(users) == 2


# ---- watches --------------------------------------------------------------------------


def test_watchers_are_those_who_watched_before_the_end_but_the_seller() -> None:
    spec, view, events = run([(T0 + HOUR, "bob", 1000, None),
                              (END - 10_000, "carol", 1100, None)])  # extends to END + 50 s
    watches = [("dan", END + 50_000),  # at the very end: counts
               ("bob", T0 + 2 * HOUR), ("eve", END + 50_001),  # after it: left out
               ("seller", T0), ("carol", T0 + 30), ("amy", T0 + 30)]
    facts = auction_facts(spec, view, events, reversed(watches))  # any order
    assert facts.closed_at == END + 50_000
    assert facts.watchers == ("amy", "carol", "bob", "dan")  # by time, then user id
    assert auction_facts(spec, view, events).watchers == ()
    # Without a `closed` event: a cancelled auction ends at its cancellation, an auction
    # whose log stops early at its last deadline.
    cancelled = Auction(parse_spec({"type": "english", "start_price": 1000, "ends_at": END},
                                   auction_id="c1", asset_id="x", seller_id="seller", now=T0))
    log = cancelled.advance(T0) + cancelled.cancel("seller", T0 + HOUR)
    assert auction_facts(cancelled.spec.to_dict(), cancelled.view(T0 + HOUR), log,
                         [("a", T0 + HOUR), ("b", T0 + HOUR + 1)]).watchers == ("a",)
    assert auction_facts(spec, view, events[:2], [("a", END), ("b", END + 1)]).watchers == ("a",)


def test_auctions_watched_against_those_bid_on() -> None:
    users = UserBehaviour()
    one = run([(T0 + HOUR, "bob", 1000, None), (T0 + 2 * HOUR, "carol", 1100, None)],
              auction_id="one")
    users.add(auction_facts(*one, [("lurker", T0), ("bob", T0), ("dan", T0)]))
    users.add(auction_facts(*run([(T0 + HOUR, "carol", 1000, None)], auction_id="two"),
                            [("lurker", T0), ("carol", T0)]))
    users.add(facts_of([], auction_id="three"))
    lurker, bob, carol = users.summary("lurker"), users.summary("bob"), users.summary("carol")
    assert (lurker["auctions_watched"], lurker["watched_and_bid"]) == (2, 0)
    assert lurker["watched_bid_share"] == 0.0 and lurker["bids"] == 0
    assert (bob["auctions_watched"], bob["watched_and_bid"], bob["auctions_bid"]) == (1, 1, 1)
    assert bob["watched_bid_share"] == 1.0
    # carol bid in two auctions and watched one of them.
    assert (carol["auctions_watched"], carol["watched_and_bid"], carol["auctions_bid"]) == (
        1, 1, 2)
    assert users.summary("dan")["watched_bid_share"] == 0.0
    market = users.market_summary()
    assert market["watchers_per_auction"] == {"mean": 5 / 3, "median": 2.0}  # 3, 2, 0
    assert market["watcher_bid_share"] == 2 / 5  # bob in one, carol in two
    empty = UserBehaviour().market_summary()
    assert empty["watchers_per_auction"] == {"mean": None, "median": None}
    assert empty["watcher_bid_share"] is None


def test_market_summary() -> None:
    users = UserBehaviour()
    assert users.market_summary()["auctions"] == 0
    assert users.market_summary()["sold_share"] is None
    met = facts_of([(T0 + HOUR, "a", 1000, 2500), (T0 + 2 * HOUR, "b", 2000, None),
                    (END - 1_000, "c", 5000, None)], auction_id="met", reserve_price=3000)
    missed = facts_of([(T0 + HOUR, "a", 1000, None), (T0 + 2 * HOUR, "b", 2000, None)],
                      auction_id="missed", reserve_price=50_000)
    free = facts_of([(T0 + HOUR, "a", 1000, None)], auction_id="free")
    empty = facts_of([], auction_id="empty")
    for facts in (met, missed, free, empty):
        users.add(facts)
    market = users.market_summary()
    assert market["auctions"] == 4
    assert market["bids"] == 6
    assert market["bidders_per_auction"] == {"mean": 1.5, "median": 1.5}  # 3, 2, 1, 0
    assert market["extensions_per_auction"] == 0.25
    assert market["reserve_auctions"] == 2 and market["reserve_met_share"] == 0.5
    assert market["sold_share"] == 0.5


def test_timing_bucket_boundaries() -> None:
    left = [0, 59_999, 60_000, 599_999, 600_000, HOUR - 1, HOUR, DAY - 1, DAY, 10 * DAY, -5]
    assert [TIMING_BUCKETS[b] for b in timing_buckets(left)] == [
        "<1m", "<1m", "10m-1m", "10m-1m", "1h-10m", "1h-10m", "24h-1h", "24h-1h", ">24h",
        ">24h", "<1m"]


def test_ingest_bids_fast_path() -> None:
    users = UserBehaviour()
    codes = users.codes(["a", "b", "a", "c"])
    assert codes.tolist() == [0, 1, 0, 2]
    distinct = users.ingest_bids(codes, [T0, T0, T0 + HOUR, T0], [T0 + DAY, T0 + 30_000,
                                                               T0 + HOUR + 5_000, T0 + 90_000],
                                 60_000, [True, False, False, True])
    assert distinct.tolist() == [0, 1, 2]
    a = users.summary("a")
    assert a["bids"] == 2 and a["proxy_share"] == 0.5 and a["snipe_share"] == 0.5
    assert a["timing_histogram"][">24h"] == 1 and a["timing_histogram"]["<1m"] == 1
    assert users.summary("c")["timing_histogram"]["10m-1m"] == 1
    assert users.market_summary()["bids"] == 4


# ---- properties -----------------------------------------------------------------------

_USERS = ("u0", "u1", "u2", "u3", "u4")


@st.composite
def hand_built(draw: st.DrawFn) -> tuple[AuctionFacts, int | None]:
    """A closed auction as facts, with a value at close (or None)."""
    n = draw(st.integers(0, 12))
    bidder = draw(st.lists(st.sampled_from(_USERS), min_size=n, max_size=n))
    left = draw(st.lists(st.integers(0, 3 * DAY), min_size=n, max_size=n))
    proxy = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    end = T0 + draw(st.integers(0, 30 * DAY))
    soft = draw(st.sampled_from([0, 60_000, 300_000]))
    sold = draw(st.booleans())
    winner = draw(st.sampled_from(bidder)) if bidder and sold else None
    price = draw(st.integers(100, 10**7)) if winner else None
    reserve = draw(st.sampled_from([None, True, False]))
    watchers = tuple(draw(st.lists(st.sampled_from(_USERS), unique=True, max_size=5)))
    facts = AuctionFacts(
        auction_id="h", seller_id="s", type="english", ends_at=end, closed_at=end,
        soft_close_ms=soft, reserve_met=reserve, winner=winner, price=price,
        extensions=draw(st.integers(0, 3)),
        bids=tuple(Bid(b, 1000, end - x, end, p, True, False)
                   for b, x, p in zip(bidder, left, proxy, strict=True)),
        watchers=watchers)
    value = draw(st.one_of(st.none(), st.integers(1, 10**7)))
    return facts, value


@settings(max_examples=60, deadline=None)
@given(st.lists(hand_built(), max_size=12), st.integers(1, 20))
def test_counts_add_up(auctions: list[tuple[AuctionFacts, int | None]], batch: int) -> None:
    users = UserBehaviour(capacity=1)
    with mock.patch.object(behaviour, "_BATCH", batch):  # flush at any point mid-stream
        for facts, value in auctions:
            users.add(facts, value)
    for user in _USERS:
        s = users.summary(user)
        mine = [(f, i) for f, _ in auctions for i, b in enumerate(f.columns.bidder) if b == user]
        assert s["bids"] == len(mine)
        assert sum(s["timing_histogram"].values()) == s["bids"] == sum(s["active_hours"])
        snipes = sum(f.columns.deadline[i] - f.columns.at[i] < (f.soft_close_ms or 60_000)
                     for f, i in mine)
        assert s["snipe_share"] == (snipes / len(mine) if mine else None)
        proxies = sum(f.columns.is_proxy[i] for f, i in mine)
        assert s["proxy_share"] == (proxies / len(mine) if mine else None)
        overpays = [f.price / v - 1 for f, v in auctions
                    if f.winner == user and f.price is not None and v is not None]
        assert s["overpay_auctions"] == len(overpays)
        if overpays:
            assert s["avg_overpay"] == pytest.approx(sum(overpays) / len(overpays))
        assert s["auctions_bid"] == sum(user in f.columns.bidder for f, _ in auctions)
        assert s["auctions_won"] == sum(f.winner == user for f, _ in auctions)
        assert s["auctions_watched"] == sum(user in f.watchers for f, _ in auctions)
        assert s["watched_and_bid"] == sum(user in f.watchers and (
            user in f.columns.bidder or user == f.winner) for f, _ in auctions)
        for share in ("snipe_share", "proxy_share", "win_rate", "watched_bid_share"):
            assert s[share] is None or 0.0 <= s[share] <= 1.0
    market = users.market_summary()
    assert market["auctions"] == len(auctions)
    assert market["bids"] == sum(len(f.columns.bidder) for f, _ in auctions)
    watches = sum(len(f.watchers) for f, _ in auctions)
    assert market["watchers_per_auction"]["mean"] == (watches / len(auctions)
                                                      if auctions else None)
    assert market["watcher_bid_share"] == (sum(
        s["watched_and_bid"] for s in map(users.summary, _USERS)) / watches if watches else None)
    for share in ("reserve_met_share", "sold_share", "watcher_bid_share"):
        assert market[share] is None or 0.0 <= market[share] <= 1.0


@settings(max_examples=60, deadline=None)
@given(st.lists(hand_built(), max_size=12), st.integers(1, 4), st.integers(1, 20))
def test_shards_keep_their_own_users_and_count_the_market_as_one(
        auctions: list[tuple[AuctionFacts, int | None]], shards: int, batch: int) -> None:
    def owner(user: str) -> int:
        return int(user[1:]) % shards

    whole = UserBehaviour()
    parts = [UserBehaviour(capacity=1, owns=lambda user, i=i: owner(user) == i)
             for i in range(shards)]
    with mock.patch.object(behaviour, "_BATCH", batch):  # flush at any point mid-stream
        for facts, value in auctions:
            whole.add(facts, value)
            for part in parts:
                part.add(facts, value)
    for user in _USERS:
        assert parts[owner(user)].summary(user) == whole.summary(user)
        assert all(user not in part for i, part in enumerate(parts) if i != owner(user))
    for part in parts:
        assert part.market_summary() == whole.market_summary()
