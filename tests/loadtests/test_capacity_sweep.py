"""The capacity sweep's pure parts: the target, the ladder and its knee, a step's row, the CPU
placement, the bid mix, the Poisson schedule and what a generator knows of an auction."""

from __future__ import annotations

import itertools
import math
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from loadtests.mix import BidMix, Book, pick_bidder, poisson_times
from loadtests.stages_capacity import split_cpus, step_row
from loadtests.sweep import Ladder, Target, capacity, per_unit_us
from market.money import increment_for


def run_ladder(ladder: Ladder, passes_below: float) -> list[tuple[float, bool]]:
    steps: list[tuple[float, bool]] = []
    while (rate := ladder.next_rate(steps)) is not None:
        steps.append((rate, rate < passes_below))
    return steps


# ---- the target and the ladder --------------------------------------------------------------

def test_target_needs_all_three() -> None:
    ok = {"answered_share": 0.9995, "ack_p99_ms": 19.0, "event_p99_ms": 49.0}
    target = Target()
    assert target.met(ok)
    assert not target.met({**ok, "answered_share": 0.998})
    assert not target.met({**ok, "ack_p99_ms": 20.5})
    assert not target.met({**ok, "event_p99_ms": 51.0})


def test_ladder_climbs_until_two_failures_in_a_row_then_refines() -> None:
    steps = run_ladder(Ladder(start=100, factor=2, refine=1), passes_below=700)
    rates = [r for r, _ in steps]
    assert rates[:5] == [100, 200, 400, 800, 1600]
    assert steps[3:5] == [(800, False), (1600, False)]
    # then one step between the knee (400) and the first failure above it (800)
    assert len(steps) == 6 and math.isclose(rates[5], math.sqrt(400 * 800))
    assert capacity(steps) == rates[5]  # 565.7 < 700: met, so it is the knee


def test_a_single_failure_does_not_stop_the_climb() -> None:
    ladder = Ladder(start=100, factor=2, refine=0)
    steps = [(100.0, True), (200.0, False)]
    assert ladder.next_rate(steps) == 400
    steps += [(400.0, True), (800.0, False), (1600.0, False)]
    assert ladder.next_rate(steps) is None
    assert capacity(steps) == 400


def test_nothing_met_on_the_climb_descends_to_a_knee_then_refines() -> None:
    steps = run_ladder(Ladder(start=100, factor=2, refine=1), passes_below=30)
    assert steps[:5] == [(100, False), (200, False), (50, False), (25, True),
                         (math.sqrt(25 * 50), False)]
    assert len(steps) == 5 and capacity(steps) == 25


def test_the_descent_stops_at_its_floor() -> None:
    steps = run_ladder(Ladder(start=100, factor=2, refine=1, floor_divisor=4), passes_below=1)
    assert [r for r, _ in steps] == [100, 200, 50, 25]
    assert capacity(steps) is None


def test_max_steps_bounds_the_sweep() -> None:
    steps = run_ladder(Ladder(start=1, factor=1.5, max_steps=5), passes_below=1e9)
    assert len(steps) == 5 and all(met for _, met in steps)


@settings(max_examples=200, deadline=None)
@given(start=st.floats(10, 1000), factor=st.floats(1.2, 3), steps_up=st.floats(-2, 40),
       refine=st.integers(0, 3))
def test_knee_is_below_the_limit_and_within_a_step_of_it(start, factor, steps_up,
                                                         refine) -> None:
    """Against a server that meets the target below `limit` only, the knee found is the
    highest rate run below the limit, and less than one ladder factor under it."""
    limit = start * factor**steps_up
    ladder = Ladder(start=start, factor=factor, refine=refine, max_steps=60)
    steps = run_ladder(ladder, passes_below=limit)
    knee = capacity(steps)
    if start / ladder.floor_divisor >= limit:
        assert knee is None
        return
    assert knee is not None and knee < limit
    assert knee * factor >= limit * (1 - 1e-9)
    assert knee == max(r for r, met in steps if met)


# ---- a step's row -----------------------------------------------------------------------------

def summary(sent=1000, accepted=700, rejected=300, other=None, ack_p99=5.0, event_p99=8.0,
            events=700, cores=None) -> dict:
    return {
        "window_s": 2.0, "accepted_per_s": accepted / 2, "rejected_per_s": rejected / 2,
        "counts": {"sent_in_window": sent, "accepted": accepted, "rejected": rejected,
                   "answered": accepted + rejected + sum((other or {}).values()),
                   "other_errors": other or {}, "events_missing": 0},
        "ack_ms": {"count": accepted + rejected, "p50": 1.0, "p99": ack_p99},
        "event_ms": {"count": events, "p50": 2.0, "p99": event_p99},
        "cpu_cores": cores or {"gateway": 0.5, "hosts": 0.25, "ray_other": 0.25,
                               "generator": 0.4},
        "send_lag_ms": {"p99": 0.1},
    }


def test_step_row_counts_cpu_per_decided_bid_and_the_generator_apart() -> None:
    row = step_row(500.0, summary())
    # 1.0 server core over 2 s = 2 CPU seconds for 1,000 decided bids: 2,000 us each
    assert row["server_cpu_us_per_bid"] == 2000.0
    assert row["generator_cores"] == 0.4 and row["server_cores"] == 1.0
    assert row["accepted_share"] == 0.7 and row["answered_share"] == 1.0
    assert row["met"] is True


