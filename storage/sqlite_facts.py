"""The SQLite store's fact feeds (sales, auction closings), projection results with their
checkpoints, and the analytics log (storage.facts).

Feeds: `sales` and `closings` take their `pos` from AUTOINCREMENT inside the transaction
that appends them, so positions are gap-free and in commit order. A fact is never appended
with INSERT OR IGNORE: an ignored row still consumes an AUTOINCREMENT value (a gap every
reader would wait at). A single fact is `INSERT ... SELECT ... WHERE NOT EXISTS` (the key
probed first); `add_sales` is one executemany of plain INSERTs, and when a key is taken
it rolls back to its savepoint, looks the batch's keys up in one query and inserts the new.

The store's own write paths append their facts through `append_sale` / `append_closing`,
inside their write transaction: `settle` (storage.sqlite), `release`, `fail_payment`
(storage.sqlite_money) and `move_locked_asset` (storage.sqlite_offers).

`save_projection` is one `BEGIN IMMEDIATE` transaction: the checkpoint compare (a missing
row is 0), the documents, the messages, the log's trim and the checkpoint move.

`record_watch` reads first (no write lock): a pair recorded already, or an auction missing or
not open, is answered without writing; a new pair is one guarded INSERT.
"""

from __future__ import annotations

import operator
import sqlite3
from collections.abc import Callable
from typing import Any, Protocol, cast

import msgspec

from market.catalog import normal_grade
from storage import facts
from storage.base import OPEN_STATUSES, StoreError
from storage.clock import now_ms
from storage.facts import (
    ASSET_MOVED_OUTCOME,
    SALE_FIELDS,
    SOLD,
    SOURCE_AUCTION,
    SOURCE_OFFER,
)
from storage.records import (
    AnalyticsMessage,
    ClosingRecord,
    Json,
    ProvenanceRecord,
    SaleRecord,
    TradeRecord,
)

_SALE_COLS = ", ".join(SALE_FIELDS)
_INSERT_SALE = (
    f"INSERT INTO sales({_SALE_COLS}) SELECT ?,?,?,?,?,?,?,?,?,?"
    " WHERE NOT EXISTS (SELECT 1 FROM sales WHERE key=?1)"
)
_INSERT_CLOSING = (
    "INSERT INTO closings(auction_id, outcome, at) SELECT ?,?,?"
    " WHERE NOT EXISTS (SELECT 1 FROM closings WHERE auction_id=?1)"
)
# ?1 auction, ?2 user, ?3 at. The auction open (its status), the pair new.
_OPEN_AUCTION = ("EXISTS (SELECT 1 FROM auctions WHERE auction_id=?1 AND status IN"
                 f" ({', '.join(repr(s) for s in OPEN_STATUSES)}))")
_WATCHED = "EXISTS (SELECT 1 FROM watches WHERE auction_id=?1 AND user_id=?2)"
_WATCH_IS_NEW = f"SELECT {_OPEN_AUCTION} AND NOT {_WATCHED}"
_INSERT_WATCH = ("INSERT INTO watches(auction_id, user_id, at) SELECT ?1, ?2, ?3"
                 f" WHERE {_OPEN_AUCTION} AND NOT {_WATCHED}")


_DECODE = msgspec.json.Decoder().decode




# -- appended inside the store's own write transactions ---------------------------------------
def append_sale(conn: sqlite3.Connection, asset_id: str, *, key: str, price: int | None,
                at: int, source: str, ref: str | None, seller_id: str | None,
                buyer_id: str | None) -> bool:
    """Append the sale of `asset_id` (its card data read from its row) inside the caller's
    write transaction; True if appended. Nothing for an asset that is no catalog card's
    graded copy (no card_id), for a sale without a positive price, or for a key in the
    feed already."""
    if price is None or price <= 0:
        return False
    card = conn.execute("SELECT card_id, grader, grade FROM assets WHERE asset_id=?",
                        (asset_id,)).fetchone()
    if card is None or card[0] is None or card[1] is None:
        return False
    row = (key, card[0], card[1], normal_grade(card[2]), price, at, source, ref, seller_id,
           buyer_id)
    return conn.execute(_INSERT_SALE, row).rowcount == 1


