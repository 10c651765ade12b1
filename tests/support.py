"""Test clients for a running ECE: REST over aiohttp and WebSockets that wait on conditions."""

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

_names = itertools.count()


def unique(prefix: str) -> str:
    return f"{prefix}{int(time.time() * 1000) % 10**7}{next(_names)}"


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


@dataclass
class User:
    user_id: str
    username: str
    token: str

    @property
    def headers(self) -> dict:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class Api:
    base: str
    http: aiohttp.ClientSession

    async def request(self, method: str, path: str, user: User | None = None,
                      **kwargs: Any) -> tuple[int, Any]:
        headers = kwargs.pop("headers", {}) | (user.headers if user else {})
        async with self.http.request(method, self.base + path, headers=headers,
                                     **kwargs) as response:
            text = await response.text()
            try:
                body = json.loads(text)
            except json.JSONDecodeError:
                body = text
            return response.status, body

    async def signup(self, prefix: str = "user") -> User:
        username = unique(prefix)
        status, body = await self.request("POST", "/api/users",
                                          json={"username": username, "password": "secret-pw-1"})
        assert status == 201, body
        return User(body["user_id"], username, body["token"])

    async def mint(self, user: User, title: str = "Test Card") -> dict:
        status, body = await self.request("POST", "/api/assets", user, json={"title": title})
        assert status == 201, body
        return body

    async def auction(self, seller: User, **fields: Any) -> dict:
        asset = await self.mint(seller)
        body = {"asset_id": asset["asset_id"], "start_price": 1000, "duration_ms": 600_000,
                **fields}
        status, view = await self.request("POST", "/api/auctions", seller, json=body)
        assert status == 201, view
        return view

    async def accepted_bids(self, auction_id: str) -> tuple[int, int]:
        """(bid events, raised events) in the auction's log: every acked bid is one of them;
        `bid_count` counts the first kind only (a leader's own raise is not a new bid)."""
        status, body = await self.request("GET", f"/api/auctions/{auction_id}/events?limit=500")
        assert status == 200, body
        kinds = [e["type"] for e in body["events"]]
        return kinds.count("bid"), kinds.count("raised")

    async def get(self, auction_id: str) -> dict:
        status, body = await self.request("GET", f"/api/auctions/{auction_id}")
        assert status == 200, body
        return body


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
        found = await wait_for(
            lambda: next((m for m in self.messages if predicate(m)), None), timeout,
            message=what)
        return found

    async def request(self, message: dict, timeout: float = 10.0) -> dict:
        """Send a request with a fresh req_id and wait for its ack or error."""
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
        return [m for m in self.messages
                if m.get("op") == "event" and m.get("auction_id") == auction_id]

    async def wait_event(self, auction_id: str, kind: str, timeout: float = 10.0) -> dict:
        return await self.expect(
            lambda m: m.get("op") == "event" and m.get("auction_id") == auction_id
            and m.get("type") == kind, timeout, what=f"{kind} event of {auction_id}")

    async def close(self) -> None:
        await self.ws.close()
        if self._reader is not None:
            await asyncio.wait_for(self._reader, 5)


async def connect(http: aiohttp.ClientSession, base: str, user: User | None = None,
                  encoding: str = "json", **kwargs: Any) -> Socket:
    url = base.replace("http", "ws", 1) + "/ws"
    headers = user.headers if user else {}
    ws = await http.ws_connect(url, headers=headers, **kwargs)
    return Socket(ws, encoding).start()
