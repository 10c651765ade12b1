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
CATCH_UP_WRITE_MS = 60_000  # catching up, segment docs are written at least this often
Change = tuple[str, SaleRecord, str | None]  # a new sale: its segment, the row, its vetting


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
        self._grades: dict[str, dict[str, Any]] = {}  # segment -> its grader and grade
        self.reset()

    def reset(self) -> None:
        self.book = Book()
        self._new: list[Change] = []
        self._names: dict[str, str] = {}
        self._day = -1
        self._dirty: set[str] = set()  # segments whose `segment` doc waits (see `flush`)
        self._dirty_since = 0

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
        every = zip(segments, rows, reasons, strict=True)
        new = list(every) if self.shards == 1 else [
            (segment, sale, reason) for segment, sale, reason in every
            if self.mine(sale["card_id"])]
        self.book.extend([segment for segment, _, _ in new], [sale["at"] for _, sale, _ in new],
                         [sale["price"] for _, sale, _ in new], [sale["pos"] for _, sale, _ in new],
                         [reason is None for _, _, reason in new])
        self._new += new
        for _, sale, _ in new:
            if sale["at"] > now - LIVE_MS:
                self._names[sale["card_id"]] = (await self.cards.get(sale["card_id"])).name

    async def flush(self, now: int, more: bool = False) -> tuple[list[Put], list[AnalyticsMessage]]:
        """The new sales' docs and the candles they moved, always; the `segment` docs of the
        segments they touched only when the feed ran dry (not `more`) or CATCH_UP_WRITE_MS
        after the first one waiting - so a catch-up writes each segment doc about once, not
        once per page.

        Exactly once, though the checkpoint saved with a page's results moves past sales
        whose segment docs wait: what waits is only the memory of which segments are dirty,
        never a result that a restore could not recompute. A restored (or fenced, or
        restarted) projection starts with `_day` -1, so its first flush marks every segment
        dirty and the first flush that writes segment docs rewrites them all from the book,
        which the replay rebuilt up to the checkpoint. Sales and candles never wait: their
        docs are in the save that moves the checkpoint past them. While segment docs wait,
        a segment's `version` (what readers cache its history under) may lag its candles -
        behind, never ahead: it is written after them (`storage.facts.save_projection`
        writes kinds in the order they come)."""
        day = now // DAY_MS
        due = bool(self._dirty) and (not more or now - self._dirty_since >= CATCH_UP_WRITE_MS)
        if not self._new and day == self._day and not due:
            return [], []
        new, self._new = self._new, []
        puts, messages = self._sale_puts(new, now)
        if not self._dirty:
            self._dirty_since = now
        self._dirty.update(segment for segment, _, _ in new)
        if day != self._day:  # medians and values age: refresh every segment daily
            self._day = day
            self._dirty.update(self.book.segments)
        self._candle_puts(new, now, puts, messages)
        if not more or now - self._dirty_since >= CATCH_UP_WRITE_MS:
            keys, self._dirty = sorted(self._dirty), set()
            puts += self._segment_puts(keys, now)
        return puts, messages

    def _sale_puts(self, new: list[Change], now: int) -> tuple[list[Put], list[AnalyticsMessage]]:
        """Every new sale's doc; those of the last day pushed on their card and the market."""
        live_after = now - LIVE_MS
        messages: list[AnalyticsMessage] = []
        docs = [sale_doc(sale, reason) for _, sale, reason in new]
        puts: list[Put] = [("sale", f"{segment}|{sale['at']:013d}|{sale['pos']:012d}", doc)
                           for (segment, sale, _), doc in zip(new, docs, strict=True)]
        for (_, sale, _), doc in zip(new, docs, strict=True):
            if sale["at"] > live_after and len(messages) + 2 <= MAX_MESSAGES:
                card = card_channel(sale["card_id"])
                messages.append({"channel": card, "type": "sale", "data": {"sale": doc}})
                named = {**doc, "name": self._names.get(sale["card_id"], "")}
                messages.append({"channel": "market", "type": "sale", "data": {"sale": named}})
        self._names.clear()
        return puts, messages

    def _candle_puts(self, new: list[Change], now: int, puts: list[Put],
                     messages: list[AnalyticsMessage]) -> None:
        """The candles the new clean sales moved (into `puts`); those of the last day's sales
        pushed live (into `messages`)."""
        clean = [(segment, sale["at"]) for segment, sale, reason in new if reason is None]
        keys = sorted({segment for segment, _ in clean})
        if not keys:
            return
        live_after = now - LIVE_MS
        ids, at, price = self.book.arrays(keys)
        # One numpy key per segment and bucket: those of the last day's sales are pushed.
        index = {key: n for n, key in enumerate(keys)}
        new_ids = np.fromiter((index[segment] for segment, _ in clean), dtype=np.int64,
                              count=len(clean))
        new_at = np.fromiter((t for _, t in clean), dtype=np.int64, count=len(clean))
        # A sale moves its bucket's candle and the moving averages of the candles up to
        # the longest average's span after it: the earliest to latest+span of each segment.
        first = np.full(len(keys), np.iinfo(np.int64).max, dtype=np.int64)
        latest = np.full(len(keys), np.iinfo(np.int64).min, dtype=np.int64)
        np.minimum.at(first, new_ids, new_at)
        np.maximum.at(latest, new_ids, new_at)
        recent = new_at > live_after
        for interval in INTERVALS:
            found = segment_candles(ids, at, price, interval)
            pushed = _bucket_keys(new_ids[recent], bucket_start(new_at[recent], interval))
            since = bucket_start(first, interval)
            rows = np.flatnonzero((found["t"] >= since[found["id"]])
                                  & (found["t"] <= latest[found["id"]] + MA_SPAN_MS))
            live = np.flatnonzero(np.isin(_bucket_keys(found["id"][rows], found["t"][rows]),
                                          pushed)).tolist()  # of `rows`
            ends = found["t"][rows] + INTERVAL_MS[interval]
            # Dict displays, then the averages set in place: several times dict(zip(...)).
            candles: list[Json] = [
                {"t": t, "open": o, "high": h, "low": lo, "close": c, "volume": v, "count": n}
                for t, o, h, lo, c, v, n in zip(*(found[k][rows].tolist()
                                                  for k in CANDLE_FIELDS), strict=True)]
            for days in MA_DAYS:
                means = trailing_means(ids, at, price, found["id"][rows], ends, days)
                name = f"ma_{days}d"
                for candle, x in zip(candles, _rounded(means), strict=True):
                    candle[name] = x
            segments = [keys[n] for n in found["id"][rows].tolist()]
            puts += [("candle", f"{segment}|{interval}|{candle['t']:013d}", candle)
                     for segment, candle in zip(segments, candles, strict=True)]
            for m in live[:max(0, MAX_MESSAGES - len(messages))]:
                segment = segments[m]
                messages.append({"channel": card_channel(segment.split("|")[0]),
                                 "type": "candle",
                                 "data": {**self._public(segment), "interval": interval,
                                          "candle": candles[m]}})

    def _segment_puts(self, keys: list[str], now: int) -> list[Put]:
        """The `segment` docs of these segments: value, medians, counts and changes."""
        if not keys:
            return []
        ids, at, price = self.book.arrays(keys)
        figures = segment_stats(ids, at, price, now, len(keys))
        book = self.book.segments
        cents = {name: _rounded(figures[name]) for name in (
            "value", "median_7d", "median_30d", "median_90d", "last_price", "last_at",
            "value_7d_ago", "value_30d_ago", "value_90d_ago")}
        whole = {name: _whole(figures[name]) for name in (
            "count", "count_30d", "volume_30d", "count_prev_30d", "volume_prev_30d")}
        return [("segment", segment, {
            **self._public(segment), "value": value, "median_7d": m7, "median_30d": m30,
            "median_90d": m90, "last_price": last_price, "last_at": last_at, "count": count,
            "suspect_count": len(book[segment]) - count,
            "version": book[segment].last_pos,  # newest sale's feed pos
            "change_7d": change(value, v7), "change_30d": change(value, v30),
            "change_90d": change(value, v90), "count_30d": c30, "volume_30d": vol30,
            "count_change_30d": change(c30, c_prev), "volume_change_30d": change(vol30, v_prev)})
            for (segment, value, m7, m30, m90, last_price, last_at, v7, v30, v90, count, c30,
                 vol30, c_prev, v_prev) in zip(
                keys, *cents.values(), *whole.values(), strict=True)]

    def _public(self, segment: str) -> dict[str, Any]:
        found = self._grades.get(segment)
        if found is None:
            parts = segment_parts(segment)
            found = self._grades[segment] = {"grader": parts["grader"], "grade": parts["grade"]}
        return found


def change(now: int | None, then: int | None) -> float | None:
    """now / then - 1, to 4 places; None unless both are positive."""
    return round(now / then - 1, 4) if now and then else None


def _rounded(values: np.ndarray) -> list[int | None]:
    """Each float rounded to a Python int (half to even, as `round`), None for NaN."""
    nan = np.isnan(values)
    if len(values) and float(np.abs(np.where(nan, 0, values)).max()) >= 2.0**62:
        return [None if math.isnan(x) else round(x) for x in values.tolist()]  # huge: exact
    out: list[int | None] = np.rint(np.where(nan, 0, values)).astype(np.int64).tolist()
    for i in np.flatnonzero(nan).tolist():
        out[i] = None
    return out


def _whole(values: np.ndarray) -> list[int]:
    """Each float (a count or sum, whole) as a Python int."""
    if len(values) and float(np.abs(values).max()) >= 2.0**62:
        return [int(x) for x in values.tolist()]
    out: list[int] = values.astype(np.int64).tolist()
    return out


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
