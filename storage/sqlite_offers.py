"""The SQLite store's trade offers and the asset locks of their swaps.

An offer is one row of `offers`: the whole record as JSON (`data`, without the store's own
`told_seq` and `host`) beside the columns it is looked up by, and one `offer_assets(asset_id,
offer_id)` row per asset it names, rewritten with every version of the record. `save_offers`
is one `BEGIN IMMEDIATE` transaction fenced by `seq`, like `commit` is for auctions.

Locks: an accepted offer's swap claims its assets by setting `listed_in` to
`storage.base.offer_lock(offer_id)`, the column an auction listing uses, so everything that
refuses a listed asset (`create_auction`, a transfer or redeem by `append_provenance`) refuses
a locked one too, and `settle`/`release`/`fail_payment` only ever clear their own auction id.
`lock_assets` and `move_locked_asset` each check and write under one write lock.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from market.errors import (
    ASSET_LISTED,
    ASSET_MOVED,
    ASSET_NOT_FOUND,
    ASSET_REDEEMED,
    NOT_OWNER,
    PROVENANCE_CONFLICT,
)
from storage.base import LIVE_OFFER_STATUSES, Conflict, StoreError
from storage.chain import TokenState, check_append
from storage.facts import json_text
from storage.records import NewNotice, OfferRecord, ProvenanceRecord
from storage.sqlite_facts import append_offer_sale
from storage.sqlite_money import insert_notices
from storage.sqlite_ownership import append_offer_move

_COLS = "data, host, told_seq"
_STORE_KEYS = ("host", "told_seq")  # columns, not part of `data`
_BOXES = {"in": ("to_id",), "out": ("from_id",), None: ("to_id", "from_id")}


class _Host(Protocol):
    """What the offers part needs of SqliteStore (see storage.sqlite)."""

    async def _run[T](self, fn: Callable[..., T], *args: Any) -> T: ...

    def _write[T](self, fn: Callable[[sqlite3.Connection], T]) -> T: ...

    @property
    def _db(self) -> sqlite3.Connection: ...




def _offer(row: tuple[Any, ...]) -> OfferRecord:
    """An OfferRecord from a row of _COLS: the stored record with the store's columns."""
    record: OfferRecord = json.loads(row[0])
    record["host"] = row[1]
    record["told_seq"] = int(row[2])
    return record


def _int(record: OfferRecord, key: str) -> int:
    value = record.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise StoreError(f"offer {record.get('offer_id')!r}: {key} must be an int")
    return value


def _row(record: OfferRecord) -> tuple[Any, ...]:
    """The offers row of a record to save (told_seq aside); StoreError if malformed."""
    try:
        data = {k: v for k, v in record.items() if k not in _STORE_KEYS}
        assets = record["assets"]
        row = (
            str(record["offer_id"]), str(record["thread_id"]), str(record["from_id"]),
            str(record["to_id"]), str(record["status"]), record.get("host"),
            _int(record, "created_at"), _int(record, "expires_at"),
            _int(record, "updated_at"), _int(record, "seq"), json_text(data),
        )
    except KeyError as exc:
        raise StoreError(f"offer {record.get('offer_id')!r} lacks {exc.args[0]!r}") from None
    if not isinstance(assets, list) or not all(isinstance(a, str) for a in assets):
        raise StoreError(f"offer {record['offer_id']!r}: assets must be a list of ids")
    return row


def _save(conn: sqlite3.Connection, rows: list[tuple[tuple[Any, ...], list[str]]]) -> set[str]:
    """save_offers' transaction: write each row its fence allows; the ids fenced out."""
    fenced: set[str] = set()
    for row, assets in rows:
        offer_id, status, updated_at, seq = row[0], row[4], row[8], row[9]
        if offer_id in fenced:
            continue  # an earlier version of it was fenced: none of it is ours
        stored = conn.execute("SELECT seq, status, updated_at FROM offers WHERE offer_id=?",
                              (offer_id,)).fetchone()
        if stored is not None and tuple(stored) == (seq, status, updated_at):
            continue  # a retry of a write that was applied
        if stored is None and seq == 1:
            conn.execute(
                "INSERT INTO offers(offer_id, thread_id, from_id, to_id, status, host,"
                " created_at, expires_at, updated_at, seq, data, told_seq)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,0)", row)
        elif stored is not None and seq > 1 and stored[0] == seq - 1:
            conn.execute(
                "UPDATE offers SET thread_id=?, from_id=?, to_id=?, status=?, host=?,"
                " created_at=?, expires_at=?, updated_at=?, seq=?, data=? WHERE offer_id=?",
                (*row[1:], offer_id))
            conn.execute("DELETE FROM offer_assets WHERE offer_id=?", (offer_id,))
        else:
            fenced.add(offer_id)
            continue
        conn.executemany("INSERT OR IGNORE INTO offer_assets(asset_id, offer_id) VALUES (?,?)",
                         [(a, offer_id) for a in assets])
    return fenced


