"""User-behaviour analytics of closed auctions: bid timing, sniping, proxy use, wins, overpay,
auctions watched against those bid on.

Pure (no I/O, no clock): `auction_facts` reads one closed auction (its stored spec, final
public view, full event log and recorded watches) into `AuctionFacts`; `UserBehaviour`
accumulates those into fixed-size numpy counters per user (about 40 numbers each, however
many bids) and market-wide counters, and answers `summary(user_id)` and `market_summary()`.
Given `owns` (a shard's users), it keeps per-user counters for those users only - each
answer is the same as an instance keeping everyone's - and the market-wide ones in full.

Watches (`Store.auction_watchers`: who subscribed to the auction's live channel, and when
first) count when they are not later than the auction's end - its `closed` event, or its
`cancelled` one, or else its last deadline - so that folding the auction again later (a
replay, a rebuild) counts the same watchers. The seller's own watch is left out: a seller
cannot bid, and watching one's own listing says nothing of how one buys.

The event log is the stored, private one (`Store.load_events`: what the rules engine in
market.auction emitted, `max_amount` and `req_id` included). Facts are read from:

- `bid` events: `bidder_id`, `amount`, `max_amount` (the bidder's ceiling; absent from public
  copies), `at`, `leader_id` (who leads after it);
- `raised` events: a bidder changing their own bid without a public move - in an English
  auction the leader raising their hidden maximum (a proxy action), in a sealed one a
  replacement bid. Both count as bids of that bidder;
- `extended` events: `ends_at`, the new deadline (English soft close);
- the `closed` event: `ends_at` (the moment it closed: the deadline reached, or the buy-now /
  Dutch bid), `winner_id`, `final_price` (None when unsold).

A public event log works too, with less to say: sealed bids there carry no bidder (skipped),
`raised` events are reduced to the bare fact (skipped) and no bid shows a maximum (no proxies).
Only accepted bids reach the log (a refused command emits nothing), so every bid read is
`accepted`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

__all__ = [
    "SNIPE_FALLBACK_MS",
    "TIMING_BUCKETS",
    "AuctionFacts",
    "Bid",
    "BidColumns",
    "UserBehaviour",
    "auction_facts",
    "empty_summary",
    "timing_buckets",
]

HOUR_MS = 3_600_000
# Bids by time left before the deadline in force when they were placed (extensions included:
# a bid 5 s before an end that it then extends still counts as 5 s before the end).
TIMING_BUCKETS: tuple[str, ...] = (">24h", "24h-1h", "1h-10m", "10m-1m", "<1m")
# Lower bounds of the buckets above, last to first: <1m is [0, 60 s), 10m-1m [60 s, 10 min), ...
_BUCKET_EDGES = np.array([60_000, 600_000, HOUR_MS, 24 * HOUR_MS], dtype=np.int64)
_N_BUCKETS = len(TIMING_BUCKETS)
# A snipe: a bid inside the soft-close window; where the auction has none, in the last 60 s.
SNIPE_FALLBACK_MS = 60_000
_BATCH = 16_384  # bids `add` queues before counting them
_DEFAULT_SOFT_CLOSE_MS = 60_000  # market.spec's default, for a stored spec without the field

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


class Bid(NamedTuple):
    """One bid of an auction, as read from its log."""

    bidder: str
    amount: int
    at: int
    deadline: int  # the auction's end in force when the bid was placed
    is_proxy: bool
    accepted: bool  # always True from a stored log (refusals emit no event)
    leading: bool  # the bidder led right after it (False for sealed: unknown)


class BidColumns(NamedTuple):
    """An auction's bids in log order as parallel tuples (np.asarray-ready): `Bid` by field."""

    bidder: tuple[str, ...]
    amount: tuple[int, ...]
    at: tuple[int, ...]
    deadline: tuple[int, ...]
    is_proxy: tuple[bool, ...]
    accepted: tuple[bool, ...]
    leading: tuple[bool, ...]


_NO_BIDS = BidColumns((), (), (), (), (), (), ())


