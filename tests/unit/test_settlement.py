"""The settlement saga through a real host core and SQLite store: money, card and news move
once, a winner who cannot pay gets the sale failed with a second chance for the runner-up,
and a step that fails midway is resumed to the same result."""

from __future__ import annotations

from typing import Any, cast

from actors.config import ClusterConfig
from actors.host import SETTLEMENTS_AT_ONCE, AuctionHostCore
from actors.notices import coalesce, outbid_notices
from market import ledger
from storage import Store
from storage.base import SETTLE_PAYMENT_FAILED
from storage.records import EntryRecord
from testkit.client import wait_for
from tests.unit.hostkit import (
    FUNDS,
    HOST,
    SELLER,
    Clock,
    FailingStore,
    add_auction,
    bid,
    close_at_end,
    live,
)

SELLER_FEE_BPS = 500
PREMIUM_BPS = 1_000


def config() -> ClusterConfig:
    return ClusterConfig(store_url="sqlite:///unused", instance="unit",
                         seller_fee_bps=SELLER_FEE_BPS, buyer_premium_bps=PREMIUM_BPS)


def start_core(store: Any, clock: Clock,
               cores: list[AuctionHostCore]) -> tuple[AuctionHostCore, list[str]]:
    """A host core with this test's fees, and the auctions it finishes settling."""
    finished: list[str] = []

    async def on_finished(auction_id: str) -> None:
        finished.append(auction_id)

    core = AuctionHostCore(HOST, config(), store=store, clock=clock, on_finished=on_finished)
    cores.append(core)
    return core, finished


async def run_to_settled(store: Any, clock: Clock, cores: list[AuctionHostCore],
                         bids: list[tuple[str, int, int | None]]) -> AuctionHostCore:
    """Start a core, place the bids on "a1", close it and wait until its settlement ran."""
    core, finished = start_core(store, clock, cores)
    await live(core)
    for n, (bidder, amount, max_amount) in enumerate(bids):
        command = bid(bidder, amount, f"r{n}")
        if max_amount is not None:
            command = type(command)(command.auction_id, bidder, command.req_id, amount,
                                    max_amount)
        await core.submit([command])
    await close_at_end(core, clock)
    await wait_for(lambda: finished, timeout=10, message="settled")
    return core


async def balance(store: Store, account: str) -> int:
    return (await store.get_account(account))["balance"]


async def notices_of(store: Store, user: str) -> list[tuple[str, Any]]:
    return [(n["type"], n["data"].get("auction_id")) for n in await store.load_notices(user)]


async def test_a_sale_moves_the_money_the_card_and_the_news_once(store, clock, cores):
    record = await add_auction(store)
    # u1 leads with a maximum of 1000; u2's 600 pushes the price to 600 + one increment.
    await run_to_settled(store, clock, cores, [("u1", 100, 1000), ("u2", 600, None)])
    [trade] = await store.list_trades(asset_id=record["asset_id"])
    price = trade["price"]
    premium, fee = price * PREMIUM_BPS // 10_000, price * SELLER_FEE_BPS // 10_000
    assert (trade["buyer_id"], trade["premium"], trade["seller_fee"]) == ("u1", premium, fee)
    assert price > 600 and premium > 0 and fee > 0
    assert await balance(store, "user:u1") == FUNDS - price - premium
    assert await balance(store, f"user:{SELLER}") == price - fee
    assert await balance(store, "fees") == fee + premium
    assert await balance(store, "user:u2") == FUNDS
    assert await store.check_ledger() == []
    assert (await store.get_asset(record["asset_id"]))["owner_id"] == "u1"

    assert ("won", "a1") in await notices_of(store, "u1")
    assert ("sold", "a1") in await notices_of(store, SELLER)
    u2 = await notices_of(store, "u2")
    assert ("lost", "a1") in u2 and ("outbid", "a1") not in u2  # u1 led throughout
    payment = [n for n in await store.load_notices("u1") if n["type"] == "payment"][-1]
    assert payment["data"]["amount"] == -(price + premium)


async def test_the_outbid_leader_hears_it(store, clock, cores):
    await add_auction(store)
    await run_to_settled(store, clock, cores, [("u1", 100, None), ("u2", 300, None)])
    outbid = [n for n in await store.load_notices("u1") if n["type"] == "outbid"]
    [trade] = await store.list_trades(user_id="u2")
    assert trade["price"] == 125  # u1 bid 100 as their maximum: one increment above it
    assert [(n["data"]["auction_id"], n["data"]["amount"]) for n in outbid] == [("a1", 125)]


async def test_a_winner_who_cannot_pay_fails_the_sale_and_the_runner_up_gets_a_chance(
        store, clock, cores):
    record = await add_auction(store)
    poor = "u_poor"
    await store.post_entry(cast(EntryRecord, ledger.deposit(poor, 150, "f", 1).to_dict()))
    await run_to_settled(store, clock, cores, [("u2", 100, 400), (poor, 500, 5000)])

    auction = await store.get_auction("a1")
    assert auction["settled"] and auction["settle_error"] == SETTLE_PAYMENT_FAILED
    asset = await store.get_asset(record["asset_id"])
    assert (asset["owner_id"], asset["listed_in"]) == (SELLER, None)
    assert await store.list_trades(asset_id=record["asset_id"]) == []
    assert await balance(store, f"user:{poor}") == 150  # nothing moved
    assert await store.get_entry(ledger.entry_id_for(ledger.SETTLEMENT, "a1")) is None
    chance = await store.get_second_chance("a1")
    assert chance is not None and (chance["user_id"], chance["price"]) == ("u2", 400)
    assert ("payment_failed", "a1") in await notices_of(store, poor)
    assert ("payment_failed", "a1") in await notices_of(store, SELLER)
    runner_up = await notices_of(store, "u2")
    assert ("second_chance", "a1") in runner_up and ("lost", "a1") not in runner_up
    assert await store.check_ledger() == []


