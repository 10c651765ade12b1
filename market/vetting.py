"""Outlier and wash-trade vetting of sales, sequential and deterministic: pure maths.

A sale is *suspect* when it is an "outlier" (its log price is more than OUTLIER_Z robust
z-scores from its segment's recent sales that are not linked) or "linked" (the same two
accounts have already traded LINK_MIN - 1 times within LINK_WINDOW_DAYS, in either
direction). Suspect sales stay in the record but are left out of prices and indexes. An
outlier still counts as a peer of later sales, so a card whose market really moved is
accepted at its new level after a few sales there. A `Vetter` sees the sales
one by one in feed order; the same calls give the same answers. Times are int epoch ms UTC,
prices int cents > 0. Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from market.prices import DAY_MS

OUTLIER_Z = 3.5
PEERS = 10
MIN_PEERS = 4
PEER_WINDOW_DAYS = 365
MAD_FLOOR = 0.12  # in log price (~13%): below it, a handful of peers' spread is noise, not signal
LINK_MIN = 3
LINK_WINDOW_DAYS = 180
OUTLIER = "outlier"
LINKED = "linked"
REASONS: tuple[str, ...] = (OUTLIER, LINKED)

_MAD_TO_SIGMA = 0.6745  # MAD of a normal distribution in standard deviations
_PEER_WINDOW_MS = PEER_WINDOW_DAYS * DAY_MS
_LINK_WINDOW_MS = LINK_WINDOW_DAYS * DAY_MS
_SWEEP_MIN = 4096  # pairs held before the first sweep of stale segments and account pairs


def _median(sorted_values: list[float]) -> float:
    n = len(sorted_values)
    mid = n // 2
    return sorted_values[mid] if n % 2 else (sorted_values[mid - 1] + sorted_values[mid]) / 2


def robust_z(peer_log_prices: npt.ArrayLike, log_price: float) -> float:
    """Robust z-score 0.6745·(x - median) / max(MAD, MAD_FLOOR), all in log price.

    Plain Python on purpose: peers are a handful, where numpy's per-call cost dominates."""
    peers = sorted(np.asarray(peer_log_prices, dtype=np.float64).ravel().tolist())
    if not peers:
        raise ValueError("robust_z needs at least one peer")
    return _robust_z(peers, float(log_price))


def _robust_z(peers: list[float], log_price: float) -> float:
    """robust_z of sorted peers."""
    median = _median(peers)
    mad = _median(sorted(abs(x - median) for x in peers))
    return _MAD_TO_SIGMA * (log_price - median) / max(mad, MAD_FLOOR)


