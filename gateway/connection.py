"""A WebSocket's `Connection`: its identity, its bounded send queue and writer task, and
the back-pressure rule that tells a client sending in bursts from one too slow to read."""

from __future__ import annotations

import asyncio
import contextlib
import time

from aiohttp import web

from gateway.protocol import JSON, encode

# Close code for "try again later" (RFC 6455 registry), used for clients too slow to keep up.
TRY_AGAIN_LATER = 1013
# How long a slow client gets to take its close frame before the TCP connection is dropped.
SLOW_CLOSE_S = 10.0


class Connection:
    """One socket. Its answers and pushes wait in a bounded queue for its writer task.

    Back-pressure, not a cut, for a client that sends faster than its answers are written:
    once the frames queued plus the answers owed (requests in flight) reach the high-water
    mark (half the queue), the reader stops taking frames (aiohttp then stops reading the
    TCP socket) until they fall below half of that. A client is too slow, and closed with
    1013, when its queue has stayed at or above the high-water mark for `slow_client_s` (it
    does not read what the writer hands the transport), or at once when the queue is full.
    """

    __slots__ = (
        "closing",
        "encoding",
        "expires_at",
        "high_since",
        "high_water",
        "inflight",
        "ip",
        "me",
        "me_ticket",
        "pending_subscribes",
        "queue",
        "resume",
        "slow_client_s",
        "subscriptions",
        "transport",
        "user_id",
        "writer",
        "ws",
    )

    def __init__(self, ws: web.WebSocketResponse, queue_size: int, slow_client_s: float,
                 ip: str = "?") -> None:
        self.ws = ws
        self.ip = ip
        self.user_id: str | None = None
        self.expires_at = 0.0  # epoch seconds at which the identity's token expires
        self.encoding = JSON
        self.queue: asyncio.Queue = asyncio.Queue(maxsize=queue_size)
        self.high_water = max(1, queue_size // 2)
        self.slow_client_s = slow_client_s
        # Since when (monotonic) the queue has held `high_water` frames or more; None below.
        self.high_since: float | None = None
        # The reader waits on this future while the socket is backed up.
        self.resume: asyncio.Future[None] | None = None
        # auction id -> the subscribe request that owns it; a subscribe still being answered
        # checks it is still the owner before it registers anything (see Hub.subscribe).
        self.subscriptions: dict[str, object] = {}
        self.me: str | None = None  # the user whose channel this socket is subscribed to
        self.me_ticket: object | None = None  # the `me` subscribe request that owns it
        self.inflight = 0
        self.pending_subscribes = 0
        self.closing = False
        self.writer: asyncio.Task | None = None
        self.transport: asyncio.Transport | None = None

    def wants(self, auction_id: str, ticket: object) -> bool:
        """Is the subscribe request `ticket` still wanted (socket open, not unsubscribed)?"""
        return not self.closing and self.subscriptions.get(auction_id) is ticket

    def current_user(self) -> str | None:
        """The user id while the token that proved it is valid; anonymous once it expires."""
        if self.user_id is not None and time.time() >= self.expires_at:
            return None
        return self.user_id

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
            self.cut()  # rather than growing our memory
            return
        if self.queue.qsize() >= self.high_water:
            now = time.monotonic()
            if self.high_since is None:
                self.high_since = now
                self._wake()  # a waiting reader now has a deadline
            elif now - self.high_since > self.slow_client_s:
                self.cut()

    def cut(self) -> None:
        """Close a client that cannot keep up with 1013 (once)."""
        if not self.closing:
            self.closing = True
            self._wake()
            asyncio.get_running_loop().create_task(self._close_slow())

    def backed_up(self) -> bool:
        """Are frames queued plus answers owed at the high-water mark (stop reading)?"""
        owed = self.queue.qsize() + self.inflight + self.pending_subscribes
        return owed >= self.high_water

    def settled(self) -> None:
        """Something queued or owed is done: let a waiting reader go on once there is room
        (below half the high-water mark)."""
        if self.resume is not None and (
                self.queue.qsize() + self.inflight + self.pending_subscribes
                < (self.high_water + 1) // 2):
            self._wake()

    def _wake(self) -> None:
        if self.resume is not None and not self.resume.done():
            self.resume.set_result(None)

    async def drained(self) -> None:
        """Wait, reading nothing, until the socket is no longer backed up or is cut. Answers
        still owed are waited for without a bound (they are ours to give); a queue the client
        does not drain gets `slow_client_s`, then the client is cut."""
        loop = asyncio.get_running_loop()
        while not self.closing and self.backed_up():
            timeout = None
            if self.high_since is not None:
                timeout = self.high_since + self.slow_client_s - time.monotonic()
                if timeout <= 0:
                    self.cut()
                    return
            self.resume = loop.create_future()
            try:
                await asyncio.wait_for(self.resume, timeout)
            except TimeoutError:
                pass
            finally:
                self.resume = None

    async def _close_slow(self) -> None:
        """Queue the 1013 close behind what is already buffered; drop the peer if it stalls."""
        with contextlib.suppress(TimeoutError, ConnectionError, RuntimeError):
            await asyncio.wait_for(
                self.ws.close(code=TRY_AGAIN_LATER, message=b"send queue full"), SLOW_CLOSE_S
            )
        if self.writer is not None:
            self.writer.cancel()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.abort()

    async def write_loop(self) -> None:
        try:
            while True:
                frame = await self.queue.get()
                if isinstance(frame, str):
                    await self.ws.send_str(frame)
                else:
                    await self.ws.send_bytes(frame)
                if self.high_since is not None and self.queue.qsize() < self.high_water:
                    self.high_since = None
                self.settled()
        except (ConnectionError, RuntimeError, asyncio.CancelledError):
            pass