async def test_a_settlement_that_fails_after_the_money_moved_resumes_once(store, clock, cores):
    record = await add_auction(store)
    wrapper = FailingStore(store)
    wrapper.fail("settle", 1, 2)  # the card step fails twice, after the entry was posted
    await run_to_settled(wrapper, clock, cores, [("u1", 100, 700), ("u2", 300, None)])
    assert wrapper.calls["settle"] == 3
    [trade] = await store.list_trades(asset_id=record["asset_id"])
    total = trade["price"] + trade["premium"]
    assert await balance(store, "user:u1") == FUNDS - total  # paid once
    postings = await store.list_postings("user:u1")
    assert [p["amount"] for p in postings] == [-total, FUNDS]
    won = [n for n in await store.load_notices("u1") if n["type"] == "won"]
    assert len(won) == 1
    assert await store.check_ledger() == []


def test_outbid_notices_go_to_the_leader_who_lost_the_lead() -> None:
    took = [{"auction_id": "a", "seq": 7, "type": "bid", "leader_id": "b", "price": 300,
             "at": 5}]
    kept = [{"auction_id": "a", "seq": 8, "type": "bid", "leader_id": "a_user", "price": 300,
             "at": 5}]
    [notice] = outbid_notices("a_user", took)
    assert notice["user_id"] == "a_user" and notice["key"] == "outbid:a:7"
    assert notice["data"] == {"auction_id": "a", "amount": 300}
    assert outbid_notices("a_user", kept) == []


async def test_a_crash_after_the_card_moved_still_tells_everyone(store, clock, cores):
    """Found by the kill test: the saga's last step (notices) was lost when the process died
    after the card moved, since a settled auction was never resumed."""
    await add_auction(store)
    wrapper = FailingStore(store)

    async def unreachable(n: int, real: Any, *args: Any) -> None:
        raise RuntimeError("process dies before the notices are stored")

    wrapper.on("add_notices", unreachable)
    first = AuctionHostCore(HOST, config(), store=wrapper, clock=clock)
    cores.append(first)
    await live(first)
    await first.submit([bid("u1", 100, "r1"), bid("u2", 300, "r2")])
    await close_at_end(first, clock)
    await wait_for(lambda: store.get_trade("a1"), timeout=10, message="card moved")
    await first.close()  # the crash: settled, nobody told
    assert [n["type"] for n in await store.load_notices("u2")] == ["payment", "payment"]
    assert [r["auction_id"] for r in await store.unsettled_finished()] == ["a1"]

    await run_resumed(store, clock, cores)
    assert ("won", "a1") in await notices_of(store, "u2")
    assert ("lost", "a1") in await notices_of(store, "u1")
    assert ("sold", "a1") in await notices_of(store, SELLER)
    assert await store.unsettled_finished() == []
    assert len(await store.list_postings("user:u2")) == 2  # the deposit, one payment


async def run_resumed(store: Store, clock: Clock, cores: list[AuctionHostCore]) -> None:
    """A new host core on the same store: its recovery resumes unfinished sagas."""
    _, finished = start_core(store, clock, cores)
    await wait_for(lambda: finished, timeout=10, message="saga resumed")


def test_a_batch_of_outbid_notices_keeps_the_latest_per_user_and_auction() -> None:
    def outbid(user: str, auction: str, seq: int) -> Any:
        return outbid_notices(user, [{"auction_id": auction, "seq": seq, "type": "bid",
                                      "leader_id": "someone", "price": seq, "at": 1}])[0]

    batch = [outbid("u1", "a", 1), outbid("u2", "a", 2), outbid("u1", "b", 3),
             outbid("u1", "a", 4)]
    assert [n["key"] for n in coalesce(batch)] == ["outbid:a:2", "outbid:b:3", "outbid:a:4"]


async def test_many_closes_settle_a_few_at_a_time(store: Store, clock: Clock,
                                                  cores: list[AuctionHostCore]) -> None:
    """Auctions closing together settle at most SETTLEMENTS_AT_ONCE at a time: the host's
    own commits (the next closes, bids) queue behind a few settlement transactions on the
    store, not behind every one (2,000 closes in one second once put 0.8 s between an end
    and its `closed` event)."""
    n = 3 * SETTLEMENTS_AT_ONCE
    for k in range(n):
        await add_auction(store, f"a{k}")
    counted = FailingStore(store)
    running, peak = 0, 0

    async def release(_: int, real: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        try:
            return await real(*args, **kwargs)
        finally:
            running -= 1

    counted.on("release", release)  # no bids: each settlement releases the card
    core, finished = start_core(counted, clock, cores)
    await core.ready()
    for k in range(n):
        await live(core, f"a{k}")
    await close_at_end(core, clock)
    await wait_for(lambda: len(finished) == n, message="every auction settled")
    assert counted.calls["release"] == n
    assert 1 <= peak <= SETTLEMENTS_AT_ONCE
