"""The shapes of what the store holds, typed: one TypedDict per record kind.

Both back ends return exactly these keys (the contract suite checks behaviour; the type
checker checks the shapes). Specs, views, snapshots and events are the market's own
JSON-able dictionaries, stored verbatim.
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict

Json = dict[str, Any]  # a JSON-able object the market defines (spec, view, snapshot, event)


class UserRecord(TypedDict):
    user_id: str
    username: str
    password_hash: str
    created_at: int | None
    # Shows their portfolio at GET /api/users/{id}/portfolio; the store returns it (False
    # unless set_portfolio_public made it True).
    portfolio_public: NotRequired[bool]


class AssetRecord(TypedDict):
    """One physical card. A graded copy of a catalog card carries `card_id`, `grader`,
    `grade` (None for RAW) and `cert` (unique per grader); an asset created before the
    catalog has only a title and metadata. Every asset has a `token_id` (unique; the store
    derives it from `asset_id` when not given). The store returns every key but
    `redeemed`, the graded ones None when not set; `redeemed` only when True."""

    asset_id: str
    owner_id: str
    title: str
    metadata: Json
    created_at: int | None
    listed_in: NotRequired[str | None]  # the open auction it is listed in, if any
    card_id: NotRequired[str | None]  # the catalog card it is a copy of
    grader: NotRequired[str | None]  # PSA, BGS, CGC, SGC or RAW (market.catalog.GRADERS)
    grade: NotRequired[float | None]  # 1..10 in halves; None for RAW
    cert: NotRequired[str | None]  # the grader's certificate number, unique per grader
    token_id: NotRequired[str | None]  # market.provenance.token_id_for(asset_id)
    redeemed: NotRequired[bool]  # present, True, only once the token is burned (redeem)


class CardRecord(TypedDict):
    """A catalog entry (market.catalog.Card) plus what the store indexes it under.

    `terms` are the card's search terms as `market.catalog.search_terms` gives them; the
    store matches query terms as prefixes of these. The store returns every key, the
    optional text fields None when not set.
    """

    card_id: str
    name: str
    set: str
    number: str
    year: int
    category: str
    player: NotRequired[str | None]
    character: NotRequired[str | None]
    variant: NotRequired[str | None]
    rarity: NotRequired[str | None]
    terms: list[str]
    created_at: int | None


class AuctionRecord(TypedDict):
    auction_id: str
    asset_id: str
    seller_id: str
    spec: Json  # market.spec.AuctionSpec.to_dict()
    view: Json  # the public view as of `seq`
    status: str
    seq: int
    created_at: int | None
    host: NotRequired[str | None]  # the host actor serving it while open
    snapshot: NotRequired[Json | None]  # the private state as of some seq <= `seq`
    settled: NotRequired[bool]
    settle_error: NotRequired[str | None]  # SETTLE_ASSET_MOVED when the sale found it moved


class TradeRecord(TypedDict):
    auction_id: str
    asset_id: str
    seller_id: str
    buyer_id: str
    price: int
    at: int
    premium: NotRequired[int]  # the buyer's premium paid on top of `price` (cents)
    seller_fee: NotRequired[int]  # the fee kept from the seller's `price` (cents)


# One signed record of a token's provenance chain (market.provenance: `mint_record`,
# `next_record`, `verify_chain`), stored and returned exactly as given. Functional syntax:
# `from` is a Python keyword.
ProvenanceRecord = TypedDict(
    "ProvenanceRecord",
    {
        "seq": int,  # 1, 2, ... without gaps
        "kind": str,  # mint | transfer | redeem
        "from": str | None,  # the owner before (None on the mint)
        "to": str | None,  # the owner after (None on a redeem)
        "reason": str | None,  # auction | offer | admin on a transfer, else None
        "ref": str | None,  # the auction or offer id
        "price": int | None,  # cents, on a transfer that had one
        "at": int,  # ms since the Unix epoch
        "prev_hash": str,  # the previous record's hash; 64 zeros on the mint
        "hash": str,  # hex SHA-256 of the canonical encoding (market.provenance)
        "signature": str,  # base64 Ed25519 signature of the hash's 32 bytes
    },
)


class EntryRecord(TypedDict):
    """A journal entry (`market.ledger.Entry.to_dict()`), as given to `Store.post_entry`."""

    entry_id: str
    cause: str  # deposit | withdrawal | settlement | fee | offer
    cause_key: str
    at: int
    postings: list[list[Any]]  # [[account, amount], ...], summing to zero
    after: NotRequired[dict[str, int]]  # account -> its balance after this entry (store-set)


class AccountRecord(TypedDict):
    account: str  # user:<user_id>, fees or external
    balance: int  # cents
    version: int  # how many postings have been applied to the account (0 when none)


class PostingRecord(TypedDict):
    """One account's line of one entry: the account's `version`-th posting."""

    account: str
    version: int
    entry_id: str
    cause: str
    cause_key: str
    at: int
    amount: int  # positive credits the account
    balance: int  # the account's balance after it


class NewNotice(TypedDict):
    """A user-channel event to add: `type` is outbid, won, lost, sold, payment, transfer_in,
    transfer_out, second_chance or payment_failed; `key` makes adding it idempotent."""

    user_id: str
    key: str
    type: str
    at: int
    data: Json


class NoticeRecord(NewNotice):
    seq: int  # per user: 1, 2, ...
    pos: int  # global position in the notice feed, increasing


class SecondChanceRecord(TypedDict):
    """After a winner's payment failed: the runner-up may buy at their own last bid."""

    auction_id: str
    asset_id: str
    seller_id: str
    user_id: str  # the runner-up
    price: int
    at: int
    expires_at: int
    status: str  # open (trade offers will add accepted | declined | expired)


