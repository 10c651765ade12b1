"""Token buckets, keyed limiters, connection counters and the LRU cache (injected clock)."""

from __future__ import annotations

import pytest

from gateway.limits import ConnectionCounter, KeyedLimiter, LRUCache, TokenBucket


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# --- TokenBucket -------------------------------------------------------------------------------


def test_bucket_allows_a_burst_then_refuses_with_a_retry_after():
    clock = FakeClock()
    bucket = TokenBucket(rate=2.0, burst=3, clock=clock)
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    assert bucket.retry_after() == pytest.approx(0.5)
    clock.advance(0.25)
    assert not bucket.take()
    assert bucket.retry_after() == pytest.approx(0.25)
    clock.advance(0.25)
    assert bucket.retry_after() == pytest.approx(0.0)
    assert bucket.take()
    assert not bucket.take()


def test_bucket_refills_at_rate_up_to_burst_only():
    clock = FakeClock()
    bucket = TokenBucket(rate=1.0, burst=5, clock=clock)
    assert all(bucket.take() for _ in range(5))
    clock.advance(2.0)
    assert [bucket.take() for _ in range(3)] == [True, True, False]
    clock.advance(1_000_000)
    assert bucket.full()
    assert sum(bucket.take() for _ in range(10)) == 5


def test_bucket_take_n_is_all_or_nothing():
    clock = FakeClock()
    bucket = TokenBucket(rate=1.0, burst=4, clock=clock)
    assert bucket.take(3)
    assert not bucket.take(2)  # only 1 left: nothing spent
    assert bucket.take(1)
    assert not bucket.take()
    assert bucket.retry_after() == pytest.approx(1.0)


def test_retry_after_is_zero_when_a_token_is_available():
    bucket = TokenBucket(rate=1.0, burst=2, clock=FakeClock())
    assert bucket.retry_after() == 0.0


def test_a_clock_stepping_back_adds_no_tokens():
    clock = FakeClock()
    bucket = TokenBucket(rate=1.0, burst=1, clock=clock)
    assert bucket.take()
    clock.advance(-100)
    assert not bucket.take()
    clock.advance(1.0)
    assert bucket.take()


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (-1, 1), (1, 0), (1, 0.5)])
def test_bucket_rejects_nonsense(rate, burst):
    with pytest.raises(ValueError):
        TokenBucket(rate=rate, burst=burst)


# --- KeyedLimiter ------------------------------------------------------------------------------


def test_keys_have_independent_buckets():
    clock = FakeClock()
    limiter = KeyedLimiter(rate=0.5, burst=2, max_keys=100, clock=clock)
    assert limiter.take("alice") is None
    assert limiter.take("alice") is None
    assert limiter.take("alice") == pytest.approx(2.0)  # one token per 2 s
    assert limiter.take("bob") is None
    clock.advance(1.5)
    assert limiter.take("alice") == pytest.approx(0.5)
    clock.advance(0.5)
    assert limiter.take("alice") is None
    assert len(limiter) == 2


def test_ten_thousand_keys_never_exceed_max_keys():
    clock = FakeClock()
    limiter = KeyedLimiter(rate=1.0, burst=3, max_keys=256, clock=clock)
    for i in range(10_000):
        assert limiter.take(f"10.0.{i // 256}.{i % 256}") is None
        assert len(limiter) <= 256
        if i % 7 == 0:
            clock.advance(0.01)
    assert len(limiter) == 256


def test_eviction_prefers_full_buckets_over_the_drained_oldest():
    clock = FakeClock()
    limiter = KeyedLimiter(rate=1.0, burst=2, max_keys=3, clock=clock)
    assert limiter.take("attacker") is None
    assert limiter.take("attacker") is None
    assert limiter.take("attacker") is not None  # drained; and the least recently used below
    assert limiter.take("b") is None
    assert limiter.take("c") is None
    clock.advance(1.0)  # attacker has refilled 1 of 2 tokens; b and c are full again
    assert limiter.take("newcomer") is None
    assert "attacker" in limiter and "b" not in limiter and "c" in limiter
    # The attacker's bucket was kept, not reset to a full one.
    assert limiter.take("attacker") is None
    assert limiter.take("attacker") is not None


def test_without_full_buckets_the_least_recently_used_goes():
    clock = FakeClock()
    limiter = KeyedLimiter(rate=1.0, burst=1, max_keys=2, clock=clock)
    assert limiter.take("a") is None
    assert limiter.take("b") is None
    assert limiter.take("a") is not None  # touches a: b is now the least recently used
    assert limiter.take("c") is None
    assert "a" in limiter and "b" not in limiter and "c" in limiter
    assert len(limiter) == 2


