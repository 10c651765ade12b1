"""The MongoDB store's card catalog: the `cards` collection, prefix search, population.

A card is one document `{_id: card_id, ...CardRecord, sort_name}`. Search: every query
term is `{terms: {$elemMatch: {$gte: prefix, $lt: successor(prefix)}}}`
(`storage.base.prefix_bounds`) - a range over the multikey `terms` index, with no regular
expression, so no character of a term is special - all terms ANDed, plus equality on
`category` / `set`, and the cursor `{$or: [{sort_name > s}, {sort_name = s, _id > id}]}`,
sorted by (sort_name, _id). `$elemMatch` makes both bounds hold for the same element.
"""

from __future__ import annotations

from typing import Any, Protocol, cast

from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from market.errors import CARD_EXISTS
from storage.base import (
    Conflict,
    population_order,
    population_row,
    prefix_bounds,
    search_prefixes,
    sort_name,
)
from storage.records import CardRecord

type Doc = dict[str, Any]

CARD_FIELDS = (
    "card_id", "name", "set", "number", "year", "category", "player", "character", "variant",
    "rarity", "terms", "created_at",
)
CARD_INDEXES = [
    IndexModel([("terms", ASCENDING)]),
    IndexModel([("sort_name", ASCENDING), ("_id", ASCENDING)]),
    IndexModel([("category", ASCENDING), ("sort_name", ASCENDING), ("_id", ASCENDING)]),
    IndexModel([("set", ASCENDING), ("sort_name", ASCENDING), ("_id", ASCENDING)]),
]


class _Host(Protocol):
    """What the catalog needs of MongoStore (see storage.mongo)."""

    @property
    def cards(self) -> AsyncCollection[Doc]: ...

    @property
    def assets(self) -> AsyncCollection[Doc]: ...


def _card(doc: Doc) -> CardRecord:
    out = {f: doc.get(f) for f in CARD_FIELDS}
    out["terms"] = list(out["terms"] or [])
    return cast(CardRecord, out)  # documents are schemaless: this is where they get a type


def search_filter(
    terms: list[str],
    category: str | None,
    set_name: str | None,
    after: tuple[str, str] | None,
) -> Doc:
    query: Doc = {}
    ranges: list[Doc] = []
    for term in search_prefixes(terms):
        low, high = prefix_bounds(term)
        bounds: Doc = {"$gte": low} if high is None else {"$gte": low, "$lt": high}
        ranges.append({"terms": {"$elemMatch": bounds}})
    if ranges:
        query["$and"] = ranges
    if category is not None:
        query["category"] = category
    if set_name is not None:
        query["set"] = set_name
    if after is not None:
        name, card_id = str(after[0]), str(after[1])
        query["$or"] = [{"sort_name": {"$gt": name}}, {"sort_name": name, "_id": {"$gt": card_id}}]
    return query


class MongoCatalog:
    """Mixin of MongoStore: the catalog part of the Store contract."""

    async def create_card(self: _Host, card: CardRecord) -> None:
        doc: Doc = {f: card.get(f) for f in CARD_FIELDS}
        doc.update(_id=card["card_id"], terms=list(card["terms"]), sort_name=sort_name(card))
        try:
            await self.cards.insert_one(doc)
        except DuplicateKeyError:
            raise Conflict(CARD_EXISTS, f"card {card['card_id']!r} exists") from None

    async def get_card(self: _Host, card_id: str) -> CardRecord | None:
        doc = await self.cards.find_one({"_id": card_id})
        return None if doc is None else _card(doc)

    async def search_cards(
        self: _Host,
        terms: list[str],
        category: str | None = None,
        set_name: str | None = None,
        limit: int = 50,
        after: tuple[str, str] | None = None,
    ) -> list[CardRecord]:
        if limit <= 0:
            return []  # .limit(0) would mean "no limit"
        cursor = (
            self.cards.find(search_filter(terms, category, set_name, after))
            .sort([("sort_name", ASCENDING), ("_id", ASCENDING)])
            .limit(int(limit))
        )
        return [_card(doc) async for doc in cursor]

    async def population(self: _Host, card_id: str) -> list[dict[str, Any]]:
        cursor = await self.assets.aggregate(
            [
                {"$match": {"card_id": card_id, "grader": {"$type": "string"},
                            "redeemed": {"$ne": True}}},
                {
                    "$group": {
                        # $ifNull: a missing grade and a null one are the same (RAW) row.
                        "_id": {"grader": "$grader", "grade": {"$ifNull": ["$grade", None]}},
                        "count": {"$sum": 1},
                    }
                },
            ]
        )
        rows = [
            population_row(doc["_id"]["grader"], doc["_id"].get("grade"), doc["count"])
            async for doc in cursor
        ]
        return sorted(rows, key=population_order)
