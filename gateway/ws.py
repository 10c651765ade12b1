"""The WebSocket endpoint: one `Connection` per socket, a bounded send queue each."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

from aiohttp import WSCloseCode, WSMsgType, web

from gateway.auth import TokenError
from gateway.protocol import (
    JSON,
    MAX_FRAME,
    MSGPACK,
    ProtocolError,
    decode,
    encode,
    parse_bid,
    parse_since,
    req_id_of,
    require_auction_id,
)
from gateway.rest import gateway_of

if TYPE_CHECKING:
    from gateway.app import Gateway

log = logging.getLogger("ece.ws")

# Close code for "try again later" (RFC 6455 registry), used for clients too slow to keep up.
TRY_AGAIN_LATER = 1013
# How long a slow client gets to take its close frame before the TCP connection is dropped.
SLOW_CLOSE_S = 10.0
# Requests one socket may have in flight before it is told OVERLOADED.
MAX_SOCKET_INFLIGHT = 1_000


class TokenBucket:
    """Per-user rate limit: `rate` tokens/s refill up to `burst`."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class Connection:
    __slots__ = (
        "closing",
        "encoding",
        "inflight",
        "queue",
        "subscriptions",
        "user_id",
        "username",
        "writer",
        "ws",
    )

    def __init__(self, ws: web.WebSocketResponse, queue_size: int) -> None:
        self.ws = ws
        self.user_id: str | None = None
        self.username: str | None = None
        self.encoding = JSON
        self.queue: asyncio.Queue = asyncio.Queue(maxsize=queue_size)
        self.subscriptions: set[str] = set()
        self.inflight = 0
        self.closing = False
        self.writer: asyncio.Task | None = None

    def send(self, message: dict, cache: dict | None = None, encoding: str | None = None) -> None:
        if self.closing:
            return
        encoding = encoding or self.encoding
        frame = cache.get(encoding) if cache is not None else None
        if frame is None:
            frame = encode(message, encoding)
            if cache is not None:
                cache[encoding] = frame
        try:
            self.queue.put_nowait(frame)
        except asyncio.QueueFull:
            # A client that cannot keep up is cut loose rather than growing our memory.
            self.closing = True
            asyncio.get_running_loop().create_task(self._close_slow())

    async def _close_slow(self) -> None:
        """Queue the 1013 close behind what is already buffered; drop the peer if it stalls."""
        with contextlib.suppress(TimeoutError, ConnectionError, RuntimeError):
            await asyncio.wait_for(
                self.ws.close(code=TRY_AGAIN_LATER, message=b"send queue full"), SLOW_CLOSE_S
            )
        if self.writer is not None:
            self.writer.cancel()
        transport = self.ws._req.transport if self.ws._req is not None else None
        if transport is not None and not transport.is_closing():
            transport.abort()

    async def write_loop(self) -> None:
        try:
            while True:
                frame = await self.queue.get()
                if isinstance(frame, str):
                    await self.ws.send_str(frame)
                else:
                    await self.ws.send_bytes(frame)
        except (ConnectionError, RuntimeError, asyncio.CancelledError):
            pass


async def websocket_handler(request: web.Request) -> web.WebSocketResponse:
    gateway: Gateway = gateway_of(request)
    ws = web.WebSocketResponse(max_msg_size=MAX_FRAME, heartbeat=30.0, compress=False)
    await ws.prepare(request)
    conn = Connection(ws, gateway.settings.send_queue)
    token = _token_of(request)
    auth_error: str | None = None
    if token:
        try:
            conn.user_id, conn.username = gateway.tokens.verify(token)
        except TokenError as exc:
            auth_error = str(exc)
    conn.writer = asyncio.get_running_loop().create_task(conn.write_loop())
    gateway.connections.add(conn)
    gateway.metrics.connections.inc()
    limiter = TokenBucket(gateway.settings.rate_per_s * 4, gateway.settings.rate_burst * 4)
    try:
        if auth_error:
            conn.send({"op": "error", "code": "UNAUTHORIZED", "message": "invalid token"})
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                encoding, data = JSON, msg.data
            elif msg.type == WSMsgType.BINARY:
                encoding, data = MSGPACK, msg.data
            else:
                break
            conn.encoding = encoding
            try:
                message = decode(data, encoding)
                if not limiter.take():
                    raise ProtocolError("RATE_LIMITED", "too many messages", req_id_of(message))
                await _dispatch(gateway, conn, message, encoding)
            except ProtocolError as exc:
                gateway.metrics.errors.labels(exc.code).inc()
                conn.send(exc.frame(), encoding=encoding)
    finally:
        gateway.connections.discard(conn)
        gateway.metrics.connections.dec()
        gateway.hub.drop(conn)
        conn.closing = True
        if conn.writer is not None:
            conn.writer.cancel()
    return ws


