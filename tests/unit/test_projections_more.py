"""Price shards, and the behaviour projection (actors.analytics.behaviour) over auctions run
by the real rules engine, closed and settled in a real SQLite store, with the value at the
close from the market projection's book (the helpers are test_projections')."""

from __future__ import annotations

from actors.analytics.actor import projections as actor_projections
from actors.analytics.behaviour import BehaviourProjection
from actors.analytics.cards import Cards
from actors.analytics.market import MarketProjection
from actors.analytics.prices import shard_of
from actors.analytics.runner import Runner
from actors.config import ClusterConfig
from market.auction import Auction, AuctionSpec, Event
from storage import CommitBatch, Store
from storage.records import Json, SaleRecord, TradeRecord
from tests.unit.test_projections import (
    BEHAVIOUR_KINDS,
    CARDS,
    DAY,
    HOUR,
    NOW,
    PRICE_KINDS,
    MakeStore,
    clock,
    fold,
    fold_through,
    history,
    live,
    log,
    sale,
    stored,
    unplaced,
)

# -- the behaviour projection over real closings ---------------------------------------------
SELLER = "u_seller"
S = NOW - 2 * DAY  # the auctions start at noon...
E = S + 2 * HOUR  # ...and end at 14:00 UTC
VALUE = 2_000  # card 0 PSA 9's value before the auctions


async def run_auction(store: Store, auction_id: str, card: int, kind: str,
                      bids: list[tuple[str, int, int | None, int]]) -> Auction:
    """List a PSA 9 copy of card `card` in an auction, run it through the rules engine (bids:
    bidder, amount, max, at), store its events and view, and settle or release it."""
    asset_id = f"as-{auction_id}"
    await store.create_asset({"asset_id": asset_id, "owner_id": SELLER, "title": "t",
                              "metadata": {}, "created_at": S - DAY,
                              "card_id": CARDS[card].card_id, "grader": "PSA", "grade": 9,
                              "cert": None})
    spec = AuctionSpec(auction_id=auction_id, asset_id=asset_id, seller_id=SELLER, type=kind,
                       start_price=1_000, starts_at=S, ends_at=E, created_at=S - 10,
                       soft_close_ms=60_000 if kind == "english" else 0)
    auction = Auction(spec)
    await store.create_auction({"auction_id": auction_id, "asset_id": asset_id,
                                "seller_id": SELLER, "host": "h1", "spec": spec.to_dict(),
                                "view": auction.view(S - 10), "status": "scheduled", "seq": 0,
                                "created_at": S - 10})
    events: list[Event] = auction.advance(S)
    for n, (bidder, amount, ceiling, at) in enumerate(bids):
        outcome = auction.handle_bid(bidder, f"r{n}", amount, ceiling, at)
        assert outcome.ok, outcome.error
        events += outcome.events
    closed_at = auction.ends_at
    events += auction.advance(closed_at)
    assert auction.status == "closed"
    await store.commit(CommitBatch(events=events, views={auction_id: auction.view(closed_at)}))
    if auction.winner_id is None:
        assert await store.release(auction_id, asset_id) is True
    else:
        assert auction.final_price is not None
        trade: TradeRecord = {"auction_id": auction_id, "asset_id": asset_id,
                              "seller_id": SELLER, "buyer_id": auction.winner_id,
                              "price": auction.final_price, "at": closed_at}
        assert await store.settle(trade) is True
    return auction


async def auctions(store: Store) -> Auction:
    """Three closed auctions; returns the first (english, sold to b2 after two extensions)."""
    first = await run_auction(store, "A1", 0, "english", [
        ("b1", 1_000, 3_000, S + 10 * 60_000),  # a proxy bid, 1h50 before the end
        ("b2", 1_500, None, E - 30_000),  # snipes, extends to E + 30 s
        ("b2", 4_000, None, E + 10_000),  # snipes again, takes the lead, extends to E + 70 s
    ])
    assert (first.winner_id, first.final_price, first.ends_at) == ("b2", 3_100, E + 70_000)
    await run_auction(store, "A2", 0, "english", [])  # unsold
    third = await run_auction(store, "A3", 1, "sealed", [
        ("b1", 5_000, None, S + 30 * 60_000), ("b3", 3_000, None, S + 40 * 60_000)])
    assert (third.winner_id, third.final_price) == ("b1", 3_000)
    return first


