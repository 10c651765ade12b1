"""The analytics part of the Store contract: fact feeds and projection results.

Projections (`actors.analytics`) tail the **fact feeds** - sales and auction closings - by a
global position, and write their **results together with their checkpoint**
(`save_projection`), so that a crash resumes without loss or double counting (a restarted
projection replays the feed up to its checkpoint to rebuild its state). Results are whole
documents of a `kind` under an ordered string `key` (e.g. kind "candle", key
"<segment>|1d|<t>"): the routes read them (`get_projection_doc`, `scan_projection`), never
recomputing per request.

Positions: SQLite hands them out inside the writing transaction, so they are gap-free and
in commit order. MongoDB takes them from a counter document ($inc) before the insert, so a
position may be missing for a moment (a writer between its $inc and its insert) or for
ever (a writer that died there): readers wait a short while at a gap, then pass it
(`actors.analytics.Tail`).

Watches are not a feed: a user *watches* an auction when they subscribe to its live channel
(`record_watch`, once per user and auction, the first time kept); the behaviour projection
reads an auction's watchers (`auction_watchers`) when it folds the auction's closing.
"""

from __future__ import annotations

import abc
from typing import Any

import msgspec

from market.catalog import parse_grader, segment_key
from market.errors import MarketError
from market.money import MAX_AMOUNT
from storage.records import AnalyticsMessage, ClosingRecord, Json, SaleRecord


def _plain_int(value: Any) -> Any:
    """What msgspec does not encode itself: int subclasses (bson's Int64, from MongoDB)."""
    if isinstance(value, int):
        return int(value)
    raise TypeError(f"cannot encode {type(value).__name__}")


# Compact JSON of stored documents and of the routes that answer them: the same bytes as
# json.dumps(separators=(",", ":")), several times faster.
encode_json = msgspec.json.Encoder(enc_hook=_plain_int).encode


def json_text(value: Any) -> str:
    """`encode_json` as text: what the SQLite store writes into its JSON columns."""
    return encode_json(value).decode()

# Sources of a sale.
SOURCE_AUCTION, SOURCE_OFFER, SOURCE_EXTERNAL = "auction", "offer", "external"
SALE_SOURCES: tuple[str, ...] = (SOURCE_AUCTION, SOURCE_OFFER, SOURCE_EXTERNAL)
# Outcomes of a closing.
SOLD, UNSOLD, PAYMENT_FAILED_OUTCOME, ASSET_MOVED_OUTCOME = (
    "sold", "unsold", "payment_failed", "asset_moved")
# A SaleRecord's stored fields but its pos, in the order of the SQLite columns.
SALE_FIELDS: tuple[str, ...] = ("key", "card_id", "grader", "grade", "price", "at", "source",
                                "ref", "seller_id", "buyer_id")
# The analytics log keeps at most this many messages (older ones are trimmed on save).
LOG_KEEP = 10_000


# The earliest sale time accepted (1990-01-01 UTC): a time in seconds, not ms, is refused.
EARLIEST_SALE_MS = 631_152_000_000
_MAX_KEY = 200


def check_sale(sale: SaleRecord, now_ms: int) -> None:
    """Refuse (ValueError) a sale the projections could not fold: the card id, grader and
    grade as `market.catalog.segment_key` takes them (the grader normalised, the grade a
    number), a price in whole cents from 1 to MAX_AMOUNT, a time from 1990 to a day from
    now in ms, a known source. Both stores run it on every `add_sales` row."""
    key = sale.get("key")
    if not isinstance(key, str) or not 0 < len(key) <= _MAX_KEY:
        raise ValueError(f"sale key must be a string of 1-{_MAX_KEY} characters")
    grader, grade = sale.get("grader"), sale.get("grade")
    try:
        segment_key(sale.get("card_id"), grader, grade)
    except MarketError as exc:
        raise ValueError(f"sale {key!r}: {exc.message}") from None
    if grader != parse_grader(grader) or (grade is not None and not isinstance(grade, int | float)):
        raise ValueError(f"sale {key!r}: grader and grade as the catalog writes them")
    price, at = sale.get("price"), sale.get("at")
    if not isinstance(price, int) or isinstance(price, bool) or not 0 < price <= MAX_AMOUNT:
        raise ValueError(f"sale {key!r}: price must be whole cents from 1 to {MAX_AMOUNT}")
    if not isinstance(at, int) or isinstance(at, bool) or not (
            EARLIEST_SALE_MS <= at <= now_ms + 86_400_000):
        raise ValueError(f"sale {key!r}: at must be epoch ms from 1990 to now")
    if sale.get("source") not in SALE_SOURCES:
        raise ValueError(f"sale {key!r}: source must be one of {SALE_SOURCES}")


def check_watch(user_id: object, auction_id: object, at: object) -> None:
    """Refuse (ValueError) a watch that is not two non-empty ids of at most 200 characters
    and a time in epoch ms (an int)."""
    for name, value in (("user_id", user_id), ("auction_id", auction_id)):
        if not isinstance(value, str) or not 0 < len(value) <= _MAX_KEY:
            raise ValueError(f"{name} must be a string of 1-{_MAX_KEY} characters")
    if not isinstance(at, int) or isinstance(at, bool) or at < 0:
        raise ValueError("at must be epoch ms")


def auction_sale_key(auction_id: str) -> str:
    return f"auction:{auction_id}"


def offer_sale_key(offer_id: str) -> str:
    return f"offer:{offer_id}"