def test_overloaded_answers_and_missing_answers_are_failures() -> None:
    row = step_row(500.0, summary(sent=1000, accepted=699, rejected=299,
                                  other={"OVERLOADED": 2}))
    assert row["answered_share"] == 0.998 and row["met"] is False
    row = step_row(500.0, summary(sent=1002))  # two never answered
    assert row["met"] is False


def test_accepted_bids_without_any_event_fail_the_step() -> None:
    row = step_row(500.0, summary(events=0, event_p99=0.0))
    assert row["met"] is False


def test_per_unit_us() -> None:
    assert per_unit_us(1.5, 1000) == 1500.0
    assert per_unit_us(1.0, 0) is None


def test_split_cpus_keeps_generator_and_server_apart() -> None:
    assert split_cpus({0}) == (None, None)
    assert split_cpus({0, 1}) == ({0}, [1])
    server, gen = split_cpus(set(range(8)))
    assert server == set(range(6)) and gen == [6, 7]


# ---- Poisson arrivals -----------------------------------------------------------------------

def test_poisson_times_are_sorted_inside_the_interval_and_at_the_rate() -> None:
    rng = random.Random(7)
    times = list(poisson_times(2000.0, 10.0, 30.0, rng))
    assert all(10.0 <= t < 30.0 for t in times)
    assert times == sorted(times)
    # 40,000 expected; the standard deviation is 200
    assert abs(len(times) - 40_000) < 1_000
    gaps = [b - a for a, b in itertools.pairwise(times)]
    mean = sum(gaps) / len(gaps)
    cv = math.sqrt(sum((g - mean) ** 2 for g in gaps) / len(gaps)) / mean
    assert abs(cv - 1.0) < 0.05  # exponential gaps (a fixed schedule would give 0)


def test_poisson_times_of_rate_zero_is_empty() -> None:
    assert list(poisson_times(0.0, 0.0, 10.0, random.Random(1))) == []


# ---- the bid mix and the book -----------------------------------------------------------------

@settings(max_examples=200, deadline=None)
@given(min_bid=st.integers(1, 10**9), seed=st.integers(0, 2**32))
def test_every_bid_is_the_minimum_and_a_maximum_is_whole_increments_above(min_bid, seed) -> None:
    mix = BidMix(proxy_share=0.5, proxy_increments=3)
    amount, top = mix.choose(min_bid, random.Random(seed))
    assert amount == min_bid
    if top is not None:
        ladder = [min_bid]
        for _ in range(3):
            ladder.append(ladder[-1] + increment_for(ladder[-1]))
        assert top in ladder[1:]


def test_proxy_share_is_kept() -> None:
    rng = random.Random(3)
    mix = BidMix(proxy_share=0.3)
    proxies = sum(mix.choose(1000, rng)[1] is not None for _ in range(20_000))
    assert abs(proxies / 20_000 - 0.3) < 0.02
    assert all(BidMix(proxy_share=0.0).choose(1000, rng)[1] is None for _ in range(100))


def test_book_takes_only_newer_news_and_refusals_only_raise() -> None:
    book = Book(100)
    book.learn(5, 300, "u1")
    book.learn(4, 200, "u2")  # older: ignored (answers and events race)
    assert (book.min_bid, book.leader_id, book.seq) == (300, "u1", 5)
    book.learn(6, None, None)  # a `raised` event: nothing public moves
    assert (book.min_bid, book.leader_id, book.seq) == (300, "u1", 6)
    book.refused(250)
    assert book.min_bid == 300
    book.refused(400)
    assert book.min_bid == 400


class _B:
    def __init__(self, bidder_id: str) -> None:
        self.bidder_id = bidder_id


def test_the_leader_is_never_picked() -> None:
    rng = random.Random(1)
    bidders = [_B("a"), _B("b"), _B("c")]
    picked = {pick_bidder(bidders, "b", rng).bidder_id for _ in range(200)}
    assert picked == {"a", "c"}
    assert pick_bidder([_B("a")], "a", rng) is None


# ---- the chart --------------------------------------------------------------------------------

def test_capacity_chart_writes_a_png(tmp_path) -> None:
    from loadtests.charts import capacity_chart  # matplotlib: in the test extra

    steps = [{"offered_per_s": r, "ack_p50_ms": p50, "ack_p99_ms": p99}
             for r, p50, p99 in ((100, 2.0, 5.0), (200, 3.0, 9.0), (400, 9.0, 80.0))]
    out = capacity_chart({"ECE": steps, "baseline": steps[:2]}, {"ECE": 200, "baseline": None},
                         20.0, tmp_path / "c.png", "loadavg 1.0")
    assert out == tmp_path / "c.png"
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_step_without_bids_measures_cpu_and_meets_nothing() -> None:
    row = step_row(0.0, summary(sent=0, accepted=0, rejected=0, events=0, ack_p99=0.0,
                                event_p99=0.0))
    assert row["met"] is False and row["server_cpu_us_per_bid"] is None
    assert row["server_cores"] == 1.0
