"""The price projection, sharded by card: every sale of its cards vetted, candles per day
and week, and each segment's value and medians.

Results (kinds): `sale` under "<segment>|<at>|<pos>" (every sale, suspect ones flagged with
their reason), `candle` under "<segment>|<interval>|<t>" (clean sales only), `segment` under
"<segment>" (value, medians, last sale, counts, 30-day change). Live messages: a `sale` on
`card:<id>` and on `market`, a `candle` on `card:<id>`, for sales of the last day only (a
rebuild or the simulator's history is not news).

Vetting needs every sale (linked accounts trade across cards): the shards and the market
projection of one process share one `FeedVetting` of the whole feed (each projection has its
own unless given one); every shard keeps its own cards' sales.
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
from actors.analytics.vetted import FeedVetting
from market.prices import INTERVALS, WEEK_MS, bucket_start
from market.segment_stats import MA_DAYS, trailing_means
from market.segment_stats import candles as segment_candles
from market.segment_stats import stats as segment_stats
from storage import Store
from storage.records import AnalyticsMessage, Json, SaleRecord

DAY_MS = 86_400_000
LIVE_MS = DAY_MS  # sales younger than this are pushed live
MAX_MESSAGES = 500  # live messages per batch at most
KINDS = ("sale", "candle", "segment")
CANDLE_FIELDS = ("t", "open", "high", "low", "close", "volume", "count")  # as flush writes them
CANDLE_DOC_FIELDS = (*CANDLE_FIELDS, *(f"ma_{days}d" for days in MA_DAYS))
INTERVAL_MS = {"1d": DAY_MS, "1w": WEEK_MS}
MA_SPAN_MS = max(MA_DAYS) * DAY_MS


def shard_of(card_id: str, shards: int) -> int:
    return zlib.crc32(card_id.encode()) % shards


def card_channel(card_id: str) -> str:
    return f"card:{card_id}"


class PriceProjection:
    replays = True
    kinds: tuple[str, ...] = KINDS

    def __init__(self, cards: Cards, shard: int = 0, shards: int = 1,
                 vetting: FeedVetting | None = None) -> None:
        self.shard, self.shards = shard, shards
        self.name = f"prices.{shard}"
        self.cards = cards  # names for the ticker
        self.vetting = vetting if vetting is not None else FeedVetting()
        self._mine: dict[str, bool] = {}  # card id -> in this shard
        self.reset()

    def reset(self) -> None:
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
        found = self._mine.get(card_id)
        if found is None:
            found = self._mine[card_id] = (self.shards == 1
                                           or shard_of(card_id, self.shards) == self.shard)
        return found

    async def apply(self, rows: Sequence[Any], now: int) -> None:
        segments = [sale_segment(sale) for sale in rows]
        reasons = self.vetting.reasons(rows, segments)
        new = [(segment, sale, reason)
               for segment, sale, reason in zip(segments, rows, reasons, strict=True)
               if self.mine(sale["card_id"])]
        self.book.extend([segment for segment, _, _ in new], [sale["at"] for _, sale, _ in new],
                         [sale["price"] for _, sale, _ in new], [sale["pos"] for _, sale, _ in new],
                         [reason is None for _, _, reason in new])
        self._new += new
        for _, sale, _ in new:
            if sale["at"] > now - LIVE_MS:
                self._names[sale["card_id"]] = (await self.cards.get(sale["card_id"])).name

    async def flush(self, now: int, more: bool = False) -> tuple[list[Put], list[AnalyticsMessage]]:
        if not self._new and now // DAY_MS == self._day:
            return [], []
        messages: list[AnalyticsMessage] = []
        live_after = now - LIVE_MS
        new, self._new = self._new, []
        docs = [sale_doc(sale, reason) for _, sale, reason in new]
        puts: list[Put] = [("sale", f"{segment}|{sale['at']:013d}|{sale['pos']:012d}", doc)
                           for (segment, sale, _), doc in zip(new, docs, strict=True)]
        for (_, sale, _), doc in zip(new, docs, strict=True):
            if sale["at"] > live_after and len(messages) + 2 <= MAX_MESSAGES:
                card = card_channel(sale["card_id"])
                messages.append({"channel": card, "type": "sale", "data": {"sale": doc}})
                named = {**doc, "name": self._names.get(sale["card_id"], "")}
                messages.append({"channel": "market", "type": "sale", "data": {"sale": named}})
        touched = {segment for segment, _, _ in new}
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
        new_ids = np.array([index[seg] for seg, _, reason in new if reason is None],
                           dtype=np.int64)
        new_at = np.array([sale["at"] for _, sale, reason in new if reason is None],
                          dtype=np.int64)
        # A sale moves its bucket's candle and the moving averages of the candles up to
        # the longest average's span after it: the earliest to latest+span of each segment.
        first = np.full(len(keys), np.iinfo(np.int64).max, dtype=np.int64)
        latest = np.full(len(keys), np.iinfo(np.int64).min, dtype=np.int64)
        np.minimum.at(first, new_ids, new_at)
        np.maximum.at(latest, new_ids, new_at)
        for interval in INTERVALS:
            found = segment_candles(ids, at, price, interval)
            pushed = _bucket_keys(new_ids[new_at > live_after],
                                  bucket_start(new_at[new_at > live_after], interval))
            have = _bucket_keys(found["id"], found["t"])
            since = bucket_start(first, interval)
            rows = np.flatnonzero((found["t"] >= since[found["id"]])
                                  & (found["t"] <= latest[found["id"]] + MA_SPAN_MS))
            live = np.flatnonzero(np.isin(have[rows], pushed)).tolist()  # of `rows`
            columns = {k: found[k][rows].tolist() for k in ("id", *CANDLE_FIELDS)}
            ends = found["t"][rows] + INTERVAL_MS[interval]
            for days in MA_DAYS:
                means = trailing_means(ids, at, price, found["id"][rows], ends, days)
                columns[f"ma_{days}d"] = [None if math.isnan(x) else round(x)
                                         for x in means.tolist()]
            segments = [keys[n] for n in columns["id"]]
            # Dict displays, then the averages set in place: several times dict(zip(...)).
            candles: list[Json] = [
                {"t": t, "open": o, "high": h, "low": lo, "close": c, "volume": v, "count": n}
                for t, o, h, lo, c, v, n in zip(*(columns[k] for k in CANDLE_FIELDS),
                                                strict=True)]
            for name in CANDLE_DOC_FIELDS[len(CANDLE_FIELDS):]:
                for candle, x in zip(candles, columns[name], strict=True):
                    candle[name] = x
            puts += [("candle", f"{segment}|{interval}|{candle['t']:013d}", candle)
                     for segment, candle in zip(segments, candles, strict=True)]
            for m in live[:max(0, MAX_MESSAGES - len(messages))]:
                segment = segments[m]
                messages.append({"channel": card_channel(segment.split("|")[0]),
                                 "type": "candle",
                                 "data": {**_public(segment), "interval": interval,
                                          "candle": candles[m]}})
        figures = segment_stats(ids, at, price, now, len(keys))
        for n, segment in enumerate(keys):
            puts.append(("segment", segment, self.segment_doc(segment, figures, n)))
        return puts, messages

    def segment_doc(self, segment: str, figures: dict[str, np.ndarray], n: int) -> Json:
        def cents(name: str) -> int | None:
            value = float(figures[name][n])
            return None if math.isnan(value) else round(value)

        value = cents("value")
        count = int(figures["count"][n])
        return {**_public(segment), "value": value, "median_7d": cents("median_7d"),
                "median_30d": cents("median_30d"), "median_90d": cents("median_90d"),
                "last_price": cents("last_price"), "last_at": cents("last_at"),
                "count": count, "suspect_count": len(self.book.segments[segment]) - count,
                "version": self.book.segments[segment].last_pos,  # newest sale's feed pos
                **{f"change_{d}d": change(value, cents(f"value_{d}d_ago")) for d in (7, 30, 90)},
                "count_30d": int(figures["count_30d"][n]),
                "volume_30d": int(figures["volume_30d"][n]),
                "count_change_30d": change(int(figures["count_30d"][n]),
                                           int(figures["count_prev_30d"][n])),
                "volume_change_30d": change(int(figures["volume_30d"][n]),
                                            int(figures["volume_prev_30d"][n]))}


def change(now: int | None, then: int | None) -> float | None:
    """now / then - 1, to 4 places; None unless both are positive."""
    return round(now / then - 1, 4) if now and then else None


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
