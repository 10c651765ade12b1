"""The behaviour projection, sharded by user: how each user bids (timing against the close,
sniping, proxy use, wins, overpay against the card's value at the close, active hours, the
auctions watched against those bid on) and the market-wide aggregates, from the closings
feed, each closed auction's event log and its recorded watchers (`Store.auction_watchers`;
only watches not later than the auction's end count, so a replay counts the same).

Shard i of n (`behaviour.<i>`, its own checkpoint) folds every closing but keeps per-user
counters only for the users whose crc32 maps to i (`shard_of`, as price shards do cards);
every shard counts the market-wide aggregates, and shard 0 writes them. The closings are
loaded once for all the shards of a process (`ClosingFacts`).

Results (kinds): `behaviour` under the user id (every shard, each its own users),
`behaviour_market` under "summary" (shard 0 only). The value at the close comes from the
market projection's book (same process): the segment's value just before the auction ended.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from actors.analytics.book import Book
from actors.analytics.closings import ClosingFacts
from actors.analytics.prices import shard_of
from actors.analytics.runner import Feed, Put
from market.behaviour import UserBehaviour
from storage import Store
from storage.records import AnalyticsMessage

KINDS = ("behaviour", "behaviour_market")
# Names of the projection before it was sharded: `ece rebuild analytics` forgets their
# checkpoints (their results are the shards' kinds, rewritten by the shards).
RETIRED_NAMES = ("behaviour",)


class BehaviourProjection:
    replays = True

    def __init__(self, store: Store, book: Callable[[], Book] | None = None, shard: int = 0,
                 shards: int = 1, closings: ClosingFacts | None = None) -> None:
        self.shard, self.shards = shard, shards
        self.name = f"behaviour.{shard}"
        self.kinds: tuple[str, ...] = KINDS if shard == 0 else KINDS[:1]
        self.closings = closings if closings is not None else ClosingFacts(store, book)
        self.reset()

    def mine(self, user_id: str) -> bool:
        return self.shards == 1 or shard_of(user_id, self.shards) == self.shard

    def reset(self) -> None:
        self.behaviour = UserBehaviour(owns=None if self.shards == 1 else self.mine)
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
            loaded = await self.closings.get(closing)
            if loaded is None:
                continue
            facts, value = loaded
            self.behaviour.add(facts, value)
            self._touched.update(user for user in (*facts.columns.bidder, *facts.watchers)
                                 if self.mine(user))
            self._changed = True

    async def flush(self, now: int, more: bool = False) -> tuple[list[Put], list[AnalyticsMessage]]:
        if not self._changed:
            return [], []
        puts: list[Put] = [("behaviour", user, self.behaviour.summary(user))
                           for user in sorted(self._touched)]
        if self.shard == 0:
            puts.append(("behaviour_market", "summary", self.behaviour.market_summary()))
        self._touched.clear()
        self._changed = False
        return puts, []
