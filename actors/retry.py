"""Background steps of the hosts (settlement, swaps, reloads): retried with capped
exponential backoff until they succeed or the host stops."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator

from storage import Conflict

RETRY_FIRST_S = 0.05
RETRY_MAX_S = 5.0


async def retry(what: str, step: Callable[[], Awaitable[object]], log: logging.Logger) -> bool:
    """Run `step` until it succeeds (True); a business Conflict gives up (False)."""
    delay = RETRY_FIRST_S
    attempt = 1
    while True:
        try:
            await step()
            return True
        except Conflict as exc:
            log.error("%s refused: %r; giving up", what, exc)
            return False
        except Exception:
            log.warning("%s failed (attempt %d); retrying in %.2fs", what, attempt, delay,
                        exc_info=True)
        await asyncio.sleep(delay)
        delay = min(delay * 2, RETRY_MAX_S)
        attempt += 1


def backoff_delays() -> Iterator[float]:
    """RETRY_FIRST_S, doubling, capped at RETRY_MAX_S, for ever (loops that must not stop)."""
    delay = RETRY_FIRST_S
    while True:
        yield delay
        delay = min(delay * 2, RETRY_MAX_S)