def _token_of(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return header[7:].strip()
    return request.query.get("token") or None


async def _dispatch(gateway: Gateway, conn: Connection, message: dict, encoding: str) -> None:
    op = message.get("op")
    req_id = req_id_of(message)
    if op == "bid":
        bid = parse_bid(message)
        if conn.user_id is None:
            raise ProtocolError("UNAUTHORIZED", "sign in to bid", bid[0])
        if conn.inflight >= MAX_SOCKET_INFLIGHT:
            raise ProtocolError("OVERLOADED", "too many bids in flight on this socket", bid[0])
        conn.inflight += 1
        # Bids run concurrently so one socket can pipeline; the answer keeps its encoding.
        task = gateway.hub.spawn(_bid(gateway, conn, bid, encoding))
        task.add_done_callback(lambda _: _finished(conn))
    elif op == "subscribe":
        auction_id = require_auction_id(message, req_id)
        since = parse_since(message, req_id)
        gateway.hub.spawn(_subscribe(gateway, conn, auction_id, since, req_id, encoding))
    elif op == "unsubscribe":
        auction_id = require_auction_id(message, req_id)
        gateway.hub.unsubscribe(conn, auction_id)
        if req_id is not None:
            conn.send({"op": "ack", "req_id": req_id, "auction_id": auction_id}, encoding=encoding)
    elif op == "ping":
        reply: dict[str, Any] = {"op": "pong"}
        if req_id is not None:
            reply["req_id"] = req_id
        conn.send(reply, encoding=encoding)
    elif op == "auth":
        token = message.get("token")
        if not isinstance(token, str):
            raise ProtocolError("INVALID", "token must be a string", req_id)
        try:
            conn.user_id, conn.username = gateway.tokens.verify(token)
        except TokenError as exc:
            raise ProtocolError("UNAUTHORIZED", "invalid token", req_id) from exc
        conn.send({"op": "ack", "req_id": req_id, "user_id": conn.user_id}, encoding=encoding)
    elif not isinstance(op, str):
        raise ProtocolError("INVALID", "every message needs an 'op' string", req_id)
    else:
        raise ProtocolError("INVALID", f"unknown op {op[:32]!r}", req_id)


def _finished(conn: Connection) -> None:
    conn.inflight -= 1


async def _bid(gateway: Gateway, conn: Connection, bid: tuple, encoding: str) -> None:
    req_id, auction_id, amount, max_amount = bid
    assert conn.user_id is not None
    started = time.perf_counter()
    if not gateway.limiter_for(conn.user_id).take():
        reply = {"op": "error", "req_id": req_id, "code": "RATE_LIMITED",
                 "message": "bid rate limit reached; retry shortly"}
    else:
        result = await gateway.router.send({
            "op": "bid",
            "auction_id": auction_id,
            "bidder_id": conn.user_id,  # from the token only, never from the message
            # Typed key: the int 7 and the string "7" are different requests.
            "req_id": f"{type(req_id).__name__}:{req_id}",
            "amount": amount,
            "max_amount": max_amount,
        })
        if result.get("ok"):
            reply = {"op": "ack", "req_id": req_id, "auction_id": auction_id, **result["ack"]}
        else:
            reply = {"op": "error", "req_id": req_id, "auction_id": auction_id,
                     **result["error"]}
    code = reply.get("code", "OK")
    gateway.metrics.bids.labels(code).inc()
    gateway.metrics.bid_seconds.observe(time.perf_counter() - started)
    conn.send(reply, encoding=encoding)


async def _subscribe(
    gateway: Gateway, conn: Connection, auction_id: str, since: int | None, req_id: Any,
    encoding: str,
) -> None:
    try:
        await gateway.hub.subscribe(conn, auction_id, since, req_id)
    except ProtocolError as exc:
        conn.send(exc.frame(), encoding=encoding)


def close_all(connections: set[Connection]) -> list:
    return [c.ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")
            for c in connections]
