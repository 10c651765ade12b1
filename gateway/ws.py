"""The WebSocket endpoint: one `Connection` (gateway/connection.py) per socket.

The session core is transport-neutral, and Socket.IO (gateway/sio.py) is served by it too:
`admit` and `leave` count a socket in and out, `open_session` and `close_session` start and
end it, `dispatch` serves one decoded request (answers go out through `Connection.send`)."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from typing import Any

from aiohttp import WSMsgType, web

from actors.messages import Acked, Command, Refused, refused
from gateway.auth import Identity, TokenError
from gateway.channels import MAX_CHANNELS, is_channel
from gateway.connection import TRY_AGAIN_LATER, Connection  # noqa: F401 (re-exported)
from gateway.limits import TokenBucket
from gateway.offers import act_on_offer, make_offer
from gateway.protocol import (
    JSON,
    MAX_FRAME,
    MSGPACK,
    BidRequest,
    ProtocolError,
    decode,
    parse_bid,
    parse_since,
    req_id_of,
    require_auction_id,
)
from gateway.rest import ApiError
from gateway.state import Gateway, gateway_of
from market.errors import (
    INSUFFICIENT_FUNDS,
    INTERNAL,
    INVALID,
    LIMIT_EXCEEDED,
    NOT_HERE,
    OVERLOADED,
    RATE_LIMITED,
    UNAUTHORIZED,
    UNAVAILABLE,
    MarketError,
    error_dict,
)
from market.ledger import buyer_total
from market.offers import MAX_ID_LEN as OFFER_REQ_ID_MAX

log = logging.getLogger("ece.ws")

# Requests one socket may have in flight before it is told OVERLOADED.
MAX_SOCKET_INFLIGHT = 1_000
# Trade-offer ops (bots), each the twin of a REST route: op -> the action it takes.
OFFER_OPS = {"make_offer": "create", "accept_offer": "accept", "decline_offer": "decline",
             "cancel_offer": "cancel", "counter_offer": "counter"}
# Subscribes one socket may have being answered at once (each reads the store): a client
# sending them faster than they are answered is told OVERLOADED instead of queueing work.
MAX_PENDING_SUBSCRIBES = 32
# Seconds between pings to an idle socket (the answer may take half as long).
HEARTBEAT_S = 30.0


async def websocket_handler(request: web.Request) -> web.WebSocketResponse:
    gateway: Gateway = gateway_of(request)
    if not gateway.ready:
        raise ApiError(UNAVAILABLE, "shutting down or starting; retry")
    # Caps are checked before the upgrade, so a refused client costs one HTTP answer.
    identity, bad_token = admit(gateway, request.remote or "?", token_of(request))
    # Pings are answered, and sent (`Connection.watch_idle`), through the send queue
    # (`Connection.control`), not by aiohttp: no autoping, no aiohttp heartbeat.
    ws = web.WebSocketResponse(max_msg_size=MAX_FRAME, compress=False, autoping=False)
    conn = Connection(ws, gateway.settings.send_queue, gateway.settings.slow_client_ms / 1000,
                      request.remote or "?")
    if identity is not None:
        conn.user_id, conn.expires_at = identity.user_id, identity.expires_at
    try:
        await ws.prepare(request)
        conn.transport = request.transport
        conn.raw = True  # compress=False above: our own frames are what aiohttp would send
        await _serve(gateway, conn, ws, bad_token)
        return ws
    finally:
        leave(gateway, conn)


def admit(gateway: Gateway, ip: str, token: str | None) -> tuple[Identity | None, bool]:
    """A new socket, on any transport: (its identity, whether it brought a token that is
    bad). Counted against its address and its user; over either cap it is refused with
    LIMIT_EXCEEDED (`ApiError`), counting nothing. `leave` undoes it."""
    identity = None
    if token:
        try:
            identity = gateway.tokens.verify(token)
        except TokenError:
            identity = None
    if not gateway.conns_by_ip.acquire(ip):
        raise ApiError(LIMIT_EXCEEDED, "too many connections from this address")
    if identity is not None and not gateway.conns_by_user.acquire(identity.user_id):
        gateway.conns_by_ip.release(ip)
        raise ApiError(LIMIT_EXCEEDED, "too many connections for this user")
    return identity, bool(token) and identity is None


def leave(gateway: Gateway, conn: Connection) -> None:
    """The socket `admit` let in is gone: its address and user count one fewer."""
    gateway.conns_by_ip.release(conn.ip)
    _forget_identity(gateway, conn)


async def _serve(gateway: Gateway, conn: Connection, ws: web.WebSocketResponse,
                 bad_token: bool) -> None:
    open_session(gateway, conn, bad_token)
    idle_s = gateway.settings.idle_client_ms / 1000
    conn.watch_idle(idle_s, min(HEARTBEAT_S, idle_s / 3), ws.ping)
    limiter = frame_limiter(gateway)
    try:
        async for msg in ws:
            conn.heard()
            if msg.type == WSMsgType.TEXT:
                encoding, data = JSON, msg.data
            elif msg.type == WSMsgType.BINARY:
                encoding, data = MSGPACK, msg.data
            elif msg.type == WSMsgType.PING:
                if limiter.take():  # a pong waits its turn: pings count as frames
                    conn.control(functools.partial(ws.pong, msg.data))
                continue
            elif msg.type == WSMsgType.PONG:
                continue  # the heartbeat's answer: heard
            else:
                break
            if conn.closing:
                continue  # cut as too slow: what it still sends is read until the close
            conn.encoding = encoding
            try:
                # Before decoding: a flood costs a bucket check per frame, not a parse.
                if not limiter.take():
                    raise ProtocolError(RATE_LIMITED, "too many messages")
                message = decode(data, encoding)
                await dispatch(gateway, conn, message, encoding)
            except ProtocolError as exc:
                gateway.metrics.errors.labels(exc.code).inc()
                conn.send(exc.frame(), encoding=encoding)
            if conn.backed_up():
                await conn.drained()  # back-pressure: the next frame waits for room
    finally:
        close_session(gateway, conn)


def frame_limiter(gateway: Gateway) -> TokenBucket:
    """One socket's allowance of frames (each checked before it is decoded)."""
    return TokenBucket(gateway.settings.frame_rate, gateway.settings.frame_burst)


