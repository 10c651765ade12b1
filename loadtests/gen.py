"""The load generator: asyncio WebSocket clients run in worker processes.

A *job* (a plain dict, so it pickles) lists the sockets one worker process opens:

* ``bidders``: ``{"auction_id", "token", "bidder_id", "floor"}``; each places bids on its auction,
  closed-loop (``mode="closed"``: ``window`` bids outstanding, the next one sent as soon as an
  answer comes back) or open-loop (``mode="open"``: one bid every ``1/rate`` seconds on a fixed
  schedule, latency measured from the *intended* send time so a stall is not hidden).
  ``mode="poisson"`` is the capacity sweep's open loop (``loadtests.gen_poisson``): one
  Poisson arrival process per generator process, a realistic bid mix, every late answer
  counted.
* ``watchers``: ``{"auction_id", "token"?}``; each subscribes and counts event deliveries.

A bid's amount is the smallest acceptable one the bidder knows of (``min_bid`` from its last
error, or ``price + increment`` from its last ack), and never the same amount twice on one
socket. Bidders and watchers of one auction live in the same process, so a watcher matches an
event to the send time of the bid that caused it by (auction, bidder, amount) on one clock.

The echo server answers a bid frame with the frame itself; an answer whose ``op`` is ``bid``
counts as answered, so the same job measures the bare WebSocket round trip.

``kind="idle"`` only opens ``count`` authenticated sockets and holds them until told to stop
(``loadtests.gen_idle``).

A generator process runs on uvloop when it is installed (``"loop": "asyncio"`` in the job
says otherwise) and on the CPUs its job's ``cpus`` lists, if any.

Protocol with the parent: put ``("ready", index, info)`` once connected, wait for ``start``, run
``warmup_s + measure_s``, drain, put ``("result", index, stats)``. Everything is bounded in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import resource
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import msgpack
from hdrh.histogram import HdrHistogram

from market.money import increment_for

# Latencies are recorded in microseconds, 1 µs .. 60 s, 3 significant digits.
HIST_MAX_US = 60_000_000


def new_histogram() -> HdrHistogram:
    return HdrHistogram(1, HIST_MAX_US, 3)


def raise_nofile() -> int:
    """Lift the soft open-files limit to the hard limit (sockets); returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = max(soft, 65_536)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


@dataclass
class Stats:
    sent: int = 0
    sent_in_window: int = 0
    answered: int = 0  # answers received inside the measurement window
    accepted: int = 0
    rejected: int = 0  # BID_TOO_LOW
    other_errors: dict[str, int] = field(default_factory=dict)
    skipped: int = 0  # open loop: a send skipped because too many were outstanding
    deliveries: int = 0  # event frames received by watchers inside the window
    bid_events: int = 0
    unmatched_events: int = 0
    disconnects: int = 0
    connect_failures: int = 0
    late_answers: int = 0  # answered after the window (drain)
    events_missing: int = 0  # open-loop cohort: accepted bids whose event never came
    ack_hist: HdrHistogram = field(default_factory=new_histogram)
    event_hist: HdrHistogram = field(default_factory=new_histogram)
    lag_hist: HdrHistogram = field(default_factory=new_histogram)  # send time - intended
    # Second of the window -> bid->ack histogram: shows whether a queue builds up over time.
    ack_by_second: dict[int, HdrHistogram] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "sent": self.sent, "sent_in_window": self.sent_in_window,
            "answered": self.answered, "accepted": self.accepted, "rejected": self.rejected,
            "other_errors": self.other_errors, "skipped": self.skipped,
            "deliveries": self.deliveries, "bid_events": self.bid_events,
            "unmatched_events": self.unmatched_events, "disconnects": self.disconnects,
            "connect_failures": self.connect_failures, "late_answers": self.late_answers,
            "events_missing": self.events_missing,
            "ack_hist": self.ack_hist.encode(), "event_hist": self.event_hist.encode(),
            "lag_hist": self.lag_hist.encode(),
            "ack_by_second": {k: h.encode() for k, h in self.ack_by_second.items()},
        }


class Clock:
    """The run's phases on this process's perf_counter."""

    def __init__(self, warmup_s: float, measure_s: float) -> None:
        self.t0 = time.perf_counter()
        self.window_start = self.t0 + warmup_s
        self.window_end = self.window_start + measure_s
        self.sending = True

    def in_window(self, t: float) -> bool:
        return self.window_start <= t < self.window_end


class Bidder:
    __slots__ = ("auction_id", "bidder_id", "floor", "last", "next_req", "pending", "prefix",
                 "ws")

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, spec: dict) -> None:
        self.ws = ws
        self.auction_id: str = spec["auction_id"]
        self.bidder_id: str = spec.get("bidder_id", "")
        self.floor: int = int(spec.get("floor", 100))
        self.last = 0
        # Request ids must never repeat for one (bidder, auction): a repeat is a retry, which
        # the auction answers from memory without doing anything (idempotency).
        self.next_req = random.randrange(1, 2**50)
        self.pending: dict[int, tuple[float, int]] = {}
        self.prefix = f'{{"op":"bid","auction_id":"{self.auction_id}","req_id":'


