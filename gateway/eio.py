"""Engine.IO (python-engineio's asyncio server on aiohttp) with every wait on a client bounded.

python-engineio 4.x waits on the client in these places; each is bounded here, by a subclass
of its server (`Server`), its session (`Session`) or its aiohttp websocket (`Websocket`):

- GET poll (`AsyncSocket.poll`): for a packet to send. Engine.IO's own bound
  (pingInterval + pingTimeout); one poll per session at a time (a second is a 400). An
  answer carries at most `POLL_PACKETS` (Engine.IO's would carry all the queue holds, which
  python-engineio's own client refuses beyond 16, dropping the session).
- Writing any polling answer (aiohttp drains the response into a client that may not read):
  within pingTimeout, else its TCP connection is dropped (`Server._written`).
- POST body (`handle_post_request` reads `Content-Length` bytes, without a deadline and
  without checking it got them all): read here in full within pingTimeout (else 408), never
  more than maxPayload (413 before a byte is read, and the session ends), a length required
  (411); a payload Engine.IO cannot decode, or with a packet a client never posts, is a 400,
  not an exception or a 200 that drops it (`Server._post`). One POST per session at a time.
- A POST over maxPayload, or any `disconnect`, ends in `close(wait=True)`, which joins the
  session's queue: a client that never polls again holds it forever. `Session.close` never
  waits; a close asked by the client ends the poll waiting (no 45 s wait for a dead session).
- `send` puts on an unbounded queue: at most `MAX_QUEUED` packets wait, then the session is
  dropped (as /ws drops a socket whose send queue is full).
- A polling client that stops polling is dropped by Engine.IO's heartbeat, unless it answers
  pings it never fetched (blind pongs): a polling session with no poll for pingInterval +
  pingTimeout is closed (`Session.stale`).
- The websocket upgrade (`_websocket_handler`) waits without a bound for the probe and the
  upgrade packet, and its writer for the client to read (`ws.send`, `ws.close`); the
  handler then waits for the writer without a bound: every read waits at most pingInterval
  + pingTimeout (an upgrade's two pingTimeout), every write and the close pingTimeout (then
  the TCP connection is dropped) (`Websocket`); one upgrade per session at a time.
- Its read loop keeps the task a read error came from, in a reference cycle with the loop's
  frame (every close is such an error): the session's websocket, request and transport
  waited for the garbage collector. After the upgrade a read that fails or times out
  returns None, which ends the loop the same way (`Websocket.wait`).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import engineio
from aiohttp import web
from engineio import async_socket, exceptions, packet, payload
from engineio.async_drivers import aiohttp as aiohttp_driver

# Packets one session's Engine.IO queue may hold (its socket's frames wait in the socket's own
# bounded queue, handed over a few at a time): beyond, the client is not reading, and is dropped.
MAX_QUEUED = 256
# Packets one poll's answer carries at most: what python-engineio's client decodes from one.
POLL_PACKETS = payload.Payload.max_decode_packets
# What a client may POST: a close, a pong, messages (not pings, upgrades or noops).
POSTED = frozenset({packet.CLOSE, packet.PONG, packet.MESSAGE})

_tasks: set[asyncio.Task] = set()  # background closes, referenced until done


class Session(async_socket.AsyncSocket):
    """One Engine.IO session. Engine.IO builds an `AsyncSocket`; `Server` adopts it at once."""

    polling: bool  # a GET poll is being served
    posting: bool  # a POST is being served
    polled_at: float  # monotonic: when the last poll ended (or the session began)
    dropped: bool  # its close is under way (`drop`)

    @classmethod
    def adopt(cls, socket: async_socket.AsyncSocket) -> Session:
        socket.__class__ = cls  # same layout: AsyncSocket's attributes, and these
        session: Session = socket
        session.polling = session.posting = session.dropped = False
        session.polled_at = time.monotonic()
        return session

    def stale(self) -> bool:
        """A polling session whose client stopped polling: none for pingInterval +
        pingTimeout (pongs posted without polling do not keep it)."""
        server = self.server
        return (not self.upgraded and not self.polling
                and time.monotonic() - self.polled_at > server.ping_interval + server.ping_timeout)

    async def poll(self) -> list[packet.Packet]:
        """Engine.IO's poll, taking at most `POLL_PACKETS` when a GET poll asks (a websocket's
        writer takes all there is)."""
        if self.upgraded:
            return await super().poll()
        try:
            first = await asyncio.wait_for(self.queue.get(),
                                           self.server.ping_interval + self.server.ping_timeout)
        except (TimeoutError, asyncio.CancelledError):
            raise exceptions.QueueEmpty() from None
        self.queue.task_done()
        packets = [] if first is None else [first]
        while packets and len(packets) < POLL_PACKETS and not self.queue.empty():
            pkt = self.queue.get_nowait()
            self.queue.task_done()
            if pkt is None:  # the end: it stays for the next poll
                self.queue.put_nowait(None)
                break
            packets.append(pkt)
        return packets

    async def check_ping_timeout(self) -> bool:
        if not self.closed and not self.closing and self.stale():
            await self.close(wait=False, reason=self.server.reason.PING_TIMEOUT)
            return False
        return await super().check_ping_timeout()

    async def send(self, pkt: packet.Packet) -> None:
        if self.queue.qsize() >= MAX_QUEUED and pkt.packet_type != packet.CLOSE:
            self.drop()
            return
        await super().send(pkt)

    def drop(self) -> None:
        """End the session (in a task of its own: the caller may be one the close cancels)."""
        if not (self.dropped or self.closing or self.closed):
            self.dropped = True
            task = asyncio.ensure_future(
                self.close(wait=False, reason=self.server.reason.TRANSPORT_ERROR))
            _tasks.add(task)
            task.add_done_callback(_tasks.discard)

    async def close(self, wait: bool = True, abort: bool = False, reason: Any = None) -> None:
        """Close without waiting for the queue to be taken (`wait` is ignored)."""
        was_open = not (self.closed or self.closing)
        await super().close(wait=False, abort=abort, reason=reason)
        if was_open and abort and not self.upgraded:
            self.queue.put_nowait(None)  # no close packet comes: end the poll waiting now


class Websocket(aiohttp_driver.WebSocket):
    """Engine.IO's aiohttp websocket with deadlines: a read waits at most pingInterval +
    pingTimeout (the upgrade's probe and upgrade packet pingTimeout), a write or the close
    pingTimeout, after which the TCP connection is dropped."""

    transport: asyncio.Transport | None = None

    async def __call__(self, environ: dict) -> web.StreamResponse:
        self.transport = environ["aiohttp.request"].transport
        return await super().__call__(environ)

    def _abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    async def send(self, message: str | bytes) -> None:
        try:
            await asyncio.wait_for(super().send(message), self.server.ping_timeout)
        except TimeoutError:
            self._abort()
            raise ConnectionResetError("the client does not read") from None

    async def wait(self) -> str | bytes | None:
        server = self.server
        session = getattr(self.handler, "__self__", None)  # the session it serves
        upgrading = session is not None and session.connected and not session.upgraded
        bound = server.ping_timeout if upgrading else server.ping_interval + server.ping_timeout
        try:
            return await asyncio.wait_for(super().wait(), bound)
        except (OSError, TimeoutError):
            if upgrading:  # the upgrade's steps expect the error
                raise
            # The connection ended (every close raises here) or went silent. Engine.IO's
            # read loop ends on None as on an error, but it keeps the task an error came
            # from: the error's traceback holds the loop's frame, which holds the task, and
            # the session's websocket, request and transport waited in that cycle for the
            # garbage collector.
            return None

    async def close(self) -> None:
        try:
            await asyncio.wait_for(super().close(), self.server.ping_timeout)
        except TimeoutError:
            self._abort()


def _answer(status: str, message: str) -> dict:
    """An Engine.IO response dict (as `_bad_request` builds): `status` and a JSON string."""
    return {"status": status, "headers": [("Content-Type", "text/plain")],
            "response": json.dumps(message).encode()}


class Server(engineio.AsyncServer):
    """python-engineio's asyncio server, bounded as this module's docstring lists."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        drivers: dict[str, Any] = getattr(self, "_async")  # noqa: B009 (untyped in engineio)
        self._async = {**drivers, "websocket": Websocket}  # this server's, not the module's

    async def _trigger_event(self, event: str, *args: Any, **kwargs: Any) -> Any:
        if event == "connect":  # the session was just built, and nothing sent to it yet
            Session.adopt(self.sockets[args[0]])
        return await super()._trigger_event(event, *args, **kwargs)

    async def handle_request(self, request: web.Request) -> web.StreamResponse:
        query = request.query
        sid = query.get("sid", "")
        session = self.sockets.get(sid)
        if "j" in query:
            return await self._reply(request, _answer("400 BAD REQUEST", "JSONP is not served"))
        if not isinstance(session, Session):  # a handshake, or a session unknown: Engine.IO's
            return await self._written(request, await super().handle_request(request))
        if session.closed:
            self.sockets.pop(sid, None)
            return await self._reply(request, self._bad_request("Session is disconnected"))
        if request.method == "POST":
            return await self._reply(request, await self._post(request, session))
        if request.method != "GET":
            return await self._written(request, await super().handle_request(request))
        if "upgrade" in request.headers.get("Connection", "").lower():
            return await self._upgrade(request, session)
        if session.polling:
            return await self._reply(request, self._bad_request("one poll at a time"))
        session.polling = True
        try:
            response = await super().handle_request(request)
        finally:
            session.polling = False
            session.polled_at = time.monotonic()
        return await self._written(request, response)

    async def _upgrade(self, request: web.Request, session: Session) -> web.StreamResponse:
        if session.upgrading or session.upgraded:
            return await self._reply(request, self._bad_request("one upgrade at a time"))
        session.upgrading = True  # polls answer a noop meanwhile, as Engine.IO's own
        try:
            return await super().handle_request(request)
        finally:
            if not session.upgraded:  # failed, or timed out waiting for the probe
                session.upgrading = False

    async def _post(self, request: web.Request, session: Session) -> dict:
        """Serve a POST of packets: what the answer is (`_ok` or a refusal)."""
        if not session.connected or session.upgraded:
            return self._bad_request("Unexpected HTTP request")
        if session.posting:
            return self._bad_request("one POST at a time")
        length = request.content_length
        if length is None:
            return _answer("411 LENGTH REQUIRED", "Content-Length required")
        if length > self.max_http_buffer_size:
            await session.close(reason=self.reason.TRANSPORT_ERROR)
            return _answer("413 PAYLOAD TOO LARGE", "payload over maxPayload")
        session.posting = True
        try:
            try:
                async with asyncio.timeout(self.ping_timeout):
                    body = await request.content.readexactly(length)
            except TimeoutError:
                return _answer("408 REQUEST TIMEOUT", "payload not sent in time")
            except asyncio.IncompleteReadError:
                return self._bad_request("payload cut short")
            # As many packets as maxPayload holds (python-socketio's client sends all it has
            # queued in one POST; Engine.IO's 16 at most would refuse it): each message
            # counts against the socket's frame rate.
            posted = payload.Payload()
            posted.max_decode_packets = self.max_http_buffer_size
            try:
                posted.decode(body.decode())
            except (ValueError, KeyError, IndexError):  # not UTF-8, not packets, bad base64
                return self._bad_request("malformed payload")
            packets = posted.packets
            if any(pkt.packet_type not in POSTED for pkt in packets):
                return self._bad_request("a client posts messages, pongs and a close only")
            for pkt in packets:
                await session.receive(pkt)
            return self._ok()
        finally:
            session.posting = False

    async def _reply(self, request: web.Request, answer: dict) -> web.StreamResponse:
        """Write an answer built here (with Engine.IO's CORS headers)."""
        environ = self._async["translate_request"](request)
        return await self._written(request, await self._make_response(answer, environ))

    async def _written(self, request: web.Request,
                       response: web.StreamResponse) -> web.StreamResponse:
        """`response` written within pingTimeout: a client that does not read it loses its
        TCP connection (a websocket's response writes itself: it comes back prepared)."""
        if response.prepared:
            return response
        try:
            async with asyncio.timeout(self.ping_timeout):
                await response.prepare(request)
                await response.write_eof()
        except TimeoutError:
            if request.transport is not None:
                request.transport.abort()
        except ConnectionError:
            pass  # gone already
        return response