def _lock(conn: sqlite3.Connection, lock: str, claims: list[tuple[str, str]]) -> None:
    """lock_assets' transaction: a Conflict rolls every lock of this call back."""
    for asset_id, owner in claims:
        found = conn.execute("SELECT owner_id, listed_in, redeemed FROM assets WHERE asset_id=?",
                             (asset_id,)).fetchone()
        if found is None:
            raise Conflict(ASSET_NOT_FOUND, f"asset {asset_id!r} not found")
        if found[0] != owner:
            raise Conflict(NOT_OWNER, f"asset {asset_id!r} is not owned by {owner!r}")
        if found[2]:
            raise Conflict(ASSET_REDEEMED, f"asset {asset_id!r} was redeemed")
        if found[1] is not None and found[1] != lock:
            raise Conflict(ASSET_LISTED, f"asset {asset_id!r} is listed in {found[1]!r}")
        conn.execute("UPDATE assets SET listed_in=? WHERE asset_id=?", (lock, asset_id))


def _move(conn: sqlite3.Connection, lock: str, asset_id: str, frm: str, to: str,
          record: ProvenanceRecord | None) -> bool:
    """move_locked_asset's transaction."""
    found = conn.execute(
        "SELECT owner_id, listed_in, redeemed, token_id FROM assets WHERE asset_id=?",
        (asset_id,)).fetchone()
    if found is None:
        raise Conflict(ASSET_MOVED, f"asset {asset_id!r} not found")
    owner, listed_in, redeemed, token_id = found
    if not (listed_in == lock and owner == frm and not redeemed):
        if owner == to and listed_in != lock:
            return False  # moved by an earlier try of this step
        raise Conflict(ASSET_MOVED, f"asset {asset_id!r} is not {frm!r}'s under {lock!r}"
                                    f" (owner {owner!r}, listed in {listed_in!r})")
    if record is not None:
        if (record.get("kind"), record.get("from"), record.get("to")) != ("transfer", frm, to):
            raise Conflict(PROVENANCE_CONFLICT,
                           f"asset {asset_id!r}: the record is not a transfer {frm!r} -> {to!r}")
        if token_id is None:
            raise Conflict(PROVENANCE_CONFLICT, f"asset {asset_id!r} has no token")
        tail = conn.execute(
            "SELECT seq, record FROM provenance WHERE token_id=? ORDER BY seq DESC LIMIT 1",
            (token_id,)).fetchone()
        length, tail_hash = (0, None) if tail is None else (int(tail[0]),
                                                            json.loads(tail[1]).get("hash"))
        # Unlocked by this very write: the lock is no reason to refuse its own transfer.
        check_append(record, TokenState(owner, None, False, length, tail_hash))
        conn.execute("INSERT INTO provenance(token_id, seq, record) VALUES (?,?,?)",
                     (token_id, record["seq"], json_text(record)))
    conn.execute("UPDATE assets SET owner_id=?, listed_in=NULL WHERE asset_id=?",
                 (to, asset_id))
    append_offer_sale(conn, asset_id, frm, to, record)  # a priced record: the sale, once
    append_offer_move(conn, lock, asset_id, frm, to, record)
    return True