def _decode(msg: aiohttp.WSMessage) -> dict | None:
    if msg.type == aiohttp.WSMsgType.TEXT:
        return json.loads(msg.data)
    if msg.type == aiohttp.WSMsgType.BINARY:
        return msgpack.unpackb(msg.data, raw=False)
    return None


class Run:
    def __init__(self, job: dict) -> None:
        self.job = job
        self.stats = Stats()
        self.encoding: str = job.get("encoding", "json")
        self.window: int = int(job.get("window", 1))
        self.mode: str = job.get("mode", "closed")
        self.clock: Clock | None = None
        # (auction_id, bidder_id, amount) -> perf_counter at send (intended time, open loop)
        self.sent: dict[tuple[str, str, int], float] = {}
        self.bidders: list[Bidder] = []
        self.watchers: list[aiohttp.ClientWebSocketResponse] = []
        self.tasks: list[asyncio.Task] = []

    # ---- sending -----------------------------------------------------------------------

    async def send_bid(self, b: Bidder, intended: float | None = None) -> None:
        amount = max(b.floor, b.last + 1)
        b.last = amount
        req = b.next_req
        b.next_req += 1
        now = time.perf_counter()
        t = now if intended is None else intended
        b.pending[req] = (t, amount)
        self.sent[(b.auction_id, b.bidder_id, amount)] = t
        stats = self.stats
        stats.sent += 1
        clock = self.clock
        if clock is not None and clock.in_window(now):
            stats.sent_in_window += 1
        if self.encoding == "json":
            await b.ws.send_str(f'{b.prefix}{req},"amount":{amount}}}')
        else:
            await b.ws.send_bytes(msgpack.packb(
                {"op": "bid", "auction_id": b.auction_id, "req_id": req, "amount": amount}))

    # ---- receiving ---------------------------------------------------------------------

    async def bidder_loop(self, b: Bidder) -> None:
        stats = self.stats
        clock = self.clock
        assert clock is not None
        closed_loop = self.mode == "closed"
        if closed_loop:
            for _ in range(self.window):
                await self.send_bid(b)
        async for message in self.messages(b.ws):
            op = message.get("op")
            if op not in ("ack", "error", "bid"):
                continue
            entry = b.pending.pop(message.get("req_id"), None)
            if entry is None:
                continue
            now = time.perf_counter()
            sent_at = entry[0]
            if op == "error":
                code = message.get("code")
                if code == "BID_TOO_LOW":
                    min_bid = message.get("min_bid")
                    if isinstance(min_bid, int) and min_bid > b.floor:
                        b.floor = min_bid
                    kind = "rejected"
                else:
                    kind = code or "UNKNOWN"
            else:
                price = message.get("price")
                if isinstance(price, int):
                    floor = price + increment_for(price)
                    if floor > b.floor:
                        b.floor = floor
                kind = "accepted"
            if clock.in_window(now):
                stats.answered += 1
                if kind == "accepted":
                    stats.accepted += 1
                elif kind == "rejected":
                    stats.rejected += 1
                else:
                    stats.other_errors[kind] = stats.other_errors.get(kind, 0) + 1
                micros = max(1, min(HIST_MAX_US, int((now - sent_at) * 1e6)))
                stats.ack_hist.record_value(micros)
                second = int(now - clock.window_start)
                per_second = stats.ack_by_second.get(second)
                if per_second is None:
                    per_second = stats.ack_by_second[second] = new_histogram()
                per_second.record_value(micros)
            elif now >= clock.window_end:
                stats.late_answers += 1
            if closed_loop and clock.sending:
                await self.send_bid(b)
            elif not clock.sending and not b.pending:
                return

    async def messages(self, ws: aiohttp.ClientWebSocketResponse) -> AsyncIterator[dict]:
        """Decoded messages until the socket closes (counted as a disconnect mid-run)."""
        while True:
            msg = await ws.receive()
            message = _decode(msg)
            if message is not None:
                yield message
            elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING,
                              aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                if self.clock is not None and self.clock.sending:
                    self.stats.disconnects += 1
                return

    async def watcher_loop(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        stats = self.stats
        clock = self.clock
        assert clock is not None
        sent = self.sent
        async for message in self.messages(ws):
            if message.get("op") != "event":
                continue
            now = time.perf_counter()
            if not clock.in_window(now):
                continue
            stats.deliveries += 1
            if message.get("type") != "bid":
                continue
            stats.bid_events += 1
            sent_at = sent.get((message.get("auction_id"), message.get("bidder_id"),
                                message.get("amount")))
            if sent_at is None:
                if self.bidders:  # a process without bidders has nothing to match against
                    stats.unmatched_events += 1
                continue
            stats.event_hist.record_value(max(1, min(HIST_MAX_US, int((now - sent_at) * 1e6))))

    async def open_sender(self, b: Bidder, rate: float) -> None:
        clock = self.clock
        assert clock is not None
        interval = 1.0 / rate
        next_t = clock.t0 + random.uniform(0, interval)
        sends = 0
        max_sends = int((clock.window_end - clock.t0) * rate) + 2
        while clock.sending and next_t < clock.window_end and sends < max_sends:
            delay = next_t - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if len(b.pending) >= 1_000:
                self.stats.skipped += 1
            else:
                await self.send_bid(b, intended=next_t)
            sends += 1
            next_t += interval

    # ---- set-up --------------------------------------------------------------------------

    async def connect_all(self, http: aiohttp.ClientSession) -> None:
        base = self.job["url"].rstrip("/")
        path = self.job.get("path", "/ws")
        gate = asyncio.Semaphore(int(self.job.get("connect_concurrency", 100)))

        async def open_socket(token: str | None) -> aiohttp.ClientWebSocketResponse | None:
            url = f"{base}{path}" + (f"?token={token}" if token else "")
            async with gate:
                for attempt in range(3):
                    try:
                        return await http.ws_connect(url, autoping=True, max_msg_size=0,
                                                     timeout=aiohttp.ClientWSTimeout(ws_close=2))
                    except (aiohttp.ClientError, OSError, TimeoutError):
                        await asyncio.sleep(0.2 * (attempt + 1))
            self.stats.connect_failures += 1
            return None

        async def watcher(spec: dict) -> aiohttp.ClientWebSocketResponse | None:
            ws = await open_socket(spec.get("token"))
            if ws is None:
                return None
            await ws.send_str(json.dumps({"op": "subscribe", "auction_id": spec["auction_id"],
                                          "req_id": "sub"}))
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                msg = await ws.receive(timeout=max(0.1, deadline - time.monotonic()))
                message = _decode(msg)
                if message is None:
                    break
                if message.get("op") == "snapshot":
                    return ws
                if message.get("op") == "error":
                    break
            self.stats.connect_failures += 1
            await ws.close()
            return None

        async def bidder(spec: dict) -> Bidder | None:
            ws = await open_socket(spec.get("token"))
            return None if ws is None else Bidder(ws, spec)

        watchers = await asyncio.gather(*(watcher(s) for s in self.job.get("watchers", ())))
        self.watchers = [w for w in watchers if w is not None]
        bidders = await asyncio.gather(*(bidder(s) for s in self.job.get("bidders", ())))
        self.bidders = [b for b in bidders if b is not None]

    async def close_all(self) -> None:
        sockets = [b.ws for b in self.bidders] + self.watchers
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

        async def close(ws: aiohttp.ClientWebSocketResponse) -> None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 2)

        for start in range(0, len(sockets), 500):
            await asyncio.gather(*(close(ws) for ws in sockets[start:start + 500]))

    # ---- the run -------------------------------------------------------------------------

    def start_tasks(self, loop: asyncio.AbstractEventLoop) -> None:
        self.tasks = [loop.create_task(self.watcher_loop(ws)) for ws in self.watchers]
        self.tasks += [loop.create_task(self.bidder_loop(b)) for b in self.bidders]
        if self.mode == "open" and self.bidders:
            rate = float(self.job["rate_per_bidder"])
            self.tasks += [loop.create_task(self.open_sender(b, rate)) for b in self.bidders]

    def owed(self) -> bool:
        """Answers still owed after the window (the drain waits for them, bounded)."""
        return any(b.pending for b in self.bidders)

    def count_unanswered(self) -> None:
        unanswered = sum(len(b.pending) for b in self.bidders)
        if unanswered:
            self.stats.other_errors["UNANSWERED"] = unanswered

    async def run(self, index: int, start, results) -> None:
        job = self.job
        connector = aiohttp.TCPConnector(limit=0, force_close=False)
        async with aiohttp.ClientSession(connector=connector) as http:
            await self.connect_all(http)
            results.put(("ready", index, {"bidders": len(self.bidders),
                                          "watchers": len(self.watchers),
                                          "connect_failures": self.stats.connect_failures}))
            loop = asyncio.get_running_loop()
            started = await loop.run_in_executor(None, start.wait, float(job.get("start_timeout",
                                                                                 120)))
            if not started:
                await self.close_all()
                results.put(("error", index, "start signal never came"))
                return
            self.clock = clock = Clock(float(job["warmup_s"]), float(job["measure_s"]))
            self.start_tasks(loop)
            await asyncio.sleep(max(0.0, clock.window_end - time.perf_counter()))
            clock.sending = False
            # Drain: answers still owed, bounded.
            drain_until = time.perf_counter() + float(job.get("drain_s", 3.0))
            while time.perf_counter() < drain_until and self.owed():
                await asyncio.sleep(0.05)
            self.count_unanswered()
            await self.close_all()
        out = self.stats.to_dict()
        out["window_s"] = float(job["measure_s"])
        results.put(("result", index, out))


def pin(cpus: list[int] | None) -> None:
    """Keep this process (and the threads it starts) on `cpus`, where the OS allows it."""
    if cpus and hasattr(os, "sched_setaffinity"):
        with contextlib.suppress(OSError, ValueError):
            os.sched_setaffinity(0, set(cpus))


def uvloop_run():
    """`uvloop.run` when uvloop is installed (a generator fast enough not to be the limit),
    else `asyncio.run`."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run
    return uvloop.run
