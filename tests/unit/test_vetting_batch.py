"""market.vetting's batch path: `Vetter.vet_batch` answers exactly as the plain sequential
vetter (`SequentialVetter` below, the code before batches, kept here as the specification),
sale for sale, for any feed - out-of-order times, moves of level, linked pairs, sweeps - and
any split into batches; and it carries the same state."""

from __future__ import annotations

import itertools
import json
import math
from collections import deque

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from market import vetting
from market.prices import DAY_MS
from market.vetting import (
    LINK_MIN,
    LINK_WINDOW_DAYS,
    LINKED,
    MIN_PEERS,
    OUTLIER,
    OUTLIER_Z,
    PEER_WINDOW_DAYS,
    PEERS,
    Vetter,
    robust_z,
    vet_all,
)

Sale = tuple[str, int, int, str | None, str | None]


class SequentialVetter:
    """One sale at a time with deques: what `Vetter` did before it vetted batches."""

    def __init__(self, sweep_min: int) -> None:
        self.peers: dict[str, deque[tuple[int, float]]] = {}
        self.links: dict[tuple[str, str], deque[int]] = {}
        self.sweep_min = self.sweep_at = sweep_min
        self.latest: int | None = None

    def vet(self, segment: str, at: int, price: int, seller: str | None,
            buyer: str | None) -> str | None:
        self.latest = at if self.latest is None else max(self.latest, at)
        linked = self.count_link(at, seller, buyer) >= LINK_MIN - 1
        peers = self.peers.get(segment)
        reason = LINKED if linked else None
        log_price = math.log(price)
        if reason is None and peers and len(peers) >= MIN_PEERS:
            recent = [lp for t, lp in peers if t > at - PEER_WINDOW_DAYS * DAY_MS]
            if len(recent) >= MIN_PEERS and abs(robust_z(recent, log_price)) > OUTLIER_Z:
                reason = OUTLIER
        if reason != LINKED:
            if peers is None:
                peers = self.peers[segment] = deque(maxlen=PEERS)
            peers.append((at, log_price))
        if len(self.links) > self.sweep_at:
            self.sweep()
            self.sweep_at = max(self.sweep_min, 2 * len(self.links))
        return reason

    def count_link(self, at: int, seller: str | None, buyer: str | None) -> int:
        if seller is None or buyer is None or seller == buyer:
            return 0
        key = (seller, buyer) if seller < buyer else (buyer, seller)
        times = self.links.setdefault(key, deque())
        while times and times[0] <= at - LINK_WINDOW_DAYS * DAY_MS:
            times.popleft()
        earlier = len(times)
        times.append(at)
        return earlier

    def sweep(self) -> None:
        assert self.latest is not None
        link_cut = self.latest - LINK_WINDOW_DAYS * DAY_MS
        peer_cut = self.latest - PEER_WINDOW_DAYS * DAY_MS
        for key in [k for k, times in self.links.items() if times[-1] <= link_cut]:
            del self.links[key]
        for seg in [s for s, peers in self.peers.items() if peers[-1][0] <= peer_cut]:
            del self.peers[seg]

    def state(self) -> dict[str, object]:
        return {"peers": {s: [list(x) for x in p] for s, p in sorted(self.peers.items())},
                "links": [[a, b, list(t)] for (a, b), t in sorted(self.links.items())],
                "latest": self.latest}


ACCOUNTS = [None, "u1", "u2", "u3", "u4"]
# Prices around a level that moves, so outliers, moves and quiet stretches all happen.
LEVELS = [1_000, 1_050, 980, 1_100, 20_000, 21_000, 19_500, 50, 1_000_000]


@st.composite
def feeds(draw: st.DrawFn) -> list[Sale]:
    n = draw(st.integers(0, 80))
    ordered = draw(st.booleans())
    days = [draw(st.integers(0, 3 * 365)) for _ in range(n)]
    if ordered:
        days.sort()
    return [(draw(st.sampled_from(["a|PSA|10", "a|PSA|9", "b|RAW|-", "c|BGS|9.5"])),
             d * DAY_MS + draw(st.integers(0, 3)),
             draw(st.sampled_from(LEVELS)),
             draw(st.sampled_from(ACCOUNTS)), draw(st.sampled_from(ACCOUNTS)))
            for d in days]


def columns(sales: list[Sale]) -> tuple[list[str], list[int], list[int], list[str | None],
                                        list[str | None]]:
    return ([s[0] for s in sales], [s[1] for s in sales], [s[2] for s in sales],
            [s[3] for s in sales], [s[4] for s in sales])


def state(vetter: Vetter) -> dict[str, object]:
    found = vetter.to_state()
    return {k: found[k] for k in ("peers", "links", "latest")}


@settings(max_examples=150, deadline=None)
@given(feeds(), st.lists(st.integers(0, 80), max_size=6), st.sampled_from([1, 3, 4096]))
def test_batches_answer_and_hold_what_the_sequential_vetter_does(
        feed: list[Sale], cuts: list[int], sweep_min: int) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(vetting, "_SWEEP_MIN", sweep_min)  # small: sweeps within the batch
        reference = SequentialVetter(sweep_min)
        expected = [reference.vet(*sale) for sale in feed]
        vetter = Vetter()
        got: list[str | None] = []
        bounds = [0, *sorted(c for c in cuts if c < len(feed)), len(feed)]
        for start, end in itertools.pairwise(bounds):
            got += vetter.vet_batch(*columns(feed[start:end]))
        assert got == expected
        assert state(vetter) == json.loads(json.dumps(reference.state()))
        if len(feed) > 1:
            # Resumed from its state halfway, a vetter goes on answering the same.
            half = len(feed) // 2
            first = Vetter()
            first.vet_batch(*columns(feed[:half]))
            resumed = Vetter.from_state(json.loads(json.dumps(first.to_state())))
            assert resumed.vet_batch(*columns(feed[half:])) == expected[half:]


@settings(deadline=None)
@given(feeds())
def test_vet_all_is_the_sequential_vetter(feed: list[Sale]) -> None:
    reference = SequentialVetter(4096)
    assert vet_all(*columns(feed)) == [reference.vet(*sale) for sale in feed]


def test_a_bad_price_refuses_the_whole_batch() -> None:
    vetter = Vetter()
    with pytest.raises(ValueError):
        vetter.vet_batch(["s", "s"], [1, 2], [1_000, 0], ["a", "a"], ["b", "b"])
    assert vetter.pair_count() == 0 and vetter.peer_count("s") == 0


@given(st.lists(st.lists(st.floats(-5, 20), min_size=MIN_PEERS, max_size=PEERS), min_size=1,
                max_size=20), st.floats(-5, 20))
def test_the_vectorised_robust_z_is_robust_z_to_the_last_bit(peers: list[list[float]],
                                                             log_price: float) -> None:
    k = np.array([len(p) for p in peers])
    rows = np.array([sorted(p) + [np.inf] * (PEERS - len(p)) for p in peers])
    got = vetting._robust_zs(rows, k, np.full(len(peers), log_price))
    assert got.tolist() == [robust_z(p, log_price) for p in peers]
