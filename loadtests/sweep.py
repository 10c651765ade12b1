"""The capacity sweep's pure parts: the latency target, the ladder of offered rates, the knee.

Capacity is the highest offered rate at which a step met the target: at least 99.9% of the
bids answered, p99 bid->ack <= 20 ms and p99 bid->event <= 50 ms. The ladder climbs by
`factor` from `start` until the target fails `stop_after` times in a row, then spends
`refine` steps between the capacity and the lowest failing rate above it (geometric middle).
When nothing met the target, it descends by `factor` below the lowest rate run, down to
`start / floor_divisor`, until a step meets it (then refines above it the same way).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Target:
    answered_share: float = 0.999
    ack_p99_ms: float = 20.0
    event_p99_ms: float = 50.0

    def met(self, step: dict[str, Any]) -> bool:
        """Did a step (offered_per_s, answered_share, ack_p99_ms, event_p99_ms) meet it?"""
        return (step["answered_share"] >= self.answered_share
                and step["ack_p99_ms"] <= self.ack_p99_ms
                and step["event_p99_ms"] <= self.event_p99_ms)


@dataclass(frozen=True)
class Ladder:
    start: float = 250.0
    factor: float = 1.5
    stop_after: int = 2  # failures in a row that end the climb
    refine: int = 1  # steps between the knee and the first failure above it
    max_steps: int = 14
    floor_divisor: float = 16.0  # the descent stops at start / floor_divisor

    def next_rate(self, steps: list[tuple[float, bool]]) -> float | None:
        """The next offered rate after `steps` ((rate, met) in the order run); None: done."""
        if not steps:
            return self.start
        if len(steps) >= self.max_steps:
            return None
        climb = _climb_length(steps, self.stop_after)
        if climb is None:  # still climbing
            return max(rate for rate, _ in steps) * self.factor
        best = capacity(steps)
        if best is None:  # nothing met the target yet: descend
            down = min(rate for rate, _ in steps) / self.factor
            return down if down >= self.start / self.floor_divisor * (1 - 1e-9) else None
        if _refined(steps, climb) >= self.refine:
            return None
        above = [rate for rate, met in steps if not met and rate > best]
        if not above:
            return None
        rate = math.sqrt(best * min(above))
        if any(math.isclose(rate, r, rel_tol=0.02) for r, _ in steps):
            return None
        return rate


def _climb_length(steps: list[tuple[float, bool]], stop_after: int) -> int | None:
    """How many steps the climb took, or None while it goes on (fewer than `stop_after`
    failures in a row so far)."""
    run = 0
    for i, (_, met) in enumerate(steps):
        run = 0 if met else run + 1
        if run >= stop_after:
            return i + 1
    return None


def _refined(steps: list[tuple[float, bool]], climb: int) -> int:
    """Refining steps run so far: those after the climb, but for a descent (the steps after
    the climb up to and with the first that met the target, when none on the climb did)."""
    after = steps[climb:]
    if any(met for _, met in steps[:climb]):
        return len(after)
    first = next((i for i, (_, met) in enumerate(after) if met), len(after))
    return max(0, len(after) - first - 1)


def capacity(steps: list[tuple[float, bool]]) -> float | None:
    """The highest rate that met the target (None if none did)."""
    passed = [rate for rate, met in steps if met]
    return max(passed) if passed else None


def per_unit_us(cpu_seconds: float, count: float) -> float | None:
    """CPU microseconds per unit of work (a bid, a message); None without work."""
    if count <= 0:
        return None
    return round(cpu_seconds / count * 1e6, 1)