@dataclass(frozen=True)
class AuctionFacts:
    auction_id: str
    seller_id: str
    type: str  # english | dutch | sealed
    ends_at: int  # the end as created, before any extension
    closed_at: int | None  # when it closed (its deadline, or the bid that closed it)
    soft_close_ms: int  # the extension window; 0 when it has none (only English extends)
    reserve_met: bool | None  # None when there is no reserve
    winner: str | None  # None when unsold
    price: int | None  # the final (hammer) price; None when unsold
    extensions: int
    bids: tuple[Bid, ...]  # in log order
    watchers: tuple[str, ...] = ()  # distinct, by first watch; none after the end, no seller

    @cached_property
    def columns(self) -> BidColumns:
        """The bids as parallel tuples, e.g. np.asarray(facts.columns.amount)."""
        if not self.bids:
            return _NO_BIDS
        return BidColumns(*(tuple(column) for column in zip(*self.bids, strict=True)))

    @property
    def bidders(self) -> tuple[str, ...]:
        """Distinct bidders, in the order of their first bid."""
        return tuple(dict.fromkeys(b.bidder for b in self.bids))

    @property
    def sold(self) -> bool:
        return self.winner is not None


def _is_proxy(kind: str, auction_type: str, event: Mapping[str, Any]) -> bool:
    """English only (Dutch and sealed bids are at face value): a bid with a ceiling above its
    amount, or a `raised` event, which moves nothing but the bidder's hidden maximum."""
    if auction_type != "english":
        return False
    if kind == "raised":
        return True
    ceiling, amount = event.get("max_amount"), event.get("amount")
    return isinstance(ceiling, int) and isinstance(amount, int) and ceiling > amount


def auction_facts(spec: Mapping[str, Any], view: Mapping[str, Any],
                  events: Sequence[Mapping[str, Any]],
                  watches: Iterable[tuple[str, int]] = ()) -> AuctionFacts:
    """The facts of one auction from its stored spec (AuctionSpec.to_dict()), final public
    view (Auction.view), event log (any order; taken by `seq`) and watches ((user_id, at)
    pairs, any order). See the module docstring for the event fields read and the watches
    counted."""
    auction_id = str(spec["auction_id"])
    kind = str(spec["type"])
    ends_at = int(spec["ends_at"])
    soft_close = int(spec.get("soft_close_ms", _DEFAULT_SOFT_CLOSE_MS) or 0)
    if kind != "english":
        soft_close = 0  # the rules engine extends English auctions only
    deadline = ends_at
    extensions = 0
    closed: Mapping[str, Any] | None = None
    cancelled_at: int | None = None
    bids: list[Bid] = []
    for event in sorted(events, key=lambda e: int(e.get("seq", 0))):
        if event.get("auction_id", auction_id) != auction_id:
            continue
        what = event.get("type")
        if what == "extended":
            extensions += 1
            deadline = int(event["ends_at"])
        elif what == "closed":
            closed = event
        elif what == "cancelled":
            cancelled_at = int(event["at"])
        elif what in ("bid", "raised"):
            who, offered = event.get("bidder_id"), event.get("amount")
            if not isinstance(who, str) or not isinstance(offered, int):
                continue  # a public copy that hides who or how much
            bids.append(Bid(who, offered, int(event["at"]), deadline,
                            _is_proxy(what, kind, event), True,
                            event.get("leader_id") == who))

    source: Mapping[str, Any] = closed if closed is not None else view
    winner = source.get("winner_id")
    price = source.get("final_price")
    closed_at = None if closed is None else int(closed.get("ends_at", closed["at"]))
    if spec.get("reserve_price") is None:
        reserve_met: bool | None = None
    elif isinstance(view.get("reserve_met"), bool):
        reserve_met = bool(view["reserve_met"])
    else:
        reserve_met = winner is not None
    end = closed_at if closed_at is not None else (
        cancelled_at if cancelled_at is not None else deadline)
    seller = str(spec["seller_id"])
    watchers = tuple(dict.fromkeys(
        user for user, at in sorted(watches, key=lambda w: (int(w[1]), w[0]))
        if int(at) <= end and user != seller))
    return AuctionFacts(
        auction_id=auction_id,
        seller_id=seller,
        type=kind,
        ends_at=ends_at,
        closed_at=closed_at,
        soft_close_ms=soft_close,
        reserve_met=reserve_met,
        winner=winner if isinstance(winner, str) else None,
        price=price if isinstance(price, int) and winner is not None else None,
        extensions=extensions,
        bids=tuple(bids),
        watchers=watchers,
    )


def timing_buckets(remaining_ms: npt.ArrayLike) -> IntArray:
    """The TIMING_BUCKETS index of each time left before the deadline (ms; < 0 counts as 0)."""
    left = np.maximum(np.asarray(remaining_ms, dtype=np.int64), 0)
    return (_N_BUCKETS - 1 - np.searchsorted(_BUCKET_EDGES, left, side="right")).astype(np.int64)


