"""The benchmark's baseline (ECE_BATCHING=0) differs from ECE in one thing only: the gateway
sends one `submit` call per command. The host still commits the commands of concurrent calls
together (its loop drains everything queued), so N concurrent bids arrive as N calls and
commit in far fewer store transactions. Without Ray: the gateway's `UnbatchedHostClient` over a
handle whose `submit.remote` runs the host core, on a real SQLite store."""

from __future__ import annotations

from typing import Any

import pytest

from actors.config import ClusterConfig
from actors.host import AuctionHostCore
from actors.messages import Acked, Command, PlaceBid
from gateway.router import UnbatchedHostClient
from market.auction import Auction
from tests.unit.hostkit import HOST, FailingStore, add_auction, bid, live

pytestmark = pytest.mark.asyncio(loop_scope="session")

BIDS = 50


class CoreHandle:
    """`handle.submit.remote(commands)` as Ray offers it, served by a host core; counts calls."""

    def __init__(self, core: AuctionHostCore) -> None:
        self.core = core
        self.calls: list[int] = []  # commands per call

    @property
    def submit(self) -> CoreHandle:
        return self

    def remote(self, commands: list[Command]) -> Any:
        self.calls.append(len(commands))
        return self.core.submit(commands)


def rising_bids(auction: Auction, now: int, n: int) -> list[PlaceBid]:
    """n bids that are each accepted in turn (two bidders outbidding each other)."""
    shadow = Auction.from_snapshot(auction.to_snapshot())
    commands = []
    for k in range(n):
        command = bid(f"u{k % 2 + 1}", shadow.min_bid(now) or 0, f"r{k}")
        assert shadow.handle_bid(command.bidder_id, command.req_id, command.amount, None,
                                 now).error is None
        commands.append(command)
    return commands


async def test_one_call_per_bid_still_commits_concurrent_bids_together(store, clock, cores):
    await add_auction(store)
    counted = FailingStore(store)  # no failures injected: it counts the store's calls
    core = AuctionHostCore(HOST, ClusterConfig(store_url="sqlite:///unused", instance="unit",
                                               batching=False),
                           store=counted, clock=clock)  # type: ignore[arg-type]
    cores.append(core)
    await core.ready()
    await live(core)
    before = counted.calls["commit"]
    handle = CoreHandle(core)
    client = UnbatchedHostClient("h", handle)  # type: ignore[arg-type]

    commands = rising_bids(core.auctions["a1"], clock.now, BIDS)
    results = [await f for f in [client.call(c) for c in commands]]

    assert all(isinstance(r, Acked) for r in results), results
    assert handle.calls == [1] * BIDS  # one Ray call per bid: the one thing the baseline changes
    commits = counted.calls["commit"] - before
    # ...while the host still groups them: one commit per pass over what was queued, not per
    # bid (the bids of one loop tick all queue before the host's loop runs).
    assert 1 <= commits <= 2, commits
    assert len(await store.load_events("a1")) >= BIDS  # every acked bid is durable
    await core.close()