def test_a_hammered_key_stays_recent_and_keeps_its_limit():
    clock = FakeClock()
    limiter = KeyedLimiter(rate=1.0, burst=1, max_keys=10, clock=clock)
    assert limiter.take("hammer") is None
    for i in range(1_000):
        assert limiter.take("hammer") is not None  # refused every time: no reset by churn
        limiter.take(f"other-{i}")
    assert "hammer" in limiter


def test_limiter_rejects_nonsense():
    with pytest.raises(ValueError):
        KeyedLimiter(rate=1.0, burst=1, max_keys=0)
    with pytest.raises(ValueError):
        KeyedLimiter(rate=0.0, burst=1, max_keys=10)


# --- ConnectionCounter -------------------------------------------------------------------------


def test_connections_per_key_are_capped():
    counter = ConnectionCounter(max_per_key=2, max_keys=10)
    assert counter.acquire("1.2.3.4")
    assert counter.acquire("1.2.3.4")
    assert not counter.acquire("1.2.3.4")
    assert counter.count("1.2.3.4") == 2
    assert counter.acquire("5.6.7.8")
    counter.release("1.2.3.4")
    assert counter.acquire("1.2.3.4")


def test_keys_at_zero_are_removed():
    counter = ConnectionCounter(max_per_key=3, max_keys=10)
    for _ in range(3):
        assert counter.acquire("u-1")
    for _ in range(3):
        counter.release("u-1")
    assert len(counter) == 0 and counter.count("u-1") == 0
    counter.release("u-1")  # an extra release is harmless and never goes negative
    counter.release("never-seen")
    assert len(counter) == 0
    assert counter.acquire("u-1") and counter.count("u-1") == 1


def test_new_keys_are_refused_while_the_table_is_full():
    counter = ConnectionCounter(max_per_key=5, max_keys=2)
    assert counter.acquire("a") and counter.acquire("b")
    assert not counter.acquire("c")
    assert counter.acquire("a")  # existing keys are still served
    counter.release("b")
    assert counter.acquire("c")
    assert len(counter) == 2


def test_ten_thousand_keys_never_exceed_max_keys_for_connections():
    counter = ConnectionCounter(max_per_key=1, max_keys=100)
    held: list[str] = []
    for i in range(10_000):
        key = f"ip-{i}"
        if counter.acquire(key):
            held.append(key)
        assert len(counter) <= 100
        if i % 3 == 0 and held:
            counter.release(held.pop(0))
    for key in held:
        counter.release(key)
    assert len(counter) == 0


def test_counter_rejects_nonsense():
    with pytest.raises(ValueError):
        ConnectionCounter(max_per_key=0, max_keys=1)
    with pytest.raises(ValueError):
        ConnectionCounter(max_per_key=1, max_keys=0)


# --- LRUCache ----------------------------------------------------------------------------------


def test_lru_drops_the_least_recently_used():
    cache: LRUCache[str, int] = LRUCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # a is now more recent than b
    cache.put("c", 3)
    assert "b" not in cache and cache.get("a") == 1 and cache.get("c") == 3
    cache.put("a", 10)  # replacing refreshes too
    cache.put("d", 4)
    assert cache.get("c") is None and cache.get("a") == 10 and len(cache) == 2


def test_lru_get_default_pop_and_clear():
    cache: LRUCache[str, int | None] = LRUCache(3)
    assert cache.get("missing") is None
    assert cache.get("missing", 7) == 7
    cache.put("none", None)
    assert "none" in cache and cache.get("none", 7) is None
    cache.put("x", 1)
    assert cache.pop("x") == 1 and "x" not in cache and cache.pop("x") is None
    cache.clear()
    assert len(cache) == 0


def test_lru_stays_bounded_over_ten_thousand_keys():
    cache: LRUCache[int, str] = LRUCache(500)
    for i in range(10_000):
        cache.put(i, str(i))
        assert len(cache) <= 500
    assert len(cache) == 500 and cache.get(9_999) == "9999" and cache.get(0) is None


def test_lru_hands_what_it_drops_and_only_that_to_on_evict():
    dropped: list[int] = []
    cache: LRUCache[str, int] = LRUCache(2, on_evict=dropped.append)
    cache.put("a", 1)
    cache.put("b", 2)
    cache.get("a")
    cache.put("c", 3)  # b, the least recently used, goes
    assert cache.pop("a") == 1  # taken out by the owner: not evicted
    cache.put("d", 4)
    cache.put("e", 5)
    assert dropped == [2, 3]


def test_lru_rejects_nonsense():
    with pytest.raises(ValueError):
        LRUCache(0)
