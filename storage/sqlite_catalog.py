"""The SQLite store's card catalog: cards, prefix search over `card_terms`, population.

Search: `card_terms` holds one row per (term, card) with the primary key (term, card_id)
(WITHOUT ROWID: the key is the table), so every query term is one range scan
`term >= prefix AND term < successor(prefix)` (`storage.base.prefix_bounds`): no LIKE, so
`%`, `_` and `\\` in a term are plain characters. The cards matching all terms are the
INTERSECT of those scans; they drive the join to `cards` (CROSS JOIN keeps that order),
which then filters by category/set/cursor and sorts by (sort_name, card_id). Without
terms, the (category|set_name, sort_name, card_id) indexes serve the page in order.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from typing import Any, Protocol

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

_CARD_COLS = (
    "c.card_id, c.name, c.set_name, c.number, c.year, c.category, c.player, c.character,"
    " c.variant, c.rarity, c.terms, c.created_at"
)
_OPTIONAL = ("player", "character", "variant", "rarity")


class _Host(Protocol):
    """What the catalog needs of SqliteStore (see storage.sqlite)."""

    async def _run[T](self, fn: Callable[..., T], *args: Any) -> T: ...

    def _write[T](self, fn: Callable[[sqlite3.Connection], T]) -> T: ...

    @property
    def _db(self) -> sqlite3.Connection: ...


def _card(row: tuple[Any, ...]) -> CardRecord:
    return {
        "card_id": row[0],
        "name": row[1],
        "set": row[2],
        "number": row[3],
        "year": row[4],
        "category": row[5],
        "player": row[6],
        "character": row[7],
        "variant": row[8],
        "rarity": row[9],
        "terms": json.loads(row[10]),
        "created_at": row[11],
    }


def _search_sql(
    terms: list[str],
    category: str | None,
    set_name: str | None,
    limit: int,
    after: tuple[str, str] | None,
) -> tuple[str, list[Any]]:
    args: list[Any] = []
    scans: list[str] = []
    for term in search_prefixes(terms):
        low, high = prefix_bounds(term)
        if high is None:
            scans.append("SELECT DISTINCT card_id FROM card_terms WHERE term>=?")
            args.append(low)
        else:
            scans.append("SELECT DISTINCT card_id FROM card_terms WHERE term>=? AND term<?")
            args += [low, high]
    clauses: list[str] = []
    if category is not None:
        clauses.append("c.category=?")
        args.append(category)
    if set_name is not None:
        clauses.append("c.set_name=?")
        args.append(set_name)
    if after is not None:
        clauses.append("(c.sort_name, c.card_id) > (?, ?)")
        args += [str(after[0]), str(after[1])]
    where = " AND ".join(clauses) or "1"
    source = "cards AS c"
    if scans:
        source = f"({' INTERSECT '.join(scans)}) AS hit CROSS JOIN cards AS c"
        where = f"c.card_id=hit.card_id AND {where}"
    args.append(int(limit))
    sql = (
        f"SELECT {_CARD_COLS} FROM {source} WHERE {where}"
        " ORDER BY c.sort_name, c.card_id LIMIT ?"
    )
    return sql, args


class SqliteCatalog:
    """Mixin of SqliteStore: the catalog part of the Store contract."""

    async def create_card(self: _Host, card: CardRecord) -> None:
        terms = list(card["terms"])
        row = (
            card["card_id"], card["name"], sort_name(card), card["set"], card["number"],
            card["year"], card["category"], *(card.get(f) for f in _OPTIONAL),
            json.dumps(terms, ensure_ascii=False), card.get("created_at"),
        )
        term_rows = [(t, card["card_id"]) for t in dict.fromkeys(terms)]

        def tx(conn: sqlite3.Connection) -> None:
            if conn.execute("SELECT 1 FROM cards WHERE card_id=?", (row[0],)).fetchone():
                raise Conflict(CARD_EXISTS, f"card {row[0]!r} exists")
            conn.execute(
                "INSERT INTO cards(card_id, name, sort_name, set_name, number, year, category,"
                " player, character, variant, rarity, terms, created_at)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                row,
            )
            # OR IGNORE: rows of a card id that never had a card row (written by hand).
            conn.executemany(
                "INSERT OR IGNORE INTO card_terms(term, card_id) VALUES (?,?)", term_rows
            )

        await self._run(self._write, tx)

    async def get_card(self: _Host, card_id: str) -> CardRecord | None:
        def q() -> CardRecord | None:
            sql = f"SELECT {_CARD_COLS} FROM cards AS c WHERE c.card_id=?"
            found = self._db.execute(sql, (card_id,)).fetchone()
            return None if found is None else _card(found)

        return await self._run(q)

    async def search_cards(
        self: _Host,
        terms: list[str],
        category: str | None = None,
        set_name: str | None = None,
        limit: int = 50,
        after: tuple[str, str] | None = None,
    ) -> list[CardRecord]:
        if limit <= 0:
            return []
        sql, args = _search_sql(terms, category, set_name, limit, after)

        def q() -> list[CardRecord]:
            return [_card(r) for r in self._db.execute(sql, args)]

        return await self._run(q)

    async def population(self: _Host, card_id: str) -> list[dict[str, Any]]:
        sql = (
            "SELECT grader, grade, count(*) FROM assets"
            " WHERE card_id=? AND grader IS NOT NULL AND redeemed=0 GROUP BY grader, grade"
        )

        def q() -> list[dict[str, Any]]:
            rows = [population_row(*r) for r in self._db.execute(sql, (card_id,))]
            return sorted(rows, key=population_order)

        return await self._run(q)
