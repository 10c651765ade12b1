"""Commands/s per host from the hosts' counters (actors.rates), as placement weighs them."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from actors.rates import CommandRates


def test_a_rate_is_the_counter_rise_over_the_window() -> None:
    rates = CommandRates(min_window_s=2.0)
    rates.sample("h", 100, at=10.0)
    assert rates.per_s == {}  # one sample: no rate yet
    rates.sample("h", 600, at=15.0)
    assert rates.per_s == {"h": 100.0}
    rates.sample("h", 600, at=20.0)
    assert rates.per_s == {"h": 0.0}


def test_a_sample_sooner_than_the_window_leaves_the_rate_as_it_is() -> None:
    """An on-demand refresh right after the periodic one must not measure a rate over a few
    milliseconds."""
    rates = CommandRates(min_window_s=2.0)
    rates.sample("h", 0, at=0.0)
    rates.sample("h", 50, at=5.0)
    rates.sample("h", 51, at=5.01)
    assert rates.per_s == {"h": 10.0}
    rates.sample("h", 150, at=7.0)  # the window still starts at 5.0
    assert rates.per_s == {"h": 50.0}


def test_a_restarted_host_starts_a_new_window() -> None:
    rates = CommandRates(min_window_s=1.0)
    rates.sample("h", 500, at=0.0)
    rates.sample("h", 1_000, at=5.0)
    rates.sample("h", 30, at=10.0)  # moved: its counter started again
    assert rates.per_s == {}
    rates.sample("h", 80, at=15.0)
    assert rates.per_s == {"h": 10.0}


def test_forgotten_and_retired_hosts_have_no_rate() -> None:
    rates = CommandRates(min_window_s=1.0)
    for name in ("a", "b", "c"):
        rates.sample(name, 0, at=0.0)
        rates.sample(name, 10, at=1.0)
    rates.forget("a")
    rates.keep({"a", "b"})
    assert rates.per_s == {"b": 10.0}
    rates.sample("a", 10, at=2.0)  # a new window, not one from before it was forgotten
    assert "a" not in rates.per_s


@given(samples=st.lists(st.tuples(st.integers(0, 10_000), st.floats(0.0, 100.0)),
                        max_size=30))
def test_rates_are_never_negative(samples) -> None:
    rates = CommandRates(min_window_s=0.5)
    at = 0.0
    for commands, step in samples:
        at += step
        rates.sample("h", commands, at)
        assert all(r >= 0.0 for r in rates.per_s.values())
