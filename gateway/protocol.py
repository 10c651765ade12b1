"""Wire format: JSON text frames and msgpack binary frames, one schema, validated at the edge."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any, TypeGuard

import msgpack

from actors.messages import PlaceBid
from market.errors import INVALID, error_dict
from market.money import is_amount
from storage.facts import json_text

JSON = "json"
MSGPACK = "msgpack"
MAX_FRAME = 64 * 1024
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
# Deeper documents than this are refused: nothing in the protocol nests more than a few levels,
# and deep nesting is how a client makes a parser or encoder recurse until it fails.
MAX_DEPTH = 32
MAX_SINCE = 2**53


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # NaN, Infinity, -Infinity


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 overflows to inf, which is not JSON either
        raise ValueError(f"number {text[:20]} is out of range")
    return value


def depth_of(value: Any, limit: int = MAX_DEPTH) -> int:
    """Nesting depth of a decoded document, counting no further than `limit` + 1."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            if deepest > limit:
                return deepest
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return deepest


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _has_lone_surrogate(value: Any) -> bool:
    """Does any string (or key) hold a lone surrogate, which no UTF-8 can carry?"""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def parse_json(data: str | bytes) -> Any:
    """Strict JSON: no NaN/Infinity, nesting at most MAX_DEPTH, no lone surrogate escape
    (text that is not Unicode); ValueError otherwise."""
    try:
        value = json.loads(data, parse_constant=_no_constant, parse_float=_finite)
    except RecursionError as exc:
        raise ValueError("JSON nested too deeply") from exc
    if depth_of(value) > MAX_DEPTH:
        raise ValueError(f"JSON nested deeper than {MAX_DEPTH}")
    text = data if isinstance(data, str) else data.decode("utf-8", "replace")
    if _SURROGATE_ESCAPE.search(text) and _has_lone_surrogate(value):
        raise ValueError("a string holds a lone surrogate (\\ud800-\\udfff): not Unicode")
    return value


class ProtocolError(Exception):
    """A request the client got wrong; answered with an `error` and nothing changes."""

    def __init__(self, code: str, message: str, req_id: Any = None, **details: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.req_id = req_id
        self.details = details

    def frame(self) -> dict:
        body = {"op": "error", **error_dict(self.code, self.message, **self.details)}
        if self.req_id is not None:
            body["req_id"] = self.req_id
        return body


def decode(data: str | bytes, encoding: str) -> dict:
    try:
        if encoding == JSON:
            message = parse_json(data)
        else:
            message = msgpack.unpackb(data, raw=False, strict_map_key=True)
            if depth_of(message) > MAX_DEPTH:
                raise ValueError("msgpack nested too deeply")
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise ProtocolError(INVALID, f"malformed {encoding} frame") from exc
    except Exception as exc:  # msgpack raises assorted errors on garbage
        raise ProtocolError(INVALID, f"malformed {encoding} frame") from exc
    if not isinstance(message, dict):
        raise ProtocolError(INVALID, "a message must be an object with an 'op'")
    return message


def encode(message: dict, encoding: str) -> str | bytes:
    if encoding == JSON:  # msgspec: json.dumps's compact JSON, non-ASCII as UTF-8, ~5x faster
        return json_text(message)
    return msgpack.packb(message, use_bin_type=True)


def req_id_of(message: dict) -> Any:
    """The request id if it is well-formed, else None (the error then carries none)."""
    req_id = message.get("req_id")
    if isinstance(req_id, str) and 0 < len(req_id) <= 128:
        return req_id
    if type(req_id) is int and 0 <= req_id <= 2**53:
        return req_id
    return None


def require_req_id(message: dict) -> str | int:
    req_id = req_id_of(message)
    if req_id is None:
        raise ProtocolError(INVALID, "req_id must be a string (1-128 chars) or an integer")
    return req_id


def valid_id(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and _ID.fullmatch(value) is not None


def require_auction_id(message: dict, req_id: Any = None) -> str:
    auction_id = message.get("auction_id")
    if not valid_id(auction_id):
        raise ProtocolError(INVALID, "auction_id must be an id string", req_id)
    return auction_id


def require_amount(message: dict, field: str, req_id: Any, optional: bool = False) -> int | None:
    if field not in message or (optional and message[field] is None):
        if optional:
            return None
        raise ProtocolError(INVALID, f"{field} is required", req_id)
    value = message[field]
    if not is_amount(value):
        raise ProtocolError(
            INVALID, f"{field} must be an integer number of cents from 0 to 2**53", req_id
        )
    return value


@dataclass(frozen=True, slots=True)
class BidRequest:
    """A validated `bid` frame. Who bids is not in it: that is the socket's user."""

    req_id: str | int
    auction_id: str
    amount: int
    max_amount: int | None

    @property
    def effective_max(self) -> int:
        """The most this bid commits the bidder to: what buying power must cover."""
        return self.max_amount if self.max_amount is not None else self.amount

    def command(self, bidder_id: str) -> PlaceBid:
        # Typed idempotency key: the int 7 and the string "7" are different requests.
        key = f"{type(self.req_id).__name__}:{self.req_id}"
        return PlaceBid(self.auction_id, bidder_id, key, self.amount, self.max_amount)


def parse_bid(message: dict) -> BidRequest:
    req_id = require_req_id(message)
    auction_id = require_auction_id(message, req_id)
    amount = require_amount(message, "amount", req_id)
    max_amount = require_amount(message, "max_amount", req_id, optional=True)
    assert amount is not None
    if max_amount is not None and max_amount < amount:
        raise ProtocolError(INVALID, "max_amount must be at least amount", req_id)
    return BidRequest(req_id, auction_id, amount, max_amount)


def plain_int(raw: str, low: int, high: int) -> int | None:
    """`raw` as an integer in low..high when it is plain decimal digits (at most 20), else
    None: no sign, spaces, underscores, exponents or non-ASCII digits."""
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 20):
        return None
    value = int(raw)
    return value if low <= value <= high else None


def parse_since(message: dict, req_id: Any) -> int | None:
    since = message.get("since")
    if since is None:
        return None
    if type(since) is not int or since < 0 or since > MAX_SINCE:
        raise ProtocolError(INVALID, "since must be a non-negative integer seq", req_id)
    return since
