"""The wall clock, in the unit the market uses everywhere: integer epoch milliseconds.

The market's rules never read it (time is passed in); the actor cores take it injected, so
tests drive time themselves.
"""

from __future__ import annotations

import time
from collections.abc import Callable

Clock = Callable[[], int]


def now_ms() -> int:
    return int(time.time() * 1000)
