"""The behaviour projection, by user: how each user bids (timing against the close,
sniping, proxy use, wins, overpay against the card's value at the close, active hours, the
auctions watched against those bid on) and the market-wide aggregates, from the closings
feed, each closed auction's event log and its recorded watchers (`Store.auction_watchers`;
only watches not later than the auction's end count, so a replay counts the same).

Results (kinds): `behaviour` under the user id, `behaviour_market` under "summary". The
value at the close comes from the market projection's book (same process): the segment's
value just before the auction ended.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from actors.analytics.book import Book
from actors.analytics.runner import Feed, Put
from market.behaviour import UserBehaviour, auction_facts
from market.catalog import segment_key
from market.prices import segment_value
from storage import Store
from storage.records import AnalyticsMessage

KINDS = ("behaviour", "behaviour_market")


class BehaviourProjection:
    name = "behaviour"
    replays = True
    kinds: tuple[str, ...] = KINDS

    def __init__(self, store: Store, book: Callable[[], Book] | None = None) -> None:
        self.store = store
        self.book = book  # the market projection's current book (it is replaced on reset)
        self.reset()

    def reset(self) -> None:
        self.behaviour = UserBehaviour()
        self._touched: set[str] = set()
        self._changed = False

    def replayed(self) -> None:
        self._touched.clear()
        self._changed = False

    def feed(self, store: Store) -> Feed:
        return store.closings_feed

    def position(self, store: Store) -> Any:
        return store.closings_position()

    async def apply(self, rows: Sequence[Any], now: int) -> None:
        for closing in rows:
            record = await self.store.get_auction(closing["auction_id"])
            if record is None:
                continue
            events = await self.store.load_events(closing["auction_id"])
            watches = await self.store.auction_watchers(closing["auction_id"])
            facts = auction_facts(record["spec"], record["view"], events, watches)
            value = await self._value_at(record["asset_id"], facts.closed_at or facts.ends_at)
            self.behaviour.add(facts, value)
            self._touched.update(b.bidder for b in facts.bids)
            self._touched.update(facts.watchers)
            self._changed = True

    async def _value_at(self, asset_id: str, t: int) -> int | None:
        book = self.book() if self.book is not None else None
        if book is None:
            return None
        asset = await self.store.get_asset(asset_id)
        card_id = asset.get("card_id") if asset is not None else None
        if asset is None or not card_id:
            return None
        segment = book.segments.get(
            segment_key(card_id, asset.get("grader") or "RAW", asset.get("grade")))
        if segment is None:
            return None
        at, price = segment.arrays()
        return segment_value(at, price, t - 1)

    async def flush(self, now: int, more: bool = False) -> tuple[list[Put], list[AnalyticsMessage]]:
        if not self._changed:
            return [], []
        puts: list[Put] = [("behaviour", user, self.behaviour.summary(user))
                           for user in sorted(self._touched)]
        puts.append(("behaviour_market", "summary", self.behaviour.market_summary()))
        self._touched.clear()
        self._changed = False
        return puts, []
