"""The open-loop generator of the capacity sweep (`mode="poisson"` jobs of `loadtests.gen`).

One Poisson arrival process per generator process at `rate` bids/s: each arrival picks one of
the process's auctions at random, a bidder of it who does not lead, and bids the auction's
current minimum or sets a maximum above it (`loadtests.mix`). What the process knows of each
auction comes from every ack, refusal and event its sockets see.

Latency runs from the *intended* send time (the arrival), so a stall of the server (or of the
generator: `lag` records how late each send left) is never hidden. The measured bids are the
*cohort* whose arrival falls in the window: every one of their answers and events counts,
however late, until the bounded drain ends; a cohort bid still unanswered then is counted as
UNANSWERED and an accepted one whose event never came as `events_missing` (recorded in the
event histogram at its maximum, so it fails the target rather than vanish).
"""

from __future__ import annotations

import asyncio
import random
import time

import aiohttp
import msgpack

from loadtests.gen import HIST_MAX_US, Bidder, Run
from loadtests.mix import BidMix, Book, pick_bidder, poisson_times
from market.money import increment_for


def _micros(seconds: float) -> int:
    return max(1, min(HIST_MAX_US, int(seconds * 1e6)))


class PoissonRun(Run):
    def __init__(self, job: dict) -> None:
        super().__init__(job)
        self.rng = random.Random(job.get("seed"))
        self.mix = BidMix(float(job.get("proxy_share", 0.3)),
                          int(job.get("proxy_increments", 4)))
        self.books: dict[str, Book] = {}
        self.bidders_of: dict[str, list[Bidder]] = {}
        self.watchers_of: dict[str, int] = {}
        # (auction_id, seq) -> intended send time of an accepted cohort bid
        self.acked: dict[tuple[str, int], float] = {}
        # (auction_id, seq) -> arrival times of its event deliveries before the ack came
        self.early: dict[tuple[str, int], list[float]] = {}
        self.delivered: set[tuple[str, int]] = set()
        self.cohort_pending = 0

    def start_tasks(self, loop: asyncio.AbstractEventLoop) -> None:
        for b in self.bidders:
            self.books.setdefault(b.auction_id, Book(b.floor))
            self.bidders_of.setdefault(b.auction_id, []).append(b)
        for spec in self.job.get("watchers", ()):
            aid = spec["auction_id"]
            self.watchers_of[aid] = self.watchers_of.get(aid, 0) + 1
        self.tasks = [loop.create_task(self.watcher_loop(ws)) for ws in self.watchers]
        self.tasks += [loop.create_task(self.bidder_loop(b)) for b in self.bidders]
        if self.bidders:
            self.tasks.append(loop.create_task(self.sender(float(self.job["rate"]))))

    def owed(self) -> bool:
        return self.cohort_pending > 0 or len(self.delivered) < len(self.acked)

    def count_unanswered(self) -> None:
        stats = self.stats
        if self.cohort_pending:
            stats.other_errors["UNANSWERED"] = self.cohort_pending
        missing = [key for key in self.acked if key not in self.delivered]
        stats.events_missing = len(missing)
        for auction_id, _ in missing:
            for _ in range(max(1, self.watchers_of.get(auction_id, 1))):
                stats.event_hist.record_value(HIST_MAX_US)

    # ---- sending -------------------------------------------------------------------------

    async def sender(self, rate: float) -> None:
        clock = self.clock
        assert clock is not None
        auctions = list(self.bidders_of)
        for t in poisson_times(rate, clock.t0, clock.window_end, self.rng):
            if not clock.sending:
                return
            delay = t - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            auction_id = self.rng.choice(auctions)
            book = self.books[auction_id]
            bidder = pick_bidder(self.bidders_of[auction_id], book.leader_id, self.rng)
            if bidder is None or len(bidder.pending) >= 1_000:
                self.stats.skipped += 1
                continue
            amount, max_amount = self.mix.choose(book.min_bid, self.rng)
            await self.send(bidder, t, amount, max_amount)

    async def send(self, b: Bidder, intended: float, amount: int,
                   max_amount: int | None) -> None:
        req = b.next_req
        b.next_req += 1
        now = time.perf_counter()
        b.pending[req] = (intended, amount)
        stats = self.stats
        stats.sent += 1
        assert self.clock is not None
        if self.clock.in_window(intended):
            stats.sent_in_window += 1
            self.cohort_pending += 1
            stats.lag_hist.record_value(_micros(now - intended))
        tail = "" if max_amount is None else f',"max_amount":{max_amount}'
        if self.encoding == "json":
            await b.ws.send_str(f'{b.prefix}{req},"amount":{amount}{tail}}}')
        else:
            frame = {"op": "bid", "auction_id": b.auction_id, "req_id": req, "amount": amount}
            if max_amount is not None:
                frame["max_amount"] = max_amount
            await b.ws.send_bytes(msgpack.packb(frame))

    # ---- receiving -----------------------------------------------------------------------

    async def bidder_loop(self, b: Bidder) -> None:
        stats = self.stats
        clock = self.clock
        assert clock is not None
        book = self.books[b.auction_id]
        async for message in self.messages(b.ws):
            op = message.get("op")
            if op not in ("ack", "error"):
                continue
            entry = b.pending.pop(message.get("req_id"), None)
            if entry is None:
                continue
            now = time.perf_counter()
            intended = entry[0]
            seq = message.get("seq")
            if op == "ack":
                price = message.get("price")
                book.learn(seq, price + increment_for(price) if isinstance(price, int) else None,
                           message.get("leader_id"))
            elif message.get("code") == "BID_TOO_LOW":
                book.refused(message.get("min_bid"))
            if not clock.in_window(intended):
                continue
            self.cohort_pending -= 1
            stats.answered += 1
            if now >= clock.window_end:
                stats.late_answers += 1
            stats.ack_hist.record_value(_micros(now - intended))
            if op == "ack":
                stats.accepted += 1
                if isinstance(seq, int):
                    key = (b.auction_id, seq)
                    self.acked[key] = intended
                    early = self.early.pop(key, ())
                    if early:
                        self.delivered.add(key)
                        stats.bid_events += len(early)
                    for at in early:
                        stats.event_hist.record_value(_micros(at - intended))
            elif message.get("code") == "BID_TOO_LOW":
                stats.rejected += 1
            else:
                code = message.get("code") or "UNKNOWN"
                stats.other_errors[code] = stats.other_errors.get(code, 0) + 1

    async def watcher_loop(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        stats = self.stats
        clock = self.clock
        assert clock is not None
        async for message in self.messages(ws):
            if message.get("op") != "event":
                continue
            now = time.perf_counter()
            if clock.in_window(now):
                stats.deliveries += 1
            auction_id, seq = message.get("auction_id"), message.get("seq")
            book = self.books.get(auction_id) if isinstance(auction_id, str) else None
            if book is None or not isinstance(seq, int):
                continue
            book.learn(seq, message.get("min_bid"), message.get("leader_id"))
            if message.get("type") not in ("bid", "raised"):
                continue
            key = (str(auction_id), seq)
            intended = self.acked.get(key)
            if intended is not None:
                stats.bid_events += 1
                self.delivered.add(key)
                stats.event_hist.record_value(_micros(now - intended))
            elif clock.sending or self.cohort_pending:
                # The ack may still be on its way on the bidder's socket.
                self.early.setdefault(key, []).append(now)
