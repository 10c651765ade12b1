"""Stage `portfolio_push` (issue 12): a sale settles -> every holder of that card hears of it
(`portfolio` event on the user channel `me`), with 10,000 users holding the card.

Set-up (not timed), on a joined `ece serve` with ECE_ANALYTICS=1 of its own:
- over the API: a seller, a buyer per sale and S holders with sockets (signed up), a card;
  each of the S holders mints a PSA 9 copy of it;
- straight into the server's SQLite file (as `ece seed` would; signing 10,000 accounts up
  through the API means 10,000 argon2 hashes): H more users, each minted a PSA 9 copy
  (`create_asset`: the ownership feed's `mint` rows), so the portfolio actor folds H + S
  holders of the same card x grader x grade;
- a warm-up sale of another copy (by offer, settled): the position gets a value and every
  holder its first `portfolio` event; the stage waits until each socket has it and the
  portfolio actor's checkpoint has passed every ownership row.

Measured: N sales, one after the other, each of another copy of the card, by offer (a new
buyer each time offers cash, the seller accepts: a real settled sale, its answer the settled
offer; one buyer for all would make the pair `linked` and its sales suspect), at slowly
increasing prices (clean sales that move the value), spaced SPACING_S apart. For each sale and
socket: the first `portfolio` event with a `changed` holding whose value's `last_sale_at` is
this sale's (not before the offer was made), timed from the accept's send and from its
answer; an event not there within EVENT_TIMEOUT_S is missing (counted; in the goal's p99 as
the timeout). Beside it a thread polls the analytics log (every POLL_S, read-only) for when
each hop's message became visible: the valuations' `values` message and the portfolio
actor's `portfolios` messages (USERS_PER_MESSAGE users each), which splits the time into
sale -> value, value -> portfolios written (the actor's tail and its flush of every holder),
and written -> socket (the gateway's tail and send).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

from loadtests import report
from loadtests.params import Params
from loadtests.servers import bench_api
from testkit.client import Api, User, unique, ws_url
from testkit.processes import Managed

STAGE = "portfolio_push"
PUSH_GOAL_MS = 1000.0
SPACING_S = 1.0  # between the sales' sends
EVENT_TIMEOUT_S = 15.0
READY_TIMEOUT_S = 600.0  # the portfolio actor folding every holder, the warm-up's events
POLL_S = 0.005  # the analytics-log watcher's poll
FILL_BATCH = 500  # holders created concurrently in the store
GRADING = {"grader": "PSA", "grade": 9}
# Each sale a little dearer than the last: a clean sale (no outlier), and the value moves.
PRICE, STEP = 10_000, 200


def _cert() -> str:
    """A certificate number no other call of this process returns (upper case, as stored)."""
    return unique("C").replace("_", "").upper()[-16:]


def _server_db(server: Managed) -> Path:
    return server.log_path.parent / "data" / "ece.db"


# ---- set-up -----------------------------------------------------------------------------------

async def _fill_holders(db: Path, card_id: str, n: int, tag: str) -> dict[str, Any]:
    """`n` users, each minted one PSA 9 copy of `card_id`, written straight into the store."""
    from storage import open_store

    t0 = time.monotonic()
    store = open_store(f"sqlite:///{db}?synchronous=OFF")  # filling is not measured
    await store.open()
    try:
        now = int(time.time() * 1000)

        async def one(i: int) -> None:
            user_id = f"u{tag}h{i:06d}"
            await store.create_user({"user_id": user_id, "username": f"{tag}holder{i}",
                                     "password_hash": "!", "created_at": now})
            await store.create_asset({"asset_id": f"c{tag}h{i:06d}", "owner_id": user_id,
                                      "title": "Push Card", "metadata": {}, "created_at": now,
                                      "card_id": card_id, "grader": "PSA", "grade": 9,
                                      "cert": f"H{tag}{i:06d}".upper()})

        for lo in range(0, n, FILL_BATCH):
            await asyncio.gather(*(one(i) for i in range(lo, min(n, lo + FILL_BATCH))))
        position = await store.ownership_position()
    finally:
        await store.close()
    return {"holders": n, "fill_s": round(time.monotonic() - t0, 1),
            "ownership_position": position}


def _checkpoint(db: Path, name: str) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        row = conn.execute("SELECT pos FROM checkpoints WHERE name=?", (name,)).fetchone()
        return int(row[0]) if row else 0
    finally:
        conn.close()


def _ownership_head(db: Path) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return int(conn.execute("SELECT COALESCE(MAX(pos), 0) FROM ownership").fetchone()[0])
    finally:
        conn.close()


async def _sale(api: Api, seller: User, buyer: User, card_id: str,
                price: int) -> tuple[int, float, float]:
    """One settled sale of a new copy: (wall ms before the offer, accept sent, answered)."""
    twin = await api.expect(201, "POST", "/api/assets", seller,
                            json={"card_id": card_id, "cert": _cert(), **GRADING})
    made_ms = int(time.time() * 1000)
    made = await api.expect(201, "POST", "/api/offers", buyer,
                            json={"to_id": seller.user_id, "give": {"cash": price},
                                  "want": {"assets": [twin["asset_id"]]},
                                  "req_id": unique("pp")})
    sent = time.monotonic()
    done = await api.expect(200, "POST", f"/api/offers/{made['offer_id']}/accept", seller,
                            json={"req_id": unique("pa")})
    answered = time.monotonic()
    if done.get("status") != "settled":
        raise RuntimeError(f"the offer did not settle: {done.get('status')}")
    return made_ms, sent, answered


# ---- what arrives -----------------------------------------------------------------------------

class Listener:
    """One holder's socket subscribed to `me`: every `portfolio` event with its arrival time."""

    def __init__(self, user: User) -> None:
        self.user = user
        self.events: list[tuple[float, dict[str, Any]]] = []
        self.arrived = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def open(self, http: aiohttp.ClientSession, base: str) -> None:
        ws = await http.ws_connect(ws_url(base), headers=self.user.headers)
        await ws.send_str(json.dumps({"op": "subscribe", "channel": "me", "req_id": "me"}))
        answer = await ws.receive_json(timeout=30)
        if answer.get("op") != "ack":
            raise RuntimeError(f"subscribe to me: {answer}")
        self._task = asyncio.get_running_loop().create_task(self._read(ws))

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            t = time.monotonic()
            m = json.loads(msg.data)
            if m.get("op") == "event" and m.get("channel") == "me" and \
                    m.get("type") == "portfolio":
                self.events.append((t, m))
                self.arrived.set()

    def first_after(self, since_ms: int) -> float | None:
        """When the first event telling a sale made at or after `since_ms` arrived."""
        for t, m in self.events:
            if any((c.get("value") or {}).get("last_sale_at", 0) >= since_ms
                   for c in m.get("changed") or ()):
                return t
        return None

    async def wait_for(self, since_ms: int, deadline: float) -> float | None:
        while (t := self.first_after(since_ms)) is None:
            self.arrived.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), left)
        return t

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class LogWatch(threading.Thread):
    """Polls the server's analytics log (read-only, its own thread): when each `values` and
    `portfolios` message became visible, and its size."""

    def __init__(self, db: Path) -> None:
        super().__init__(daemon=True, name="push-log-watch")
        self.db = db
        self.seen: list[tuple[float, str, int]] = []  # (monotonic, channel, bytes)
        self.stopping = threading.Event()

    def run(self) -> None:
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=5)
        try:
            pos = int(conn.execute(
                "SELECT COALESCE(MAX(pos), 0) FROM analytics_log").fetchone()[0])
            while not self.stopping.is_set():
                with contextlib.suppress(sqlite3.Error):
                    rows = conn.execute(
                        "SELECT pos, channel, length(data) FROM analytics_log WHERE pos>?"
                        " AND channel IN ('values', 'portfolios') ORDER BY pos",
                        (pos,)).fetchall()
                    t = time.monotonic()
                    for p, channel, size in rows:
                        pos = max(pos, int(p))
                        self.seen.append((t, channel, int(size)))
                self.stopping.wait(POLL_S)
        finally:
            conn.close()

    def hops(self, answered: float, until: float) -> dict[str, Any]:
        """The first `values` message after `answered` and the `portfolios` ones after it
        (before `until`): seconds from the answer, and the portfolio messages' count and
        bytes."""
        window = [(t, c, b) for t, c, b in self.seen if answered <= t < until]
        value_t = next((t for t, c, _ in window if c == "values"), None)
        mine = [(t, b) for t, c, b in window if c == "portfolios"
                and value_t is not None and t >= value_t]
        return {"value_s": None if value_t is None else value_t - answered,
                "portfolios_first_s": mine[0][0] - answered if mine else None,
                "portfolios_last_s": mine[-1][0] - answered if mine else None,
                "portfolio_messages": len(mine), "portfolio_bytes": sum(b for _, b in mine)}


