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
    asset_id: str
    owner_id: str
    title: str
    metadata: Json
    created_at: int | None
    listed_in: NotRequired[str | None]  # the open auction it is listed in, if any


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
