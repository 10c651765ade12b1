"""The one exception type the market rules raise; its `code` is stable and client-facing."""

from __future__ import annotations

from typing import Any

INVALID = "INVALID"
AUCTION_NOT_LIVE = "AUCTION_NOT_LIVE"
BID_TOO_LOW = "BID_TOO_LOW"
SELF_BID = "SELF_BID"
NOT_SELLER = "NOT_SELLER"
HAS_BIDS = "HAS_BIDS"

ERROR_CODES: tuple[str, ...] = (
    INVALID, AUCTION_NOT_LIVE, BID_TOO_LOW, SELF_BID, NOT_SELLER, HAS_BIDS,
)


class MarketError(Exception):
    """A rule refused a request. `details` carries machine-readable extras (e.g. min_bid)."""

    def __init__(self, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.code: str = code
        self.message: str = message
        self.details: dict[str, Any] = dict(details)

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, **self.details}

    def __repr__(self) -> str:
        return f"MarketError({self.code!r}, {self.message!r}, **{self.details!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        # Errors cross process boundaries (Ray pickles them); the default Exception pickling
        # would rebuild from args only and lose code/details.
        return (_rebuild, (self.code, self.message, self.details))


def _rebuild(code: str, message: str, details: dict[str, Any]) -> MarketError:
    return MarketError(code, message, **details)