class SqliteOffers:
    """Mixin of SqliteStore: the trade-offer part of the Store contract."""

    async def save_offers(self: _Host, offers: list[OfferRecord],
                          notices: Mapping[str, list[NewNotice]] | None = None) -> set[str]:
        if not offers:
            return set()
        rows = [(_row(o), list(dict.fromkeys(o["assets"]))) for o in offers]
        told = {o["offer_id"]: int(o["seq"]) for o in offers if notices and o["offer_id"]
                in notices}

        def tx(conn: sqlite3.Connection) -> set[str]:
            fenced = _save(conn, rows)
            kept = [n for offer_id in told if offer_id not in fenced
                    for n in (notices or {})[offer_id]]
            if kept:
                insert_notices(conn, kept)
            conn.executemany("UPDATE offers SET told_seq=? WHERE offer_id=? AND told_seq<?",
                             [(seq, offer_id, seq) for offer_id, seq in told.items()
                              if offer_id not in fenced])
            return fenced

        return await self._run(self._write, tx)

    async def get_offer(self: _Host, offer_id: str) -> OfferRecord | None:
        def q() -> OfferRecord | None:
            row = self._db.execute(f"SELECT {_COLS} FROM offers WHERE offer_id=?",
                                   (offer_id,)).fetchone()
            return None if row is None else _offer(row)

        return await self._run(q)

    async def list_offers(self: _Host, user_id: str, box: str | None = None,
                          status: str | None = None, limit: int = 50,
                          before: tuple[int, str] | None = None) -> list[OfferRecord]:
        if box not in _BOXES:
            raise StoreError(f"box must be 'in', 'out' or None, not {box!r}")
        if limit <= 0:
            return []
        # One ordered index range per side ((to_id|from_id, created_at, offer_id)), merged.
        parts: list[str] = []
        args: list[Any] = []
        for column in _BOXES[box]:
            where = f"{column}=?"
            args.append(user_id)
            if status is not None:
                where += " AND status=?"
                args.append(status)
            if before is not None:
                where += " AND (created_at, offer_id) < (?, ?)"
                args += [before[0], before[1]]
            parts.append(f"SELECT * FROM (SELECT {_COLS}, created_at, offer_id FROM offers"
                         f" WHERE {where} ORDER BY created_at DESC, offer_id DESC LIMIT ?)")
            args.append(int(limit))
        sql = " UNION ".join(parts) + " ORDER BY created_at DESC, offer_id DESC LIMIT ?"
        args.append(int(limit))

        def q() -> list[OfferRecord]:
            return [_offer(r) for r in self._db.execute(sql, args)]

        return await self._run(q)

    async def open_offers(self: _Host, host: str | None = None) -> list[OfferRecord]:
        live = f"status IN ({','.join('?' * len(LIVE_OFFER_STATUSES))})"
        untold = "told_seq < seq"  # the partial index offers_untold's condition, verbatim
        args: list[Any] = list(LIVE_OFFER_STATUSES)
        if host is not None:
            live += " AND host=?"
            untold += " AND host=?"
            args = [*args, host, host]
        sql = (f"SELECT {_COLS}, created_at, offer_id FROM offers WHERE {live} UNION"
               f" SELECT {_COLS}, created_at, offer_id FROM offers WHERE {untold}"
               " ORDER BY created_at, offer_id")

        def q() -> list[OfferRecord]:
            return [_offer(r) for r in self._db.execute(sql, args)]

        return await self._run(q)

    async def offers_with_assets(self: _Host, asset_ids: list[str],
                                 status: str = "active") -> list[OfferRecord]:
        if not asset_ids:
            return []
        # Driven by offer_assets' (asset_id, offer_id) key; `+status`: not by the status index.
        sql = (f"SELECT {_COLS} FROM offers WHERE +status=? AND offer_id IN"
               " (SELECT offer_id FROM offer_assets WHERE asset_id IN"
               " (SELECT value FROM json_each(?))) ORDER BY created_at, offer_id")
        args = (status, json_text(list(asset_ids)))

        def q() -> list[OfferRecord]:
            return [_offer(r) for r in self._db.execute(sql, args)]

        return await self._run(q)

    async def count_offers(self: _Host, from_id: str, status: str = "active") -> int:
        def q() -> int:
            return int(self._db.execute(
                "SELECT count(*) FROM offers WHERE status=? AND from_id=?",
                (status, from_id)).fetchone()[0])

        return await self._run(q)

    async def mark_offer_told(self: _Host, offer_id: str, seq: int) -> None:
        def tx(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE offers SET told_seq=? WHERE offer_id=? AND told_seq<?",
                         (int(seq), offer_id, int(seq)))

        await self._run(self._write, tx)

    async def lock_assets(self: _Host, lock: str, claims: list[tuple[str, str]]) -> None:
        if not claims:
            return
        pairs = [(str(a), str(o)) for a, o in claims]

        def tx(conn: sqlite3.Connection) -> None:
            _lock(conn, lock, pairs)

        await self._run(self._write, tx)

    async def unlock_assets(self: _Host, lock: str, asset_ids: list[str]) -> None:
        if not asset_ids:
            return
        ids = json_text(list(asset_ids))

        def tx(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE assets SET listed_in=NULL WHERE listed_in=? AND asset_id IN"
                         " (SELECT value FROM json_each(?))", (lock, ids))

        await self._run(self._write, tx)

    async def move_locked_asset(self: _Host, lock: str, asset_id: str, frm: str, to: str,
                                record: ProvenanceRecord | None = None) -> bool:
        def tx(conn: sqlite3.Connection) -> bool:
            return _move(conn, lock, asset_id, frm, to, record)

        return await self._run(self._write, tx)
