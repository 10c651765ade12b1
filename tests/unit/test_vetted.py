"""actors.analytics.vetted: one vetting of the sales feed shared by the projections of a
process answers every one of them as its own sequential vetter would."""

from __future__ import annotations

import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from actors.analytics.vetted import FeedVetting
from market.prices import DAY_MS
from market.vetting import Vetter, vet_all


def feed(n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    rows = []
    for pos in range(1, n + 1):
        rows.append({"pos": pos, "segment": f"c{rng.randrange(3)}|PSA|10",
                     "at": pos * DAY_MS // 3 + rng.randrange(-DAY_MS, DAY_MS),
                     "price": rng.choice([1_000, 1_100, 950, 30_000, 20]),
                     "seller_id": rng.choice([None, "u1", "u2", "u3"]),
                     "buyer_id": rng.choice([None, "u1", "u2", "u3"])})
    return rows


def expected(rows: list[dict[str, Any]]) -> list[str | None]:
    return vet_all([r["segment"] for r in rows], [r["at"] for r in rows],
                   [r["price"] for r in rows], [r["seller_id"] for r in rows],
                   [r["buyer_id"] for r in rows])


def ask(vetting: FeedVetting, rows: list[dict[str, Any]]) -> list[str | None]:
    return vetting.reasons(rows, [r["segment"] for r in rows])


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 150), st.integers(0, 10**6),
       st.lists(st.tuples(st.integers(0, 2), st.integers(1, 40)), max_size=40))
def test_readers_at_any_pace_get_the_sequential_answers(n: int, seed: int,
                                                        steps: list[tuple[int, int]]) -> None:
    """Three readers (two price shards and the market, say) fold the feed in pages of
    their own sizes, interleaved at random, one of them restarting from the start."""
    rows = feed(n, seed)
    want = expected(rows)
    vetting = FeedVetting()
    at = [0, 0, 0]
    got: list[list[str | None]] = [[], [], []]
    for reader, size in [*steps, (0, n), (1, n), (2, n)]:
        if reader == 2 and size % 7 == 0:  # a restart: replays the feed from the start
            at[2], got[2] = 0, []
        page = rows[at[reader]:at[reader] + size]
        got[reader] += ask(vetting, page)
        at[reader] += len(page)
    assert got == [want, want, want]


def test_a_position_passed_over_is_vetted_when_it_comes() -> None:
    """A MongoDB gap filled late: the row is vetted once, when first asked for, and every
    reader gets that same answer."""
    rows = feed(30, 1)
    late = rows[9]
    vetting, own = FeedVetting(), Vetter()
    first = ask(vetting, rows[:9] + rows[10:])
    assert first == own.vet_batch(*columns(rows[:9] + rows[10:]))
    answer = ask(vetting, [late])
    assert answer == own.vet_batch(*columns([late]))
    assert ask(vetting, rows) == first[:9] + answer + first[9:]


def columns(rows: list[dict[str, Any]]) -> tuple[list[Any], ...]:
    return tuple([r[k] for r in rows] for k in ("segment", "at", "price", "seller_id",
                                                 "buyer_id"))