class FactStore(abc.ABC):
    """Fact feeds and projection results; a base of `storage.base.Store`."""

    # -- the sales feed --------------------------------------------------------------------
    @abc.abstractmethod
    async def add_sales(self, sales: list[SaleRecord]) -> int:
        """Append sales (their `pos` is ignored and set by the store), skipping any whose
        `key` is in the feed already; returns how many were added. Every row is checked
        first (`check_sale`): one bad row refuses the call (ValueError), nothing added.
        SQLite: one transaction; MongoDB: one insert_many (ordered=False), duplicates
        skipped."""

    @abc.abstractmethod
    async def sales_feed(self, after_pos: int, limit: int = 10_000) -> list[SaleRecord]:
        """Sales with pos > after_pos, in pos order, at most `limit`."""

    @abc.abstractmethod
    async def sales_position(self) -> int:
        """The highest pos in the sales feed (0 when empty)."""

    # -- the closings feed -----------------------------------------------------------------
    @abc.abstractmethod
    async def closings_feed(self, after_pos: int, limit: int = 10_000) -> list[ClosingRecord]:
        """Closings with pos > after_pos, in pos order, at most `limit`."""

    @abc.abstractmethod
    async def closings_position(self) -> int:
        """The highest pos in the closings feed (0 when empty)."""

    # -- watches -----------------------------------------------------------------------------
    @abc.abstractmethod
    async def record_watch(self, user_id: str, auction_id: str, at: int) -> bool:
        """Note that `user_id` watched `auction_id` (subscribed to its live channel) at `at`
        (epoch ms): once per user and auction, the first time kept. True if recorded now;
        False if the pair is recorded already or the auction does not exist or is not open
        (scheduled or live), so naming made-up or finished auctions stores nothing.
        ValueError for ids that are not strings of 1-200 characters or an `at` that is no
        int (`check_watch`). SQLite: probed first without the write lock; a new pair is one
        INSERT whose auction check is in the same transaction (a watch is stored before the
        auction's close commits, or not at all). MongoDB: the auction read, then an insert
        under a unique (auction_id, user_id) index; a close that commits between the two
        may let one watch in after the close (a rare race like a feed's gap: the running
        behaviour projection may have folded the closing without it; a rebuild counts it
        if its `at` is not after the close)."""

    @abc.abstractmethod
    async def auction_watchers(self, auction_id: str) -> list[tuple[str, int]]:
        """(user_id, at) of every recorded watch of the auction, by `at` then user id."""

    # -- projection results and checkpoints ------------------------------------------------
    @abc.abstractmethod
    async def projection_checkpoint(self, name: str) -> int:
        """The feed position projection `name` has written its results up to (0: none)."""

    @abc.abstractmethod
    async def save_projection(self, name: str, expect: int, pos: int,
                              puts: list[tuple[str, str, Json | None]],
                              messages: list[AnalyticsMessage] | None = None) -> bool:
        """Move `name`'s checkpoint from `expect` to `pos` together with its results.

        `puts` are (kind, key, doc): doc replaces the stored document (upsert), None deletes
        it. `messages` are appended to the analytics log (and the log trimmed to its last
        LOG_KEEP). Fenced: only if the checkpoint is `expect` now; otherwise nothing is
        written and the answer is False (another instance or a rebuild moved it). Kind by
        kind, in the order the kinds first come in `puts`: a reader that sees a document sees
        those of the kinds before it (a version carrier goes after what it describes). SQLite: one
        transaction of up to 2,000 documents; a bigger save is written in several, each
        fenced, the checkpoint moving with the last, so that bid commits never wait behind a
        whole catch-up batch (a crash in between leaves results ahead of the checkpoint, as
        on MongoDB). MongoDB: checks the checkpoint, writes the puts (idempotent), the
        messages, then moves the checkpoint with a conditional update; a crash in between
        leaves results ahead of the checkpoint, which the retry writes again with the same
        values (projections write whole values, never increments)."""

    @abc.abstractmethod
    async def reset_projections(self, names: list[str], kinds: list[str]) -> None:
        """Forget these projections' checkpoints and delete every document of these kinds
        (for `ece rebuild`): a running instance's next save is fenced."""

    @abc.abstractmethod
    async def get_projection_doc(self, kind: str, key: str) -> Json | None: ...

    @abc.abstractmethod
    async def get_projection_json(self, kind: str, key: str) -> bytes | None:
        """`get_projection_doc` as compact JSON bytes, decoded by nobody on the way (a route
        that answers a large document as it is stored)."""

    @abc.abstractmethod
    async def get_projection_docs(self, kind: str, keys: list[str]) -> dict[str, Json]:
        """The stored documents of these keys (missing ones left out)."""

    @abc.abstractmethod
    async def scan_projection(self, kind: str, start: str, end: str, limit: int = 1000,
                              reverse: bool = False) -> list[tuple[str, Json]]:
        """(key, doc) of `kind` with start <= key < end, by key (descending when
        `reverse`), at most `limit` (<= 0: none)."""

    @abc.abstractmethod
    async def count_projection(self, kind: str) -> int:
        """How many documents of `kind` are stored."""

    # -- the analytics log (live messages) -------------------------------------------------
    @abc.abstractmethod
    async def analytics_log(self, after_pos: int, limit: int = 1000) -> list[AnalyticsMessage]:
        """Messages with pos > after_pos, in pos order, at most `limit`."""

    @abc.abstractmethod
    async def analytics_log_position(self) -> int:
        """The highest pos in the analytics log (0 when empty)."""
