"""Property tests: random bid sequences against the invariants of every auction type."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from market.auction import Auction, AuctionSpec, BidOutcome, parse_spec, public_event
from market.errors import MarketError
from market.money import increment_for

SELLER = "seller"
BIDDERS = ("alice", "bob", "carol", "dave")
START = 10_000_000
CREATED = START - 5_000


@st.composite
def specs(draw: st.DrawFn) -> AuctionSpec:
    kind = draw(st.sampled_from(("english", "english", "dutch", "sealed")))
    start_price = draw(st.integers(0, 5_000))
    raw: dict[str, Any] = {
        "type": kind,
        "start_price": start_price,
        "starts_at": START,
        "duration_ms": draw(st.one_of(st.integers(1_000, 30_000), st.integers(30_000, 300_000))),
        "soft_close_ms": draw(st.sampled_from((0, 1_000, 10_000, 60_000))),
    }
    if kind != "dutch" and draw(st.booleans()):
        raw["reserve_price"] = start_price + draw(st.integers(0, 6_000))
    if kind == "english":
        if draw(st.booleans()):
            low = max(start_price + 1, raw.get("reserve_price", 0))
            raw["buy_now_price"] = low + draw(st.integers(0, 10_000))
        if draw(st.booleans()):
            raw["increment"] = draw(st.integers(1, 300))
    if kind == "dutch":
        raw["floor_price"] = draw(st.integers(0, start_price))
        raw["step"] = draw(st.integers(1, 500))
        raw["step_ms"] = draw(st.integers(1, 10_000))
    return parse_spec(raw, auction_id="p-1", asset_id="x", seller_id=SELLER, now=CREATED)


# An op: ("bid", bidder, amount_offset, max_extra|"=N"|None, dt, reuse) / ("advance", dt) /
# ("cancel", by, dt). Amounts are drawn relative to the current minimum so many get accepted;
# most time steps are short so that auctions see many bids before they end.
ROUND_MAXES = ("=3000", "=5000", "=8000")
small_dt = st.one_of(st.integers(0, 300), st.integers(0, 300), st.integers(0, 6_000))


@st.composite
def an_op(draw: st.DrawFn) -> tuple[Any, ...]:
    roll = draw(st.integers(0, 29))
    if roll == 0:
        return ("cancel", draw(st.sampled_from((SELLER, "alice"))), draw(small_dt))
    if roll <= 2:
        return ("advance", draw(st.integers(0, 30_000)))
    return (
        "bid",
        draw(st.sampled_from((*BIDDERS, *BIDDERS, *BIDDERS, SELLER))),
        draw(st.one_of(st.integers(-100, 400), st.integers(-100, 400),
                       st.integers(-2_000, 20_000))),
        # max_amount: none, relative to amount, or one of a few round values (to provoke ties)
        draw(st.one_of(st.none(), st.integers(-50, 10_000), st.sampled_from(ROUND_MAXES))),
        draw(small_dt),
        draw(st.one_of(st.none(), st.none(), st.none(), st.integers(0, 50))),
    )


ops = st.lists(an_op(), min_size=5, max_size=50)


@dataclass
class Run:
    auction: Auction
    events: list[dict[str, Any]] = field(default_factory=list)
    # (event count, snapshot) after every command, for mid-stream replays
    checkpoints: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    sent: list[tuple[str, str, int, int | None]] = field(default_factory=list)
    outcomes: dict[tuple[str, str], BidOutcome] = field(default_factory=dict)
    accepted: int = 0  # accepted bids that are not raises: what bid_count counts


def leader_by_rule(book: list[list[Any]]) -> tuple[str, int]:
    """Highest maximum; on equal maxima the one who reached it first (lowest seq)."""
    bidder, best, _ = min(book, key=lambda row: (-row[1], row[2]))
    return bidder, best


def check_english(auction: Auction, previous_price: int | None) -> None:
    snap = auction.to_snapshot()
    if auction.bid_count == 0:
        return
    assert auction.price is not None
    if previous_price is not None:
        assert auction.price >= previous_price, "English price went down"
    leader, leader_max = leader_by_rule(snap["book"])
    assert auction.leader_id == leader, "leader is not the highest maximum (ties: earliest)"
    assert auction.price <= leader_max, "price exceeds the leader's maximum"
    assert auction.price >= auction.spec.start_price
    others = [m for b, m, _ in snap["book"] if b != leader]
    assert all(m <= auction.price for m in others), "a non-leader maximum is above the price"


def run_ops(spec: AuctionSpec, script: list[tuple[Any, ...]]) -> Run:
    run = Run(Auction(spec))
    auction = run.auction
    now = START - 50  # a few requests land before the start
    for n, op in enumerate(script):
        previous_price = auction.price
        before = auction.to_snapshot()
        seq_before = auction.seq
        if op[0] == "advance":
            now += op[1]
            produced = auction.advance(now)
        elif op[0] == "cancel":
            now += op[2]
            try:
                produced = auction.cancel(op[1], now)
            except MarketError:
                produced = []
                assert auction.to_snapshot() == before, "a refused cancel changed state"
        else:
            _, bidder, offset, max_extra, dt, reuse = op
            now += dt
            if reuse is not None and run.sent:
                bidder, req_id, amount, max_amount = run.sent[reuse % len(run.sent)]
            else:
                req_id = f"r{n}"
                base = auction.min_bid(now) or spec.start_price
                amount = max(0, base + offset)
                if isinstance(max_extra, str):  # a round absolute maximum
                    max_amount = max(amount, int(max_extra[1:]))
                else:
                    max_amount = None if max_extra is None else amount + max_extra
                run.sent.append((bidder, req_id, amount, max_amount))
            key = (bidder, req_id)
            outcome = auction.handle_bid(bidder, req_id, amount, max_amount, now)
            assert (outcome.ack is None) != (outcome.error is None)
            if key in run.outcomes:
                # Same request again: same answer, nothing new, no state change.
                first = run.outcomes[key]
                assert outcome.events == []
                assert outcome.ack == first.ack
                if first.error is not None:
                    assert outcome.error is not None
                    assert outcome.error.to_dict() == first.error.to_dict()
                assert auction.to_snapshot() == before
            else:
                run.outcomes[key] = outcome
                if outcome.ack is not None and not any(
                        e["type"] == "raised" for e in outcome.events):
                    run.accepted += 1  # a raise of one's own bid is not counted
                    assert outcome.ack["seq"] == auction.seq
                    assert outcome.ack["bid_count"] == auction.bid_count
            produced = outcome.events
        assert [e["seq"] for e in produced] == list(range(seq_before + 1, auction.seq + 1))
        run.events.extend(produced)
        run.checkpoints.append((len(run.events), auction.to_snapshot()))

        assert auction.bid_count == run.accepted
        if spec.type == "english":
            check_english(auction, previous_price)
        view = auction.view(now)
        json.dumps(view)
        if spec.type == "sealed" and auction.status != "closed":
            assert view["price"] is None and view["leader_id"] is None
            assert view["reserve_met"] is None
        if spec.reserve_price is None:
            assert view["reserve_met"] is None
    return run


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=specs(), script=ops)
def test_random_sequences_keep_invariants_and_replay_exactly(
    spec: AuctionSpec, script: list[tuple[Any, ...]]
) -> None:
    run = run_ops(spec, script)
    auction, events = run.auction, run.events
    final = auction.to_snapshot()

    # seq is consecutive from 1
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert auction.seq == len(events)

    # Replaying the whole log rebuilds exactly the same state (also through JSON).
    assert Auction.replay(spec, events).to_snapshot() == final
    assert Auction.replay(spec, json.loads(json.dumps(events))).to_snapshot() == final

    # From any mid-stream point (command boundary or not): snapshot + remaining events.
    for count, snap in run.checkpoints:
        resumed = Auction.from_snapshot(json.loads(json.dumps(snap)))
        for event in events[count:]:
            resumed.apply(event)
        assert resumed.to_snapshot() == final
    for i in range(len(events) + 1):
        resumed = Auction.from_snapshot(Auction.replay(spec, events[:i]).to_snapshot())
        for event in events[i:]:
            resumed.apply(event)
        assert resumed.to_snapshot() == final

    # Accepted requests stay deduplicated after a rebuild: resending changes nothing.
    rebuilt = Auction.replay(spec, events)
    for (bidder, req_id), outcome in run.outcomes.items():
        if outcome.ack is not None:
            again = rebuilt.handle_bid(bidder, req_id, 0, None, 2**52)
            assert again.events == [] and again.ack == outcome.ack
    assert rebuilt.to_snapshot() == final

    # Public events never carry private fields; sealed bids reveal nothing but bid_count.
    for event in events:
        pub = public_event(event, spec.type)
        assert not {"max_amount", "req_id"} & pub.keys()
        if spec.type == "sealed" and event["type"] == "bid":
            assert pub["bidder_id"] is None and pub["amount"] is None
            assert pub["price"] is None and pub["leader_id"] is None

    # Once closed: a winner exists only with a final price, and it respects the reserve.
    if auction.status == "closed":
        assert (auction.winner_id is None) == (auction.final_price is None)
        if auction.winner_id is not None and spec.reserve_price is not None:
            assert auction.final_price is not None and auction.final_price >= spec.reserve_price


# Fields of a public event that are not money: identity, ordering, time and counts.
# min_bid is the public price plus the public increment: it carries nothing private (checked
# below), though it may happen to equal a maximum.
_NOT_MONEY = frozenset({"seq", "at", "ends_at", "bid_count", "min_bid"})


def _money(pub: dict[str, Any]) -> list[int]:
    return [v for k, v in pub.items()
            if k not in _NOT_MONEY and isinstance(v, int) and not isinstance(v, bool)]


@st.composite
def english_specs(draw: st.DrawFn) -> AuctionSpec:
    start_price = draw(st.integers(0, 5_000))
    raw: dict[str, Any] = {"type": "english", "start_price": start_price, "starts_at": START,
                           "duration_ms": draw(st.integers(1_000, 300_000)),
                           "soft_close_ms": draw(st.sampled_from((0, 10_000, 60_000)))}
    if draw(st.booleans()):
        raw["reserve_price"] = start_price + draw(st.integers(0, 6_000))
    if draw(st.booleans()):
        low = max(start_price + 1, raw.get("reserve_price", 0))
        raw["buy_now_price"] = low + draw(st.integers(0, 10_000))
    if draw(st.booleans()):
        raw["increment"] = draw(st.integers(1, 300))
    return parse_spec(raw, auction_id="p-1", asset_id="x", seller_id=SELLER, now=CREATED)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=english_specs(), script=ops)
def test_public_events_never_reveal_the_leaders_maximum(
    spec: AuctionSpec, script: list[tuple[Any, ...]]
) -> None:
    run = run_ops(spec, script)
    state = Auction(spec)
    for event in run.events:
        state.apply(event)
        pub = public_event(event, spec.type)
        money = _money(pub)
        if state.leader_id is not None and state.price is not None:
            book = {b: m for b, m, _ in state.to_snapshot()["book"]}
            leader_max = book[state.leader_id]
            if leader_max > state.price:
                assert leader_max not in money, (event, pub)
        if event["type"] == "bid" and event["bidder_id"] == event["leader_id"]:
            assert all(v <= event["price"] for v in money), (event, pub)
        if event["type"] == "raised":
            assert pub.keys() == {"auction_id", "seq", "type", "at"}
        if event["type"] == "bid":
            if pub["min_bid"] is None:  # a buy-now bid: it closes the auction
                assert pub["price"] == spec.buy_now_price
            else:
                step = spec.increment or increment_for(pub["price"])
                assert pub["min_bid"] == pub["price"] + step == state.min_bid(event["at"])


@settings(max_examples=150, deadline=None)
@given(
    amounts=st.lists(
        st.tuples(st.sampled_from(BIDDERS), st.integers(0, 50_000)), min_size=1, max_size=12
    ),
    reserve=st.one_of(st.none(), st.integers(0, 30_000)),
)
def test_sealed_second_price_matches_a_direct_computation(
    amounts: list[tuple[str, int]], reserve: int | None
) -> None:
    spec = AuctionSpec(auction_id="s", asset_id="x", seller_id=SELLER, type="sealed",
                       start_price=0, starts_at=START, ends_at=START + 1_000,
                       created_at=CREATED, reserve_price=reserve)
    auction = Auction(spec)
    best: dict[str, tuple[int, int]] = {}  # bidder -> (amount, order)
    for i, (bidder, amount) in enumerate(amounts):
        out = auction.handle_bid(bidder, f"r{i}", amount, None, START + i)
        if out.ack is not None:
            best[bidder] = (amount, i)
    auction.advance(START + 1_000)
    ranked = sorted(best.items(), key=lambda kv: (-kv[1][0], kv[1][1]))
    floor = reserve if reserve is not None else 0
    if not ranked or ranked[0][1][0] < floor:
        assert auction.winner_id is None and auction.final_price is None
    else:
        second = ranked[1][1][0] if len(ranked) > 1 else 0
        assert auction.winner_id == ranked[0][0]
        assert auction.final_price == max(second, floor)
