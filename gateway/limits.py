"""Bounded rate limiters, connection counters and caches for the gateway.

Everything here is single-threaded (one event loop) and bounded in memory: per-key state lives
in tables capped at `max_keys`, so a flood of distinct keys (IPs, usernames) cannot grow them.
"""

from __future__ import annotations

import dataclasses
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from itertools import islice
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.config import Settings

Clock = Callable[[], float]

# How many of the least recently used buckets KeyedLimiter looks at for a full one to evict.
_EVICTION_SCAN = 8


class TokenBucket:
    """`burst` tokens, refilled at `rate` per second; starts full."""

    __slots__ = ("_clock", "_last", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: float, clock: Clock = time.monotonic) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        if burst < 1:
            raise ValueError("burst must be at least 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = burst
        self._last = clock()

    def _refill(self) -> None:
        now = self._clock()
        elapsed = max(0.0, now - self._last)  # a clock stepping back refills nothing
        self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
        self._last = now

    def take(self, n: float = 1) -> bool:
        """Spend `n` tokens if there are that many; False (spending none) otherwise."""
        self._refill()
        if self._tokens >= n:
            self._tokens -= n
            return True
        return False

    def retry_after(self) -> float:
        """Seconds until one token is available (0.0 if one is now)."""
        self._refill()
        return max(0.0, (1 - self._tokens) / self.rate)

    def full(self) -> bool:
        """Whether the bucket is full, i.e. indistinguishable from a fresh one."""
        self._refill()
        return self._tokens >= self.burst


class KeyedLimiter:
    """A TokenBucket per key, at most `max_keys` of them (least recently used evicted).

    Every take touches its key, so a key being hammered stays recent and is not evicted. To
    evict, the few least recently used buckets are checked for a full one (dropping a full
    bucket loses nothing: a fresh bucket is full); failing that, the least recently used goes.
    """

    def __init__(self, rate: float, burst: float, max_keys: int,
                 clock: Clock = time.monotonic) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        TokenBucket(rate, burst, clock)  # validates rate and burst
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[Hashable, TokenBucket] = OrderedDict()

    def take(self, key: Hashable) -> float | None:
        """None if `key` may go ahead (a token spent), else the seconds to wait before retrying."""
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_keys:
                self._evict()
            bucket = self._buckets[key] = TokenBucket(self.rate, self.burst, self._clock)
        else:
            self._buckets.move_to_end(key)
        if bucket.take():
            return None
        return bucket.retry_after()

    def _evict(self) -> None:
        for key, bucket in islice(self._buckets.items(), _EVICTION_SCAN):
            if bucket.full():
                del self._buckets[key]
                return
        self._buckets.popitem(last=False)

    def __len__(self) -> int:
        return len(self._buckets)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._buckets


class ConnectionCounter:
    """Open connections per key (IP, user): at most `max_per_key` each, `max_keys` keys.

    Keys whose count drops to zero are removed. Live entries cannot be evicted, so when
    `max_keys` distinct keys hold connections, a connection from a new key is refused.
    """

    def __init__(self, max_per_key: int, max_keys: int) -> None:
        if max_per_key < 1 or max_keys < 1:
            raise ValueError("max_per_key and max_keys must be at least 1")
        self.max_per_key = max_per_key
        self.max_keys = max_keys
        self._counts: dict[Hashable, int] = {}

    def acquire(self, key: Hashable) -> bool:
        """Count one more connection for `key`; False (counting nothing) if over a limit."""
        count = self._counts.get(key, 0)
        if count >= self.max_per_key or (count == 0 and len(self._counts) >= self.max_keys):
            return False
        self._counts[key] = count + 1
        return True

    def release(self, key: Hashable) -> None:
        """Undo one successful acquire(key). Releasing a key with no connections is a no-op."""
        count = self._counts.get(key, 0)
        if count <= 1:
            self._counts.pop(key, None)
        else:
            self._counts[key] = count - 1

    def count(self, key: Hashable) -> int:
        return self._counts.get(key, 0)

    def __len__(self) -> int:
        return len(self._counts)


class LRUCache[K, V]:
    """A dict of at most `max_size` entries; putting one more drops the least recently used,
    and hands it to `on_evict` (a value that holds a resource: to release it)."""

    def __init__(self, max_size: int, on_evict: Callable[[V], None] | None = None) -> None:
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        self.max_size = max_size
        self.on_evict = on_evict
        self._data: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K, default: V | None = None) -> V | None:
        try:
            value = self._data[key]
        except KeyError:
            return default
        self._data.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        self._data[key] = value
        self._data.move_to_end(key)
        while len(self._data) > self.max_size:
            _, dropped = self._data.popitem(last=False)
            if self.on_evict is not None:
                self.on_evict(dropped)

    def pop(self, key: K) -> V | None:
        """Remove `key` (e.g. to invalidate it), returning its value if it was cached."""
        return self._data.pop(key, None)

    def clear(self) -> None:
        self._data.clear()

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __len__(self) -> int:
        return len(self._data)


# Several gateway processes on one port (ECE_GATEWAYS=N, `SO_REUSEPORT`): the kernel hands each
# connection to a process by a hash of its addresses and ports, so one user's or one address's
# connections land on any of them, and no process sees the others' counts. Each process
# therefore enforces 1/N of every limit that spans connections, which keeps the sum honest:
# a token bucket (rate r, burst b, starting full) admits at most b + r*T in any T seconds, so
# N buckets of (r/N, b/N) admit at most N * (b/N + r*T/N) = b + r*T together, the bound of the
# one bucket; and N counters of floor(c/N) hold at most c. The price: a client whose
# connections all land on one process gets 1/N of its allowance. Limits per socket (frames,
# subscriptions, send queue) need no share: a socket lives in one process.
SHARED_RATES = ("rate_per_s", "auth_ip_per_min", "auth_user_per_min", "create_per_min")
SHARED_BURSTS = ("rate_burst", "auth_ip_burst", "auth_user_burst", "create_burst")
SHARED_COUNTS = ("max_conn_per_ip", "max_conn_per_user", "max_inflight")


def share_problems(settings: Settings) -> list[str]:
    """Why `settings` cannot be split between its gateway processes: a burst or a count below
    ECE_GATEWAYS would leave a process less than one (empty when they can)."""
    from gateway.config import SETTING_BY_FIELD

    n = settings.gateways
    return [f"{SETTING_BY_FIELD[name].env}={getattr(settings, name):g} is below "
            f"ECE_GATEWAYS={n}: each gateway process enforces 1/{n} of it"
            for name in (*SHARED_BURSTS, *SHARED_COUNTS) if getattr(settings, name) < n]


def process_share(settings: Settings) -> Settings:
    """The settings one of `settings.gateways` processes enforces: 1/N of each limit spanning
    connections (counts rounded down), everything else unchanged. Raises ValueError when a
    share would be below one (`share_problems`)."""
    n = settings.gateways
    if n == 1:
        return settings
    problems = share_problems(settings)
    if problems:
        raise ValueError("; ".join(problems))
    shares: dict[str, Any] = {name: getattr(settings, name) / n
                              for name in (*SHARED_RATES, *SHARED_BURSTS)}
    shares.update({name: getattr(settings, name) // n for name in SHARED_COUNTS})
    return dataclasses.replace(settings, **shares)
