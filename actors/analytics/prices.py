"""The price projection, sharded by card: every sale of its cards vetted, candles per day
and week, and each segment's value and medians.

Results (kinds): `sale` under "<segment>|<at>|<pos>" (every sale, suspect ones flagged with
their reason), `candle` under "<segment>|<interval>|<t>" (clean sales only), `segment` under
"<segment>" (value, medians, last sale, counts, 30-day change). Live messages: a `sale` on
`card:<id>` and on `market`, a `candle` on `card:<id>`, for sales of the last day only (a
rebuild or the simulator's history is not news).

Vetting needs every sale (linked accounts trade across cards), so each shard vets the whole
feed and keeps its own cards' sales: deterministic, so every shard agrees.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from actors.analytics.book import Book, sale_segment, segment_parts
from actors.analytics.cards import Cards
from actors.analytics.runner import Feed, Put
from market.prices import INTERVALS, bucket_start
from market.segment_stats import candles as segment_candles
from market.segment_stats import stats as segment_stats
from market.vetting import Vetter
from storage import Store
from storage.records import AnalyticsMessage, Json, SaleRecord

DAY_MS = 86_400_000
LIVE_MS = DAY_MS  # sales younger than this are pushed live
MAX_MESSAGES = 500  # live messages per batch at most
KINDS = ("sale", "candle", "segment")
CANDLE_FIELDS = ("t", "open", "high", "low", "close", "volume", "count")


def shard_of(card_id: str, shards: int) -> int:
    return zlib.crc32(card_id.encode()) % shards


def card_channel(card_id: str) -> str:
    return f"card:{card_id}"


class PriceProjection:
    replays = True
    kinds: tuple[str, ...] = KINDS

    def __init__(self, cards: Cards, shard: int = 0, shards: int = 1) -> None:
        self.shard, self.shards = shard, shards
        self.name = f"prices.{shard}"
        self.cards = cards  # names for the ticker
        self.reset()

    def reset(self) -> None:
        self.vetter = Vetter()
        self.book = Book()
        self._new: list[tuple[str, SaleRecord, str | None]] = []
        self._names: dict[str, str] = {}
        self._day = -1

    def replayed(self) -> None:
        self._new = []
        self._names.clear()  # and the first flush refreshes every segment (`_day` is -1)

    def feed(self, store: Store) -> Feed:
        return store.sales_feed

    def position(self, store: Store) -> Any:
        return store.sales_position()

    def mine(self, card_id: str) -> bool:
        return self.shards == 1 or shard_of(card_id, self.shards) == self.shard

    async def apply(self, rows: Sequence[Any], now: int) -> None:
        for sale in rows:
            segment = sale_segment(sale)
            reason = self.vetter.vet(segment, int(sale["at"]), int(sale["price"]),
                                     sale.get("seller_id"), sale.get("buyer_id"))
            if self.mine(sale["card_id"]):
                self._new.append((self.book.add(sale, reason, segment), sale, reason))
                if int(sale["at"]) > now - LIVE_MS:
                    self._names[sale["card_id"]] = (await self.cards.get(sale["card_id"])).name

    async def flush(self, now: int, more: bool = False) -> tuple[list[Put], list[AnalyticsMessage]]:
        if not self._new and now // DAY_MS == self._day:
            return [], []
        puts: list[Put] = []
        messages: list[AnalyticsMessage] = []
        live_after = now - LIVE_MS
        touched: set[str] = set()
        for segment, sale, reason in self._new:
            when = sale["at"]
            doc = sale_doc(sale, reason)
            puts.append(("sale", f"{segment}|{when:013d}|{sale['pos']:012d}", doc))
            touched.add(segment)
            if when > live_after and len(messages) + 2 <= MAX_MESSAGES:
                card = card_channel(sale["card_id"])
                messages.append({"channel": card, "type": "sale", "data": {"sale": doc}})
                named = {**doc, "name": self._names.get(sale["card_id"], "")}
                messages.append({"channel": "market", "type": "sale", "data": {"sale": named}})
        new, self._new = self._new, []
        self._names.clear()
        day = now // DAY_MS
        if day != self._day:  # medians and values age: refresh every segment daily
            self._day = day
            touched = set(self.book.segments)
        keys = sorted(touched)
        ids, at, price = self.book.arrays(keys)
        # The candles to write: the buckets of the batch's clean sales (one numpy key per
        # segment and bucket); those of its sales of the last day are pushed live too.
        index = {key: n for n, key in enumerate(keys)}
        clean = [(index[seg], sale["at"]) for seg, sale, reason in new if reason is None]
        new_ids = np.array([n for n, _ in clean], dtype=np.int64)
        new_at = np.array([t for _, t in clean], dtype=np.int64)
        for interval in INTERVALS:
            found = segment_candles(ids, at, price, interval)
            wanted = _bucket_keys(new_ids, bucket_start(new_at, interval))
            pushed = _bucket_keys(new_ids[new_at > live_after],
                                  bucket_start(new_at[new_at > live_after], interval))
            have = _bucket_keys(found["id"], found["t"])
            rows = np.flatnonzero(np.isin(have, wanted))
            live = set(np.flatnonzero(np.isin(have, pushed)).tolist())
            columns = {k: found[k][rows].tolist() for k in ("id", *CANDLE_FIELDS)}
            for m, row in enumerate(rows.tolist()):
                segment = keys[columns["id"][m]]
                candle = {k: columns[k][m] for k in CANDLE_FIELDS}
                puts.append(("candle", f"{segment}|{interval}|{candle['t']:013d}", candle))
                if row in live and len(messages) < MAX_MESSAGES:
                    messages.append({"channel": card_channel(segment.split("|")[0]),
                                     "type": "candle",
                                     "data": {**_public(segment), "interval": interval,
                                              "candle": candle}})
        figures = segment_stats(ids, at, price, now, len(keys))
        for n, segment in enumerate(keys):
            puts.append(("segment", segment, self.segment_doc(segment, figures, n)))
        return puts, messages

    def segment_doc(self, segment: str, figures: dict[str, np.ndarray], n: int) -> Json:
        def cents(name: str) -> int | None:
            value = float(figures[name][n])
            return None if math.isnan(value) else round(value)

        value, then = cents("value"), cents("value_30d_ago")
        count = int(figures["count"][n])
        return {**_public(segment), "value": value, "median_7d": cents("median_7d"),
                "median_30d": cents("median_30d"), "median_90d": cents("median_90d"),
                "last_price": cents("last_price"), "last_at": cents("last_at"),
                "count": count, "suspect_count": len(self.book.segments[segment]) - count,
                "change_30d": round(value / then - 1, 4) if value and then else None}


def _public(segment: str) -> dict[str, Any]:
    parts = segment_parts(segment)
    return {"grader": parts["grader"], "grade": parts["grade"]}


def sale_doc(sale: SaleRecord, reason: str | None) -> dict[str, Any]:
    """A sale as the history and the channels show it."""
    return {"card_id": sale["card_id"], "grader": sale["grader"], "grade": sale["grade"],
            "price": int(sale["price"]), "at": int(sale["at"]), "source": sale["source"],
            "ref": sale.get("ref"), "suspect": reason is not None, "reason": reason,
            "pos": int(sale["pos"])}


def _bucket_keys(ids: np.ndarray, t: np.ndarray) -> np.ndarray:
    """One int64 per (segment number, bucket start): buckets are whole days."""
    keys: np.ndarray = ids.astype(np.int64) * 1_000_000 + t // DAY_MS
    return keys
