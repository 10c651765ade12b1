"""Locust load test for ECE: WebSocket bidders and watchers against a running server.

    make run                                   # or any `ece serve`
    make loadtest                              # headless, 60 s, HTML + CSV in loadtests/results
    locust -f loadtests/locustfile.py --host http://127.0.0.1:8080     # web UI

Bidders sign up (or sign in), pick a live English auction from ``GET /api/auctions?status=live``
(listing one with a shared seller account when there is none, so ECE_SEED=0 servers work too),
subscribe to it and bid ``min_bid`` every ``LOCUST_BID_INTERVAL`` seconds while they are not
leading and ``min_bid`` is within their ceiling; when an event shows someone else leading they
rebid at once. Watchers subscribe to live auctions and time each event from its ``at``.

Custom request types in Locust's statistics (type ``WS``):

* ``bid→ack``       bid sent -> accepted (ack); failures are errors other than those below
* ``bid→rejected``  bid sent -> BID_TOO_LOW (a full round trip, not a failure)
* ``bid→not-live``  bid sent -> AUCTION_NOT_LIVE (the auction just ended; not a failure)
* ``bid→event``     the bidder's own bid sent -> its event received on the bidder's socket
* ``event at→watcher``  an event's server time ``at`` -> received by a watcher (same clock)

Environment (all optional):
    LOCUST_BID_INTERVAL   seconds between a bidder's bids (default 1.0)
    LOCUST_MAX_PRICE      a bidder's ceiling per auction, cents (default 5_000_000)
    LOCUST_MAX_BIDS       bids per bidder, 0 = no limit (default 0)
    LOCUST_PROXY          1 = bid with max_amount (a proxy ceiling) (default 0)
    LOCUST_ACK_TIMEOUT    seconds before an unanswered bid counts as failed (default 10)
    LOCUST_AUCTION_MS     duration of auctions the test lists itself (default 300_000)
    LOCUST_USER_PREFIX    account name prefix (default "locust")
    LOCUST_PASSWORD       account password (default "locust-password")
    LOCUST_WATCHER_WEIGHT / LOCUST_BIDDER_WEIGHT   user mix (default 1 / 3)
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import random
import time
from collections.abc import Iterator

import gevent
import websocket
from gevent.lock import Semaphore
from locust import HttpUser, User, between, constant_pacing, task
from locust.env import Environment

from market.money import increment_for


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return default if raw in (None, "") else float(raw)


BID_INTERVAL = _env_float("LOCUST_BID_INTERVAL", 1.0)
MAX_PRICE = int(_env_float("LOCUST_MAX_PRICE", 5_000_000))
MAX_BIDS = int(_env_float("LOCUST_MAX_BIDS", 0))
PROXY = os.environ.get("LOCUST_PROXY", "0") == "1"
ACK_TIMEOUT = _env_float("LOCUST_ACK_TIMEOUT", 10.0)
AUCTION_MS = int(_env_float("LOCUST_AUCTION_MS", 300_000))
PREFIX = os.environ.get("LOCUST_USER_PREFIX", "locust")
FUNDS = 100_000_000  # cents each locust user deposits once, so its bids are covered
PASSWORD = os.environ.get("LOCUST_PASSWORD", "locust-password")
# A 429 on sign-up or sign-in (per-address throttling) is waited out this many times.
MAX_THROTTLED_RETRIES = 10
REST_TIMEOUT = 30

_numbers = itertools.count()
_seller_lock = Semaphore()
_list_lock = Semaphore()
_seller: dict | None = None


class BidFailed(Exception):
    """A bid answered with an error code that is not a normal market outcome."""


class AckTimeout(Exception):
    pass


def _fire(environment: Environment, name: str, response_time_ms: float, length: int = 0,
          exception: Exception | None = None) -> None:
    environment.events.request.fire(request_type="WS", name=name,
                                    response_time=response_time_ms, response_length=length,
                                    exception=exception, context={})


class EceClient:
    """REST and WebSocket plumbing shared by both user kinds."""

    def __init__(self, user: User) -> None:
        self.user = user
        self.base = user.host.rstrip("/")
        self.ws: websocket.WebSocket | None = None
        self.account: dict | None = None

    # ---- REST: set-up calls, recorded by Locust under their own names ----------------------

    def _post(self, path: str, body: dict, token: str | None = None,
              name: str | None = None) -> tuple[int, dict]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        for attempt in range(MAX_THROTTLED_RETRIES + 1):
            with self.user.client.post(path, json=body, headers=headers, name=name or path,
                                       timeout=REST_TIMEOUT, catch_response=True) as response:
                try:
                    data = response.json()
                except ValueError:
                    data = {}
                # 409 (name taken) is an expected answer for sign-up-or-sign-in; 429 (sign-ins
                # from one address are throttled) is honoured: wait Retry-After, then retry.
                if response.status_code in (200, 201, 409, 429):
                    response.success()
                if response.status_code != 429 or attempt == MAX_THROTTLED_RETRIES:
                    return response.status_code, data
                wait = float(response.headers.get("Retry-After", "1"))
            gevent.sleep(wait)
        raise AssertionError("unreachable")

    def account_for(self, username: str) -> dict:
        """Sign up (or in) and fund the account once (the deposit's req_id is fixed)."""
        status, body = self._post("/api/users", {"username": username, "password": PASSWORD},
                                  name="/api/users (sign up)")
        if status != 201:
            status, body = self._post("/api/sessions", {"username": username,
                                                        "password": PASSWORD},
                                      name="/api/sessions (sign in)")
        if status not in (200, 201):
            raise RuntimeError(f"cannot sign in as {username}: {status} {body}")
        status, funded = self._post("/api/wallet/deposits",
                                    {"amount": FUNDS, "req_id": "locust-funds"}, body["token"],
                                    name="/api/wallet/deposits")
        if status != 201:
            raise RuntimeError(f"cannot fund {username}: {status} {funded}")
        return body

    def live_auctions(self) -> list[dict]:
        with self.user.client.get("/api/auctions?status=live&limit=200",
                                  name="/api/auctions?status=live", timeout=REST_TIMEOUT,
                                  catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"status {response.status_code}")
                return []
            now = time.time() * 1000
            return [a for a in response.json().get("auctions", [])
                    if a.get("type") == "english" and a.get("status") == "live"
                    and (a.get("ends_at") or 0) > now + 10_000]

    def list_auction(self) -> dict | None:
        """List a card with the shared seller account (for servers without demo data)."""
        global _seller
        with _seller_lock:
            if _seller is None:
                _seller = self.account_for(f"{PREFIX}-seller")
        seller = _seller
        status, asset = self._post("/api/assets", {"title": "Locust Card"}, seller["token"])
        if status != 201:
            return None
        status, view = self._post("/api/auctions", {
            "asset_id": asset["asset_id"], "start_price": 100, "duration_ms": AUCTION_MS,
            "soft_close_ms": 10_000,
        }, seller["token"])
        return view if status == 201 else None

    def pick_auction(self, exclude_seller: str | None = None, exclude: str | None = None,
                     may_list: bool = True) -> dict | None:
        """A random live English auction this user may bid on and can afford; list one when
        there is none (one greenlet at a time, so concurrent starters share it)."""

        def candidates() -> list[dict]:
            return [a for a in self.live_auctions()
                    if a.get("seller_id") != exclude_seller and a["auction_id"] != exclude
                    and (a.get("min_bid") or 0) <= MAX_PRICE // 2]

        for _ in range(3):
            live = candidates()
            if live:
                return random.choice(live)
            if not may_list:
                return None
            with _list_lock:
                live = candidates()  # someone may have listed one meanwhile
                if live:
                    return random.choice(live)
                listed = self.list_auction()
            if listed is not None:
                return listed
            gevent.sleep(0.5)
        return None

    # ---- WebSocket -------------------------------------------------------------------------

    def connect(self, token: str | None) -> websocket.WebSocket:
        url = self.base.replace("http", "ws", 1) + "/ws" + (f"?token={token}" if token else "")
        started = time.perf_counter()
        try:
            ws = websocket.create_connection(url, timeout=REST_TIMEOUT,
                                             enable_multithread=True)
        except Exception as exc:
            _fire(self.user.environment, "ws connect", (time.perf_counter() - started) * 1000,
                  exception=exc)
            raise
        _fire(self.user.environment, "ws connect", (time.perf_counter() - started) * 1000)
        ws.settimeout(None)
        self.ws = ws
        return ws

    def send(self, message: dict) -> int:
        assert self.ws is not None
        raw = json.dumps(message, separators=(",", ":"))
        self.ws.send(raw)
        return len(raw)

    def close(self) -> None:
        if self.ws is not None:
            with contextlib.suppress(Exception):
                self.ws.close(timeout=2)
            self.ws = None

    def messages(self) -> Iterator[tuple[dict, int]]:
        """Every JSON message from the socket, forever (waits out reconnects)."""
        while True:
            ws = self.ws
            if ws is None:
                gevent.sleep(0.1)
                continue
            try:
                raw = ws.recv()
            except Exception:
                gevent.sleep(0.1)
                continue
            if not raw:
                continue
            try:
                yield json.loads(raw), len(raw)
            except ValueError:
                continue


class BidderUser(HttpUser):
    """Bids min_bid on one live auction at a steady pace; rebids at once when outbid."""

    weight = int(_env_float("LOCUST_BIDDER_WEIGHT", 3))
    wait_time = constant_pacing(BID_INTERVAL)

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self.ece = EceClient(self)
        self.me: str = ""
        self.auction: dict | None = None
        self.min_bid = 0
        self.ceiling = MAX_PRICE
        self.leading = False
        self.closed = True
        self.bids = 0
        self.req = itertools.count(random.randrange(1, 2**40))
        self.pending: dict[int, tuple[float, int]] = {}  # req_id -> (sent, amount)
        self.own_bids: dict[tuple[str, int], float] = {}  # (auction, amount) -> sent
        self.last_rebid = 0.0
        self.reader: gevent.Greenlet | None = None

    def on_start(self) -> None:
        account = self.ece.account_for(f"{PREFIX}-{os.getpid()}-{next(_numbers)}")
        self.me = account["user_id"]
        self.ece.connect(account["token"])
        self.reader = gevent.spawn(self._read)
        self._choose()

    def on_stop(self) -> None:
        if self.reader is not None:
            self.reader.kill(block=False)
        self.ece.close()

    def _choose(self, exclude: str | None = None, may_list: bool = True) -> bool:
        auction = self.ece.pick_auction(exclude_seller=self.me, exclude=exclude,
                                        may_list=may_list)
        if auction is None:
            if may_list:
                self.closed = True
            return False
        if self.auction is not None:
            with contextlib.suppress(Exception):
                self.ece.send({"op": "unsubscribe", "auction_id": self.auction["auction_id"]})
        self.auction = auction
        self.closed = False
        self.leading = auction.get("leader_id") == self.me
        self.min_bid = auction.get("min_bid") or auction.get("start_price") or 100
        self.ceiling = min(MAX_PRICE, max(self.min_bid * random.randint(5, 50), 10_000))
        self.ece.send({"op": "subscribe", "auction_id": auction["auction_id"],
                       "req_id": f"sub-{next(self.req)}"})
        return True

    @task
    def bid(self) -> None:
        """One bid per interval: here while outbid, elsewhere while leading or priced out."""
        self._expire()
        if self.closed or self.auction is None:
            if self._choose():
                self._place()
            return
        # Leading here (or priced out): take part in another auction if there is one.
        if (self.leading or self.min_bid > self.ceiling) and not self._choose(
                exclude=self.auction["auction_id"], may_list=not self.leading):
            return
        if not self.leading:
            self._place()

    def _place(self) -> None:
        if self.auction is None or self.closed:
            return
        if MAX_BIDS and self.bids >= MAX_BIDS:
            return
        if self.min_bid > self.ceiling:
            return  # beyond what this bidder will pay: let it go
        req_id = next(self.req)
        amount = self.min_bid
        message = {"op": "bid", "req_id": req_id, "auction_id": self.auction["auction_id"],
                   "amount": amount}
        if PROXY:
            message["max_amount"] = max(amount, min(self.ceiling, amount * 2))
        sent = time.perf_counter()
        self.pending[req_id] = (sent, amount)
        self.own_bids[(self.auction["auction_id"], amount)] = sent
        self.bids += 1
        try:
            self.ece.send(message)
        except Exception as exc:
            self.pending.pop(req_id, None)
            _fire(self.environment, "bid→ack", 0, exception=exc)
            self._reconnect()

    def _reconnect(self) -> None:
        self.ece.close()
        account = self.ece.account_for(f"{PREFIX}-{os.getpid()}-{next(_numbers)}")
        self.me = account["user_id"]
        self.ece.connect(account["token"])
        self.closed = True

    def _expire(self) -> None:
        now = time.perf_counter()
        for req_id, (sent, _) in list(self.pending.items()):
            if now - sent > ACK_TIMEOUT:
                del self.pending[req_id]
                _fire(self.environment, "bid→ack", (now - sent) * 1000,
                      exception=AckTimeout(f"no answer in {ACK_TIMEOUT:g}s"))
        if len(self.own_bids) > 10_000:
            self.own_bids.clear()

    def _read(self) -> None:
        for message, length in self.ece.messages():
            self._on_message(message, length)

    def _on_message(self, message: dict, length: int) -> None:
        op = message.get("op")
        now = time.perf_counter()
        if op in ("ack", "error") and isinstance(message.get("req_id"), int):
            entry = self.pending.pop(message["req_id"], None)
            if entry is None:
                return
            elapsed = (now - entry[0]) * 1000
            if op == "ack":
                self.leading = message.get("leader_id") == self.me
                price = message.get("price")
                if isinstance(price, int):
                    self.min_bid = max(self.min_bid, price + increment_for(price))
                _fire(self.environment, "bid→ack", elapsed, length)
                return
            code = message.get("code")
            if code == "BID_TOO_LOW":
                if isinstance(message.get("min_bid"), int):
                    self.min_bid = max(self.min_bid, message["min_bid"])
                _fire(self.environment, "bid→rejected", elapsed, length)
            elif code == "AUCTION_NOT_LIVE":
                self.closed = True
                _fire(self.environment, "bid→not-live", elapsed, length)
            else:
                _fire(self.environment, "bid→ack", elapsed, length,
                      BidFailed(f"{code}: {message.get('message', '')}"))
            return
        if op == "snapshot":
            view = message.get("auction") or {}
            if self.auction and view.get("auction_id") == self.auction["auction_id"]:
                self.leading = view.get("leader_id") == self.me
                if isinstance(view.get("min_bid"), int):
                    self.min_bid = max(self.min_bid, view["min_bid"])
            return
        if op != "event" or self.auction is None:
            return
        if message.get("auction_id") != self.auction["auction_id"]:
            return
        kind = message.get("type")
        if kind in ("closed", "cancelled"):
            self.closed = True
            return
        if kind != "bid":
            return
        price = message.get("price")
        if isinstance(price, int):
            self.min_bid = max(self.min_bid, price + increment_for(price))
        if message.get("bidder_id") == self.me:
            sent = self.own_bids.pop((message["auction_id"], message.get("amount")), None)
            if sent is not None:
                _fire(self.environment, "bid→event", (now - sent) * 1000, length)
        was_leading = self.leading
        self.leading = message.get("leader_id") == self.me
        # Outbid: answer at once (at most one rebid per 100 ms, never above the ceiling).
        if was_leading and not self.leading and now - self.last_rebid > 0.1:
            self.last_rebid = now
            self._place()


class WatcherUser(HttpUser):
    """Subscribes to live auctions and times every event from its server `at`."""

    weight = int(_env_float("LOCUST_WATCHER_WEIGHT", 1))
    wait_time = between(3, 5)

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self.ece = EceClient(self)
        self.watching: set[str] = set()
        self.reader: gevent.Greenlet | None = None

    def on_start(self) -> None:
        self.ece.connect(None)
        self.reader = gevent.spawn(self._read)
        self._watch_more()

    def on_stop(self) -> None:
        if self.reader is not None:
            self.reader.kill(block=False)
        self.ece.close()

    def _watch_more(self) -> None:
        live = self.ece.live_auctions()
        if not live:
            listed = self.ece.list_auction()
            live = [listed] if listed else []
        for auction in random.sample(live, min(3, len(live))):
            if auction["auction_id"] not in self.watching:
                self.watching.add(auction["auction_id"])
                self.ece.send({"op": "subscribe", "auction_id": auction["auction_id"]})

    @task
    def keep_watching(self) -> None:
        if len(self.watching) < 3:
            self._watch_more()

    def _read(self) -> None:
        for message, length in self.ece.messages():
            if message.get("op") != "event":
                continue
            at = message.get("at")
            if isinstance(at, int):
                # `at` is the server's clock; on one machine it is the same clock as ours.
                _fire(self.environment, "event at→watcher",
                      max(0.0, time.time() * 1000 - at), length)
            if message.get("type") in ("closed", "cancelled"):
                self.watching.discard(message.get("auction_id"))

