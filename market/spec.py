"""Auction specification: the immutable terms an auction is created with, and their validation."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, TypeGuard

from market.errors import INVALID, MarketError
from market.money import MAX_AMOUNT, is_amount

AUCTION_TYPES: tuple[str, ...] = ("english", "dutch", "sealed")
STATUSES: tuple[str, ...] = ("scheduled", "live", "closed", "cancelled")

DEFAULT_SOFT_CLOSE_MS = 60_000
MAX_SOFT_CLOSE_MS = 86_400_000  # one day
MAX_DURATION_MS = 30 * 86_400_000  # thirty days
# How far ahead an auction may be scheduled: a listing holds its card and a host slot.
MAX_START_AHEAD_MS = 30 * 86_400_000

# Fields that only make sense for one auction type; sending them for another type is almost
# certainly a client mistake, so it is refused rather than silently ignored.
_ENGLISH_ONLY = ("buy_now_price", "increment")
_DUTCH_ONLY = ("floor_price", "step", "step_ms")


@dataclass(frozen=True)
class AuctionSpec:
    auction_id: str
    asset_id: str
    seller_id: str
    type: str
    start_price: int
    starts_at: int
    ends_at: int
    created_at: int
    reserve_price: int | None = None
    buy_now_price: int | None = None
    soft_close_ms: int = DEFAULT_SOFT_CLOSE_MS
    increment: int | None = None
    floor_price: int | None = None
    step: int | None = None
    step_ms: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> AuctionSpec:
        # Tolerate extra keys (e.g. a stored record carrying more than the spec).
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def _invalid(field: str, message: str) -> MarketError:
    return MarketError(INVALID, f"{field}: {message}", field=field)


def _is_time(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_AMOUNT


def _amount(raw: Mapping[str, Any], name: str, *, required: bool = False) -> int | None:
    value = raw.get(name)
    if value is None:
        if required:
            raise _invalid(name, "is required")
        return None
    if not is_amount(value):
        raise _invalid(name, f"must be an integer number of cents in 0..{MAX_AMOUNT}")
    return value


def _time(raw: Mapping[str, Any], name: str, what: str = "milliseconds") -> int | None:
    value = raw.get(name)
    if value is None:
        return None
    if not _is_time(value):
        raise _invalid(name, f"must be an integer number of {what} in 0..{MAX_AMOUNT}")
    return value


def parse_spec(
    raw: Mapping[str, Any], *, auction_id: str, asset_id: str, seller_id: str, now: int
) -> AuctionSpec:
    """Validate a client's create request into an AuctionSpec; raise MarketError(INVALID)."""
    if not isinstance(raw, Mapping):
        raise _invalid("body", "must be a JSON object")

    kind = raw.get("type")
    if kind is None:
        kind = "english"
    if not isinstance(kind, str) or kind not in AUCTION_TYPES:
        raise _invalid("type", f"must be one of {', '.join(AUCTION_TYPES)}")

    start_price = _amount(raw, "start_price", required=True)
    assert start_price is not None  # for the type checker: required=True never yields None

    for name in _ENGLISH_ONLY:
        if kind != "english" and raw.get(name) is not None:
            raise _invalid(name, "is only allowed for english auctions")
    for name in _DUTCH_ONLY:
        if kind != "dutch" and raw.get(name) is not None:
            raise _invalid(name, "is only allowed for dutch auctions")

    reserve_price = _amount(raw, "reserve_price")
    if reserve_price is not None:
        if kind == "dutch":
            raise _invalid("reserve_price", "is not allowed for dutch auctions (use floor_price)")
        if reserve_price < start_price:
            raise _invalid("reserve_price", "must be >= start_price")

    buy_now_price = _amount(raw, "buy_now_price")
    if buy_now_price is not None:
        if buy_now_price <= start_price:
            raise _invalid("buy_now_price", "must be > start_price")
        if reserve_price is not None and buy_now_price < reserve_price:
            # Otherwise buy-now would sell below the price the seller said they accept.
            raise _invalid("buy_now_price", "must be >= reserve_price")

    increment = _amount(raw, "increment")
    if increment is not None and increment <= 0:
        raise _invalid("increment", "must be > 0")

    floor_price = step = step_ms = None
    if kind == "dutch":
        floor_price = _amount(raw, "floor_price", required=True)
        assert floor_price is not None
        if floor_price > start_price:
            raise _invalid("floor_price", "must be <= start_price")
        step = _amount(raw, "step", required=True)
        if not step:
            raise _invalid("step", "must be > 0")
        step_ms = _time(raw, "step_ms")
        if step_ms is None:
            raise _invalid("step_ms", "is required")
        if step_ms <= 0:
            raise _invalid("step_ms", "must be > 0")

    starts_at = _time(raw, "starts_at", "epoch milliseconds")
    if starts_at is None:
        starts_at = now
    if starts_at - now > MAX_START_AHEAD_MS:
        raise _invalid("starts_at", "may be at most 30 days ahead")

    has_ends, has_duration = raw.get("ends_at") is not None, raw.get("duration_ms") is not None
    if has_ends == has_duration:
        raise _invalid("ends_at", "give exactly one of ends_at or duration_ms")
    if has_duration:
        duration = _time(raw, "duration_ms")
        assert duration is not None
        if not 0 < duration <= MAX_DURATION_MS:
            raise _invalid("duration_ms", f"must be in 1..{MAX_DURATION_MS} (30 days)")
        ends_at = starts_at + duration
    else:
        given = _time(raw, "ends_at", "epoch milliseconds")
        assert given is not None
        ends_at = given
        if ends_at <= starts_at:
            raise _invalid("ends_at", "must be after starts_at")
        if ends_at - starts_at > MAX_DURATION_MS:
            raise _invalid("ends_at", "auction may last at most 30 days")
    if ends_at <= now:
        raise _invalid("ends_at", "is in the past")

    soft_close_ms = _time(raw, "soft_close_ms")
    if soft_close_ms is None:
        soft_close_ms = DEFAULT_SOFT_CLOSE_MS
    if soft_close_ms > MAX_SOFT_CLOSE_MS:
        raise _invalid("soft_close_ms", f"must be in 0..{MAX_SOFT_CLOSE_MS}")

    return AuctionSpec(
        auction_id=auction_id,
        asset_id=asset_id,
        seller_id=seller_id,
        type=kind,
        start_price=start_price,
        starts_at=starts_at,
        ends_at=ends_at,
        created_at=now,
        reserve_price=reserve_price,
        buy_now_price=buy_now_price,
        soft_close_ms=soft_close_ms,
        increment=increment,
        floor_price=floor_price,
        step=step,
        step_ms=step_ms,
    )
