"""A WebSocket's `Connection`: its identity, its bounded send queue and writer task, and
the back-pressure rule that tells a client sending in bursts from one too slow to read.

The transport is what `ws` stands for (`Socket`): aiohttp's WebSocketResponse for /ws, or
the Socket.IO session's stand-in (gateway/sio.py), which also frames messages its own way
(`frame_of`)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from gateway.protocol import JSON, encode

# Close code for "try again later" (RFC 6455 registry), used for clients too slow to keep up.
TRY_AGAIN_LATER = 1013
# How long a slow client gets to take its close frame before the TCP connection is dropped.
SLOW_CLOSE_S = 10.0
# Bytes a socket's transport may hold unsent and still take a frame written at once; past
# it frames wait in the send queue, where the slow-client rules apply.
WRITE_AT_ONCE_LIMIT = 64 * 1024
# Close code for a socket idle too long (RFC 6455: policy violation), and how long its close
# frame may take: one stalled inside a frame could not even read our close's answer.
IDLE = 1008
IDLE_CLOSE_S = 1.0


class Socket(Protocol):
    """Where a `Connection`'s writer puts its frames, and how it is closed."""

    async def send_str(self, data: str) -> None: ...

    async def send_bytes(self, data: bytes) -> None: ...

    async def close(self, *, code: int = ..., message: bytes = ...) -> bool: ...

    @property
    def closed(self) -> bool: ...


