"""The market projection: repeat-sales indexes (market, per category, per set), movers and
market totals, from every clean sale.

Results (kinds): `index` under "<interval>|<segment>" (segment "market", "category:<c>" or
"set:<name>"; `market.repeat_sales.build_index`'s document plus 7/30/90-day changes),
`movers` under "<window>" (7d, 30d), `market` under "summary" (totals), "tape" (the
latest sales, newest first) and "segments" (the indexes there are). Recomputed from the whole
in-memory book at most every RECOMPUTE_MS while sales arrive (a recompute over 1,000,000
sales is a matter of seconds, not of a request), and once after every start. Live: an
`index` message on `market` when a market or category index's latest point changes, a
`movers` message when a window's movers change.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np

from actors.analytics.book import Book, sale_segment, segment_parts
from actors.analytics.cards import CardInfo, Cards
from actors.analytics.prices import sale_doc
from actors.analytics.runner import Feed, Put
from actors.analytics.vetted import FeedVetting
from market.repeat_sales import build_index
from market.segment_stats import values_at
from market.trends import movers, pct_change
from storage import Store
from storage.records import AnalyticsMessage

DAY_MS = 86_400_000
RECOMPUTE_MS = 5_000
CATCH_UP_RECOMPUTE_MS = 60_000
INDEX_INTERVALS = ("1w", "1mo")
MOVER_WINDOWS = {"7d": 7, "30d": 30}
MOVERS_KEPT = 50  # per list; the route gives at most this many
MOVER_MIN_SALES = 2
MIN_SET_SALES = 50  # a set with fewer clean sales gets no index of its own
TAPE = 50  # latest sales kept for the market page's ticker
CHANGE_DAYS = (7, 30, 90)
KINDS = ("index", "movers", "market")


class MarketProjection:
    name = "market"
    replays = True
    kinds: tuple[str, ...] = KINDS

    def __init__(self, cards: Cards, vetting: FeedVetting | None = None) -> None:
        self.cards = cards
        self.vetting = vetting if vetting is not None else FeedVetting()  # see prices.py
        self.reset()

    def reset(self) -> None:
        self.book = Book()
        self.info: dict[str, CardInfo] = {}  # card id -> catalog facts
        self.dirty = True
        self.tape: deque[dict[str, Any]] = deque(maxlen=TAPE)  # the latest sales, newest last
        self.computed_at: int | None = None
        self._since: int | None = None
        self._more = False  # the last flush was catching up
        self._last: dict[str, Any] = {}  # what the last messages said, by channel key
        self._told = False  # a computation since the start was saved: changes are news
        self.pos = 0  # the feed position of the last sale folded
        self.computed: list[tuple[str, str, dict[str, Any]]] | None = None  # the last indexes

    def replayed(self) -> None:
        self.dirty = True  # recompute once after every start

    def feed(self, store: Store) -> Feed:
        return store.sales_feed

    def position(self, store: Store) -> Any:
        return store.sales_position()

    async def apply(self, rows: Sequence[Any], now: int) -> None:
        segments = [sale_segment(sale) for sale in rows]
        reasons = self.vetting.reasons(rows, segments)
        self.book.extend(segments, [sale["at"] for sale in rows],
                         [sale["price"] for sale in rows], [sale["pos"] for sale in rows],
                         [r is None for r in reasons])
        for card_id in dict.fromkeys(sale["card_id"] for sale in rows):
            if card_id not in self.info:
                self.info[card_id] = await self.cards.get(card_id)
        for sale, reason in list(zip(rows, reasons, strict=True))[-TAPE:]:
            self.tape.append({**sale_doc(sale, reason), "name": self.info[sale["card_id"]].name})
        self.dirty = self.dirty or bool(rows)
        if rows:
            self.pos = int(rows[-1]["pos"])

    async def flush(self, now: int, more: bool = False) -> tuple[list[Put], list[AnalyticsMessage]]:
        # While catching up (`more`), the whole-book recompute waits for the end - unless
        # a minute has passed, so a long catch-up still shows progress.
        if self._since is None:
            self._since = now  # the first flush after a start
        last = self._since if self.computed_at is None else self.computed_at
        wait = CATCH_UP_RECOMPUTE_MS if more else RECOMPUTE_MS
        # Caught up (the feed ran dry after a catch-up): the results are due at once.
        due = (not more and (self.computed_at is None or self._more)) or now - last >= wait
        self._more = more
        new_day = self.computed_at is not None and now // DAY_MS != self.computed_at // DAY_MS
        if not ((self.dirty and due) or new_day):
            return [], []
        self.dirty = False
        self.computed_at = now
        puts: list[Put] = []
        messages: list[AnalyticsMessage] = []
        # The whole-book work runs in a thread (numpy lets go of the GIL for much of it):
        # the price and behaviour projections sharing this actor's loop go on meanwhile.
        indexes, movers_docs = await asyncio.to_thread(self._compute, now)
        self.computed = indexes
        segments = []
        for interval, segment, doc in indexes:
            puts.append(("index", f"{interval}|{segment}", doc))
            if (segment == "market" or segment.startswith("category:")) and doc["points"]:
                point = doc["points"][-1]
                self._tell(messages, f"index|{interval}|{segment}", point, {
                    "channel": "market", "type": "index",
                    "data": {"segment": segment, "interval": interval, "point": point}})
            if interval == INDEX_INTERVALS[0]:
                segments.append({"segment": segment, "method": doc["method"]})
        puts.append(("market", "segments", {"segments": segments}))
        for window, doc in movers_docs.items():
            puts.append(("movers", window, doc))
            lists = {k: v for k, v in doc.items() if k != "computed_at"}
            self._tell(messages, f"movers|{window}", lists,
                       {"channel": "market", "type": "movers", "data": doc})
        puts.append(("market", "summary", self.summary(now)))
        puts.append(("market", "tape", {"sales": list(reversed(self.tape))}))
        self._told = True
        return puts, messages

    def _compute(self, now: int) -> tuple[list[tuple[str, str, dict[str, Any]]],
                                          dict[str, dict[str, Any]]]:
        return self.indexes(now), self.movers(now)

    def _tell(self, messages: list[AnalyticsMessage], key: str, value: Any,
              message: AnalyticsMessage) -> None:
        if self._last.get(key) != value:
            if self._told:  # the first computation after a start is not news; later ones
                messages.append(message)  # are, a first index point or category included
            self._last[key] = value

    # -- the computations ------------------------------------------------------------------
    def _arrays(self) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
        keys = sorted(self.book.segments)
        return (keys, *self.book.arrays(keys))

    def indexes(self, now: int) -> list[tuple[str, str, dict[str, Any]]]:
        keys, ids, at, price = self._arrays()
        info = [self.info.get(k.split("|")[0]) for k in keys]
        category = np.array([i.category if i else "" for i in info] or [""], dtype=object)
        sets = np.array([i.set if i else "" for i in info] or [""], dtype=object)
        groups: list[tuple[str, np.ndarray]] = [("market", np.ones(len(ids), dtype=bool))]
        if len(ids):
            for c in sorted({i.category for i in info if i and i.category}):
                groups.append((f"category:{c}", category[ids] == c))
            for s in sorted({i.set for i in info if i and i.set}):
                mask = sets[ids] == s
                if int(mask.sum()) >= MIN_SET_SALES:
                    groups.append((f"set:{s}", mask))
        out = []
        for segment, mask in groups:
            for interval in INDEX_INTERVALS:
                doc = build_index(ids[mask], at[mask], price[mask], interval)
                t = np.array([p["t"] for p in doc["points"]], dtype=np.int64)
                v = np.array([p["value"] for p in doc["points"]], dtype=float)
                change = {f"{d}d": pct_change(t, v, now, d) if len(t) else None
                          for d in CHANGE_DAYS}
                out.append((interval, segment,
                            {"segment": segment, "interval": interval, **doc,
                             "change": change, "computed_at": now}))
        return out

    def movers(self, now: int) -> dict[str, dict[str, Any]]:
        keys, ids, at, price = self._arrays()
        n = len(keys)
        value_now = values_at(ids, at, price, now, n)
        parts = [segment_parts(k) for k in keys]
        out = {}
        for window, days in MOVER_WINDOWS.items():
            since = now - days * DAY_MS
            value_then = values_at(ids, at, price, since, n)
            recent = at > since
            volume = np.bincount(ids[recent], weights=price[recent], minlength=n)
            count = np.bincount(ids[recent], minlength=n)
            rows = [{**parts[i], "value_now": _cents(value_now[i]),
                     "value_then": _cents(value_then[i]), "volume": int(volume[i]),
                     "count": int(count[i])} for i in range(n)]
            # A value moved by one lone sale is noise: gainers and losers need MOVER_MIN_SALES
            # in the window; the most traded are whatever traded most.
            found = {**movers([r for r in rows if r["count"] >= MOVER_MIN_SALES], MOVERS_KEPT),
                     "most_traded": movers(rows, MOVERS_KEPT)["most_traded"]}
            counts = {(r["card_id"], r["grader"], r["grade"]): r["count"] for r in rows}
            for items in found.values():
                for item in items:
                    info = self.info.get(item["card_id"])
                    item["name"] = info.name if info else ""
                    item["count"] = counts[item["card_id"], item["grader"], item["grade"]]
            out[window] = {"window": window, **found, "computed_at": now}
        return out

    def summary(self, now: int) -> dict[str, Any]:
        last = self.book.last_at
        return {"sales_total": self.book.sales, "suspect_total": self.book.suspect,
                "segments": len(self.book.segments), "cards": len(self.info),
                "last_sale_at": last, "computed_at": now}


def _cents(value: float) -> int | None:
    return None if math.isnan(value) else round(value)