class OfferSide(TypedDict):
    """One side of a trade offer: asset ids and cash in cents (0 when none)."""

    assets: list[str]
    cash: int


class OfferRecord(TypedDict):
    """A trade offer (`market.offers.Offer.to_dict()`), stored whole at each `seq`.

    `assets` lists every asset on either side (the store indexes it); `thread_id` is the id
    of the first offer of a counter chain (the offer's own id when it has no parent); `acted`
    is `{action, by, req_id}` of the change that ended its `active` state; `child_id` the
    counter that answered it. `host` names the host serving it while it is not final.
    """

    offer_id: str
    thread_id: str
    from_id: str
    to_id: str
    give: OfferSide
    want: OfferSide
    assets: list[str]
    message: str | None
    expires_at: int
    parent_id: str | None
    child_id: str | None
    status: str  # active | accepted | settled | failed | declined | cancelled | expired ...
    reason: str | None  # why it failed or was invalidated
    acted: Json | None
    created_at: int
    updated_at: int
    seq: int
    host: NotRequired[str | None]
    told_seq: NotRequired[int]  # the highest seq whose notices are stored (store-set)


class SaleRecord(TypedDict):
    """A sale of one graded copy of a catalog card: a fact of the sales feed (analytics).

    Written by the store itself when an auction sale settles (`Store.settle`, source
    "auction", key "auction:<auction_id>") and when an offer's swap moves a card whose
    transfer record carries a price (`move_locked_asset`, source "offer", key
    "offer:<offer_id>"); added in bulk by `Store.add_sales` (source "external", e.g. the
    market simulator). `price` is the hammer price / the cash of a cash-only consideration,
    without premium or fees."""

    key: str  # unique across the feed: adding the same key again adds nothing
    card_id: str
    grader: str
    grade: float | None  # None for RAW
    price: int  # cents, > 0
    at: int  # ms since the epoch
    source: str  # auction | offer | external
    ref: str | None  # the auction or offer id
    seller_id: str | None
    buyer_id: str | None
    pos: NotRequired[int]  # the feed position (store-set)


class ClosingRecord(TypedDict):
    """An auction's settlement outcome: a fact of the closings feed (behaviour analytics).

    Written by the store in the same write as the outcome: `settle` ("sold", or "asset_moved"
    when the asset had left the listing), `release` ("unsold") and `fail_payment`
    ("payment_failed"). One per auction (keyed by `auction_id`)."""

    auction_id: str
    outcome: str  # sold | unsold | payment_failed | asset_moved
    at: int  # ms since the epoch, when settled (the store's clock)
    pos: NotRequired[int]  # the feed position (store-set)


class AnalyticsMessage(TypedDict):
    """A live message a projection publishes with its results (`Store.save_projection`);
    gateways tail them (`Store.analytics_log`) and push them on `channel`."""

    channel: str  # card:<card_id> | market
    type: str  # sale | candle | index | movers
    data: Json
    pos: NotRequired[int]  # the log position (store-set)