def hours(*at: int) -> list[int]:
    out = [0] * 24
    for t in at:
        out[(t // HOUR) % 24] += 1
    return out


def timing(counts: dict[str, int]) -> dict[str, int]:
    return {**dict.fromkeys((">24h", "24h-1h", "1h-10m", "10m-1m", "<1m"), 0), **counts}


UNWATCHED: Json = {"auctions_watched": 0, "watched_and_bid": 0, "watched_bid_share": None}
EXPECTED_USERS: dict[str, Json] = {
    "b1": {"user_id": "b1", "bids": 2, "auctions_bid": 2, "auctions_won": 1, "win_rate": 0.5,
           "timing_histogram": timing({"24h-1h": 2}), "snipe_share": 0.0,
           "proxy_share": 0.5, "avg_overpay": None, "overpay_auctions": 0,
           "active_hours": hours(S + 10 * 60_000, S + 30 * 60_000), **UNWATCHED},
    "b2": {"user_id": "b2", "bids": 2, "auctions_bid": 1, "auctions_won": 1, "win_rate": 1.0,
           "timing_histogram": timing({"<1m": 2}), "snipe_share": 1.0, "proxy_share": 0.0,
           "avg_overpay": 3_100 / VALUE - 1, "overpay_auctions": 1,
           "active_hours": hours(E - 30_000, E + 10_000), **UNWATCHED},
    "b3": {"user_id": "b3", "bids": 1, "auctions_bid": 1, "auctions_won": 0, "win_rate": 0.0,
           "timing_histogram": timing({"24h-1h": 1}), "snipe_share": 0.0,
           "proxy_share": 0.0, "avg_overpay": None, "overpay_auctions": 0,
           "active_hours": hours(S + 40 * 60_000), **UNWATCHED},
}
EXPECTED_MARKET: Json = {
    "auctions": 3, "bids": 5, "bidders_per_auction": {"mean": 4 / 3, "median": 2.0},
    "extensions_per_auction": 2 / 3, "reserve_auctions": 0, "reserve_met_share": None,
    "sold_share": 2 / 3, "watchers_per_auction": {"mean": 0.0, "median": 0.0},
    "watcher_bid_share": None}


def value_sales() -> list[SaleRecord]:
    """Card 0 PSA 9 sold five times at VALUE in the days before the auctions."""
    return [sale(f"v{i}", 0, VALUE, S - (10 - i) * DAY) for i in range(5)]


async def test_behaviour_of_bidders_from_closed_auctions(
        stores: MakeStore, every_batch: None) -> None:
    store = await stores(value_sales())
    await auctions(store)
    assert [c["outcome"] for c in await store.closings_feed(0)] == ["sold", "unsold", "sold"]
    assert [s["source"] for s in await store.sales_feed(0)][-2:] == ["auction", "auction"]
    # The market projection's book gives the value at the close (as in the actor).
    market = MarketProjection(Cards(store))
    market_runner = Runner(store, market, clock=clock)
    await market_runner.restore()
    await market_runner.catch_up()
    behaviour = BehaviourProjection(store, lambda: market.book)
    runner = Runner(store, behaviour, page=1, clock=clock)
    await runner.restore()
    await runner.catch_up()
    assert runner.checkpoint == 3
    docs = await stored(store, BEHAVIOUR_KINDS)
    assert docs == {**{("behaviour", u): d for u, d in EXPECTED_USERS.items()},
                    ("behaviour_market", "summary"): EXPECTED_MARKET}
    # Rebuilt with crashes before and after saves, a closing per batch: the same counts.
    await store.reset_projections(["behaviour.0"], list(BEHAVIOUR_KINDS))
    wrapped = await fold_through(store, lambda: BehaviourProjection(store, lambda: market.book),
                                 1, {1: "after", 2: "before", 3: "after"})
    assert wrapped.hit == [1, 2, 3]
    assert await stored(store, BEHAVIOUR_KINDS) == docs
    assert await store.projection_checkpoint("behaviour.0") == 3


async def test_the_actors_projections_know_the_value_at_the_close(
        stores: MakeStore, every_batch: None) -> None:
    store = await stores(value_sales())
    await auctions(store)
    config = ClusterConfig(store_url="sqlite:///unused", instance="unit")
    for projection in actor_projections(store, config):  # as `ece rebuild analytics` runs them
        runner = Runner(store, projection, clock=clock)
        await runner.restore()
        await runner.catch_up()
    b2 = await store.get_projection_doc("behaviour", "b2")
    assert b2 is not None and b2["bids"] == 2
    assert (b2["overpay_auctions"], b2["avg_overpay"]) == (1, 3_100 / VALUE - 1)


# -- price shards ----------------------------------------------------------------------------
async def test_two_shards_own_disjoint_cards_and_store_what_one_does(
        stores: MakeStore, every_batch: None) -> None:
    sales = history(300) + live(16)
    single, one, two = [await stores(sales) for _ in range(3)]
    await fold(single, "prices.0", 25)
    await fold(one, "prices.0", 25, shards=2)
    await fold(two, "prices.1", 25, shards=2)
    want = await stored(single, PRICE_KINDS)
    parts = [await stored(s, PRICE_KINDS) for s in (one, two)]
    owners = [{key.split("|")[0] for _, key in part} for part in parts]
    assert owners[0] and owners[1] and not owners[0] & owners[1]
    for shard, cards in enumerate(owners):
        assert all(shard_of(card, 2) == shard for card in cards)
    assert owners[0] | owners[1] == {s["card_id"] for s in sales}
    assert {**parts[0], **parts[1]} == want
    # Live messages split the same way.
    messages = [unplaced(await log(s)) for s in (one, two)]
    assert sorted(map(repr, messages[0] + messages[1])) == \
        sorted(map(repr, unplaced(await log(single))))
    for shard, sent in enumerate(messages):
        for m in sent:
            card = m["data"].get("sale", {}).get("card_id") or m["channel"][5:]
            assert shard_of(card, 2) == shard
