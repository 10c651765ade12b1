"""Storage contract shared by the SQLite and MongoDB back ends.

Every method is async so that callers (Ray actors, aiohttp gateway processes) never block
their event loop on I/O, whichever back end sits behind the interface.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from market.catalog import normal_grade
from market.errors import ASSET_MOVED, PAYMENT_FAILED
from market.offers import ACCEPTED, ACTIVE
from storage.facts import FactStore
from storage.ownership import OwnershipStore
from storage.records import (
    AccountRecord,
    AssetRecord,
    AuctionRecord,
    CardRecord,
    EntryRecord,
    Json,
    NewNotice,
    NoticeRecord,
    OfferRecord,
    PostingRecord,
    ProvenanceRecord,
    SecondChanceRecord,
    TradeRecord,
    UserRecord,
)

# Auction statuses the store itself reasons about (the market owns the full state machine).
OPEN_STATUSES: tuple[str, ...] = ("scheduled", "live")
FINISHED_STATUSES: tuple[str, ...] = ("closed", "cancelled")

# `listed_in` of an asset locked by an accepted offer's swap: OFFER_LOCK_PREFIX + offer_id.
OFFER_LOCK_PREFIX = "offer:"
# Offer statuses in which a host still owns the offer.
LIVE_OFFER_STATUSES: tuple[str, ...] = (ACTIVE, ACCEPTED)


def offer_lock(offer_id: str) -> str:
    return OFFER_LOCK_PREFIX + offer_id


# `settle_error` of an auction whose winner got nothing: when it was settled, the asset was
# no longer owned by the seller through this listing, so no trade was recorded.
SETTLE_ASSET_MOVED = ASSET_MOVED
# `settle_error` of an auction whose winner could not pay (`fail_payment`).
SETTLE_PAYMENT_FAILED = PAYMENT_FAILED


class StoreError(Exception):
    """Any storage failure that is not a business conflict."""


class Conflict(StoreError):
    """A business rule refused the write; `code` is stable and safe to show to clients."""

    def __init__(self, code: str, message: str | None = None) -> None:
        super().__init__(message or code)
        self.code: str = code
        self.message: str = message or code

    def __repr__(self) -> str:
        return f"Conflict({self.code!r}, {self.message!r})"


@dataclass
class CommitBatch:
    """One group commit: events, public views, private snapshots (and the notices they
    caused) of many auctions.

    events: each dict has at least ``auction_id`` and ``seq``; stored verbatim.
    views: auction_id -> public view (must carry "status" and "seq"; may carry "ends_at").
    snapshots: auction_id -> private snapshot (its seq under "seq").
    """

    events: list[dict[str, Any]] = field(default_factory=list)
    views: dict[str, dict[str, Any]] = field(default_factory=dict)
    snapshots: dict[str, dict[str, Any]] = field(default_factory=dict)
    # User notices these events caused (outbid), each with `data["auction_id"]`: stored by
    # the same commit (SQLite: the same transaction; MongoDB: after the events, so a crash in
    # between can lose them), never for an auction the commit fenced out.
    notices: list[NewNotice] = field(default_factory=list)

    def auction_ids(self) -> set[str]:
        ids = {str(e["auction_id"]) for e in self.events}
        ids.update(self.views)
        ids.update(self.snapshots)
        return ids

    def is_empty(self) -> bool:
        return not (self.events or self.views or self.snapshots)


def username_key(username: str) -> str:
    """Case-insensitive uniqueness key for usernames (casefold handles e.g. German ß)."""
    return username.casefold()


def sort_name(card: Mapping[str, Any]) -> str:
    """The key cards are ordered by in `Store.search_cards` (then by `card_id`): the
    casefolded name. Stores keep it alongside the card; it is not part of `CardRecord`.

    The cursor of the page after a card is `(sort_name(card), card["card_id"])`: pass it as
    `after` to get the cards strictly after that one.
    """
    return str(card["name"]).casefold()


_MAX_CODE_POINT = 0x10FFFF
_SURROGATES = range(0xD800, 0xE000)


def prefix_bounds(prefix: str) -> tuple[str, str | None]:
    """`(low, high)` such that a string starts with `prefix` iff `low <= s < high` in code
    point order (SQLite's BINARY collation on UTF-8 and MongoDB's simple string order agree
    with it); `high` None means no upper bound. Nothing in `prefix` is a wildcard."""
    chars = list(prefix)
    while chars:
        last = ord(chars.pop()) + 1
        if last in _SURROGATES:
            last = _SURROGATES.stop  # not encodable in UTF-8: the next real code point
        if last <= _MAX_CODE_POINT:
            return prefix, "".join(chars) + chr(last)
    return prefix, None


def search_prefixes(terms: Iterable[str]) -> list[str]:
    """A search's query terms as the stores match them: non-empty, without duplicates."""
    return list(dict.fromkeys(t for t in terms if t))