def _median_of_counts(counts: Mapping[int, int]) -> float | None:
    """The median of values given as {value: how many}."""
    n = sum(counts.values())
    if n == 0:
        return None
    values = sorted(counts)
    cumulative = np.cumsum([counts[v] for v in values])
    low = values[int(np.searchsorted(cumulative, (n - 1) // 2, side="right"))]
    high = values[int(np.searchsorted(cumulative, n // 2, side="right"))]
    return (low + high) / 2


def empty_summary(user_id: str | None = None) -> dict[str, Any]:
    """`UserBehaviour.summary` of a user with nothing counted: zeros, None for ratios."""
    return {
        "user_id": user_id, "bids": 0, "auctions_bid": 0, "auctions_won": 0,
        "win_rate": None, "timing_histogram": dict.fromkeys(TIMING_BUCKETS, 0),
        "snipe_share": None, "proxy_share": None, "avg_overpay": None,
        "overpay_auctions": 0, "active_hours": [0] * 24, "auctions_watched": 0,
        "watched_and_bid": 0, "watched_bid_share": None,
    }


class UserBehaviour:
    """Per-user and market-wide counters over closed auctions; bounded memory per user.

    Users get dense integer codes (`code`); every per-user counter is a row of a numpy array,
    grown by doubling. `add(facts, value)` takes one auction; `ingest_bids` is the vectorised
    core for any batch of bids (one auction or many). `owns`: `add` keeps per-user counters
    for the users it accepts only (a shard's; None: every user); market-wide counters always
    count every auction and bid."""

    def __init__(self, capacity: int = 1024, owns: Callable[[str], bool] | None = None) -> None:
        self.owns = owns
        self._index: dict[str, int] = {}
        self._users: list[str] = []
        size = max(1, capacity)
        self._bids = np.zeros(size, dtype=np.int64)
        self._snipes = np.zeros(size, dtype=np.int64)
        self._proxies = np.zeros(size, dtype=np.int64)
        self._auctions = np.zeros(size, dtype=np.int64)
        self._won = np.zeros(size, dtype=np.int64)
        self._overpaid = np.zeros(size, dtype=np.int64)  # won auctions with a known value
        self._overpay_sum = np.zeros(size, dtype=np.float64)
        self._watched = np.zeros(size, dtype=np.int64)  # auctions watched
        self._watched_bid = np.zeros(size, dtype=np.int64)  # of those, bid on
        self._timing = np.zeros((size, _N_BUCKETS), dtype=np.int64)
        self._hours = np.zeros((size, 24), dtype=np.int64)
        # Market-wide.
        self._n_auctions = 0
        self._n_bids = 0
        self._bidders_hist: dict[int, int] = {}  # bidders -> auctions with that many
        self._extensions = 0
        self._with_reserve = 0
        self._reserve_met = 0
        self._sold = 0
        self._watchers_hist: dict[int, int] = {}  # watchers -> auctions with that many
        self._watches = 0  # watchers over all auctions
        self._watches_bid = 0  # of those, who bid in the auction they watched
        # Bids queued by `add`, counted in batches by `flush`.
        self._q_code: list[int] = []
        self._q_at: list[int] = []
        self._q_deadline: list[int] = []
        self._q_window: list[int] = []
        self._q_proxy: list[bool] = []
        self._q_auction: list[int] = []  # each auction's distinct bidders (and winner)
        self._q_watched: list[int] = []  # each auction's watchers
        self._q_watched_bid: list[int] = []  # each auction's watchers who bid in it

    # ---- users -------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._users)

    def __contains__(self, user_id: object) -> bool:
        return user_id in self._index

    @property
    def users(self) -> list[str]:
        """Every user seen, by code."""
        return list(self._users)

    def code(self, user_id: str) -> int:
        """The user's dense code, assigned on first sight."""
        found = self._index.get(user_id)
        if found is not None:
            return found
        new = len(self._users)
        self._index[user_id] = new
        self._users.append(user_id)
        if new >= self._bids.shape[0]:
            self._grow(2 * self._bids.shape[0])
        return new

    def codes(self, user_ids: Iterable[str]) -> IntArray:
        index = self._index
        return np.array([index[u] if u in index else self.code(u) for u in user_ids],
                        dtype=np.int64)

    def _grow(self, size: int) -> None:
        for name in ("_bids", "_snipes", "_proxies", "_auctions", "_won", "_overpaid",
                     "_overpay_sum", "_watched", "_watched_bid", "_timing", "_hours"):
            old = getattr(self, name)
            new = np.zeros((size, *old.shape[1:]), dtype=old.dtype)
            new[: old.shape[0]] = old
            setattr(self, name, new)

    # ---- ingest ------------------------------------------------------------------------

    def ingest_bids(self, codes: npt.ArrayLike, at: npt.ArrayLike, deadline: npt.ArrayLike,
                    snipe_window_ms: npt.ArrayLike, is_proxy: npt.ArrayLike) -> IntArray:
        """Count a batch of bids (parallel arrays; any mix of users and auctions): bids,
        timing buckets (`deadline` - `at`), snipes (time left < `snipe_window_ms`, a scalar
        or per bid), proxies and UTC hours. Codes must come from `code`/`codes`. Returns the
        distinct codes, ascending. Per-auction counts (auctions, wins) are `add`'s."""
        users = self._count_bids(codes, at, deadline, snipe_window_ms, is_proxy)
        self._n_bids += int(np.size(codes))
        return users

    def _count_bids(self, codes: npt.ArrayLike, at: npt.ArrayLike, deadline: npt.ArrayLike,
                    snipe_window_ms: npt.ArrayLike, is_proxy: npt.ArrayLike) -> IntArray:
        """`ingest_bids` but for the market's bid count (`add` counts every bid itself)."""
        code = np.asarray(codes, dtype=np.int64)
        if code.size == 0:
            return code
        when = np.asarray(at, dtype=np.int64)
        left = np.asarray(deadline, dtype=np.int64) - when
        users, inverse = np.unique(code, return_inverse=True)
        k = users.shape[0]
        self._bids[users] += np.bincount(inverse, minlength=k)
        bucket = timing_buckets(left)
        self._timing[users] += np.bincount(
            inverse * _N_BUCKETS + bucket, minlength=k * _N_BUCKETS).reshape(k, _N_BUCKETS)
        hour = (when // HOUR_MS) % 24
        self._hours[users] += np.bincount(inverse * 24 + hour, minlength=k * 24).reshape(k, 24)
        snipe = left < np.asarray(snipe_window_ms, dtype=np.int64)
        self._snipes[users] += np.bincount(inverse[snipe], minlength=k)
        proxy = np.asarray(is_proxy, dtype=np.bool_)
        self._proxies[users] += np.bincount(inverse[proxy], minlength=k)
        return users

    def add(self, facts: AuctionFacts, value_at_close: int | None = None) -> None:
        """Count one closed auction for every user who bid in it or watched it (those `owns`
        accepts), and for the market.
        `value_at_close`: the lot's market value at close (cents), for the winner's overpay
        (price / value - 1); None when unknown.

        Cheap: the bids are queued and counted by `ingest_bids` in batches of _BATCH (every
        query flushes first), so the numpy work is paid once per batch, not per auction."""
        bids = facts.columns
        winner = facts.winner
        # Market-wide: every auction, bid and watcher.
        takers = set(bids.bidder)
        if winner is not None:
            takers.add(winner)  # a winner always took part (even if a public log hid it)
            self._sold += 1
        n = len(takers)
        self._bidders_hist[n] = self._bidders_hist.get(n, 0) + 1
        watchers = facts.watchers
        watched_bid = [u for u in watchers if u in takers]
        self._watchers_hist[len(watchers)] = self._watchers_hist.get(len(watchers), 0) + 1
        self._watches += len(watchers)
        self._watches_bid += len(watched_bid)
        self._n_auctions += 1
        self._n_bids += len(bids.bidder)
        self._extensions += facts.extensions
        if facts.reserve_met is not None:
            self._with_reserve += 1
            self._reserve_met += int(facts.reserve_met)
        # Per user: the users kept.
        owns = self.owns
        if owns is None:
            self._queue_bids(bids.bidder, bids.at, bids.deadline, bids.is_proxy, facts)
        else:
            keep = [i for i, user in enumerate(bids.bidder) if owns(user)]
            if keep:
                self._queue_bids([bids.bidder[i] for i in keep], [bids.at[i] for i in keep],
                                 [bids.deadline[i] for i in keep],
                                 [bids.is_proxy[i] for i in keep], facts)
            takers = {u for u in takers if owns(u)}
            watchers = tuple(u for u in watchers if owns(u))
            watched_bid = [u for u in watched_bid if owns(u)]
            winner = winner if winner is not None and owns(winner) else None
        if winner is not None:
            code = self.code(winner)
            self._won[code] += 1
            if facts.price is not None and value_at_close is not None and value_at_close > 0:
                self._overpaid[code] += 1
                self._overpay_sum[code] += facts.price / value_at_close - 1.0
        self._q_auction.extend(map(self.code, takers))
        self._q_watched.extend(map(self.code, watchers))
        self._q_watched_bid.extend(map(self.code, watched_bid))
        if len(self._q_code) >= _BATCH:
            self.flush()

    def _queue_bids(self, bidder: Sequence[str], at: Sequence[int], deadline: Sequence[int],
                    is_proxy: Sequence[bool], facts: AuctionFacts) -> None:
        index = self._index
        codes = [index[u] if u in index else self.code(u) for u in bidder]
        window = facts.soft_close_ms if facts.soft_close_ms > 0 else SNIPE_FALLBACK_MS
        self._q_code.extend(codes)
        self._q_at.extend(at)
        self._q_deadline.extend(deadline)
        self._q_window.extend([window] * len(codes))
        self._q_proxy.extend(is_proxy)

    def flush(self) -> None:
        """Count the queued bids now (queries do this themselves)."""
        for queue, counter in ((self._q_auction, self._auctions),
                               (self._q_watched, self._watched),
                               (self._q_watched_bid, self._watched_bid)):
            if queue:
                users, counts = np.unique(np.array(queue, dtype=np.int64), return_counts=True)
                counter[users] += counts
                queue.clear()
        if self._q_code:
            self._count_bids(self._q_code, self._q_at, self._q_deadline, self._q_window,
                             self._q_proxy)
            for queue in (self._q_code, self._q_at, self._q_deadline, self._q_window):
                queue.clear()
            self._q_proxy.clear()

    # ---- queries -----------------------------------------------------------------------

    def summary(self, user_id: str) -> dict[str, Any]:
        """The user's behaviour; zeros (and None for undefined ratios) for an unknown user."""
        self.flush()
        i = self._index.get(user_id)
        if i is None:
            return empty_summary(user_id)
        bids, auctions = int(self._bids[i]), int(self._auctions[i])
        overpaid = int(self._overpaid[i])
        watched, watched_bid = int(self._watched[i]), int(self._watched_bid[i])
        return {
            "user_id": user_id,
            "bids": bids,
            "auctions_bid": auctions,
            "auctions_won": int(self._won[i]),
            "win_rate": int(self._won[i]) / auctions if auctions else None,
            "timing_histogram": dict(zip(TIMING_BUCKETS, self._timing[i].tolist(),
                                         strict=True)),
            "snipe_share": int(self._snipes[i]) / bids if bids else None,
            "proxy_share": int(self._proxies[i]) / bids if bids else None,
            "avg_overpay": float(self._overpay_sum[i]) / overpaid if overpaid else None,
            "overpay_auctions": overpaid,
            "active_hours": self._hours[i].tolist(),
            "auctions_watched": watched,
            "watched_and_bid": watched_bid,
            "watched_bid_share": watched_bid / watched if watched else None,
        }

    def market_summary(self) -> dict[str, Any]:
        """Market-wide: auctions counted, bids, bidders per auction (mean, median), extensions
        per auction (mean), the share of reserve auctions whose reserve was met, sold share,
        watchers per auction (mean, median) and the share of watchers who bid in the auction
        they watched (over every auction's watchers)."""
        self.flush()
        n = self._n_auctions
        hist = self._bidders_hist
        bidders = sum(k * v for k, v in hist.items())
        return {
            "auctions": n,
            "bids": self._n_bids,
            "bidders_per_auction": {
                "mean": bidders / n if n else None,
                "median": _median_of_counts(hist),
            },
            "extensions_per_auction": self._extensions / n if n else None,
            "reserve_auctions": self._with_reserve,
            "reserve_met_share": (self._reserve_met / self._with_reserve
                                  if self._with_reserve else None),
            "sold_share": self._sold / n if n else None,
            "watchers_per_auction": {
                "mean": self._watches / n if n else None,
                "median": _median_of_counts(self._watchers_hist),
            },
            "watcher_bid_share": self._watches_bid / self._watches if self._watches else None,
        }