# ---- the stage --------------------------------------------------------------------------------

def _pcts(values_ms: list[float]) -> dict[str, float | None]:
    if not values_ms:
        return {"count": 0, "p50": None, "p95": None, "p99": None, "max": None}
    a = np.asarray(values_ms)
    return {"count": len(a), **{f"p{q}": round(float(np.percentile(a, q)), 1)
                                for q in (50, 95, 99)}, "max": round(float(a.max()), 1)}


def _hop_pcts(hops: list[dict[str, Any]], key: str) -> dict[str, float | None]:
    return _pcts([1000 * h[key] for h in hops if h.get(key) is not None])


def _gaps(hops: list[dict[str, Any]], start: str, end: str) -> list[float]:
    return [1000 * (h[end] - h[start]) for h in hops
            if h.get(start) is not None and h.get(end) is not None]


async def _run(server: Managed, holders: int, sockets: int, sales: int) -> dict[str, Any]:
    db = _server_db(server)
    tag = unique("pp")
    connector = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(connector=connector) as http:
        api = bench_api(server.base, http)
        t0 = time.monotonic()
        seller = await api.signup("ppsel")
        # A buyer per sale: the same two accounts trading again and again are `linked`
        # (market.vetting), their sales suspect and left out of values.
        buyers = await api.signups("ppbuy", sales + 1)
        people = await api.signups("pphold", sockets)
        card = await api.expect(201, "POST", "/api/cards", seller,
                                json={"name": f"Push {tag}", "set": "Base Set",
                                      "number": "4/102", "year": 1999,
                                      "category": "pokemon"})
        card_id = card["card_id"]
        fill = await _fill_holders(db, card_id, holders, tag)
        for person in people:
            await api.expect(201, "POST", "/api/assets", person,
                             json={"card_id": card_id, "cert": _cert(), **GRADING})
        listeners = [Listener(p) for p in people]
        await asyncio.gather(*(lst.open(http, server.base) for lst in listeners))
        watch = LogWatch(db)
        watch.start()
        try:
            # Warm-up: the position's first value; every holder's first event.
            made_ms, _, _ = await _sale(api, seller, buyers[-1], card_id, PRICE)
            deadline = time.monotonic() + READY_TIMEOUT_S
            firsts = await asyncio.gather(*(lst.wait_for(made_ms, deadline)
                                            for lst in listeners))
            if any(t is None for t in firsts):
                raise RuntimeError("the warm-up sale's portfolio event never came")
            head = _ownership_head(db)
            while _checkpoint(db, "portfolio.0") < head:
                if time.monotonic() > deadline:
                    raise RuntimeError("the portfolio actor did not fold every holder")
                await asyncio.sleep(0.2)
            setup_s = time.monotonic() - t0

            from_send: list[float] = []
            from_answer: list[float] = []
            missing = 0
            per_sale: list[dict[str, Any]] = []
            hops: list[dict[str, Any]] = []
            for i in range(sales):
                made_ms, sent, answered = await _sale(api, seller, buyers[i], card_id,
                                                      PRICE + STEP * (i + 1))
                deadline = answered + EVENT_TIMEOUT_S
                got = await asyncio.gather(*(lst.wait_for(made_ms, deadline)
                                             for lst in listeners))
                arrived = [t for t in got if t is not None]
                missing += len(got) - len(arrived)
                from_send += [1000 * (t - sent) for t in arrived]
                from_answer += [1000 * (t - answered) for t in arrived]
                last = max(arrived, default=time.monotonic())
                await asyncio.sleep(max(0.0, sent + SPACING_S - time.monotonic()))
                hop = watch.hops(answered, max(last, time.monotonic()))
                hop["socket_s"] = min(arrived) - answered if arrived else None
                hops.append(hop)
                per_sale.append({
                    "accept_ms": round(1000 * (answered - sent), 1),
                    "events_ms": [round(1000 * (t - answered), 1)  # first and last socket
                                  for t in (min(arrived), max(arrived))] if arrived else [],
                    "missing": len(got) - len(arrived),
                    **{k: round(1000 * v, 1) if isinstance(v, float) else v
                       for k, v in hop.items()}})
        finally:
            watch.stopping.set()
            watch.join(timeout=5)
            await asyncio.gather(*(lst.close() for lst in listeners))
    timed_out = [1000 * EVENT_TIMEOUT_S] * missing
    goal_p99 = _pcts(from_answer + timed_out)["p99"]
    send = _pcts(from_send)
    answer = _pcts(from_answer)
    return {
        "figures": {"p99_ms": goal_p99, "p50_ms": answer["p50"], "max_ms": answer["max"],
                    "send_p99_ms": send["p99"],
                    "holders": holders + sockets, "sockets": sockets, "sales": sales,
                    "value_p50_ms": _hop_pcts(hops, "value_s")["p50"],
                    "written_p50_ms": _hop_pcts(hops, "portfolios_last_s")["p50"]},
        "details": {
            "what": "sale settled (accept answered) -> each holder socket's portfolio event",
            "holders_in_store": fill, "setup_s": round(setup_s, 1),
            "from_answer_ms": answer, "from_send_ms": send, "missing": missing,
            "missing_counted_as_ms": 1000 * EVENT_TIMEOUT_S,
            "hops_from_answer_ms": {
                "values_message_visible": _hop_pcts(hops, "value_s"),
                "first_portfolios_message_visible": _hop_pcts(hops, "portfolios_first_s"),
                "last_portfolios_message_visible": _hop_pcts(hops, "portfolios_last_s"),
                "first_socket_event": _hop_pcts(hops, "socket_s")},
            "hop_ms": {  # each hop alone, per sale
                "value_to_written": _pcts(_gaps(hops, "value_s", "portfolios_last_s")),
                "written_to_socket": _pcts(_gaps(hops, "portfolios_last_s", "socket_s"))},
            "portfolio_messages_per_sale": _pcts([h["portfolio_messages"] for h in hops]),
            "portfolio_bytes_per_sale": _pcts([h["portfolio_bytes"] for h in hops]),
            "per_sale": per_sale},
    }