def append_auction_sale(conn: sqlite3.Connection, trade: TradeRecord) -> bool:
    """`settle`'s sale: the trade's asset, price, parties and time."""
    return append_sale(conn, trade["asset_id"], key=facts.auction_sale_key(trade["auction_id"]),
                       price=trade["price"], at=trade["at"], source=SOURCE_AUCTION,
                       ref=trade["auction_id"], seller_id=trade["seller_id"],
                       buyer_id=trade["buyer_id"])


def append_offer_sale(conn: sqlite3.Connection, asset_id: str, frm: str, to: str,
                      record: ProvenanceRecord | None) -> bool:
    """`move_locked_asset`'s sale: only a transfer record with a price (and the offer's id,
    its `ref`) makes one."""
    if record is None or record.get("price") is None or record.get("ref") is None:
        return False
    offer_id = str(record["ref"])
    return append_sale(conn, asset_id, key=facts.offer_sale_key(offer_id),
                       price=record["price"], at=record["at"], source=SOURCE_OFFER,
                       ref=offer_id, seller_id=frm, buyer_id=to)


def append_closing(conn: sqlite3.Connection, auction_id: str, outcome: str) -> bool:
    """Append the auction's closing (at the store's clock) inside the caller's write
    transaction; True if appended, False if the auction has one already."""
    return conn.execute(_INSERT_CLOSING, (auction_id, outcome, now_ms())).rowcount == 1


def settle_facts(conn: sqlite3.Connection, trade: TradeRecord, sold: bool) -> None:
    """`settle`'s facts, in its transaction: the sale (when `sold`) and the closing (sold,
    or asset_moved)."""
    if sold:
        append_auction_sale(conn, trade)
    append_closing(conn, trade["auction_id"], SOLD if sold else ASSET_MOVED_OUTCOME)


# -- rows -------------------------------------------------------------------------------------
_sale_fields = operator.itemgetter(*SALE_FIELDS)
_INSERT_SALES = f"INSERT INTO sales({_SALE_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?)"
# A bulk add raises the connection's page cache for its transaction: its index inserts
# (sales_card's land all over the index) stay in memory instead of spilling to the WAL.
_BULK_ROWS, _BULK_CACHE_KIB = 5_000, 65_536


def _sale_rows(sales: list[SaleRecord]) -> list[tuple[Any, ...]]:
    """add_sales' rows (the columns of _SALE_COLS); StoreError if a sale lacks a field."""
    try:
        rows: list[tuple[Any, ...]] = list(map(_sale_fields, cast(list[Any], sales)))
    except KeyError as exc:
        raise StoreError(f"a sale lacks {exc.args[0]!r}") from None
    except TypeError:
        raise StoreError("sales must be SaleRecords") from None
    for i, row in enumerate(rows):
        if not isinstance(row[0], str):
            raise StoreError(f"sale key must be a string: {row[0]!r}")
        grade = row[3]
        if grade.__class__ is float and grade.is_integer():  # 9.0 is stored as 9
            rows[i] = (*row[:3], normal_grade(grade), *row[4:])
    return rows