def population_row(grader: str, grade: Any, count: int) -> dict[str, Any]:
    """One `Store.population` row; a whole grade as an int (10.0 -> 10), a half as a float."""
    return {"grader": grader, "grade": normal_grade(grade), "count": int(count)}


def population_order(row: Mapping[str, Any]) -> tuple[str, float]:
    """Sort key of population rows: grader ascending, then grade descending (None last)."""
    grade = row["grade"]
    return str(row["grader"]), (1.0 if grade is None else -float(grade))


class Store(FactStore, OwnershipStore):
    """Persistence for users, the card catalog, assets and their tokens' provenance chains,
    auctions (event log + views + snapshots) and trades."""

    # -- lifecycle -------------------------------------------------------------------------
    @abc.abstractmethod
    async def open(self) -> None:
        """Connect and create schema/indexes; idempotent and safe from many processes."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    async def __aenter__(self) -> Store:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- users -----------------------------------------------------------------------------
    @abc.abstractmethod
    async def create_user(self, user: UserRecord) -> None:
        """Insert {user_id, username, password_hash, created_at}; Conflict USERNAME_TAKEN."""

    @abc.abstractmethod
    async def get_user(self, user_id: str) -> UserRecord | None: ...

    @abc.abstractmethod
    async def get_user_by_username(self, username: str) -> UserRecord | None:
        """Case-insensitive lookup."""

    @abc.abstractmethod
    async def set_portfolio_public(self, user_id: str, public: bool) -> bool:
        """Set the user's `portfolio_public`; False when there is no such user."""

    # -- card catalog ----------------------------------------------------------------------
    @abc.abstractmethod
    async def create_card(self, card: CardRecord) -> None:
        """Insert a catalog card with its search `terms`; Conflict CARD_EXISTS."""

    @abc.abstractmethod
    async def get_card(self, card_id: str) -> CardRecord | None:
        """The card as created (optional text fields None when not set), or None."""

    @abc.abstractmethod
    async def search_cards(
        self,
        terms: list[str],
        category: str | None = None,
        set_name: str | None = None,
        limit: int = 50,
        after: tuple[str, str] | None = None,
    ) -> list[CardRecord]:
        """Cards where every term is a prefix of one of the card's stored `terms`.

        Terms are literal (no wildcards: `%`, `_`, `.`, `*` and `\\` are characters like
        any other) and compared as they are: normalise them with
        `market.catalog.query_terms` first. No terms (or only empty ones): every card.
        `category` and `set_name` filter by equality. Ordered by `(sort_name(card),
        card_id)`; `after` is that pair of the last card of the previous page and the
        result starts strictly after it. At most `limit` cards (none if `limit` <= 0).
        """

    @abc.abstractmethod
    async def population(self, card_id: str) -> list[dict[str, Any]]:
        """The Pop Report of a card: `[{grader, grade, count}]` over its assets (those with
        a grader, not redeemed), one row per grader and grade; `grade` None for RAW.
        Ordered by grader, then grade descending (None last)."""

    # -- assets ----------------------------------------------------------------------------
    @abc.abstractmethod
    async def create_asset(self, asset: AssetRecord, mint: ProvenanceRecord | None = None) -> None:
        """Insert {asset_id, owner_id, title, metadata, created_at, token_id} and, for a
        graded copy, {card_id, grader, grade, cert} (listed_in starts None). A missing or
        None `token_id` is stored as `market.provenance.token_id_for(asset_id)`.

        `mint`, the token's first record (seq 1, kind mint, to the owner), is written in the
        same atomic write as the asset: either both exist or neither (Conflict
        PROVENANCE_CONFLICT if it is not such a record). Without it the token's chain
        starts empty (a card minted before tokens).

        Conflict ASSET_EXISTS if the id (or the token id) exists; CERT_EXISTS if `grader`
        and `cert` are both set and another asset has the same pair (the database's unique
        index decides, so of concurrent creates exactly one wins). The store does not check
        that the card exists.
        """

    @abc.abstractmethod
    async def get_asset_by_token(self, token_id: str) -> AssetRecord | None:
        """The asset whose `token_id` this is (shaped like get_asset's), or None."""

    # -- token provenance ------------------------------------------------------------------
    @abc.abstractmethod
    async def load_provenance(self, token_id: str) -> list[ProvenanceRecord] | None:
        """The token's chain, seq ascending, each record as stored; [] for an asset minted
        before tokens; None when no asset has this token id."""

    @abc.abstractmethod
    async def append_provenance(self, token_id: str, record: ProvenanceRecord) -> None:
        """Append `record` and apply the ownership change it records, in one atomic write:
        a `transfer` sets `owner_id` to `record["to"]`; a `redeem` marks the asset
        `redeemed` (owner unchanged; the token is burned: nothing follows, it is left out of
        `population` and cannot be listed); a `mint` (on an empty chain, to the owner)
        changes nothing else. For sales use `settle(trade, transfer)` instead.

        Idempotent: if the chain's record at `record["seq"]` already is this very record,
        nothing changes. Otherwise refused, nothing changed, with Conflict:
        TOKEN_NOT_FOUND (no asset has the token); ASSET_REDEEMED (the token is burned);
        PROVENANCE_CONFLICT if `seq` is not the chain's length + 1, `prev_hash` not the
        last record's hash (64 zeros on an empty chain), `from` not the asset's owner (a
        mint: `to` not the owner), a first record that is not a mint or a mint that is not
        first; ASSET_LISTED for a transfer or redeem of an asset listed in an auction (that
        auction's settle or release moves or frees it).
        """

    @abc.abstractmethod
    async def get_asset(self, asset_id: str) -> AssetRecord | None:
        """The asset with every AssetRecord key (graded ones None on a legacy asset)."""

    @abc.abstractmethod
    async def list_assets(self, owner_id: str, limit: int | None = None,
                          after: str | None = None) -> list[AssetRecord]:
        """The owner's assets ordered by `asset_id`, shaped like get_asset's; redeemed ones
        included. `after`: only assets whose id is greater (the last id of the previous
        page). At most `limit` (all when None; none if <= 0)."""

    # -- auctions --------------------------------------------------------------------------
    @abc.abstractmethod
    async def create_auction(self, record: AuctionRecord) -> None:
        """Atomically claim the asset (exists, owned by seller, not listed) and insert.

        Conflict codes: ASSET_NOT_FOUND, NOT_OWNER, ASSET_LISTED, AUCTION_EXISTS.
        """

    @abc.abstractmethod
    async def get_auction(self, auction_id: str) -> AuctionRecord | None:
        """The auction record; `settle_error` is None unless settle() found the asset moved."""

    @abc.abstractmethod
    async def list_auctions(
        self, status: str | None = None, limit: int = 200, seller_id: str | None = None
    ) -> list[Json]:
        """Stored public views; ends_at ascending, except closed/cancelled: newest first."""

    @abc.abstractmethod
    async def open_auctions(self, host: str | None = None) -> list[AuctionRecord]:
        """Records with status scheduled or live (optionally only those hosted by `host`)."""

    @abc.abstractmethod
    async def commit(self, batch: CommitBatch) -> set[str]:
        """Group commit; returns auction ids fenced out by an existing (auction_id, seq)."""

    @abc.abstractmethod
    async def load_events(
        self, auction_id: str, after_seq: int = 0, limit: int | None = None
    ) -> list[Json]: ...

    # -- settlement ------------------------------------------------------------------------
    @abc.abstractmethod
    async def settle(self, trade: TradeRecord, transfer: ProvenanceRecord | None = None) -> bool:
        """Sell the asset to the buyer, record the trade, mark the auction settled.

        Idempotent saga step. Returns True only for the call that settled the auction with
        a sale. If the asset is no longer owned by the seller through this listing
        (`listed_in` == the auction), or was redeemed, nothing moves and no trade is
        recorded; the auction is still marked settled, with `settle_error` =
        SETTLE_ASSET_MOVED, a warning is logged and False is returned. Any call on a settled
        auction is a no-op returning False. Conflict AUCTION_NOT_FOUND if the auction does
        not exist.

        `transfer`, the token's record of this sale (kind transfer, from the seller, to the
        buyer), is appended in the same atomic step that moves the asset, and only then: a
        retried or concurrent settle appends it at most once, an ASSET_MOVED one never.
        Conflict PROVENANCE_CONFLICT, nothing changed and the auction left unsettled, if it
        is not such a record or does not extend the chain (seq, prev_hash) while the sale
        would otherwise happen.

        Facts (storage.facts): a sale of a catalog card's graded copy appends its SaleRecord
        (source auction, key `auction_sale_key`, price = trade price) to the sales feed, and
        the settling call appends the auction's ClosingRecord (sold, or asset_moved), in the
        same atomic step (MongoDB: before `settled` is set; both idempotent by key).
        """

    @abc.abstractmethod
    async def release(self, auction_id: str, asset_id: str) -> bool:
        """Unlist the asset of an unsold/cancelled auction, mark settled; True if newly.
        Appends the auction's ClosingRecord (unsold) in the same step, once."""

    @abc.abstractmethod
    async def unsettled_finished(self) -> list[AuctionRecord]:
        """Finished auctions whose settlement saga is not over: not settled yet, or settled
        but their users not told yet (`mark_told`). Oldest end first."""

    @abc.abstractmethod
    async def mark_told(self, auction_id: str) -> None:
        """The settlement saga's last step is done (its notices are stored): the auction
        leaves `unsettled_finished`. Idempotent; does nothing before it is settled."""

    @abc.abstractmethod
    async def get_trade(self, auction_id: str) -> TradeRecord | None: ...

    @abc.abstractmethod
    async def list_trades(
        self, asset_id: str | None = None, user_id: str | None = None, limit: int = 200
    ) -> list[TradeRecord]:
        """Newest first; user_id matches buyer or seller."""

    # -- money: accounts and the journal (market.ledger) ------------------------------------
    @abc.abstractmethod
    async def post_entry(self, entry: EntryRecord) -> EntryRecord:
        """Apply a balanced journal entry (`market.ledger.Entry.to_dict()`) exactly once and
        return it as stored, with `after` (each account's balance after it).

        - An entry with this `entry_id` already applied: returned as stored, nothing changes
          (even if the given postings differ). One half-applied by a crash (MongoDB) is
          completed (or, if refused, removed) first.
        - A posting that would take a `user:` account or `fees` below 0: Conflict
          INSUFFICIENT_FUNDS, nothing stored, nothing changed. `external` may go negative.
        - At most one posting may debit a `user:` account or `fees` (StoreError otherwise).
        - Otherwise every account's balance changes by its posting and its `version` by 1, a
          posting record (account, version, ..., balance after) is stored per account, the
          entry is stored, and each `user:` posting adds a `payment` notice for its user:
          key `payment:<entry_id>`, data {entry_id, cause, ref: cause_key, amount, balance,
          version}. SQLite does all of it in one transaction; MongoDB in idempotent steps
          (the entry first, marked pending) that this method or `recover_ledger` finishes
          after a crash, so a reader may briefly see some of the balances changed.
        """

    @abc.abstractmethod
    async def get_entry(self, entry_id: str) -> EntryRecord | None:
        """The applied entry with this id (with `after`), or None (also while half-applied)."""

    @abc.abstractmethod
    async def get_account(self, account: str) -> AccountRecord:
        """The account's balance and version; balance 0, version 0 if it never had a posting."""

    @abc.abstractmethod
    async def user_balances(self) -> dict[str, tuple[int, int]]:
        """user_id -> (balance, version) of every `user:` account that had a posting."""

    @abc.abstractmethod
    async def list_postings(self, account: str, before_version: int | None = None,
                            limit: int = 50) -> list[PostingRecord]:
        """The account's postings, newest (highest version) first; `before_version`: only
        those with a lower version (the last one of the previous page)."""

    @abc.abstractmethod
    async def recover_ledger(self) -> int:
        """Finish every half-applied entry (or remove it if it is refused now); how many.
        Always 0 on SQLite, where an entry is one transaction."""

    @abc.abstractmethod
    async def check_ledger(self) -> list[str]:
        """What is wrong with the ledger, in words; [] when sound: the balances do not sum
        to 0, a `user:` or `fees` balance is negative, an account's balance or version
        disagrees with its postings, an entry's postings do not sum to 0 or lack their
        posting records, or an entry is half-applied."""

    # -- the user channel: per-user notices with a global feed -------------------------------
    @abc.abstractmethod
    async def add_notices(self, notices: list[NewNotice]) -> list[NoticeRecord]:
        """Store notices, each with its user's next `seq` (1, 2, ... without gaps) and the
        next global `pos`; returned in the given order. A notice whose (user_id, key) is
        stored already is not added again: its stored record is returned. Concurrent
        callers in many processes never give two notices one (user_id, seq) or one pos."""

    @abc.abstractmethod
    async def load_notices(self, user_id: str, after_seq: int = 0,
                           limit: int = 100) -> list[NoticeRecord]:
        """The user's notices with seq > after_seq, seq ascending, at most `limit`."""

    async def last_notice_seq(self, user_id: str) -> int:
        """The user's latest notice seq (0 when none). Back ends override this scan."""
        seq = 0
        while batch := await self.load_notices(user_id, seq, 1000):
            seq = batch[-1]["seq"]
        return seq

    @abc.abstractmethod
    async def notice_feed(self, after_pos: int, limit: int = 1000) -> list[NoticeRecord]:
        """Every user's notices with pos > after_pos, pos ascending, at most `limit`.

        Positions increase but a reader may see a gap that fills a moment later (MongoDB
        allocates a pos before inserting; SQLite can leave a gap for a rolled-back insert
        that never fills): readers wait briefly for a gap, then move past it."""

    @abc.abstractmethod
    async def notice_position(self) -> int:
        """The highest pos stored (0 when none): where a new reader of the feed starts."""

    # -- payment failure ---------------------------------------------------------------------
    @abc.abstractmethod
    async def fail_payment(self, trade: TradeRecord,
                           second_chance: SecondChanceRecord | None = None) -> bool:
        """The winner of `trade` could not pay: settle the auction without a sale.

        Idempotent saga step, like `settle`: on an unsettled auction, unlist the asset (it
        stays the seller's), store `second_chance` if given (one per auction), and mark the
        auction settled with `settle_error` = PAYMENT_FAILED; no trade is recorded. True
        only for the call that did it; False when the auction was settled already. Conflict
        AUCTION_NOT_FOUND if it does not exist. Appends the auction's ClosingRecord
        (payment_failed) in the same step, once.
        """

    @abc.abstractmethod
    async def get_second_chance(self, auction_id: str) -> SecondChanceRecord | None: ...

    @abc.abstractmethod
    async def list_second_chances(self, user_id: str,
                                  limit: int = 100) -> list[SecondChanceRecord]:
        """The runner-up's second-chance offers, newest first."""


    # -- trade offers (market.offers; hosted like auctions) -----------------------------------
    @abc.abstractmethod
    async def save_offers(self, offers: list[OfferRecord],
                          notices: Mapping[str, list[NewNotice]] | None = None) -> set[str]:
        """Group commit of whole offer records, fenced by their `seq`, with the notices their
        changes cause (offer_id -> notices, as `add_notices` adds them).

        The notices of an offer that is written are added and its `told_seq` set to its seq
        (SQLite: in the same transaction; MongoDB: after the offers, so a crash in between
        leaves `told_seq` < `seq` and the caller adds them again); those of a fenced offer
        are not.

        A record with seq 1 is inserted; one with seq n > 1 replaces the stored record only
        if that one has seq n - 1. A record whose seq, status and `updated_at` equal the
        stored ones is a retry: nothing changes, not fenced. Returns the ids fenced out,
        whose stored seq is anything else (for seq 1: the offer exists) - the caller no
        longer owns them; nothing of theirs is written.
        `told_seq` is the store's own (kept as stored; 0 on insert). SQLite: one
        transaction; MongoDB: one write per offer, in the given order (a counter is given
        before its parent, so a crash leaves a child whose parent is still `active`,
        which the host repairs on recovery).
        """

    @abc.abstractmethod
    async def get_offer(self, offer_id: str) -> OfferRecord | None: ...

    @abc.abstractmethod
    async def list_offers(self, user_id: str, box: str | None = None,
                          status: str | None = None, limit: int = 50,
                          before: tuple[int, str] | None = None) -> list[OfferRecord]:
        """The user's offers, newest first by `(created_at, offer_id)`: box "in" (to the
        user), "out" (from the user) or None (both); `status` filters by equality;
        `before` is that pair of the last offer of the previous page."""

    @abc.abstractmethod
    async def open_offers(self, host: str | None = None) -> list[OfferRecord]:
        """Offers a host still has work on: status active or accepted, or any status whose
        notices are not stored yet (`told_seq` < `seq`); optionally only those of `host`."""

    @abc.abstractmethod
    async def offers_with_assets(self, asset_ids: list[str],
                                 status: str = "active") -> list[OfferRecord]:
        """Offers with this status naming any of these assets on either side."""

    @abc.abstractmethod
    async def count_offers(self, from_id: str, status: str = "active") -> int:
        """How many offers `from_id` sent that have this status."""

    @abc.abstractmethod
    async def mark_offer_told(self, offer_id: str, seq: int) -> None:
        """The notices of the offer's change `seq` are stored: `told_seq` = max(told, seq)."""

    @abc.abstractmethod
    async def lock_assets(self, lock: str, claims: list[tuple[str, str]]) -> None:
        """Set `listed_in` = `lock` (e.g. "offer:<id>") on every asset of `claims`, a list of
        (asset_id, expected owner), or on none of them: Conflict ASSET_NOT_FOUND, NOT_OWNER,
        ASSET_REDEEMED or ASSET_LISTED (listed in an auction or another lock), naming the
        asset in its message, and every lock this call took is given back. An asset locked
        by `lock` already counts as claimed (a retried saga step). A `listed_in` that is a
        lock is never mistaken for an orphaned auction claim."""

    @abc.abstractmethod
    async def unlock_assets(self, lock: str, asset_ids: list[str]) -> None:
        """Clear `listed_in` of those of these assets whose `listed_in` is `lock`."""

    @abc.abstractmethod
    async def move_locked_asset(self, lock: str, asset_id: str, frm: str, to: str,
                                record: ProvenanceRecord | None = None) -> bool:
        """Give an asset locked by `lock` and owned by `frm` to `to`, unlocking it, and
        append `record` (its token's transfer record) in the same atomic write. True when
        this call moved it; False when it had been moved already (owned by `to`, not locked
        by `lock`: a retried step); Conflict ASSET_MOVED otherwise, nothing changed.
        Conflict PROVENANCE_CONFLICT, nothing changed, if `record` does not extend the
        chain. When `record` carries a price and the asset is a catalog card's graded copy,
        the move appends its SaleRecord (source offer, key `offer_sale_key(record.ref)`,
        seller `frm`, buyer `to`) to the sales feed in the same atomic write, once."""



def event_key(event: dict[str, Any]) -> tuple[str, int]:
    """(auction_id, seq) of an event to append; refuses events that cannot be fenced."""
    try:
        auction_id, seq = event["auction_id"], event["seq"]
    except KeyError as exc:
        raise StoreError(f"event lacks {exc.args[0]!r}: {event!r}") from None
    if not isinstance(seq, int) or isinstance(seq, bool):
        raise StoreError(f"event seq must be an int: {event!r}")
    return str(auction_id), seq


def log_asset_moved(log: logging.Logger, trade: TradeRecord) -> None:
    log.warning(
        "settle %s: asset %s is no longer owned by %s through this listing;"
        " no trade recorded for buyer %s (settle_error=%s)",
        trade["auction_id"],
        trade["asset_id"],
        trade["seller_id"],
        trade["buyer_id"],
        SETTLE_ASSET_MOVED,
    )