class Connection:
    """One socket. Its answers and pushes are written at once when nothing waits before them
    (`raw`: a plain WebSocket whose transport has room), else they wait in a bounded queue
    for its writer task.

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
        "heard_at",
        "high_since",
        "high_water",
        "idle_s",
        "inflight",
        "ip",
        "me",
        "me_ticket",
        "moved_at",
        "pending_subscribes",
        "ping",
        "ping_s",
        "pinged_at",
        "queue",
        "raw",
        "resume",
        "seen_written",
        "slow_client_s",
        "subscriptions",
        "transport",
        "user_id",
        "watch",
        "writer",
        "writing",
        "written",
        "ws",
    )

    def __init__(self, ws: Socket, queue_size: int, slow_client_s: float,
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
        self.writing = False  # the writer task holds a frame (sending it, or waiting to)
        self.written = 0  # frames the writer has handed over (it is stalled if this stays)
        self.heard_at = time.monotonic()  # when the last whole frame came in
        self.watch: asyncio.TimerHandle | None = None  # the idle check (`watch_idle`)
        self.idle_s = 0.0
        self.ping: Callable[[], Awaitable[None]] | None = None  # see `watch_idle`
        self.ping_s = 0.0
        self.pinged_at = 0.0
        self.seen_written = 0  # `written` when the idle check last saw it move
        self.moved_at = 0.0  # and when that was
        self.transport: asyncio.Transport | None = None
        # True for /ws: a frame may go to `transport` as bytes of an RFC 6455 frame of our
        # own (uncompressed, unmasked, server to client) without the queue and the writer.
        self.raw = False

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
            frame = self.frame_of(message, encoding)
            if cache is not None:
                cache[encoding] = frame
        transport = self._write_at_once()
        if transport is None:
            self._enqueue(frame)
            return
        # The same bytes for every socket a message goes to (the cache is per message).
        wire = cache.get((encoding, "wire")) if cache is not None else None
        if wire is None:
            wire = ws_frame(frame)
            if cache is not None:
                cache[(encoding, "wire")] = wire
        transport.write(wire)
        self.written += 1

    def _write_at_once(self) -> asyncio.Transport | None:
        """The transport to write a frame to now: a plain WebSocket with nothing queued or
        being written before it, open, and room in its buffer. None: queue it."""
        transport = self.transport
        if (not self.raw or transport is None or self.writing or not self.queue.empty()
                or self.ws.closed or transport.is_closing()
                or transport.get_write_buffer_size() >= WRITE_AT_ONCE_LIMIT):
            return None
        return transport

    def control(self, write: Callable[[], Awaitable[None]]) -> None:
        """Queue a control frame (a pong: `write` sends it) behind the frames queued already,
        so that a client that pings and never reads fills its queue like any other."""
        if not self.closing:
            self._enqueue(write)

    def _enqueue(self, frame: str | bytes | Callable[[], Awaitable[None]]) -> None:
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

    def frame_of(self, message: dict, encoding: str) -> str | bytes:
        """The frame `message` goes out as (`cache` keeps it per encoding)."""
        return encode(message, encoding)

    def cut(self, code: int = TRY_AGAIN_LATER, reason: bytes = b"send queue full",
            grace_s: float = SLOW_CLOSE_S) -> None:
        """Close a client that cannot keep up with 1013 (once); `grace_s` for its close."""
        if not self.closing:
            self.closing = True
            self._wake()
            asyncio.get_running_loop().create_task(self._close_slow(code, reason, grace_s))

    def heard(self) -> None:
        """A whole frame came in (data, ping or pong)."""
        self.heard_at = time.monotonic()

    def watch_idle(self, idle_s: float, ping_s: float = 0.0,
                   ping: Callable[[], Awaitable[None]] | None = None) -> None:
        """Close the socket, 1008, once no whole frame has come in for `idle_s` while it was
        read (a client trickling a frame it never finishes keeps it otherwise), and 1013 once
        its writer has handed over nothing for `idle_s` with frames waiting (a client that
        sends but never reads). With `ping` (sends a ping frame), ping the client once
        nothing has come in for `ping_s`, and again every `ping_s` while nothing does: a
        quiet client's pongs are frames heard, a gone one's silence runs out `idle_s`. The
        ping goes through the send queue, like a pong. One timer per socket, moved on
        lazily: a frame costs `heard`, a time stamp. (A method and slots, not a closure: a
        closure that reschedules itself refers to itself, a cycle that left every closed
        socket to the garbage collector; aiohttp's own heartbeat, which this replaces, left
        one too, and cost a timer reset per frame.)"""
        self.idle_s, self.ping_s, self.ping = idle_s, ping_s, ping
        now = time.monotonic()
        self.seen_written, self.moved_at, self.pinged_at = self.written, now, 0.0
        self.watch = asyncio.get_running_loop().call_later(self._next_check(now) - now,
                                                           self._check_idle)

    def _next_check(self, now: float) -> float:
        due = min(self.heard_at, self.moved_at) + self.idle_s
        if self.ping is not None:
            due = min(due, max(self.heard_at, self.pinged_at) + self.ping_s)
        return max(due, now + 0.05)

    def _check_idle(self) -> None:
        self.watch = None
        now = time.monotonic()
        if self.closing:
            return
        if self.resume is not None:  # we are not reading (back-pressure): not idle
            self.heard_at = now
        if now - self.heard_at >= self.idle_s:
            self.cut(IDLE, b"idle", IDLE_CLOSE_S)
            return
        waiting = self.queue.qsize() > 0 or (
            self.transport is not None and self.transport.get_write_buffer_size() > 0)
        if self.written != self.seen_written or not waiting:
            self.seen_written, self.moved_at = self.written, now
        elif now - self.moved_at >= self.idle_s:
            self.cut()  # frames wait and none was taken for idle_s: it does not read
            return
        if self.ping is not None and now - max(self.heard_at, self.pinged_at) >= self.ping_s:
            self.pinged_at = now
            self.control(self.ping)
        self.watch = asyncio.get_running_loop().call_later(self._next_check(now) - now,
                                                           self._check_idle)

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
                self.heard_at = time.monotonic()  # not reading was ours: not idle time

    async def _close_slow(self, code: int, reason: bytes, grace_s: float) -> None:
        """Queue the close behind what is already buffered; drop the peer if it stalls."""
        if self.watch is not None:
            self.watch.cancel()
            self.watch = None
        with contextlib.suppress(TimeoutError, ConnectionError, RuntimeError):
            await asyncio.wait_for(self.ws.close(code=code, message=reason), grace_s)
        if self.writer is not None:
            self.writer.cancel()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.abort()

    async def write_loop(self) -> None:
        try:
            while True:
                frame = await self.queue.get()
                self.writing = True
                if isinstance(frame, str):
                    await self.ws.send_str(frame)
                elif isinstance(frame, bytes):
                    await self.ws.send_bytes(frame)
                else:
                    await frame()  # a control frame (`control`)
                self.writing = False
                self.written += 1
                if self.high_since is not None and self.queue.qsize() < self.high_water:
                    self.high_since = None
                self.settled()
        except (ConnectionError, RuntimeError, asyncio.CancelledError):
            pass
        finally:  # the socket's session is over: its idle check too
            if self.watch is not None:
                self.watch.cancel()
                self.watch = None


def ws_frame(data: str | bytes) -> bytes:
    """`data` as one whole RFC 6455 frame from a server (section 5.2: FIN, text for str and
    binary for bytes, no mask, no extension), header and payload in one write."""
    payload, first = (data.encode(), 0x81) if isinstance(data, str) else (data, 0x82)
    size = len(payload)
    if size < 126:
        header = bytes((first, size))
    elif size < 1 << 16:
        header = bytes((first, 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((first, 127)) + size.to_bytes(8, "big")
    return header + payload
