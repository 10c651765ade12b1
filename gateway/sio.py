"""Socket.IO on the gateway's port (`/socket.io/`): a transport over /ws's session core.

python-socketio's aiohttp server parses the packets; everything else is /ws's: the request
is `{**payload, "op": event name}` served by `gateway.ws.dispatch`, the socket is a
`Connection` (same bounded queue, back-pressure and slow-client cut), counted in and out by
`admit`/`leave`, started and ended by `open_session`/`close_session`. This module only maps
frames to packets:

- a frame that answers a request (`ack`, `error`, `snapshot`, `pong` carrying the request's
  `req_id`) goes out as that request's acknowledgement when the client asked for one;
- every other frame is an event named after its `op` (`event`, `snapshot`, `ack`, `error`).

Frames leave through the Connection's writer and back up in its bounded queue, not in
engine.io's: on a websocket one at a time, each once engine.io's writer has taken the one
before; on long-polling up to `POLL_BATCH`, then the writer waits for a poll to take them.
Both transports are served; gateway/eio.py bounds every wait of engine.io's on a client.
Binary attachments are not part of the protocol and are refused before they are buffered.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections import deque
from typing import Any

import socketio
from aiohttp import web
from socketio import packet

from gateway.connection import SLOW_CLOSE_S, Connection
from gateway.eio import POLL_PACKETS
from gateway.eio import Server as EngineIoServer
from gateway.protocol import MAX_FRAME, ProtocolError, parse_json, req_id_of
from gateway.rest import ApiError
from gateway.state import GATEWAY, Gateway
from gateway.ws import (
    HEARTBEAT_S,
    MAX_PENDING_SUBSCRIBES,
    MAX_SOCKET_INFLIGHT,
    OFFER_OPS,
    admit,
    close_session,
    dispatch,
    frame_limiter,
    leave,
    open_session,
    token_of,
)
from market.errors import INVALID, LIMIT_EXCEEDED, OVERLOADED, RATE_LIMITED, UNAVAILABLE, error_dict
from market.offers import MAX_ID_LEN as OFFER_REQ_ID_MAX

PATH = "socket.io"
ENCODING = "socketio"  # a Socket.IO socket's frames: encoded packets (a `cache` key)
ANSWERS = frozenset({"ack", "error", "snapshot", "pong"})
# Requests of one socket awaiting an acknowledgement: what may be in flight, and then some.
MAX_ACKS = MAX_SOCKET_INFLIGHT + MAX_PENDING_SUBSCRIBES + 64
# Frames a polling session's engine.io queue takes before the writer waits for a poll to take
# them: one poll's answer carries them, with room for engine.io's own packets (a ping...).
POLL_BATCH = POLL_PACKETS // 2
_AS_EVENT = -1  # `SioConnection.next_ack`: this frame is an event, whatever its req_id
# type, attachments, namespace and ack id of a Socket.IO packet (what precedes its data)
_HEADER = re.compile(r"(\d)(?:\d{1,10}-)?(?:(/[^,]{0,200}),)?(\d{1,20})?")



def refused_connect(error: dict) -> socketio.exceptions.ConnectionRefusedError:
    """A refused connect: the client's `connect_error` gets `{"message": <text>, "data":
    <the error body /ws would send>}` — JSON, not python-socketio's str() of a dict."""
    body = error if error.get("op") == "error" else {"op": "error", **error}
    return socketio.exceptions.ConnectionRefusedError(str(body.get("message", "")), body)

class StrictJson:
    """Packets' JSON, parsed by /ws's rules: no NaN or Infinity, nesting at most 32 levels
    (deeper raises ValueError, never RecursionError), no lone surrogate."""

    @staticmethod
    def loads(text: str | bytes) -> Any:
        return parse_json(text)

    @staticmethod
    def dumps(value: Any, **kwargs: Any) -> str:
        return json.dumps(value, **kwargs)


class _Malformed:
    """The data of a packet that did not parse."""


MALFORMED = _Malformed()


class Packet(packet.Packet):
    """A Socket.IO packet whose bad JSON is answered (INVALID), not raised into engine.io."""

    json = StrictJson

    def decode(self, encoded_packet: Any) -> int:
        try:
            return super().decode(encoded_packet)
        except ValueError:
            self.data = MALFORMED
            return 0


class EngineIoSocket:
    """A Connection's `ws` on Socket.IO: frames (encoded packets) go to its engine.io
    session; a close ends the session (the client may reconnect, as after 1013 or 1001)."""

    def __init__(self, server: SioServer, eio_sid: str) -> None:
        self.server = server
        self.eio_sid = eio_sid

    async def send_str(self, data: str) -> None:
        eio = self.server.eio
        await eio.send(self.eio_sid, data)
        session = eio.sockets.get(self.eio_sid)
        if session is not None and session.queue.qsize() >= (
                1 if session.upgraded else POLL_BATCH):
            await session.queue.join()  # taken by engine.io's writer (or a poll)

    async def send_bytes(self, data: bytes) -> None:
        raise TypeError("Socket.IO frames are text")

    @property
    def closed(self) -> bool:
        """Is the engine.io session gone?"""
        return self.eio_sid not in self.server.eio.sockets

    async def close(self, *, code: int = 1000, message: bytes = b"") -> bool:
        """End the session (its disconnect handlers run now). On a websocket, give engine.io's
        writer up to SLOW_CLOSE_S to take its close packet (then `Connection` drops the
        peer); a polling session's close packet waits for the next poll, if any comes."""
        session = self.server.eio.sockets.get(self.eio_sid)
        if session is None:
            return False
        await session.close(wait=False, reason=self.server.reason.SERVER_DISCONNECT)
        if session.upgraded:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(session.queue.join(), SLOW_CLOSE_S)
        return True


class SioConnection(Connection):
    """A Socket.IO session: a Connection whose frames are Socket.IO packets."""

    __slots__ = ("acks", "limiter", "next_ack", "waiting")

    def __init__(self, server: SioServer, eio_sid: str, ip: str) -> None:
        settings = server.gateway.settings
        super().__init__(EngineIoSocket(server, eio_sid), settings.send_queue,
                         settings.slow_client_ms / 1000, ip)
        self.encoding = ENCODING
        self.limiter = frame_limiter(server.gateway)
        self.acks: dict[Any, deque[int]] = {}  # req_id -> ack ids waiting for its answer
        self.waiting = 0
        self.next_ack: int | None = None  # set while `answer` sends

    def expect(self, req_id: Any, ack_id: int) -> None:
        if self.waiting >= MAX_ACKS:
            raise ProtocolError(OVERLOADED, "too many requests awaiting an acknowledgement",
                                req_id)
        self.acks.setdefault(req_id, deque()).append(ack_id)
        self.waiting += 1

    def _take(self, req_id: Any, ack_id: int | None = None) -> int | None:
        ids = self.acks.get(req_id)
        if not ids:
            return None
        if ack_id is None:
            ack_id = ids.popleft()
        else:
            ids.remove(ack_id)
        if not ids:
            del self.acks[req_id]
        self.waiting -= 1
        return ack_id

    def answer(self, ack_id: int | None, message: dict, req_id: Any = None) -> None:
        """Send `message` as acknowledgement `ack_id` (an event when None), and stop
        expecting it for `req_id`."""
        if ack_id is not None:
            self._take(req_id, ack_id)
        self.next_ack = _AS_EVENT if ack_id is None else ack_id
        try:
            self.send(message)
        finally:
            self.next_ack = None

    def frame_of(self, message: dict, encoding: str) -> str:
        ack_id = self.next_ack
        if ack_id is None and message.get("op") in ANSWERS:
            ack_id = self._take(message.get("req_id"))
        if ack_id is not None and ack_id != _AS_EVENT:
            pkt = Packet(packet.ACK, data=[message], id=ack_id, binary=False)
        else:
            pkt = Packet(packet.EVENT, data=[message.get("op"), message], binary=False)
        return pkt.encode()


def answer_key(message: dict) -> Any:
    """The req_id the answer to `message` carries (None: it carries none)."""
    req_id = req_id_of(message)
    raw = message.get("req_id")
    if req_id is None and message.get("op") in OFFER_OPS and isinstance(raw, str) \
            and 0 < len(raw) <= OFFER_REQ_ID_MAX:
        return raw  # trade-offer req_ids may be longer
    return req_id


def _message(data: Any) -> dict:
    """An event's `[name, payload]` as a /ws request: `{**payload, "op": name}`."""
    if data is MALFORMED or not isinstance(data, list) or not data:
        raise ProtocolError(INVALID, "malformed Socket.IO packet")
    if len(data) > 2 or not isinstance(data[0], str):
        raise ProtocolError(INVALID, "an event is a name and at most one object")
    payload = data[1] if len(data) == 2 else {}
    if not isinstance(payload, dict):
        raise ProtocolError(INVALID, "an event's payload must be an object")
    return {**payload, "op": data[0]}


class SioServer(socketio.AsyncServer):
    def __init__(self, gateway: Gateway) -> None:
        super().__init__(
            async_mode="aiohttp", serializer=Packet, json=StrictJson,
            max_http_buffer_size=MAX_FRAME, ping_interval=HEARTBEAT_S,
            ping_timeout=HEARTBEAT_S / 2, http_compression=False,
            # Tokens, not cookies: any origin may connect, as to /ws.
            cors_allowed_origins="*", cors_credentials=False, cookie=None)
        self.gateway = gateway
        self.conns: dict[str, SioConnection] = {}  # engine.io session id -> its socket
        self.on("connect", self._on_connect)
        self.on("disconnect", self._on_disconnect)

    def _engineio_server_class(self) -> type[EngineIoServer]:
        return EngineIoServer  # engine.io with its waits on clients bounded

    # ---- engine.io sessions: one socket each --------------------------------------------

    async def _handle_eio_connect(self, eio_sid: str, environ: dict) -> Any:
        gateway = self.gateway
        if not gateway.ready:
            return error_dict(UNAVAILABLE, "shutting down or starting; retry")
        request: web.Request = environ["aiohttp.request"]
        ip = request.remote or "?"
        try:
            admit(gateway, ip, None)  # the token comes with the Socket.IO connect
        except ApiError as exc:  # its body: {"error": {code, message}}
            return json.loads(exc.text or "{}").get("error")
        conn = self.conns[eio_sid] = SioConnection(self, eio_sid, ip)
        if request.query.get("transport") == "websocket":
            conn.transport = request.transport  # the TCP connection to drop after a cut
        # (a polling session has none of its own: its requests' writes have deadlines)
        open_session(gateway, conn, False)
        return await super()._handle_eio_connect(eio_sid, environ)

    async def _handle_eio_disconnect(self, eio_sid: str, reason: Any) -> None:
        await super()._handle_eio_disconnect(eio_sid, reason)
        conn = self.conns.pop(eio_sid, None)
        if conn is not None:
            close_session(self.gateway, conn)
            leave(self.gateway, conn)

    async def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        """Every packet is counted against the socket's frame allowance before it is parsed;
        binary ones (attachments) are refused unbuffered."""
        conn = self.conns.get(eio_sid)
        if conn is None or conn.closing:
            return  # cut as too slow: what it still sends is read until the close
        try:
            if not conn.limiter.take():
                raise ProtocolError(RATE_LIMITED, "too many messages")
            if not isinstance(data, str) or data[:1] in ("5", "6"):
                raise ProtocolError(INVALID, "binary attachments are not accepted")
            await super()._handle_eio_message(eio_sid, data)
        except ProtocolError as exc:
            self._refuse(conn, data, exc)
        except (ValueError, TypeError, IndexError):  # a packet type that makes no sense here
            self._refuse(conn, data, ProtocolError(INVALID, "malformed Socket.IO packet"))
        if conn.backed_up():
            await conn.drained()  # back-pressure: the next packet waits for room

    def _refuse(self, conn: SioConnection, data: Any, exc: ProtocolError) -> None:
        """Answer a packet not served: its acknowledgement if it asked for one (read from
        its header alone), else an `error` event."""
        self.gateway.metrics.errors.labels(exc.code).inc()
        found = _HEADER.match(data) if isinstance(data, str) else None
        ack_id = None
        if found and found[1] in ("2", "5") and found[3] and (found[2] or "/") == "/":
            ack_id = int(found[3])
        conn.answer(ack_id, exc.frame())

    # ---- the namespace "/" and its events -----------------------------------------------

    async def _on_connect(self, sid: str, environ: dict, auth: Any) -> None:
        conn = self.conns.get(self.manager.eio_sid_from_sid(sid, "/"))
        if conn is None:
            raise refused_connect(error_dict(UNAVAILABLE, "session closed"))
        token = auth.get("token") if isinstance(auth, dict) else None
        if auth is MALFORMED or (token is not None and not isinstance(token, str)):
            raise refused_connect(error_dict(INVALID, "auth must be {\"token\": string}"))
        token = token or token_of(environ["aiohttp.request"])
        if not token:
            return
        # Connecting with a token is an `auth` (its `ack` or `error` comes as an event): a
        # bad token leaves the socket anonymous; the user's connection cap refuses it.
        try:
            await dispatch(self.gateway, conn, {"op": "auth", "token": token}, ENCODING)
        except ProtocolError as exc:
            self.gateway.metrics.errors.labels(exc.code).inc()
            if exc.code == LIMIT_EXCEEDED:
                raise refused_connect(exc.frame()) from exc
            conn.answer(None, exc.frame())

    async def _on_disconnect(self, sid: str, reason: Any) -> None:
        conn = self.conns.get(self.manager.eio_sid_from_sid(sid, "/"))
        if conn is not None:  # left "/": the socket is done
            self.start_background_task(conn.ws.close)

    async def _handle_event(self, eio_sid: str, namespace: str | None, id: int | None,
                            data: Any) -> None:
        conn = self.conns.get(eio_sid)
        if conn is None:
            return
        sid = self.manager.sid_from_eio_sid(eio_sid, namespace or "/")
        if (namespace or "/") != "/":  # its callback is another namespace's: an event
            self._refuse_event(conn, None, ProtocolError(INVALID, "only / is served"))
            return
        if not self.manager.is_connected(sid, "/"):
            self._refuse_event(conn, id, ProtocolError(INVALID, "connect to / first"))
            return
        await self._serve(conn, id, data)

    def _refuse_event(self, conn: SioConnection, ack_id: int | None,
                      exc: ProtocolError) -> None:
        self.gateway.metrics.errors.labels(exc.code).inc()
        conn.answer(ack_id, exc.frame())

    async def _serve(self, conn: SioConnection, ack_id: int | None, data: Any) -> None:
        key = expected = None
        try:
            message = _message(data)
            key = answer_key(message)
            if ack_id is not None:
                if key is None:
                    raise ProtocolError(INVALID, "a request with an acknowledgement needs a"
                                        " req_id (a string of 1-128 chars or an integer)")
                conn.expect(key, ack_id)
                expected = ack_id
            await dispatch(self.gateway, conn, message, ENCODING)
        except ProtocolError as exc:
            self.gateway.metrics.errors.labels(exc.code).inc()
            conn.answer(expected if expected is not None else ack_id, exc.frame(), key)


SIO = web.AppKey("sio", SioServer)


def attach(app: web.Application) -> SioServer:
    """Serve Socket.IO at /socket.io/ on `app` (after its gateway is set)."""
    server = app[SIO] = SioServer(app[GATEWAY])
    server.attach(app, socketio_path=PATH)

    async def on_shutdown(_: web.Application) -> None:
        await server.shutdown()  # its service task; the sockets closed with the others

    app.on_shutdown.append(on_shutdown)
    return server