class Vetter:
    """Vets a feed of sales in order. Holds, per segment, its last <= PEERS unlinked sales
    (at, log price) and, per unordered account pair, the times of their sales within the link
    window; both are pruned, so memory stays bounded by the active segments and pairs."""

    def __init__(self) -> None:
        self._peers: dict[str, deque[tuple[int, float]]] = {}  # (at, log price)
        self._links: dict[tuple[str, str], deque[int]] = {}
        self._calls = 0
        self._sweep_at = _SWEEP_MIN
        self._latest: int | None = None

    def vet(
        self, segment: str, at: int, price: int, seller: str | None, buyer: str | None
    ) -> str | None:
        """None for a clean sale, else its reason: "linked" (checked first) or "outlier".

        outlier: |robust_z| > OUTLIER_Z against the segment's last <= PEERS unlinked sales with
        at - PEER_WINDOW_DAYS < peer at, when there are at least MIN_PEERS of them.
        linked: seller and buyer given, different, with >= LINK_MIN - 1 earlier sales between
        them (either way) with at - LINK_WINDOW_DAYS < their at. Every sale counts toward
        links; every sale not linked becomes a peer (an outlier too: a market that moved is
        recognised after a few sales at its new level).
        """
        at, price = int(at), int(price)
        if price <= 0:
            raise ValueError("price must be a positive number of cents")
        self._latest = at if self._latest is None else max(self._latest, at)
        linked = self._count_link(at, seller, buyer) >= LINK_MIN - 1
        peers = self._peers.get(segment)
        reason: str | None = LINKED if linked else None
        log_price = math.log(price)
        if reason is None and peers and len(peers) >= MIN_PEERS:
            cut = at - _PEER_WINDOW_MS
            recent = sorted([lp for t, lp in peers if t > cut])
            if len(recent) >= MIN_PEERS and abs(_robust_z(recent, log_price)) > OUTLIER_Z:
                reason = OUTLIER
        if reason != LINKED:
            # Outliers join the peers too: a genuine move to a new price level is flagged
            # only until the new level makes up half of the peers, not for a year.
            if peers is None:
                peers = self._peers[segment] = deque(maxlen=PEERS)
            peers.append((at, log_price))
        self._calls += 1
        if len(self._links) > self._sweep_at:
            # Amortised: the next sweep waits until what is held has doubled.
            self._sweep()
            self._sweep_at = max(_SWEEP_MIN, 2 * len(self._links))
        return reason

    def _count_link(self, at: int, seller: str | None, buyer: str | None) -> int:
        """Earlier sales between the two accounts within the window; records this one."""
        if seller is None or buyer is None or seller == buyer:
            return 0
        key = (seller, buyer) if seller < buyer else (buyer, seller)
        times = self._links.get(key)
        if times is None:
            times = self._links[key] = deque()
        while times and times[0] <= at - _LINK_WINDOW_MS:
            times.popleft()
        earlier = len(times)
        times.append(at)
        return earlier

    def _sweep(self) -> None:
        """Drop account pairs and segments with nothing left inside their windows."""
        assert self._latest is not None
        link_cut, peer_cut = self._latest - _LINK_WINDOW_MS, self._latest - _PEER_WINDOW_MS
        for key in [k for k, times in self._links.items() if times[-1] <= link_cut]:
            del self._links[key]
        for seg in [s for s, peers in self._peers.items() if peers[-1][0] <= peer_cut]:
            del self._peers[seg]

    def peer_count(self, segment: str) -> int:
        """Clean sales held for a segment (at most PEERS)."""
        return len(self._peers.get(segment, ()))

    def pair_count(self) -> int:
        """Account pairs held by the link counter."""
        return len(self._links)

    def to_state(self) -> dict[str, Any]:
        """JSON-ready state, to checkpoint with a projection's results."""
        return {
            "peers": {s: [list(x) for x in peers] for s, peers in sorted(self._peers.items())},
            "links": [[a, b, list(times)] for (a, b), times in sorted(self._links.items())],
            "calls": self._calls,
            "latest": self._latest,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Vetter:
        """The Vetter `to_state` was taken from: it answers the next calls identically."""
        vetter = cls()
        vetter._peers = {
            s: deque(((int(t), float(lp)) for t, lp in peers), maxlen=PEERS)
            for s, peers in state["peers"].items()
        }
        vetter._links = {(a, b): deque(int(t) for t in times) for a, b, times in state["links"]}
        vetter._calls = int(state["calls"])
        latest = state["latest"]
        vetter._latest = None if latest is None else int(latest)
        return vetter


def vet_all(
    segments: Sequence[str],
    at: npt.ArrayLike,
    price: npt.ArrayLike,
    sellers: Sequence[str | None],
    buyers: Sequence[str | None],
) -> list[str | None]:
    """`Vetter.vet` of each sale of a whole history, in the given (feed) order."""
    times = np.asarray(at, dtype=np.int64).tolist()
    prices = np.asarray(price, dtype=np.int64).tolist()
    if not len(segments) == len(times) == len(prices) == len(sellers) == len(buyers):
        raise ValueError("segments, at, price, sellers and buyers must have the same length")
    vetter = Vetter()
    return [
        vetter.vet(s, t, p, sel, buy)
        for s, t, p, sel, buy in zip(segments, times, prices, sellers, buyers, strict=True)
    ]
