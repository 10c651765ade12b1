"""market.vetting: outliers by robust z, linked accounts, determinism and bounded memory."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from market.prices import DAY_MS
from market.vetting import (
    LINK_MIN,
    LINK_WINDOW_DAYS,
    LINKED,
    MAD_FLOOR,
    MIN_PEERS,
    OUTLIER,
    PEER_WINDOW_DAYS,
    PEERS,
    Vetter,
    robust_z,
    vet_all,
)

HOUR_MS = 3_600_000


def noisy_prices(rng: np.random.Generator, n: int, level: float = 10_000.0) -> list[int]:
    """A stationary segment: log-normal prices, sigma 0.1 in log."""
    return [max(1, round(level * x)) for x in np.exp(rng.normal(0.0, 0.1, n))]


def test_robust_z() -> None:
    peers = np.log([100.0, 130.0, 70.0, 125.0, 80.0])  # a spread above the MAD floor
    med = np.median(peers)
    mad = np.median(np.abs(peers - med))
    assert mad > MAD_FLOOR
    assert robust_z(peers, np.log(200.0)) == pytest.approx(0.6745 * (np.log(200) - med) / mad)
    # Identical peers: the MAD floor stands in for a zero spread.
    assert robust_z(np.zeros(4), 0.1) == pytest.approx(0.6745 * 0.1 / MAD_FLOOR)
    assert robust_z(np.zeros(4), 0.0) == 0.0
    with pytest.raises(ValueError):
        robust_z(np.array([]), 1.0)


def test_injected_outliers_are_flagged() -> None:
    rng = np.random.default_rng(7)
    prices = noisy_prices(rng, 400)
    injected = {50: 10.0, 51: 0.1, 120: 0.1, 200: 10.0, 333: 10.0, 334: 10.0, 335: 0.1}
    for i, factor in injected.items():
        prices[i] = round(prices[i] * factor)
    vetter = Vetter()
    flags = [vetter.vet("c|PSA|10", i * HOUR_MS, p, None, None) for i, p in enumerate(prices)]
    assert all(flags[i] == OUTLIER for i in injected)
    false_flags = sum(f is not None for i, f in enumerate(flags) if i not in injected)
    assert false_flags <= 0.03 * len(prices)


def test_too_few_or_stale_peers_flag_nothing() -> None:
    vetter = Vetter()
    for i in range(MIN_PEERS - 1):
        assert vetter.vet("s", i, 1_000, None, None) is None
    assert vetter.vet("s", 10, 100_000, None, None) is None  # only MIN_PEERS - 1 peers then
    # A year later the peers are out of the window: a jump is not judged against them.
    vetter = Vetter()
    for i in range(PEERS):
        vetter.vet("s", i, 1_000, None, None)
    assert vetter.vet("s", 9 + PEER_WINDOW_DAYS * DAY_MS, 100_000, None, None) is None
    assert vetter.vet("t", 20, 100_000, None, None) is None  # segments are separate


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.floats(2.0, 7.0))
def test_normal_sales_are_rarely_flagged(seed: int, log10_level: float) -> None:
    rng = np.random.default_rng(seed)
    prices = noisy_prices(rng, 200, 10.0**log10_level)
    vetter = Vetter()
    flags = [vetter.vet("s", i * HOUR_MS, p, None, None) for i, p in enumerate(prices)]
    # About 0.75% on average (300 seeds: at most 3.5%).
    assert sum(f is not None for f in flags) <= 0.08 * len(flags)


def test_a_pair_trading_repeatedly_is_linked_from_the_link_min_th_sale() -> None:
    vetter = Vetter()
    day = DAY_MS
    got = [
        vetter.vet("s", 1 * day, 1_000, "alice", "bob"),
        vetter.vet("s", 2 * day, 1_000, "bob", "alice"),  # either direction counts
        vetter.vet("s", 3 * day, 1_000, "carol", "bob"),  # another pair
        vetter.vet("s", 4 * day, 1_000, "alice", "bob"),
        vetter.vet("s", 5 * day, 1_000, "bob", "alice"),
        vetter.vet("s", 6 * day, 1_000, "alice", None),  # unknown buyer: never linked
        vetter.vet("s", 7 * day, 1_000, "alice", "alice"),
        vetter.vet("s", 8 * day, 1_000, "alice", "alice"),
        vetter.vet("s", 9 * day, 1_000, "alice", "alice"),
    ]
    assert LINK_MIN == 3
    assert got == [None, None, None, LINKED, LINKED, None, None, None, None]


def test_links_expire_after_the_window() -> None:
    vetter = Vetter()
    window = LINK_WINDOW_DAYS * DAY_MS
    assert vetter.vet("s", 0, 1_000, "a", "b") is None
    assert vetter.vet("s", 1, 1_000, "a", "b") is None
    assert vetter.vet("s", window, 1_000, "a", "b") is None  # the first is exactly too old
    assert vetter.vet("s", window + 1, 1_000, "a", "b") is None  # the second too: 1 earlier
    assert vetter.vet("s", window + 2, 1_000, "a", "b") == LINKED


def test_linked_sales_do_not_become_peers_but_outliers_do() -> None:
    vetter = Vetter()
    for i in range(MIN_PEERS):
        vetter.vet("s", i, 1_000, None, None)
    assert vetter.peer_count("s") == MIN_PEERS
    assert vetter.vet("s", 10, 50_000, None, None) == OUTLIER
    assert vetter.peer_count("s") == MIN_PEERS + 1
    for i in range(LINK_MIN):
        vetter.vet("s", 20 + i, 1_000, "x", "y")
    assert vetter.peer_count("s") == MIN_PEERS + LINK_MIN  # the linked one left out


def test_a_market_that_moved_is_accepted_after_a_few_sales_at_its_new_level() -> None:
    vetter = Vetter()
    for i in range(PEERS):
        assert vetter.vet("s", i * DAY_MS, 10_000, None, None) is None
    # The card doubles for good: the first sales at the new level look like outliers, then
    # the new level is the market.
    verdicts = [vetter.vet("s", (PEERS + i) * DAY_MS, 21_000 + 10 * i, None, None)
                for i in range(40)]
    assert verdicts[0] == OUTLIER
    assert verdicts.count(OUTLIER) <= PEERS // 2 + 1
    assert verdicts[-30:] == [None] * 30


feeds = st.lists(
    st.tuples(
        st.sampled_from(["a|PSA|10", "a|PSA|9", "b|RAW|-"]),
        st.integers(0, 3 * DAY_MS),
        st.sampled_from([900, 1_000, 1_100, 1_050, 20_000, 50]),
        st.sampled_from([None, "u1", "u2", "u3"]),
        st.sampled_from([None, "u1", "u2", "u3"]),
    ),
    max_size=80,
).map(lambda xs: sorted(xs, key=lambda x: x[1]))


@given(feeds)
def test_vet_all_equals_a_sequential_vetter_and_is_deterministic(feed: list[tuple]) -> None:
    segments, at, price, sellers, buyers = (list(c) for c in zip(*feed, strict=True)) if feed \
        else ([], [], [], [], [])
    vetter = Vetter()
    sequential = [vetter.vet(*sale) for sale in feed]
    assert vet_all(segments, np.array(at, dtype=np.int64), price, sellers, buyers) == sequential
    assert vet_all(segments, at, price, sellers, buyers) == sequential


@given(feeds, st.integers(0, 80))
def test_state_round_trip_answers_the_same(feed: list[tuple], cut: int) -> None:
    whole = Vetter()
    expected = [whole.vet(*sale) for sale in feed]
    first = Vetter()
    got = [first.vet(*sale) for sale in feed[:cut]]
    resumed = Vetter.from_state(json.loads(json.dumps(first.to_state())))
    got += [resumed.vet(*sale) for sale in feed[cut:]]
    assert got == expected


def test_memory_is_bounded() -> None:
    rng = np.random.default_rng(3)
    vetter = Vetter()
    n = 10_000
    prices = noisy_prices(rng, n)
    for start in range(0, n, 50):
        # Each sale between two fresh accounts, a few segments; in batches of 50.
        sales = range(start, start + 50)
        vetter.vet_batch([f"c{i % 3}|PSA|10" for i in sales], [i * HOUR_MS for i in sales],
                         prices[start:start + 50], [f"s{i}" for i in sales],
                         [f"b{i}" for i in sales])
        assert all(vetter.peer_count(f"c{i}|PSA|10") <= PEERS for i in range(3))
    # 10k hours is over a year: pairs older than the link window have been swept.
    # Sweeps are amortised: at most twice what the window holds (or the first threshold).
    assert vetter.pair_count() <= max(4096, 2 * LINK_WINDOW_DAYS * 24) + 1
    assert vetter.pair_count() < n


def test_bad_price_is_refused() -> None:
    with pytest.raises(ValueError):
        Vetter().vet("s", 0, 0, None, None)
    with pytest.raises(ValueError):
        vet_all(["s"], [0, 1], [1], [None], [None])