def open_session(gateway: Gateway, conn: Connection, bad_token: bool) -> None:
    """A socket starts serving: its writer runs and the gateway counts it."""
    conn.writer = asyncio.get_running_loop().create_task(conn.write_loop())
    gateway.connections.add(conn)
    gateway.metrics.connections.inc()
    if bad_token:
        conn.send({"op": "error", "code": UNAUTHORIZED, "message": "invalid token"})


def close_session(gateway: Gateway, conn: Connection) -> None:
    """A socket is gone: nothing of it stays registered (its counts: `leave`)."""
    conn.closing = True  # first: a subscribe still in flight must not register now
    gateway.connections.discard(conn)
    gateway.metrics.connections.dec()
    gateway.hub.drop(conn)
    gateway.channels.drop(conn)
    _leave_user_channel(gateway, conn)
    if conn.writer is not None:
        conn.writer.cancel()


def _forget_identity(gateway: Gateway, conn: Connection) -> None:
    """The socket becomes anonymous: its user channel ends with its identity."""
    _leave_user_channel(gateway, conn)
    if conn.user_id is not None:
        gateway.conns_by_user.release(conn.user_id)
        conn.user_id, conn.expires_at = None, 0.0


def token_of(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return header[7:].strip()
    return request.query.get("token") or None


async def dispatch(gateway: Gateway, conn: Connection, message: dict, encoding: str) -> None:
    op = message.get("op")
    req_id = req_id_of(message)
    if op == "bid":
        bid = parse_bid(message)
        user_id = conn.current_user()
        if user_id is None:
            _forget_identity(gateway, conn)  # an expired token leaves an anonymous socket
            raise ProtocolError(UNAUTHORIZED, "sign in to bid", bid.req_id)
        if conn.inflight >= MAX_SOCKET_INFLIGHT:
            raise ProtocolError(OVERLOADED, "too many bids in flight on this socket",
                                bid.req_id)
        _check_buying_power(gateway, user_id, bid)
        conn.inflight += 1
        # Bids run concurrently so one socket can pipeline; the answer keeps its encoding.
        # The bidder is who the socket is when the bid arrives: a later `auth` on the same
        # socket must not change who this bid is from.
        _bid(gateway, conn, user_id, bid, encoding)
    elif op in OFFER_OPS:
        user_id = conn.current_user()
        if user_id is None:
            _forget_identity(gateway, conn)
            raise ProtocolError(UNAUTHORIZED, "sign in to trade", req_id)
        if conn.inflight >= MAX_SOCKET_INFLIGHT:
            raise ProtocolError(OVERLOADED, "too many requests in flight on this socket",
                                req_id)
        conn.inflight += 1
        task = gateway.hub.spawn(_offer_op(gateway, conn, user_id, message, req_id, encoding))
        task.add_done_callback(lambda _: _finished(conn))
    elif op in ("subscribe", "unsubscribe") and message.get("channel") is not None:
        _user_channel(gateway, conn, message, op, req_id, encoding)
    elif op == "subscribe":
        auction_id = require_auction_id(message, req_id)
        since = parse_since(message, req_id)
        if conn.pending_subscribes >= MAX_PENDING_SUBSCRIBES:
            raise ProtocolError(OVERLOADED, "too many subscribes being answered; retry",
                                req_id)
        limit = gateway.settings.max_subscriptions
        if auction_id not in conn.subscriptions and len(conn.subscriptions) >= limit:
            raise ProtocolError(LIMIT_EXCEEDED, f"at most {limit} subscriptions per socket",
                                req_id)
        ticket = conn.subscriptions[auction_id] = object()
        conn.pending_subscribes += 1
        gateway.hub.spawn(_subscribe(gateway, conn, auction_id, since, req_id, encoding,
                                     ticket))
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
            raise ProtocolError(INVALID, "token must be a string", req_id)
        _forget_identity(gateway, conn)  # a failed auth leaves the socket anonymous
        try:
            identity = gateway.tokens.verify(token)
        except TokenError as exc:
            raise ProtocolError(UNAUTHORIZED, "invalid token", req_id) from exc
        if not gateway.conns_by_user.acquire(identity.user_id):
            raise ProtocolError(LIMIT_EXCEEDED, "too many connections for this user", req_id)
        conn.user_id, conn.expires_at = identity.user_id, identity.expires_at
        conn.send({"op": "ack", "req_id": req_id, "user_id": conn.user_id}, encoding=encoding)
    elif not isinstance(op, str):
        raise ProtocolError(INVALID, "every message needs an 'op' string", req_id)
    else:
        raise ProtocolError(INVALID, f"unknown op {op[:32]!r}", req_id)


def _check_buying_power(gateway: Gateway, user_id: str, bid: BidRequest) -> None:
    """Refuse a bid whose maximum, premium included, exceeds what the bidder has: a lookup
    in the balances the user channel's feed keeps current (no store read, no Ray call)."""
    settings = gateway.settings
    if not settings.balance_check:
        return
    required = buyer_total(bid.effective_max, settings.buyer_premium_bps)
    available = gateway.notices.balances.available(user_id)
    if required > available:
        raise ProtocolError(INSUFFICIENT_FUNDS, "your maximum, premium included, exceeds your"
                            " available balance", bid.req_id, auction_id=bid.auction_id,
                            available=available, required=required)


def _user_channel(gateway: Gateway, conn: Connection, message: dict, op: str, req_id: Any,
                  encoding: str) -> None:
    """`{"op": "subscribe", "channel": "me", "since"?}` and its unsubscribe; the analytics
    channels (`card:<card_id>`, `market`) are `_analytics_channel`'s."""
    channel = message.get("channel")
    if is_channel(channel):
        _analytics_channel(gateway, conn, str(channel), op, req_id, encoding)
        return
    if channel != "me":
        raise ProtocolError(INVALID, "channel must be me, market or card:<card_id>", req_id)
    if op == "unsubscribe":
        _leave_user_channel(gateway, conn)
        conn.send({"op": "ack", "req_id": req_id, "channel": "me"}, encoding=encoding)
        return
    since = parse_since(message, req_id)
    user_id = conn.current_user()
    if user_id is None:
        raise ProtocolError(UNAUTHORIZED, "sign in to follow your own events", req_id)
    if conn.pending_subscribes >= MAX_PENDING_SUBSCRIBES:
        raise ProtocolError(OVERLOADED, "too many subscribes being answered; retry", req_id)
    # A resume replays up to 1,000 stored events: a user's resubscribes are rate limited.
    wait = gateway.me_subscribes.take(user_id)
    if wait is not None:
        raise ProtocolError(RATE_LIMITED, "too many subscribes to your channel; retry", req_id)
    _leave_user_channel(gateway, conn)
    ticket = conn.me_ticket = object()
    conn.me = user_id
    conn.pending_subscribes += 1
    gateway.hub.spawn(_subscribe_me(gateway, conn, user_id, since, req_id, encoding, ticket))


def _analytics_channel(gateway: Gateway, conn: Connection, channel: str, op: str, req_id: Any,
                       encoding: str) -> None:
    if op == "unsubscribe":
        gateway.channels.unsubscribe(conn, channel)
    elif not gateway.channels.subscribe(conn, channel):
        raise ProtocolError(OVERLOADED, f"at most {MAX_CHANNELS} analytics channels per socket",
                            req_id)
    conn.send({"op": "ack", "req_id": req_id, "channel": channel}, encoding=encoding)


def _leave_user_channel(gateway: Gateway, conn: Connection) -> None:
    """Drop the socket's `me` subscription, answered or still being answered."""
    if conn.me is not None:
        gateway.notices.unsubscribe(conn, conn.me)
    conn.me = conn.me_ticket = None


async def _subscribe_me(gateway: Gateway, conn: Connection, user_id: str, since: int | None,
                        req_id: Any, encoding: str, ticket: object) -> None:
    def wanted() -> bool:
        return not conn.closing and conn.me_ticket is ticket

    try:
        seq = await gateway.notices.subscribe(conn, user_id, since, wanted, encoding, req_id)
        if seq is None and req_id is not None and not conn.closing:
            # Overtaken by a later subscribe or an unsubscribe: that one decides.
            conn.send({"op": "ack", "req_id": req_id, "channel": "me", "subscribed": False},
                      encoding=encoding)
    except Exception:
        log.warning("user channel subscribe failed", exc_info=True)
        if conn.me_ticket is ticket:
            conn.me = conn.me_ticket = None
        conn.send(ProtocolError(UNAVAILABLE, "could not read your events; retry",
                                req_id).frame(), encoding=encoding)
    finally:
        conn.pending_subscribes -= 1
        conn.settled()


def _finished(conn: Connection) -> None:
    conn.inflight -= 1
    conn.settled()


def _bid(gateway: Gateway, conn: Connection, user_id: str, bid: BidRequest,
         encoding: str) -> None:
    """Send a bid on its way; `_answer_bid` answers it. No task and no coroutine per bid when
    the auction's host is known: the router's future calls back (else `_bid_routed`)."""
    started = time.perf_counter()
    if gateway.bids_by_user.take(user_id) is not None:
        _answer_bid(gateway, conn, bid, encoding, started,
                    refused(RATE_LIMITED, "bid rate limit reached; retry shortly"))
        return
    # The bidder is the token's user only, never anything in the message.
    command = bid.command(user_id)
    future = gateway.router.send_known(command)
    if future is None:
        gateway.hub.spawn(_bid_routed(gateway, conn, command, bid, encoding, started))
    else:
        future.add_done_callback(
            functools.partial(_bid_landed, gateway, conn, command, bid, encoding, started))


def _bid_landed(gateway: Gateway, conn: Connection, command: Command, bid: BidRequest,
                encoding: str, started: float, future: asyncio.Future) -> None:
    result = future.result() if not future.cancelled() else None
    if isinstance(result, Refused) and result.code == NOT_HERE:  # moved: `send` finds it
        gateway.hub.spawn(_bid_routed(gateway, conn, command, bid, encoding, started))
    else:
        _answer_bid(gateway, conn, bid, encoding, started, result)


async def _bid_routed(gateway: Gateway, conn: Connection, command: Command, bid: BidRequest,
                      encoding: str, started: float) -> None:
    result = None
    try:
        result = await gateway.router.send(command)
    finally:
        _answer_bid(gateway, conn, bid, encoding, started, result)


def _answer_bid(gateway: Gateway, conn: Connection, bid: BidRequest, encoding: str,
                started: float, result: object) -> None:
    reply: dict[str, Any]
    req_id, auction_id = bid.req_id, bid.auction_id
    if isinstance(result, Acked):
        reply = {"op": "ack", "req_id": req_id, "auction_id": auction_id, **result.ack}
    elif isinstance(result, Refused):
        reply = {"op": "error", "req_id": req_id, "auction_id": auction_id, **result.error}
    else:
        reply = {"op": "error", "req_id": req_id, "auction_id": auction_id,
                 **error_dict(INTERNAL, "unexpected reply to a bid")}
    gateway.metrics.bids.labels(reply.get("code", "OK")).inc()
    gateway.metrics.bid_seconds.observe(time.perf_counter() - started)
    conn.send(reply, encoding=encoding)
    _finished(conn)


async def _offer_op(gateway: Gateway, conn: Connection, user_id: str, message: dict,
                    req_id: Any, encoding: str) -> None:
    """A trade-offer command for bots: the same as its REST route, answered `ack` with the
    offer (for `counter_offer`, the counter) or `error`."""
    op = message["op"]
    body = {k: v for k, v in message.items() if k not in ("op", "offer_id")}
    raw = message.get("req_id")  # offer req_ids may be longer than a bid's (up to 160)
    if isinstance(raw, str) and 0 < len(raw) <= OFFER_REQ_ID_MAX:
        req_id = raw
    try:
        if op == "make_offer":
            offer = await make_offer(gateway, user_id, body)
        else:
            offer_id = message.get("offer_id")
            if not isinstance(offer_id, str):
                raise MarketError(INVALID, "offer_id: a string", field="offer_id")
            offer = await act_on_offer(gateway, user_id, offer_id, OFFER_OPS[op], body)
        reply: dict[str, Any] = {"op": "ack", "req_id": req_id, "offer": offer}
    except MarketError as exc:
        reply = ProtocolError(exc.code, exc.message, req_id, **exc.details).frame()
    except Exception:  # a store or Ray failure: the request is answered all the same
        log.exception("%s failed", op)
        reply = ProtocolError(UNAVAILABLE, "could not do that now; retry", req_id).frame()
    conn.send(reply, encoding=encoding)


async def _subscribe(
    gateway: Gateway, conn: Connection, auction_id: str, since: int | None, req_id: Any,
    encoding: str, ticket: object,
) -> None:
    try:
        await gateway.hub.subscribe(conn, auction_id, since, req_id, ticket)
    except ProtocolError as exc:
        if conn.subscriptions.get(auction_id) is ticket:
            del conn.subscriptions[auction_id]
        conn.send(exc.frame(), encoding=encoding)
    else:  # answered: a signed-in subscriber watches it (recorded off this path)
        user_id = conn.current_user()
        if user_id is not None and conn.subscriptions.get(auction_id) is ticket:
            gateway.watches.note(user_id, auction_id)
    finally:
        conn.pending_subscribes -= 1
        conn.settled()