def _add_sales(conn: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> int:
    """add_sales' transaction: the rows whose key is new (the first of a key repeated in
    the batch), inserted in order; how many."""
    # Optimistic: every key new and none repeated (a fresh batch) is one executemany. Only
    # if a key is taken does it start over: the keys looked up in one query, the new ones
    # inserted (cheaper than a NOT EXISTS probe per row).
    conn.execute("SAVEPOINT add_sales")
    try:
        conn.executemany(_INSERT_SALES, rows)
        added = len(rows)
    except sqlite3.IntegrityError:
        conn.execute("ROLLBACK TO add_sales")  # its positions too: no gap
        seen = {key for (key,) in conn.execute(
            "SELECT key FROM sales WHERE key IN (SELECT value FROM json_each(?))",
            (facts.json_text([row[0] for row in rows]),))}
        new: list[tuple[Any, ...]] = []
        for row in rows:
            if row[0] not in seen:
                seen.add(row[0])
                new.append(row)
        try:
            conn.executemany(_INSERT_SALES, new)
        except sqlite3.IntegrityError as exc:
            raise StoreError(f"a sale is malformed: {exc}") from None
        added = len(new)
    conn.execute("RELEASE add_sales")
    return added


def _decoded(rows: list[tuple[Any, ...]], column: int) -> list[Any]:
    """The JSON documents of `column` of `rows`, decoded in one call (not one per row)."""
    if not rows:
        return []
    return cast(list[Any], _DECODE("[" + ",".join([r[column] for r in rows]) + "]"))


_SALE_ROW = ("pos", *SALE_FIELDS)  # sales_feed's columns


def _sale(row: tuple[Any, ...]) -> SaleRecord:
    return cast(SaleRecord, dict(zip(_SALE_ROW, row, strict=True)))


# Documents per write transaction of save_projection.
SAVE_CHUNK = 2_000


def _fenced(conn: sqlite3.Connection, name: str, expect: int) -> bool:
    found = conn.execute("SELECT pos FROM checkpoints WHERE name=?", (name,)).fetchone()
    return (0 if found is None else int(found[0])) != expect


def _unsynced[T](conn: sqlite3.Connection, write: Callable[[], T]) -> T:
    """`write` (transactions on `conn`) committed with synchronous=NORMAL at most: in WAL
    mode its commits are not synced to disk until a later synced commit or checkpoint (a
    crash may roll them back, never corrupt). The connection's own level is restored
    before anything else runs on it, so every other commit (facts, bids) keeps it."""
    mode = int(conn.execute("PRAGMA synchronous").fetchone()[0])  # OFF 0, NORMAL 1, FULL 2
    if mode <= 1:
        return write()
    conn.execute("PRAGMA synchronous=NORMAL")
    try:
        return write()
    finally:
        conn.execute(f"PRAGMA synchronous={mode}")


def _save(conn: sqlite3.Connection, name: str, expect: int, pos: int | None,
          upserts: list[tuple[str, str, str]], deletes: list[tuple[str, str]],
          messages: list[tuple[str, str, str]]) -> bool:
    """One transaction of save_projection: fenced; the checkpoint moves if `pos` is given."""
    if _fenced(conn, name, expect):
        return False
    if upserts:
        conn.executemany(
            "INSERT OR REPLACE INTO projection_docs(kind, key, data) VALUES (?,?,?)", upserts)
    if deletes:
        conn.executemany("DELETE FROM projection_docs WHERE kind=? AND key=?", deletes)
    if messages:
        conn.executemany("INSERT INTO analytics_log(channel, type, data) VALUES (?,?,?)",
                         messages)
        # Its positions are gap-free (plain INSERTs; a rollback restores the sequence), so
        # the last LOG_KEEP (read now: the module's value, patched or not) are MAX - keep on.
        keep = max(int(facts.LOG_KEEP), 0)
        conn.execute("DELETE FROM analytics_log"
                     " WHERE pos <= (SELECT MAX(pos) FROM analytics_log) - ?", (keep,))
    if pos is not None:
        conn.execute("INSERT INTO checkpoints(name, pos) VALUES (?,?)"
                     " ON CONFLICT(name) DO UPDATE SET pos=excluded.pos", (name, pos))
    return True


class _Host(Protocol):
    """What the facts part needs of SqliteStore (see storage.sqlite)."""

    async def _run[T](self, fn: Callable[..., T], *args: Any) -> T: ...

    def _write[T](self, fn: Callable[[sqlite3.Connection], T]) -> T: ...

    @property
    def _db(self) -> sqlite3.Connection: ...


def _max_pos(conn: sqlite3.Connection, table: str) -> int:
    # The rowid's MAX is one probe at the end of the table's b-tree.
    return int(conn.execute(f"SELECT COALESCE(MAX(pos), 0) FROM {table}").fetchone()[0])


class SqliteFacts:
    """Mixin of SqliteStore: the fact feeds and projection results (storage.facts)."""

    # -- the sales feed --------------------------------------------------------------------
    async def add_sales(self: _Host, sales: list[SaleRecord]) -> int:
        if not sales:
            return 0
        now = now_ms()
        for sale in sales:
            facts.check_sale(sale, now)
        rows = _sale_rows(sales)

        def run() -> int:
            db, bulk = self._db, len(rows) >= _BULK_ROWS
            if bulk:
                cache = int(db.execute("PRAGMA cache_size").fetchone()[0])
                db.execute(f"PRAGMA cache_size={-_BULK_CACHE_KIB}")
            try:
                return self._write(lambda conn: _add_sales(conn, rows))
            finally:
                if bulk:
                    db.execute(f"PRAGMA cache_size={cache}")

        return await self._run(run)

    async def sales_feed(self: _Host, after_pos: int, limit: int = 10_000) -> list[SaleRecord]:
        if limit <= 0:
            return []
        sql = f"SELECT pos, {_SALE_COLS} FROM sales WHERE pos>? ORDER BY pos LIMIT ?"

        def q() -> list[SaleRecord]:
            return [_sale(r) for r in self._db.execute(sql, (int(after_pos), int(limit)))]

        return await self._run(q)

    async def sales_position(self: _Host) -> int:
        return await self._run(lambda: _max_pos(self._db, "sales"))

    # -- the closings feed -----------------------------------------------------------------
    async def closings_feed(self: _Host, after_pos: int,
                            limit: int = 10_000) -> list[ClosingRecord]:
        if limit <= 0:
            return []
        sql = "SELECT pos, auction_id, outcome, at FROM closings WHERE pos>? ORDER BY pos LIMIT ?"

        def q() -> list[ClosingRecord]:
            rows = self._db.execute(sql, (int(after_pos), int(limit)))
            return [{"pos": r[0], "auction_id": r[1], "outcome": r[2], "at": r[3]} for r in rows]

        return await self._run(q)

    async def closings_position(self: _Host) -> int:
        return await self._run(lambda: _max_pos(self._db, "closings"))

    # -- watches -----------------------------------------------------------------------------
    async def record_watch(self: _Host, user_id: str, auction_id: str, at: int) -> bool:
        facts.check_watch(user_id, auction_id, at)
        args = (auction_id, user_id, at)

        def run() -> bool:
            if not self._db.execute(_WATCH_IS_NEW, args[:2]).fetchone()[0]:
                return False  # the usual answer to a repeated subscribe: no write lock
            return self._write(lambda conn: conn.execute(_INSERT_WATCH, args).rowcount == 1)

        return await self._run(run)

    async def auction_watchers(self: _Host, auction_id: str) -> list[tuple[str, int]]:
        sql = "SELECT user_id, at FROM watches WHERE auction_id=? ORDER BY at, user_id"

        def q() -> list[tuple[str, int]]:
            return [(r[0], int(r[1])) for r in self._db.execute(sql, (auction_id,))]

        return await self._run(q)

    # -- projection results and checkpoints ------------------------------------------------
    async def projection_checkpoint(self: _Host, name: str) -> int:
        def q() -> int:
            row = self._db.execute("SELECT pos FROM checkpoints WHERE name=?",
                                   (name,)).fetchone()
            return 0 if row is None else int(row[0])

        return await self._run(q)

    async def save_projection(self: _Host, name: str, expect: int, pos: int,
                              puts: list[tuple[str, str, Json | None]],
                              messages: list[AnalyticsMessage] | None = None) -> bool:
        # The last put of a (kind, key) wins: what applying each in turn would do. Written
        # kind by kind in the order the kinds come (a kind that carries the version of
        # others comes after them: readers never see it first), each kind in key order:
        # neighbouring rows of the b-tree together (~40% less CPU than in feed order).
        kinds: dict[str, dict[str, Json | None]] = {}
        for kind, key, doc in puts:
            of_kind = kinds.get(kind)
            if of_kind is None:
                of_kind = kinds[kind] = {}
            of_kind[key] = doc
        upserts = [(kind, key, facts.json_text(doc)) for kind, of_kind in kinds.items()
                   for key, doc in sorted(of_kind.items()) if doc is not None]
        deletes = [(kind, key) for kind, of_kind in kinds.items()
                   for key, doc in of_kind.items() if doc is None]
        logged = [(m["channel"], m["type"], facts.json_text(m["data"])) for m in messages or ()]
        expect, pos = int(expect), int(pos)
        # A big save (a catch-up batch) goes in chunks, each its own fenced transaction, so
        # that the hosts' bid commits never wait long for the file's one write lock; the
        # checkpoint moves with the last chunk. The chunks before it are committed unsynced
        # (`_unsynced`): the last one's sync of the WAL makes them durable with it, and a
        # crash before that loses only results ahead of the checkpoint, which the retry
        # writes again.
        while len(upserts) > SAVE_CHUNK:
            chunk, upserts = upserts[:SAVE_CHUNK], upserts[SAVE_CHUNK:]

            def part(chunk: list[tuple[str, str, str]] = chunk) -> bool:
                return _unsynced(self._db, lambda: self._write(
                    lambda conn: _save(conn, name, expect, None, chunk, [], [])))

            if not await self._run(part):
                return False

        def tx(conn: sqlite3.Connection) -> bool:
            return _save(conn, name, expect, pos, upserts, deletes, logged)

        return await self._run(self._write, tx)

    async def reset_projections(self: _Host, names: list[str], kinds: list[str]) -> None:
        if not names and not kinds:
            return
        args = (facts.json_text(list(names)), facts.json_text(list(kinds)))

        def tx(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM checkpoints WHERE name IN"
                         " (SELECT value FROM json_each(?))", args[:1])
            conn.execute("DELETE FROM projection_docs WHERE kind IN"
                         " (SELECT value FROM json_each(?))", args[1:])

        await self._run(self._write, tx)

    async def get_projection_doc(self: _Host, kind: str, key: str) -> Json | None:
        def q() -> Json | None:
            row = self._db.execute("SELECT data FROM projection_docs WHERE kind=? AND key=?",
                                   (kind, key)).fetchone()
            return None if row is None else _DECODE(row[0])

        return await self._run(q)

    async def get_projection_json(self: _Host, kind: str, key: str) -> bytes | None:
        def q() -> bytes | None:
            row = self._db.execute("SELECT data FROM projection_docs WHERE kind=? AND key=?",
                                   (kind, key)).fetchone()
            return None if row is None else str(row[0]).encode()

        return await self._run(q)

    async def get_projection_docs(self: _Host, kind: str, keys: list[str]) -> dict[str, Json]:
        if not keys:
            return {}
        sql = ("SELECT key, data FROM projection_docs WHERE kind=? AND key IN"
               " (SELECT value FROM json_each(?))")
        args = (kind, facts.json_text(list(keys)))

        def q() -> dict[str, Json]:
            rows = self._db.execute(sql, args).fetchall()
            return dict(zip([r[0] for r in rows], _decoded(rows, 1), strict=True))

        return await self._run(q)

    async def scan_projection(self: _Host, kind: str, start: str, end: str, limit: int = 1000,
                              reverse: bool = False) -> list[tuple[str, Json]]:
        if limit <= 0:
            return []
        order = "DESC" if reverse else "ASC"
        sql = ("SELECT key, data FROM projection_docs WHERE kind=? AND key>=? AND key<?"
               f" ORDER BY key {order} LIMIT ?")
        args = (kind, start, end, int(limit))

        def q() -> list[tuple[str, Json]]:
            rows = self._db.execute(sql, args).fetchall()
            return list(zip([r[0] for r in rows], _decoded(rows, 1), strict=True))

        return await self._run(q)

    async def count_projection(self: _Host, kind: str) -> int:
        def q() -> int:
            return int(self._db.execute("SELECT count(*) FROM projection_docs WHERE kind=?",
                                        (kind,)).fetchone()[0])

        return await self._run(q)

    # -- the analytics log (live messages) -------------------------------------------------
    async def analytics_log(self: _Host, after_pos: int,
                            limit: int = 1000) -> list[AnalyticsMessage]:
        if limit <= 0:
            return []
        sql = "SELECT pos, channel, type, data FROM analytics_log WHERE pos>? ORDER BY pos LIMIT ?"

        def q() -> list[AnalyticsMessage]:
            rows = self._db.execute(sql, (int(after_pos), int(limit))).fetchall()
            return [{"pos": r[0], "channel": r[1], "type": r[2], "data": data}
                    for r, data in zip(rows, _decoded(rows, 3), strict=True)]

        return await self._run(q)

    async def analytics_log_position(self: _Host) -> int:
        return await self._run(lambda: _max_pos(self._db, "analytics_log"))
