"""Every error code, declared once, and the one exception type the market rules raise.

A code is stable and client-facing (unless `internal`). Each has the HTTP status REST answers
with, whether it is transient (never remembered by an auction: retry with the same `req_id`)
and a one-line description. `docs/protocol.md`'s error table is checked against this registry
by `tests/unit/test_error_registry.py`. The innermost layer, so every layer can use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ErrorCode:
    code: str
    status: int  # HTTP status of a REST answer with this code
    transient: bool  # retry with the same req_id; an auction never remembers it
    description: str
    internal: bool = False  # between our own processes only; never sent to a client


ERRORS: dict[str, ErrorCode] = {}


def _declare(code: str, status: int, description: str, *, transient: bool = False,
             internal: bool = False) -> str:
    if code in ERRORS:
        raise ValueError(f"error code {code} declared twice")
    ERRORS[code] = ErrorCode(code, status, transient, description, internal)
    return code


# Requests
INVALID = _declare("INVALID", 400, "malformed, mistyped or out-of-range request")
UNAUTHORIZED = _declare("UNAUTHORIZED", 401, "no valid token, or wrong username or password")
FORBIDDEN = _declare("FORBIDDEN", 403, "the caller may not do this (minting for admins only)")
NOT_OWNER = _declare("NOT_OWNER", 403, "the caller does not own the asset")
NOT_SELLER = _declare("NOT_SELLER", 403, "only the seller may do this")
NOT_FOUND = _declare("NOT_FOUND", 404, "no such REST route")
AUCTION_NOT_FOUND = _declare("AUCTION_NOT_FOUND", 404, "no such auction")
ASSET_NOT_FOUND = _declare("ASSET_NOT_FOUND", 404, "no such asset")
CARD_NOT_FOUND = _declare("CARD_NOT_FOUND", 404, "no such card in the catalog")
TOKEN_NOT_FOUND = _declare("TOKEN_NOT_FOUND", 404, "no such token")
# Conflicts with the current state
USERNAME_TAKEN = _declare("USERNAME_TAKEN", 409, "the username is taken (case-insensitive)")
ASSET_LISTED = _declare("ASSET_LISTED", 409, "the asset is in another open auction")
CERT_EXISTS = _declare("CERT_EXISTS", 409,
                      "the grader's certificate number is already registered")
HAS_BIDS = _declare("HAS_BIDS", 409, "an auction with bids cannot be cancelled")
AUCTION_NOT_LIVE = _declare("AUCTION_NOT_LIVE", 409, "not started yet, closed or cancelled")
USER_EXISTS = _declare("USER_EXISTS", 400, "a new user's random id collided")
AUCTION_EXISTS = _declare("AUCTION_EXISTS", 400, "a new auction's random id collided")
# Bids (WebSocket; a REST answer would be 400)
BID_TOO_LOW = _declare("BID_TOO_LOW", 400, "below the minimum bid, which `min_bid` carries")
SELF_BID = _declare("SELF_BID", 400, "the seller bid on their own auction")
# Limits and availability
LIMIT_EXCEEDED = _declare("LIMIT_EXCEEDED", 409, "over a count limit (subscriptions, sockets)",
                          transient=True)
RATE_LIMITED = _declare("RATE_LIMITED", 429, "over a rate limit; REST sends Retry-After",
                        transient=True)
OVERLOADED = _declare("OVERLOADED", 503, "too much work in flight or no host capacity",
                      transient=True)
UNAVAILABLE = _declare("UNAVAILABLE", 503, "starting, stopping, or a host restarting or moving",
                       transient=True)
INTERNAL = _declare("INTERNAL", 500, "an unexpected server error")
# Tokens
ASSET_REDEEMED = _declare("ASSET_REDEEMED", 409, "the asset was redeemed: its token is burned")
# Money
INSUFFICIENT_FUNDS = _declare("INSUFFICIENT_FUNDS", 409,
                              "not enough available balance; `available` carries it")
# Trade offers
OFFER_NOT_FOUND = _declare("OFFER_NOT_FOUND", 404,
                           "no such offer, or the caller is not one of its two parties")
OFFER_NOT_ACTIVE = _declare("OFFER_NOT_ACTIVE", 409,
                            "the offer is no longer active; `status` carries its state")
# Analytics
INDEX_NOT_FOUND = _declare("INDEX_NOT_FOUND", 404,
                           "no index for this segment and interval (yet): see /api/market/segments")
# Portfolios
PORTFOLIO_NOT_FOUND = _declare("PORTFOLIO_NOT_FOUND", 404,
                               "no such user, or they have not made their portfolio public")
# Internal: never sent to a client
NOT_HERE = _declare("NOT_HERE", 400, "host to router: this host does not serve the auction",
                    transient=True, internal=True)
ASSET_EXISTS = _declare("ASSET_EXISTS", 400, "store: a new asset's id exists (REST says 503)",
                        internal=True)
ASSET_MOVED = _declare("ASSET_MOVED", 400, "store: settle_error of a sale whose asset had moved",
                       internal=True)
PAYMENT_FAILED = _declare("PAYMENT_FAILED", 400,
                           "store: settle_error of a sale whose winner could not pay",
                           internal=True)
CARD_EXISTS = _declare("CARD_EXISTS", 400, "store: a new card's id exists",
                       internal=True)
PROVENANCE_CONFLICT = _declare("PROVENANCE_CONFLICT", 400,
                               "store: a record does not extend the token's chain (seq, "
                               "prev_hash or owner)", internal=True)

# What REST answers for a code it does not know (e.g. from a newer host during an upgrade).
DEFAULT_STATUS = 400


def http_status(code: str) -> int:
    entry = ERRORS.get(code)
    return entry.status if entry is not None else DEFAULT_STATUS


def error_dict(code: str, message: str, **details: Any) -> dict[str, Any]:
    """The error object every answer carries: code, message and machine-readable extras."""
    return {"code": code, "message": message, **details}


class MarketError(Exception):
    """A rule refused a request. `details` carries machine-readable extras (e.g. min_bid)."""

    def __init__(self, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.code: str = code
        self.message: str = message
        self.details: dict[str, Any] = dict(details)

    def to_dict(self) -> dict[str, Any]:
        return error_dict(self.code, self.message, **self.details)

    def __repr__(self) -> str:
        return f"MarketError({self.code!r}, {self.message!r}, **{self.details!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        # Errors cross process boundaries (Ray pickles them); the default Exception pickling
        # would rebuild from args only and lose code/details.
        return (_rebuild, (self.code, self.message, self.details))


def _rebuild(code: str, message: str, details: dict[str, Any]) -> MarketError:
    return MarketError(code, message, **details)
