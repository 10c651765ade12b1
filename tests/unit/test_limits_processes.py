"""ECE_GATEWAYS=N: each process enforces 1/N of the limits spanning connections, so a client
whose connections land on every process still stays within the configured limit."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.cli import _process_problems
from gateway.config import Settings
from gateway.limits import (
    SHARED_BURSTS,
    SHARED_COUNTS,
    SHARED_RATES,
    ConnectionCounter,
    KeyedLimiter,
    process_share,
)


def roomy(**fields) -> Settings:
    """Settings whose every shared limit leaves each of up to 8 processes at least one."""
    return Settings(data_dir=Path("/tmp/ece-unused"), **{"auth_user_burst": 8.0, **fields})


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_one_process_keeps_its_settings_and_n_processes_share_each_limit() -> None:
    base = Settings(data_dir=Path("/tmp/ece-unused"))
    assert process_share(base) is base
    two = Settings(data_dir=Path("/tmp/ece-unused"), gateways=2, max_conn_per_user=33)
    share = process_share(two)
    for name in (*SHARED_RATES, *SHARED_BURSTS):
        assert getattr(share, name) == pytest.approx(getattr(two, name) / 2), name
    for name in SHARED_COUNTS:
        assert getattr(share, name) == getattr(two, name) // 2, name
    assert share.max_conn_per_user == 16  # rounded down: 16 + 16 <= 33
    # Per-socket limits are not shared: a socket lives in one process.
    assert (share.frame_rate, share.max_subscriptions, share.send_queue) == (
        two.frame_rate, two.max_subscriptions, two.send_queue)


def test_a_limit_smaller_than_the_process_count_is_refused() -> None:
    four = Settings(data_dir=Path("/tmp/ece-unused"), gateways=4, auth_user_burst=3.0)
    problems = _process_problems(four)
    assert len(problems) == 1 and "ECE_AUTH_USER_BURST=3 is below ECE_GATEWAYS=4" in problems[0]
    with pytest.raises(ValueError, match="ECE_AUTH_USER_BURST"):
        process_share(four)
    port0 = Settings(data_dir=Path("/tmp/ece-unused"), gateways=2, port=0)
    assert any("ECE_PORT=0" in p for p in _process_problems(port0))
    assert _process_problems(Settings(data_dir=Path("/tmp/ece-unused"), port=0)) == []


@settings(max_examples=150, deadline=None)
@given(n=st.integers(1, 8), rate=st.floats(0.1, 100.0), burst=st.integers(1, 200),
       takes=st.lists(st.tuples(st.floats(0.0, 0.5), st.integers(0, 7)), max_size=300))
def test_a_user_on_every_process_never_exceeds_the_one_bucket_bound(
        n: int, rate: float, burst: int, takes: list[tuple[float, int]]) -> None:
    """Whatever the processes a user's bids land on and whenever, the bids let through in
    any interval of T seconds are at most burst + rate x T: the configured bucket's bound."""
    burst = max(burst, n)  # a smaller burst is refused at start
    share = process_share(roomy(gateways=n, rate_per_s=rate, rate_burst=float(burst)))
    clock = FakeClock()
    limiters = [KeyedLimiter(share.rate_per_s, share.rate_burst, 10, clock) for _ in range(n)]
    admitted: list[float] = []
    for gap, process in takes:
        clock.now += gap
        if limiters[process % n].take("user") is None:
            admitted.append(clock.now)
    for i, start in enumerate(admitted):
        for j in range(i, len(admitted)):
            assert j - i + 1 <= burst + rate * (admitted[j] - start) + 1e-6


@given(n=st.integers(1, 8), cap=st.integers(1, 100),
       tries=st.lists(st.tuples(st.integers(0, 7), st.booleans()), max_size=300))
def test_a_user_on_every_process_never_holds_more_connections_than_the_cap(
        n: int, cap: int, tries: list[tuple[int, bool]]) -> None:
    cap = max(cap, n)
    share = process_share(roomy(gateways=n, max_conn_per_user=cap))
    counters = [ConnectionCounter(share.max_conn_per_user, 10) for _ in range(n)]
    for process, opening in tries:
        counter = counters[process % n]
        if opening:
            counter.acquire("user")
        else:
            counter.release("user")
        assert sum(c.count("user") for c in counters) <= cap
