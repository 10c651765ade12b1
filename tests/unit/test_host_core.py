"""AuctionHostCore in plain asyncio (no Ray): a real SQLite file, an injected clock, and a
store wrapper that injects failures (fences, failed settlements, half-written commits)."""

from __future__ import annotations

import pytest

from actors.config import ClusterConfig
from actors.host import AuctionHostCore
from actors.messages import Acked, GetView, Refused, Reply, Viewed
from market.auction import Auction
from storage import CommitBatch, Store, StoreError
from testkit.client import wait_for
from tests.unit.hostkit import (
    HOST,
    HOUR,
    T0,
    FailingStore,
    Hook,
    add_auction,
    bid,
    close_at_end,
    live,
    start,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")

# ---- timers --------------------------------------------------------------------------------

async def test_ten_thousand_bids_leave_one_timer_entry(store, clock, released, cores):
    await add_auction(store)
    core = await start(store, clock, released, cores)
    await live(core)
    # A replica of the auction tells the minimum bid ahead of each command of a batch.
    shadow = Auction.from_snapshot(core.auctions["a1"].to_snapshot())
    answers: list[Reply] = []
    n = 0
    for _round in range(100):
        commands = []
        for j in range(100):
            n += 1
            if j % 2 == 0:  # accepted: two bidders outbidding each other at the minimum
                command = bid(f"u{n % 4 // 2}", shadow.min_bid(clock.now) or 0, f"r{n}")
                outcome = shadow.handle_bid(command.bidder_id, command.req_id,
                                            command.amount, None, clock.now)
                assert outcome.error is None
                commands.append(command)
            else:  # refused: below the minimum
                commands.append(bid("u9", 1, f"r{n}"))
        answers += await core.submit(commands)
    accepted = sum(1 for a in answers if isinstance(a, Acked))
    refused = [a for a in answers if isinstance(a, Refused)]
    assert accepted == 5_000 and len(refused) == 5_000, (accepted, len(refused))
    assert all(a.code == "BID_TOO_LOW" for a in refused)

    assert core.timers._deadline_of == {"a1": T0 + HOUR}
    assert len(core.timers._heap) <= 2, len(core.timers._heap)

    await close_at_end(core, clock)
    await wait_for(lambda: released == ["a1"], message="closed and released")
    assert "a1" not in core.timers._deadline_of and core.timers.next() is None
    assert core.timers._heap == []
    assert (await store.get_auction("a1"))["status"] == "closed"
    await core.close()


async def test_many_auctions_each_keep_one_entry_and_close_in_order(store, clock, released,
                                                                    cores):
    for i in range(50):
        await add_auction(store, f"m{i}", ends_at=T0 + HOUR + i)
    core = await start(store, clock, released, cores)
    await wait_for(lambda: all(core.auctions[f"m{i}"].status == "live" for i in range(50)),
                   message="all live")
    for k in range(20):  # refused bids on every auction: no new timer entries
        await core.submit([bid("u1", 1, f"x{k}", f"m{i}") for i in range(50)])
    assert len(core.timers._heap) <= 2 * 50
    assert len(core.timers._deadline_of) == 50
    clock.now = T0 + HOUR + 24  # the first 25 are due
    core.wake()
    await wait_for(lambda: len(released) == 25, message="first half closed")
    assert sorted(released) == sorted(f"m{i}" for i in range(25))
    assert core.timers.next() == T0 + HOUR + 25
    await close_at_end(core, clock, T0 + HOUR + 50)
    await wait_for(lambda: len(released) == 50, message="all closed")
    assert core.timers._deadline_of == {} and core.timers.next() is None
    await core.close()


async def test_soft_close_moves_the_single_timer_entry(store, clock, released, cores):
    await add_auction(store, soft_close_ms=60_000)
    core = await start(store, clock, released, cores)
    await live(core)
    clock.now = T0 + HOUR - 1_000  # inside the soft-close window
    [ack] = await core.submit([bid("u1", 100, "r1")])
    new_end = clock.now + 60_000
    assert isinstance(ack, Acked) and ack.ack["ends_at"] == new_end
    assert core.timers._deadline_of == {"a1": new_end}

    clock.now = T0 + HOUR + 5  # the old end: its stale heap entry must not close anything
    core.wake()
    [view] = await core.submit([GetView("a1")])
    assert isinstance(view, Viewed)
    assert view.auction["status"] == "live" and core.timers.next() == new_end

    await close_at_end(core, clock, new_end)
    await wait_for(lambda: released == ["a1"], message="closed at the extended end")
    [closed] = [e for e in await store.load_events("a1") if e["type"] == "closed"]
    assert closed["at"] >= new_end
    await core.close()


# ---- fencing -------------------------------------------------------------------------------

async def test_spuriously_fenced_auction_is_served_again_from_its_durable_state(
        store, clock, released, cores):
    await add_auction(store)
    wrapper = FailingStore(store)
    fenced = {"armed": False, "times": 0}

    async def fence_once(n: int, real: Hook, batch: CommitBatch) -> set[str]:
        if not fenced["armed"] or not any(e["auction_id"] == "a1" for e in batch.events):
            return await real(batch)
        # What a fence stores for the auction: nothing (as MongoDB's spurious one, too).
        fenced["armed"] = False
        fenced["times"] += 1
        rest = CommitBatch(events=[e for e in batch.events if e["auction_id"] != "a1"],
                           views={k: v for k, v in batch.views.items() if k != "a1"},
                           snapshots={k: v for k, v in batch.snapshots.items() if k != "a1"})
        return await real(rest) | {"a1"}

    wrapper.on("commit", fence_once)
    core = await start(wrapper, clock, released, cores)
    await live(core)
    [first] = await core.submit([bid("u1", 100, "r1")])
    assert isinstance(first, Acked) and first.ack["seq"] == 2

    fenced["armed"] = True
    [lost] = await core.submit([bid("u2", 500, "r2")])
    assert isinstance(lost, Refused) and lost.code == "UNAVAILABLE" and fenced["times"] == 1

    async def served() -> Acked | None:
        [answer] = await core.submit([bid("u2", 500, "r2")])  # the client's retry
        return answer if isinstance(answer, Acked) else None

    again = await wait_for(served, timeout=10, message="auction served again")
    assert again.ack["seq"] == 3  # continues from the durable seq 2
    events = await store.load_events("a1")
    assert [(e["seq"], e["type"], e.get("bidder_id")) for e in events] == [
        (1, "started", None), (2, "bid", "u1"), (3, "bid", "u2")]
    record = await store.get_auction("a1")
    assert record["seq"] == 3 and record["view"]["leader_id"] == "u2"
    await core.close()


# ---- settlement ----------------------------------------------------------------------------

async def test_failed_settlement_is_retried_then_released_once(store, clock, released, cores):
    record = await add_auction(store)
    wrapper = FailingStore(store)
    wrapper.fail("settle", 1, 2)
    seen: list[tuple[str, int, bool]] = []

    async def on_finished(auction_id: str) -> None:
        stored = await store.get_auction(auction_id)
        seen.append((auction_id, wrapper.calls["settle"], stored["settled"]))

    core = AuctionHostCore(HOST, ClusterConfig(store_url="sqlite:///unused", instance="unit"),
                           store=wrapper, clock=clock, on_finished=on_finished)
    cores.append(core)
    await live(core)
    [ack] = await core.submit([bid("u_buyer", 300, "r1")])
    assert isinstance(ack, Acked)
    await close_at_end(core, clock)

    await wait_for(lambda: seen, timeout=10, message="released after settlement")
    assert seen == [("a1", 3, True)]  # released once, only after the third (good) settle
    trades = await store.list_trades(asset_id=record["asset_id"])
    assert [(t["buyer_id"], t["price"]) for t in trades] == [("u_buyer", 100)]
    assert (await store.get_asset(record["asset_id"]))["owner_id"] == "u_buyer"
    assert "a1" not in core.auctions
    assert wrapper.calls["settle"] == 3
    await core.close()


async def test_stopping_the_host_stops_the_settlement_retries(store, clock, released, cores):
    await add_auction(store)
    wrapper = FailingStore(store)
    wrapper.fail("settle", *range(1, 10_000))  # the store keeps refusing
    core = await start(wrapper, clock, released, cores)
    await live(core)
    await core.submit([bid("u_buyer", 300, "r1")])
    await close_at_end(core, clock)
    await wait_for(lambda: wrapper.calls["settle"] >= 2, message="settlement retried")
    await core.close()
    assert all(task.done() for task in core._background) and released == []
    assert not (await store.get_auction("a1"))["settled"]


async def test_settle_answering_false_is_done_not_retried(store, clock, released, cores):
    await add_auction(store)
    wrapper = FailingStore(store)

    async def asset_moved(n: int, real: Hook, trade: dict, transfer: dict | None = None) -> bool:
        return False  # what the store answers when the asset had moved: no trade, settled

    wrapper.on("settle", asset_moved)
    core = await start(wrapper, clock, released, cores)
    await live(core)
    await core.submit([bid("u_buyer", 300, "r1")])
    await close_at_end(core, clock)
    await wait_for(lambda: released == ["a1"], message="released")
    assert wrapper.calls["settle"] == 1
    await core.close()


# ---- closed in the log, open in the stored view --------------------------------------------

def _events_then_fail(wrapper: FailingStore, die: bool) -> None:
    """The commit that closes a1 stores its events, then fails before views and snapshots."""

    async def hook(n: int, real: Hook, batch: CommitBatch) -> set[str]:
        if not any(e["type"] == "closed" and e["auction_id"] == "a1" for e in batch.events):
            return await real(batch)
        await real(CommitBatch(events=batch.events))
        wrapper.on("commit", lambda n, real, batch: real(batch))  # only once
        if die:
            wrapper.die()
        raise StoreError("injected: views and snapshots not written")

    wrapper.on("commit", hook)


async def _check_closed_and_settled(store: Store, record: dict) -> None:
    async def settled() -> bool:
        stored = await store.get_auction("a1")
        return stored["status"] == "closed" and stored["settled"]

    await wait_for(settled, timeout=10, message="stored closed and settled")
    stored = await store.get_auction("a1")
    assert stored["view"]["winner_id"] == "u_buyer" and stored["snapshot"]["status"] == "closed"
    trades = await store.list_trades(asset_id=record["asset_id"])
    assert [(t["buyer_id"], t["price"]) for t in trades] == [("u_buyer", 100)]


async def test_auction_closed_in_log_but_live_in_view_is_finished_by_a_new_host(
        store, clock, released, cores):
    record = await add_auction(store)
    wrapper = FailingStore(store)
    _events_then_fail(wrapper, die=True)
    old = await start(wrapper, clock, released, cores)
    await live(old)
    await old.submit([bid("u_buyer", 300, "r1")])
    await close_at_end(old, clock)
    await wait_for(lambda: wrapper.dead, message="the half-written commit")
    await old.close()
    stored = await store.get_auction("a1")
    assert stored["status"] == "live"  # the inconsistent state the next host finds
    assert [e["type"] for e in await store.load_events("a1")] == ["started", "bid", "closed"]

    new = await start(store, clock, released, cores)
    await _check_closed_and_settled(store, record)
    await wait_for(lambda: released == ["a1"], message="released")
    assert "a1" not in new.auctions
    # The close nobody published is published now.
    feed = new.feed.read(None, 0, 100)
    assert [e["type"] for e in feed.events] == ["closed"]
    await new.close()


async def test_half_written_close_is_repaired_by_the_same_host(store, clock, released, cores):
    record = await add_auction(store)
    wrapper = FailingStore(store)
    _events_then_fail(wrapper, die=False)
    core = await start(wrapper, clock, released, cores)
    await live(core)
    await core.submit([bid("u_buyer", 300, "r1")])
    await close_at_end(core, clock)
    await _check_closed_and_settled(store, record)
    await wait_for(lambda: released == ["a1"], message="released")
    assert [e["type"] for e in core.feed.read(None, 0, 100).events] == [
        "started", "bid", "closed"]
    await core.close()
