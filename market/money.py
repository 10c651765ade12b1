"""Money helpers. Every amount in ECE is an integer number of cents."""

from __future__ import annotations

from typing import TypeGuard

# Largest integer a JavaScript client can represent exactly; bigger values would round in JSON.
MAX_AMOUNT = 2**53

# (upper bound exclusive, increment) by current price, in cents.
_LADDER: tuple[tuple[int, int], ...] = (
    (100, 5),
    (500, 25),
    (2_500, 50),
    (10_000, 100),
    (25_000, 250),
    (50_000, 500),
    (100_000, 1_000),
    (250_000, 2_500),
    (500_000, 5_000),
)
_TOP_INCREMENT = 10_000


def is_amount(value: object) -> TypeGuard[int]:
    """True only for a plain int (bool excluded: True is not 1 cent) within 0..MAX_AMOUNT."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_AMOUNT


def increment_for(price: int) -> int:
    """Minimum raise over `price` according to the bid-increment ladder."""
    if price < 0:
        raise ValueError(f"price must be >= 0, got {price}")
    for bound, step in _LADDER:
        if price < bound:
            return step
    return _TOP_INCREMENT
