"""Outlier and wash-trade vetting of sales, in feed order and deterministic: pure maths.

A sale is *suspect* when it is an "outlier" (its log price is more than OUTLIER_Z robust
z-scores from its segment's recent sales that are not linked) or "linked" (the same two
accounts have already traded LINK_MIN - 1 times within LINK_WINDOW_DAYS, in either
direction). Suspect sales stay in the record but are left out of prices and indexes. An
outlier still counts as a peer of later sales, so a card whose market really moved is
accepted at its new level after a few sales there. A `Vetter` sees the sales in feed order,
one by one or a batch at a time (the batch is vectorised: the same answers as one by one);
the same calls give the same answers. Times are int epoch ms UTC, prices int cents > 0.
Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
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
_COLUMNS = np.arange(PEERS)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


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
    median = _median(peers)
    mad = _median(sorted(abs(x - median) for x in peers))
    return _MAD_TO_SIGMA * (float(log_price) - median) / max(mad, MAD_FLOOR)


def _row_medians(rows: FloatArray, k: IntArray) -> FloatArray:
    """The median of the first k[i] values of each sorted row: `_median`, row by row (the
    same float operations, so the same answers to the last bit)."""
    r = np.arange(len(rows))
    lo, hi = rows[r, (k - 1) // 2], rows[r, k // 2]
    out: FloatArray = np.where(k % 2 == 1, hi, (lo + hi) / 2)
    return out


def _robust_zs(peers: FloatArray, k: IntArray, log_price: FloatArray) -> FloatArray:
    """`robust_z` of each row: its first k[i] values (sorted, the rest +inf) as the peers."""
    median = _row_medians(peers, k)
    held = k[:, None] > _COLUMNS
    deviation = np.sort(np.where(held, np.abs(peers - median[:, None]), np.inf), axis=1)
    mad = _row_medians(deviation, k)
    z: FloatArray = _MAD_TO_SIGMA * (log_price - median) / np.maximum(mad, MAD_FLOOR)
    return z


class Vetter:
    """Vets a feed of sales in order. Holds, per segment, its last <= PEERS unlinked sales
    (at, log price: one row of two arrays, newest last) and, per unordered account pair, the
    times of their sales within the link window; both are pruned, so memory stays bounded by
    the active segments and pairs."""

    def __init__(self) -> None:
        self._segments: list[str] = []  # row -> segment
        self._rows: dict[str, int] = {}  # segment -> row
        self._t: IntArray = np.zeros((0, PEERS), dtype=np.int64)  # peers' at, newest last
        self._lp: FloatArray = np.zeros((0, PEERS), dtype=np.float64)  # their log prices
        self._n: IntArray = np.zeros(0, dtype=np.int64)  # peers held (the last _n columns)
        self._links: dict[tuple[str, str], list[int]] = {}  # times, oldest first
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
        return self.vet_batch([segment], [at], [price], [seller], [buyer])[0]

    def vet_batch(
        self,
        segments: Sequence[str],
        at: npt.ArrayLike,
        price: npt.ArrayLike,
        sellers: Sequence[str | None],
        buyers: Sequence[str | None],
    ) -> list[str | None]:
        """`vet` of each sale in turn, at once: the links are counted sale by sale, the
        outlier tests of the whole batch run together. A bad price refuses the whole batch
        (ValueError) before anything is vetted."""
        times = np.asarray(at, dtype=np.int64).reshape(-1)
        prices = np.asarray(price, dtype=np.int64).reshape(-1)
        if not len(segments) == len(times) == len(prices) == len(sellers) == len(buyers):
            raise ValueError("segments, at, price, sellers and buyers must have the same length")
        if len(prices) and int(prices.min()) <= 0:
            raise ValueError("price must be a positive number of cents")
        linked, sweeps = self._count_links(times.tolist(), sellers, buyers)
        log_price = np.array([math.log(p) for p in prices.tolist()], dtype=np.float64)
        outlier = np.zeros(len(times), dtype=bool)
        start = 0
        # A sweep ran after some sales: the peers are swept at the same points.
        for end, latest in [*sweeps, (len(times), None)]:
            self._vet_peers(segments, times, log_price, linked, outlier, start, end)
            if latest is not None:
                self._sweep_peers(latest)
            start = end
        self._calls += len(times)
        return [LINKED if x else OUTLIER if y else None
                for x, y in zip(linked.tolist(), outlier.tolist(), strict=True)]

    def _count_links(self, times: list[int], sellers: Sequence[str | None],
                     buyers: Sequence[str | None]) -> tuple[npt.NDArray[np.bool_],
                                                            list[tuple[int, int]]]:
        """Which sales are linked (each recorded as it goes), and after which sales a sweep
        ran: (sales done, latest then). Sale by sale: the window cut moves with each sale's
        time, in whatever order the times come."""
        links, need, latest = self._links, LINK_MIN - 1, self._latest
        hits: list[int] = []
        sweeps: list[tuple[int, int]] = []
        for i, (at, seller, buyer) in enumerate(zip(times, sellers, buyers, strict=True)):
            if latest is None or at > latest:
                latest = at
            if seller is not None and buyer is not None and seller != buyer:
                key = (seller, buyer) if seller < buyer else (buyer, seller)
                held = links.get(key)
                if held is None:
                    links[key] = [at]  # a list, not a deque: most pairs trade once
                else:
                    cut, stale = at - _LINK_WINDOW_MS, 0
                    while stale < len(held) and held[stale] <= cut:
                        stale += 1
                    if stale:
                        del held[:stale]
                    if len(held) >= need:
                        hits.append(i)
                    held.append(at)
            if len(links) > self._sweep_at:
                # Amortised: the next sweep waits until what is held has doubled.
                self._latest = latest
                self._sweep_links(latest)
                self._sweep_at = max(_SWEEP_MIN, 2 * len(links))
                sweeps.append((i + 1, latest))
        self._latest = latest
        linked = np.zeros(len(times), dtype=bool)
        linked[hits] = True
        return linked, sweeps

    def _vet_peers(self, segments: Sequence[str], times: IntArray, log_price: FloatArray,
                   linked: npt.NDArray[np.bool_], outlier: npt.NDArray[np.bool_],
                   start: int, end: int) -> None:
        """Outlier tests of the unlinked sales start..end-1 (into `outlier`); they become
        peers. Each segment's held peers and its sales of the batch make one run, in feed
        order; a sale's peers are the <= PEERS entries before it in its run."""
        sales = np.flatnonzero(~linked[start:end]) + start
        if not len(sales):
            return
        rows = self._rows
        row = np.array([rows.get(s, -1) for s in (segments[i] for i in sales.tolist())],
                       dtype=np.int64)
        for i in np.flatnonzero(row < 0).tolist():  # new segments (maybe twice in the batch)
            segment = segments[int(sales[i])]
            if segment not in rows:
                rows[segment] = len(self._segments)
                self._segments.append(segment)
            row[i] = rows[segment]
        self._grow(len(self._segments))
        order = np.argsort(row, kind="stable")
        sales, row = sales[order], row[order]
        touched, first, fresh = np.unique(row, return_index=True, return_counts=True)
        held = self._n[touched]
        run_end = np.cumsum(held + fresh)
        run_start = run_end - held - fresh
        t = np.empty(int(run_end[-1]), dtype=np.int64)
        lp = np.empty(len(t), dtype=np.float64)
        group = np.repeat(np.arange(len(touched)), held)
        column = np.arange(len(group)) - np.repeat(np.cumsum(held) - held, held)
        t[run_start[group] + column] = self._t[touched[group], PEERS - held[group] + column]
        lp[run_start[group] + column] = self._lp[touched[group], PEERS - held[group] + column]
        group = np.repeat(np.arange(len(touched)), fresh)
        at_run = run_start[group] + held[group] + np.arange(len(sales)) - first[group]
        t[at_run] = times[sales]
        lp[at_run] = log_price[sales]
        # Each sale's peers: the PEERS entries before it in its run, within the window.
        index = at_run[:, None] - PEERS + _COLUMNS
        ok = index >= run_start[group][:, None]
        index = np.maximum(index, 0)
        ok &= t[index] > (times[sales] - _PEER_WINDOW_MS)[:, None]
        k = ok.sum(axis=1)
        tested = np.flatnonzero(k >= MIN_PEERS)
        if len(tested):
            peers = np.sort(np.where(ok[tested], lp[index[tested]], np.inf), axis=1)
            z = _robust_zs(peers, k[tested], log_price[sales[tested]])
            outlier[sales[tested]] = np.abs(z) > OUTLIER_Z
        # What is held now: each run's last PEERS entries.
        index = run_end[:, None] - PEERS + _COLUMNS
        ok = index >= run_start[:, None]
        index = np.maximum(index, 0)
        self._t[touched] = np.where(ok, t[index], 0)
        self._lp[touched] = np.where(ok, lp[index], 0.0)
        self._n[touched] = np.minimum(held + fresh, PEERS)

    def _grow(self, rows: int) -> None:
        if rows > len(self._n):
            more = max(rows, 2 * len(self._n)) - len(self._n)
            self._t = np.concatenate((self._t, np.zeros((more, PEERS), dtype=np.int64)))
            self._lp = np.concatenate((self._lp, np.zeros((more, PEERS), dtype=np.float64)))
            self._n = np.concatenate((self._n, np.zeros(more, dtype=np.int64)))

    def _sweep_links(self, latest: int) -> None:
        """Drop account pairs with nothing left inside the window."""
        cut = latest - _LINK_WINDOW_MS
        for key in [k for k, times in self._links.items() if times[-1] <= cut]:
            del self._links[key]

    def _sweep_peers(self, latest: int) -> None:
        """Drop segments whose newest peer is out of the window."""
        used = len(self._segments)
        keep = np.flatnonzero(self._t[:used, -1] > latest - _PEER_WINDOW_MS)
        self._segments = [self._segments[r] for r in keep.tolist()]
        self._rows = {s: r for r, s in enumerate(self._segments)}
        self._t, self._lp, self._n = self._t[keep], self._lp[keep], self._n[keep]

    def peer_count(self, segment: str) -> int:
        """Clean sales held for a segment (at most PEERS)."""
        row = self._rows.get(segment)
        return 0 if row is None else int(self._n[row])

    def pair_count(self) -> int:
        """Account pairs held by the link counter."""
        return len(self._links)

    def to_state(self) -> dict[str, Any]:
        """JSON-ready state, to checkpoint with a projection's results."""
        peers = {}
        for segment in sorted(self._rows):
            row, n = self._rows[segment], int(self._n[self._rows[segment]])
            peers[segment] = [[t, lp] for t, lp in zip(self._t[row, PEERS - n:].tolist(),
                                                      self._lp[row, PEERS - n:].tolist(),
                                                      strict=True)]
        return {
            "peers": peers,
            "links": [[a, b, list(times)] for (a, b), times in sorted(self._links.items())],
            "calls": self._calls,
            "latest": self._latest,
            "sweep_at": self._sweep_at,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Vetter:
        """The Vetter `to_state` was taken from: it answers the next calls identically."""
        vetter = cls()
        held = {s: peers[-PEERS:] for s, peers in state["peers"].items() if peers}
        vetter._segments = list(held)
        vetter._rows = {s: r for r, s in enumerate(vetter._segments)}
        vetter._grow(len(held))
        for row, peers in enumerate(held.values()):
            n = len(peers)
            vetter._t[row, PEERS - n:] = [int(t) for t, _ in peers]
            vetter._lp[row, PEERS - n:] = [float(lp) for _, lp in peers]
            vetter._n[row] = n
        vetter._links = {(a, b): [int(t) for t in times] for a, b, times in state["links"]}
        vetter._calls = int(state["calls"])
        vetter._sweep_at = int(state.get("sweep_at", _SWEEP_MIN))
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
    return Vetter().vet_batch(segments, at, price, sellers, buyers)
