"""The SQLite store's file: connection settings (WAL, busy timeout, synchronous), the schema
and its additive migrations. `storage.sqlite` holds the queries."""

from __future__ import annotations

import sqlite3
import time

from market.provenance import token_id_for
from storage.base import StoreError
from storage.sqlite_ownership import backfill_ownership
from storage.sqlite_upgrade import upgrade_rows

_SYNC_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")
BUSY_TIMEOUT_S = 10.0
# The file beside a store's file that its writers take turns on (`storage.sqlite`).
WRITER_LOCK = "-writer.lock"
# Every file of a store at `path`: path + each suffix (clean-ups).
FILE_SUFFIXES = ("", "-wal", "-shm", WRITER_LOCK)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    user_id       TEXT PRIMARY KEY,
    username      TEXT NOT NULL,
    username_key  TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_at,
    portfolio_public INTEGER NOT NULL DEFAULT 0
);
-- A graded copy also has card_id, grader, grade (untyped: 9 stays 9, 9.5 stays 9.5) and
-- cert, all NULL on a legacy asset. token_id is unique (assets_token), redeemed is 1 once
-- the token is burned.
CREATE TABLE IF NOT EXISTS assets (
    asset_id   TEXT PRIMARY KEY,
    owner_id   TEXT NOT NULL,
    title      TEXT NOT NULL,
    metadata   TEXT NOT NULL,
    created_at,
    listed_in  TEXT,
    card_id    TEXT,
    grader     TEXT,
    grade,
    cert       TEXT,
    token_id   TEXT,
    redeemed   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS assets_owner ON assets(owner_id);
CREATE INDEX IF NOT EXISTS assets_owner_asset ON assets(owner_id, asset_id);
-- The catalog. sort_name = storage.base.sort_name(card) orders search results, terms is the
-- JSON list as given, and card_terms holds one row per (term, card) for prefix searches.
CREATE TABLE IF NOT EXISTS cards (
    card_id    TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    sort_name  TEXT NOT NULL,
    set_name   TEXT NOT NULL,
    number     TEXT NOT NULL,
    year       INTEGER NOT NULL,
    category   TEXT NOT NULL,
    player     TEXT,
    character  TEXT,
    variant    TEXT,
    rarity     TEXT,
    terms      TEXT NOT NULL,
    created_at
);
CREATE INDEX IF NOT EXISTS cards_sort ON cards(sort_name, card_id);
CREATE INDEX IF NOT EXISTS cards_category_sort ON cards(category, sort_name, card_id);
CREATE INDEX IF NOT EXISTS cards_set_sort ON cards(set_name, sort_name, card_id);
CREATE TABLE IF NOT EXISTS card_terms (
    term    TEXT NOT NULL,
    card_id TEXT NOT NULL,
    PRIMARY KEY (term, card_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS auctions (
    auction_id   TEXT PRIMARY KEY,
    asset_id     TEXT NOT NULL,
    seller_id    TEXT NOT NULL,
    host         TEXT NOT NULL,
    spec         TEXT NOT NULL,
    view         TEXT NOT NULL,
    status       TEXT NOT NULL,
    seq          INTEGER NOT NULL,
    ends_at,
    settled      INTEGER NOT NULL DEFAULT 0,
    settle_error TEXT,
    created_at,
    told         INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS auctions_status_ends ON auctions(status, ends_at);
CREATE INDEX IF NOT EXISTS auctions_seller_ends ON auctions(seller_id, ends_at);
CREATE INDEX IF NOT EXISTS auctions_host_status ON auctions(host, status);
CREATE INDEX IF NOT EXISTS auctions_unsettled ON auctions(settled, status);
-- An auction's private snapshot (its seq under "seq" in data) in a row of its own: in the
-- auctions row every bid's view UPDATE read its 10-100 KB of overflow pages, and rewrote
-- them whenever the view's length changed (~57 WAL frames for a one-bid commit).
CREATE TABLE IF NOT EXISTS auction_snapshots (
    auction_id TEXT PRIMARY KEY,
    seq        INTEGER NOT NULL,
    data       TEXT NOT NULL
);
-- WITHOUT ROWID: the (auction_id, seq) key is the clustering order, so replay is one range scan.
CREATE TABLE IF NOT EXISTS events (
    auction_id TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    data       TEXT NOT NULL,
    PRIMARY KEY (auction_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS trades (
    auction_id TEXT PRIMARY KEY,
    asset_id   TEXT NOT NULL,
    seller_id  TEXT NOT NULL,
    buyer_id   TEXT NOT NULL,
    at,
    data       TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS trades_asset ON trades(asset_id, at);
CREATE INDEX IF NOT EXISTS trades_buyer ON trades(buyer_id, at);
CREATE INDEX IF NOT EXISTS trades_seller ON trades(seller_id, at);
-- Each token's provenance chain: one row per record (market.provenance's JSON, verbatim),
-- written in the transaction that changes the asset it records.
CREATE TABLE IF NOT EXISTS provenance (
    token_id TEXT NOT NULL,
    seq      INTEGER NOT NULL,
    record   TEXT NOT NULL,
    PRIMARY KEY (token_id, seq)
) WITHOUT ROWID;
-- Money (storage.sqlite_money): each account's balance and version (how many postings),
-- the journal (entries, `after` = each account's balance after it) and one posting row per
-- account and entry, all written by post_entry in one transaction.
CREATE TABLE IF NOT EXISTS accounts (
    account TEXT PRIMARY KEY,
    balance INTEGER NOT NULL,
    version INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS entries (
    entry_id  TEXT PRIMARY KEY,
    cause     TEXT NOT NULL,
    cause_key TEXT NOT NULL,
    at        INTEGER NOT NULL,
    postings  TEXT NOT NULL,
    after     TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS postings (
    account   TEXT NOT NULL,
    version   INTEGER NOT NULL,
    entry_id  TEXT NOT NULL,
    amount    INTEGER NOT NULL,
    balance   INTEGER NOT NULL,
    at        INTEGER NOT NULL,
    cause     TEXT NOT NULL,
    cause_key TEXT NOT NULL,
    PRIMARY KEY (account, version)
) WITHOUT ROWID;
-- The user channel: pos (AUTOINCREMENT: never reused) orders the global feed, seq each
-- user's notices, and (user_id, key) makes adding a notice idempotent.
CREATE TABLE IF NOT EXISTS notices (
    pos     INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id TEXT NOT NULL,
    seq     INTEGER NOT NULL,
    key     TEXT NOT NULL,
    type    TEXT NOT NULL,
    at      INTEGER NOT NULL,
    data    TEXT NOT NULL,
    UNIQUE (user_id, seq),
    UNIQUE (user_id, key)
);
CREATE TABLE IF NOT EXISTS second_chances (
    auction_id TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL,
    at         INTEGER NOT NULL,
    data       TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS second_chances_user ON second_chances(user_id, at);
-- Trade offers (storage.sqlite_offers): the whole record as JSON (`data`, without host and
-- told_seq) beside the columns it is looked up by, told_seq being the store's own. One
-- offer_assets row per asset the offer names, rewritten with each version of the record.
CREATE TABLE IF NOT EXISTS offers (
    offer_id   TEXT PRIMARY KEY,
    thread_id  TEXT NOT NULL,
    from_id    TEXT NOT NULL,
    to_id      TEXT NOT NULL,
    status     TEXT NOT NULL,
    host       TEXT,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    seq        INTEGER NOT NULL,
    told_seq   INTEGER NOT NULL DEFAULT 0,
    data       TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS offers_to ON offers(to_id, created_at, offer_id);
CREATE INDEX IF NOT EXISTS offers_from ON offers(from_id, created_at, offer_id);
CREATE INDEX IF NOT EXISTS offers_status ON offers(status, from_id);
CREATE INDEX IF NOT EXISTS offers_host ON offers(host, status);
CREATE INDEX IF NOT EXISTS offers_thread ON offers(thread_id);
-- Offers whose notices are not all stored: few, so a partial index finds them at once.
CREATE INDEX IF NOT EXISTS offers_untold ON offers(host) WHERE told_seq < seq;
CREATE TABLE IF NOT EXISTS offer_assets (
    asset_id TEXT NOT NULL,
    offer_id TEXT NOT NULL,
    PRIMARY KEY (asset_id, offer_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS offer_assets_offer ON offer_assets(offer_id);
-- Analytics (storage.sqlite_facts). The fact feeds: pos (AUTOINCREMENT, taken inside the
-- appending transaction) orders each feed gap-free. A sale's key and a closing's auction
-- are unique. grade is untyped, like the assets' (9 stays 9, 9.5 stays 9.5).
CREATE TABLE IF NOT EXISTS sales (
    pos       INTEGER PRIMARY KEY AUTOINCREMENT,
    key       TEXT NOT NULL UNIQUE,
    card_id   TEXT NOT NULL,
    grader    TEXT NOT NULL,
    grade,
    price     INTEGER NOT NULL,
    at        INTEGER NOT NULL,
    source    TEXT NOT NULL,
    ref       TEXT,
    seller_id TEXT,
    buyer_id  TEXT
);
CREATE INDEX IF NOT EXISTS sales_card ON sales(card_id, grader, grade, at);
CREATE TABLE IF NOT EXISTS closings (
    pos        INTEGER PRIMARY KEY AUTOINCREMENT,
    auction_id TEXT NOT NULL UNIQUE,
    outcome    TEXT NOT NULL,
    at         INTEGER NOT NULL
);
-- Projection results: whole JSON documents of a kind under an ordered key, and each
-- projection's checkpoint (the feed position its results are written up to).
CREATE TABLE IF NOT EXISTS projection_docs (
    kind TEXT NOT NULL,
    key  TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (kind, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS checkpoints (
    name TEXT PRIMARY KEY,
    pos  INTEGER NOT NULL
);
-- The analytics log: live messages, trimmed to its last storage.facts.LOG_KEEP on save.
CREATE TABLE IF NOT EXISTS analytics_log (
    pos     INTEGER PRIMARY KEY AUTOINCREMENT,
    channel TEXT NOT NULL,
    type    TEXT NOT NULL,
    data    TEXT NOT NULL
);
-- The ownership feed (storage.ownership, storage.sqlite_ownership): one row per change of
-- an asset's owner, inserted in the transaction of the change (key unique, legs JSON).
CREATE TABLE IF NOT EXISTS ownership (
    pos       INTEGER PRIMARY KEY AUTOINCREMENT,
    key       TEXT NOT NULL UNIQUE,
    asset_id  TEXT NOT NULL,
    token_id  TEXT,
    card_id   TEXT,
    grader    TEXT,
    grade,
    from_user TEXT,
    to_user   TEXT,
    at        INTEGER NOT NULL,
    how       TEXT NOT NULL,
    price     INTEGER,
    premium   INTEGER,
    fee       INTEGER,
    ref       TEXT,
    legs      TEXT
);
CREATE INDEX IF NOT EXISTS ownership_asset ON ownership(asset_id, pos);
-- Watches (storage.facts.record_watch): who subscribed to an auction's live channel, the
-- first time kept. The key is the index an auction's watchers are read by.
CREATE TABLE IF NOT EXISTS watches (
    auction_id TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    at         INTEGER NOT NULL,
    PRIMARY KEY (auction_id, user_id)
) WITHOUT ROWID;
"""

# Columns added after the first release: (table, column, declaration) for ALTER TABLE.
_ADDED_COLUMNS = (
    ("auctions", "settle_error", "TEXT"),
    # Auctions settled before notices existed have nobody to tell: 1 for them.
    ("auctions", "told", "INTEGER NOT NULL DEFAULT 1"),
    ("assets", "card_id", "TEXT"),
    ("assets", "grader", "TEXT"),
    ("assets", "grade", ""),
    ("assets", "cert", "TEXT"),
    ("assets", "token_id", "TEXT"),
    ("assets", "redeemed", "INTEGER NOT NULL DEFAULT 0"),
    ("trades", "premium", "INTEGER"),
    ("trades", "seller_fee", "INTEGER"),
    ("users", "portfolio_public", "INTEGER NOT NULL DEFAULT 0"),
)

# Indexes on added columns: created after _ADDED_COLUMNS has brought an old file up to date.
_INDEXES_ON_ADDED_COLUMNS = """
CREATE UNIQUE INDEX IF NOT EXISTS assets_grader_cert ON assets(grader, cert)
    WHERE cert IS NOT NULL;
CREATE INDEX IF NOT EXISTS assets_card ON assets(card_id, grader, grade);
CREATE INDEX IF NOT EXISTS auctions_untold ON auctions(told, status);
CREATE UNIQUE INDEX IF NOT EXISTS assets_token ON assets(token_id);
"""


def sync_mode(synchronous: str) -> str:
    mode = synchronous.upper()
    if mode not in _SYNC_MODES:
        raise ValueError(f"synchronous must be one of {_SYNC_MODES}, not {synchronous!r}")
    return mode


def connect(path: str, synchronous: str) -> sqlite3.Connection:
    """Open `path` in WAL mode with the given synchronous level; create or migrate the schema."""
    # isolation_level=None: we issue BEGIN/COMMIT ourselves (the stdlib's implicit
    # deferred BEGIN is exactly the lock-upgrade pattern that deadlocks under WAL).
    conn = sqlite3.connect(
        path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
    )
    try:
        conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
        _enable_wal(conn)
        conn.execute(f"PRAGMA synchronous={sync_mode(synchronous)}")
        conn.execute("BEGIN IMMEDIATE")
        try:
            new_feed = not _has_table(conn, "ownership")
            _run_script(conn, _SCHEMA)
            _add_missing_columns(conn)
            _run_script(conn, _INDEXES_ON_ADDED_COLUMNS)
            _backfill_token_ids(conn)
            if new_feed:  # a file older than the ownership feed: its owners, once
                backfill_ownership(conn)
            upgrade_rows(conn)  # rows older versions wrote, rewritten once
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    except BaseException:
        conn.close()
        raise
    return conn


def _run_script(conn: sqlite3.Connection, script: str) -> None:
    # Not executescript(): that would COMMIT the surrounding BEGIN IMMEDIATE first.
    for stmt in script.split(";"):
        if stmt.strip():
            conn.execute(stmt)


def _has_table(conn: sqlite3.Connection, name: str) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?",
                        (name,)).fetchone() is not None


def _add_missing_columns(conn: sqlite3.Connection) -> None:
    # CREATE TABLE IF NOT EXISTS leaves a file made by an older version as it was.
    for table, column, decl in _ADDED_COLUMNS:
        have = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        if column not in have:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}".rstrip())


def _backfill_token_ids(conn: sqlite3.Connection) -> None:
    # Assets written before tokens get the token id derived from their id (what the API has
    # always shown for them), so that they are found by token. One index probe once done.
    rows = conn.execute("SELECT asset_id FROM assets WHERE token_id IS NULL").fetchall()
    if rows:
        conn.executemany("UPDATE OR IGNORE assets SET token_id=? WHERE asset_id=?",
                         [(token_id_for(asset_id), asset_id) for (asset_id,) in rows])


def _enable_wal(conn: sqlite3.Connection) -> None:
    # Switching to WAL needs a brief exclusive lock; when many processes open a fresh
    # file at once some may see "locked" without the busy handler, so retry briefly.
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
            continue
        if str(mode).lower() != "wal":
            raise StoreError(f"could not enable WAL on {conn!r}: journal_mode={mode}")
        return
