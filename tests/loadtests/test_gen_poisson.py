"""The open-loop generator's accounting, on fake sockets: the cohort is the bids whose
intended send time is in the window; their answers count however late they come, an event may
come before its ack, and what never came is counted as a failure."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from loadtests.gen import HIST_MAX_US, Bidder, Clock
from loadtests.gen_poisson import PoissonRun
from loadtests.mix import Book


class FakeWs:
    """What `Run.messages` reads: `receive()` returns queued TEXT frames, then CLOSED."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue = asyncio.Queue()
        self.sent: list[str] = []

    async def send_str(self, text: str) -> None:
        self.sent.append(text)

    def push(self, message: dict | None) -> None:
        if message is None:
            self.inbox.put_nowait(aiohttp.WSMessage(aiohttp.WSMsgType.CLOSED, None, None))
        else:
            self.inbox.put_nowait(aiohttp.WSMessage(aiohttp.WSMsgType.TEXT,
                                                    json.dumps(message), None))

    async def receive(self) -> aiohttp.WSMessage:
        return await self.inbox.get()


def make_run() -> tuple[PoissonRun, FakeWs, FakeWs, Clock]:
    run = PoissonRun({"bidders": [], "watchers": [{"auction_id": "a1"}], "seed": 1,
                      "proxy_share": 0.0})
    bidder_ws, watcher_ws = FakeWs(), FakeWs()
    spec = {"auction_id": "a1", "bidder_id": "u1", "floor": 100}
    bidder = Bidder(bidder_ws, spec)  # type: ignore[arg-type]
    run.bidders = [bidder]
    run.watchers = [watcher_ws]  # type: ignore[list-item]
    clock = Clock(-10.0, 5.0)  # the window: from 10 s ago to 5 s ago; every answer is late
    run.clock = clock
    run.books = {}
    for b in run.bidders:
        run.books.setdefault(b.auction_id, Book(b.floor))
        run.bidders_of.setdefault(b.auction_id, []).append(b)
    run.watchers_of = {"a1": 1}
    return run, bidder_ws, watcher_ws, clock


def sent_req(ws: FakeWs, i: int) -> int:
    return json.loads(ws.sent[i])["req_id"]


@pytest.mark.asyncio
async def test_late_answers_count_and_the_unanswered_fail() -> None:
    run, bws, wws, clock = make_run()
    bidder = run.bidders[0]
    t0 = clock.window_start
    await run.send(bidder, t0 + 0.001, 100, None)  # accepted, its event before its ack
    await run.send(bidder, t0 + 0.002, 100, None)  # refused
    await run.send(bidder, t0 + 0.003, 200, None)  # never answered
    await run.send(bidder, t0 - 1.0, 50, None)  # before the window: not in the cohort
    assert run.stats.sent_in_window == 3
    assert '"amount":100}' in bws.sent[0] and "max_amount" not in bws.sent[0]

    # The event of the first bid overtakes its ack (another socket).
    wws.push({"op": "event", "auction_id": "a1", "seq": 7, "type": "bid", "min_bid": 125,
              "leader_id": "u1", "amount": 100, "bidder_id": "u1"})
    wws.push(None)
    await run.watcher_loop(wws)  # type: ignore[arg-type]
    assert run.books["a1"].min_bid == 125 and run.books["a1"].leader_id == "u1"

    bws.push({"op": "ack", "req_id": sent_req(bws, 0), "seq": 7, "price": 100,
              "leader_id": "u1"})
    bws.push({"op": "error", "req_id": sent_req(bws, 1), "code": "BID_TOO_LOW",
              "min_bid": 150})
    bws.push({"op": "ack", "req_id": sent_req(bws, 3), "seq": 3, "price": 50,
              "leader_id": "u9"})
    bws.push(None)
    await run.bidder_loop(bidder)

    stats = run.stats
    assert (stats.answered, stats.accepted, stats.rejected) == (2, 1, 1)
    assert stats.late_answers == 2
    assert stats.ack_hist.get_total_count() == 2
    assert stats.bid_events == 1 and stats.event_hist.get_total_count() == 1
    assert run.books["a1"].min_bid == 150  # the refusal named a higher minimum
    assert run.owed()  # the third bid is still owed
    run.count_unanswered()
    assert stats.other_errors == {"UNANSWERED": 1}
    assert stats.events_missing == 0


@pytest.mark.asyncio
async def test_an_accepted_bid_whose_event_never_comes_fails_the_event_latency() -> None:
    run, bws, _, clock = make_run()
    bidder = run.bidders[0]
    await run.send(bidder, clock.window_start + 0.001, 100, 300)
    assert '"max_amount":300' in bws.sent[0]
    bws.push({"op": "ack", "req_id": sent_req(bws, 0), "seq": 4, "price": 100,
              "leader_id": "u1"})
    bws.push(None)
    await run.bidder_loop(bidder)
    assert run.owed()  # its event is owed
    run.count_unanswered()
    assert run.stats.events_missing == 1
    assert run.stats.event_hist.get_max_value() >= HIST_MAX_US * 0.99