def push_stage(params: Params, server: Managed | None) -> dict[str, Any]:
    if server is None:
        raise RuntimeError(f"the {STAGE} server was not started")
    load = [round(x, 2) for x in os.getloadavg()]
    out = asyncio.run(_run(server, params.push_holders, params.push_sockets,
                           params.push_sales))
    out["details"]["loadavg_start"] = load
    out["details"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    return out


# (key, stage, figure, unit, description)
FIGURES = (
    ("portfolio_push_p99_ms", STAGE, "p99_ms", "ms",
     "sale settled -> holder's portfolio event p99"),
    ("portfolio_push_p50_ms", STAGE, "p50_ms", "ms", "  sale -> portfolio event p50"),
    ("portfolio_push_max_ms", STAGE, "max_ms", "ms", "  sale -> portfolio event max"),
    ("portfolio_push_value_p50_ms", STAGE, "value_p50_ms", "ms",
     "  hop: sale -> values message p50"),
    ("portfolio_push_written_p50_ms", STAGE, "written_p50_ms", "ms",
     "  hop: sale -> every portfolios message p50"),
)


def add_push_report(result: dict[str, Any], stages: dict[str, Any], wanted: set[str]) -> None:
    """The stage's figures and goal into the bench's result (in place)."""
    if not report.add_stage(result, stages, wanted, STAGE, FIGURES):
        return
    holders = report.fig(stages, STAGE, "holders")
    missing = stages.get(STAGE, {}).get("details", {}).get("missing", "?")
    result["goals"].append(report.goal(
        "sale -> holder's portfolio event p99", report.fig(stages, STAGE, "p99_ms"),
        PUSH_GOAL_MS, "<=", "ms",
        f"{holders or 0:,.0f} holders of the card, from the accept's answer; {missing} "
        f"events missing (counted as {EVENT_TIMEOUT_S:g} s)"))
