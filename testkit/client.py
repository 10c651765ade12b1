"""A client for a running ECE over its public protocol: REST (`Api`) and WebSockets (`Socket`).

The tests drive a server with it and the benchmark sets its workload up with it (accounts,
cards, auctions); the benchmark's load generator keeps its own lean socket loop
(`loadtests/gen.py`). A helper that expects an answer raises `UnexpectedAnswer` (an
AssertionError, so a test reads it as a failed check) on anything else. A 503 is transient by
the API's contract (a host being placed or restarting): `Api(retries=N)` retries it N times,
which the benchmark wants and the tests do not (there, an unexpected 503 is a finding).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import msgpack

PASSWORD = "secret-pw-1"
REQUEST_TIMEOUT_S = 60
_names = itertools.count()


def unique(prefix: str) -> str:
    """A username (or any name) no other call of this process returns."""
    return f"{prefix}{int(time.time() * 1000) % 10**7}{next(_names)}"


def ws_url(base: str) -> str:
    """The WebSocket endpoint of the server at `base` (http://host:port)."""
    return base.replace("http", "ws", 1) + "/ws"


async def wait_for(
    condition: Callable[[], Awaitable[Any]] | Callable[[], Any], timeout: float = 10.0,
    interval: float = 0.05, message: str = "condition",
) -> Any:
    """Poll `condition` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        await asyncio.sleep(interval)


# What `Api.signup` deposits by default (cents): enough for any test's bids.
FUNDS = 100_000_000


class UnexpectedAnswer(AssertionError):
    """An answer other than the one a helper expects."""


class Unavailable(UnexpectedAnswer):
    """Still 503 after the retries."""


@dataclass(frozen=True)
class User:
    user_id: str
    username: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class Api:
    base: str
    http: aiohttp.ClientSession
    retries: int = 0  # 503 answers the helpers retry (each a little later than the last)
    # Where the 503s met are recorded, when given: "503 POST auctions" -> their bodies.
    anomalies: dict[str, list] | None = None

    async def request(self, method: str, path: str, user: User | None = None,
                      **kwargs: Any) -> tuple[int, Any]:
        """(status, body): the body decoded from JSON, or the text when it is not JSON."""
        headers = kwargs.pop("headers", {}) | (user.headers if user else {})
        kwargs.setdefault("timeout", aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S))
        async with self.http.request(method, self.base + path, headers=headers,
                                     **kwargs) as response:
            text = await response.text()
            try:
                body = json.loads(text)
            except json.JSONDecodeError:
                body = text
            return response.status, body

    async def expect(self, status: int, method: str, path: str, user: User | None = None,
                     retries: int | None = None, **kwargs: Any) -> Any:
        """The body of an answer with `status`; a 503 is retried (`retries`, by default the
        Api's), anything else raises `UnexpectedAnswer`."""
        retries = self.retries if retries is None else retries
        for attempt in range(retries + 1):
            got, body = await self.request(method, path, user, **kwargs)
            if got == status:
                return body
            if got != 503:
                raise UnexpectedAnswer(f"{method} {path} -> {got}: {body}")
            if self.anomalies is not None:
                key = f"503 {method} {path.removeprefix('/api/')}"
                self.anomalies.setdefault(key, []).append(body)
            if attempt < retries:
                await asyncio.sleep(0.2 * (attempt + 1))
        raise Unavailable(f"{method} {path} -> 503 after {retries} retries: {body}")

    # ---- accounts ----------------------------------------------------------------------------

    async def signup(self, prefix: str = "user", password: str = PASSWORD,
                     funds: int = FUNDS) -> User:
        """A new account with `funds` cents deposited (0: none), so it can bid."""
        username = unique(prefix)
        body = await self.expect(201, "POST", "/api/users",
                                 json={"username": username, "password": password})
        user = User(body["user_id"], username, body["token"])
        if funds:
            await self.deposit(user, funds)
        return user

    async def deposit(self, user: User, amount: int, req_id: str | None = None) -> dict:
        """Deposit `amount` cents: {entry_id, amount, balance}."""
        body = {"amount": amount, "req_id": req_id or unique("dep")}
        return await self.expect(201, "POST", "/api/wallet/deposits", user, json=body)

    async def balance(self, user: User) -> int:
        return int((await self.expect(200, "GET", "/api/wallet", user))["balance"])

    async def signups(self, prefix: str, n: int) -> list[User]:
        """`n` accounts at once (the server hashes passwords in its threads)."""
        return list(await asyncio.gather(*(self.signup(f"{prefix}{i}-") for i in range(n))))

    async def login(self, username: str, password: str = PASSWORD) -> User:
        body = await self.expect(200, "POST", "/api/sessions",
                                 json={"username": username, "password": password})
        return User(body["user_id"], body["username"], body["token"])

    # ---- cards and auctions ------------------------------------------------------------------

    async def mint(self, user: User, title: str = "Test Card", **fields: Any) -> dict:
        return await self.expect(201, "POST", "/api/assets", user,
                                 json={"title": title, **fields})

    async def auction(self, seller: User, title: str = "Test Card", **fields: Any) -> dict:
        """Mint a card and list it (English, 10 minutes, from 1000, unless `fields` say else).
        A 503 on the listing is retried with a *new* card: after a 503 the first card may
        already be held by the auction that failed (ASSET_LISTED)."""
        body = {"start_price": 1000, "duration_ms": 600_000, **fields}
        for attempt in range(self.retries + 1):
            asset = await self.mint(seller, title)
            try:
                return await self.expect(201, "POST", "/api/auctions", seller, retries=0,
                                         json={"asset_id": asset["asset_id"], **body})
            except Unavailable:
                if attempt == self.retries:
                    raise
                await asyncio.sleep(0.5)
        raise AssertionError("unreachable")

    async def auctions(self, seller: User, n: int, concurrency: int = 16,
                       deadline: float | None = None, keep_going: Callable[[], bool] | None = None,
                       errors: list[str] | None = None, max_errors: int = 3,
                       **fields: Any) -> tuple[list[dict], float]:
        """Up to `n` auctions (`auction(seller, **fields)`) with bounded concurrency; stops
        early at `deadline` (time.monotonic) or when `keep_going()` says no. Failures raise,
        unless `errors` is given: then they are collected there and creation stops after
        `max_errors`. Returns (views, seconds)."""
        views: list[dict] = []
        gate = asyncio.Semaphore(concurrency)
        stop = False
        started = time.monotonic()

        async def one() -> None:
            nonlocal stop
            async with gate:
                if stop:
                    return
                if (deadline is not None and time.monotonic() > deadline) or (
                        keep_going is not None and not keep_going()):
                    stop = True
                    return
                try:
                    views.append(await self.auction(seller, **fields))
                except UnexpectedAnswer as exc:
                    if errors is None:
                        raise
                    errors.append(str(exc))
                    if len(errors) >= max_errors:
                        stop = True

        # In chunks, so a stop condition does not leave thousands of coroutines waiting.
        for first in range(0, n, concurrency * 4):
            if stop:
                break
            await asyncio.gather(*(one() for _ in range(min(concurrency * 4, n - first))))
        return views, time.monotonic() - started

    async def get(self, auction_id: str) -> dict:
        return await self.expect(200, "GET", f"/api/auctions/{auction_id}")

    async def accepted_bids(self, auction_id: str) -> tuple[int, int]:
        """(bid events, raised events) in the auction's log: every acked bid is one of them;
        `bid_count` counts the first kind only (a leader's own raise is not a new bid)."""
        body = await self.expect(200, "GET", f"/api/auctions/{auction_id}/events?limit=500")
        kinds = [e["type"] for e in body["events"]]
        return kinds.count("bid"), kinds.count("raised")


@dataclass
class Socket:
    """A WebSocket client that records every message and waits for the one it needs."""

    ws: aiohttp.ClientWebSocketResponse
    encoding: str = "json"
    messages: list[dict] = field(default_factory=list)
    closed_code: int | None = None
    _reader: asyncio.Task | None = None
    _seq: itertools.count = field(default_factory=itertools.count)

    def start(self) -> Socket:
        self._reader = asyncio.get_running_loop().create_task(self._read())
        return self

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                self.messages.append(json.loads(msg.data))
            elif msg.type == aiohttp.WSMsgType.BINARY:
                self.messages.append(msgpack.unpackb(msg.data, raw=False))
        self.closed_code = self.ws.close_code

    async def send(self, message: dict, encoding: str | None = None) -> None:
        if (encoding or self.encoding) == "json":
            await self.ws.send_str(json.dumps(message))
        else:
            await self.ws.send_bytes(msgpack.packb(message, use_bin_type=True))

    async def expect(self, predicate: Callable[[dict], bool], timeout: float = 10.0,
                     what: str = "message") -> dict:
        return await wait_for(
            lambda: next((m for m in self.messages if predicate(m)), None), timeout,
            message=what)

    async def request(self, message: dict, timeout: float = 10.0) -> dict:
        """Send a request with a fresh req_id (unless it has one) and wait for its answer."""
        req_id = message.setdefault("req_id", f"r{next(self._seq)}-{time.monotonic_ns()}")
        await self.send(message)
        return await self.expect(
            lambda m: m.get("req_id") == req_id and m.get("op") in ("ack", "error", "pong",
                                                                    "snapshot"),
            timeout, what=f"answer to {message.get('op')} {req_id}")

    async def bid(self, auction_id: str, amount: int, max_amount: int | None = None,
                  req_id: str | None = None) -> dict:
        message: dict = {"op": "bid", "auction_id": auction_id, "amount": amount}
        if max_amount is not None:
            message["max_amount"] = max_amount
        if req_id is not None:
            message["req_id"] = req_id
        return await self.request(message)

    def events(self, auction_id: str) -> list[dict]:
        return [m for m in self.messages if m.get("op") == "event"
                and m.get("auction_id") == auction_id and m.get("channel") is None]

    def mine(self, kind: str | None = None) -> list[dict]:
        """The events of the user channel (`me`) received so far, of type `kind` if given."""
        return [m for m in self.messages if m.get("op") == "event" and m.get("channel") == "me"
                and (kind is None or m.get("type") == kind)]

    async def wait_mine(self, kind: str, timeout: float = 10.0, **fields: Any) -> dict:
        """The first user-channel event of type `kind` whose fields include `fields`."""
        return await self.expect(
            lambda m: m.get("channel") == "me" and m.get("op") == "event"
            and m.get("type") == kind and all(m.get(k) == v for k, v in fields.items()),
            timeout, what=f"{kind} event on the user channel")

    async def wait_event(self, auction_id: str, kind: str, timeout: float = 10.0) -> dict:
        return await self.expect(
            lambda m: m.get("op") == "event" and m.get("auction_id") == auction_id
            and m.get("type") == kind and m.get("channel") is None, timeout,
            what=f"{kind} event of {auction_id}")

    async def close(self) -> None:
        await self.ws.close()
        if self._reader is not None:
            await asyncio.wait_for(self._reader, 5)


async def connect(http: aiohttp.ClientSession, base: str, user: User | None = None,
                  encoding: str = "json", **kwargs: Any) -> Socket:
    """A `Socket` to the server at `base`, signed in as `user` when given."""
    ws = await http.ws_connect(ws_url(base), headers=user.headers if user else {}, **kwargs)
    return Socket(ws, encoding).start()
