"""The store's clock, in the unit the market uses everywhere: integer epoch milliseconds.

What the stores stamp themselves (a closing's `at`) and check against (a sale's `at` is
refused a day or more ahead). `actors.clock` is the actors' own (storage imports no actor).
"""

from __future__ import annotations

import time


def now_ms() -> int:
    return int(time.time() * 1000)
