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


class AssetRecord(TypedDict):
    """One physical card. A graded copy of a catalog card carries `card_id`, `grader`,
    `grade` (None for RAW), `cert` (unique per grader) and `token_id`; an asset created
    before the catalog has only a title and metadata. The store returns every key, the
    graded ones None when not set."""

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
