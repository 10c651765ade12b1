"""SQLite-specific behaviour: many writers on one file, pragmas, URL factory."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest

from market.provenance import token_id_for
from storage import CommitBatch, Conflict, StoreError, open_store
from storage.mongo import MongoStore
from storage.sqlite import SqliteStore
from storage.sqlite_schema import FILE_SUFFIXES
from tests.storage.test_contract import asset, auction, event, view
from tests.storage.test_provenance_contract import follow, mint, verified

N_AUCTIONS = 10
N_BATCHES = 60


async def _write_many(store: SqliteStore, prefix: str) -> None:
    """Create auctions, then group-commit N_BATCHES batches covering all of them."""
    ids = [f"{prefix}-{i}" for i in range(N_AUCTIONS)]
    for aid in ids:
        await store.create_asset(asset(f"as-{aid}", prefix))
        await store.create_auction(auction(aid, f"as-{aid}", prefix))
    for seq in range(1, N_BATCHES + 1):
        batch = CommitBatch(
            events=[event(aid, seq, who=prefix) for aid in ids],
            views={aid: view(aid, "live", seq) for aid in ids},
            snapshots={aid: {"seq": seq} for aid in ids},
        )
        assert await store.commit(batch) == set()


async def _verify(path: str, prefixes: list[str]) -> None:
    store = SqliteStore(path)
    await store.open()
    try:
        for prefix in prefixes:
            for i in range(N_AUCTIONS):
                aid = f"{prefix}-{i}"
                evs = await store.load_events(aid)
                assert [e["seq"] for e in evs] == list(range(1, N_BATCHES + 1))
                rec = await store.get_auction(aid)
                assert rec is not None and rec["seq"] == N_BATCHES
                assert rec["snapshot"] == {"seq": N_BATCHES}
    finally:
        await store.close()


async def test_two_instances_in_two_threads_write_concurrently(tmp_path: Path) -> None:
    # Each SqliteStore has its own connection on its own worker thread, so the two
    # commit loops genuinely contend for the file's write lock.
    path = str(tmp_path / "shared.db")
    stores = [SqliteStore(path), SqliteStore(path)]
    await asyncio.gather(*(s.open() for s in stores))
    try:
        await asyncio.gather(_write_many(stores[0], "t0"), _write_many(stores[1], "t1"))
    finally:
        for s in stores:
            await s.close()
    await _verify(path, ["t0", "t1"])


def _process_writer(path: str, prefix: str, barrier: Any) -> None:
    async def main() -> None:
        store = SqliteStore(path)
        barrier.wait(timeout=60)  # open the fresh file at the same moment: schema/WAL race
        await store.open()
        try:
            await _write_many(store, prefix)
        finally:
            await store.close()

    asyncio.run(main())


async def test_two_processes_write_concurrently(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.db")
    # spawn, not fork: the test process runs threads (store workers, mongoeco server).
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(3)
    procs = [ctx.Process(target=_process_writer, args=(path, f"p{i}", barrier)) for i in range(3)]
    for p in procs:
        p.start()
    try:
        for p in procs:
            await asyncio.to_thread(p.join, 120)
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
    assert [p.exitcode for p in procs] == [0, 0, 0]
    await _verify(path, ["p0", "p1", "p2"])


async def test_a_write_transaction_holds_the_files_writer_lock_and_only_then(
        tmp_path: Path) -> None:
    """Writers take turns on the lock file (woken by the kernel when it frees) instead of
    sleeping in SQLite's busy handler: held from before BEGIN to after COMMIT or ROLLBACK."""
    import fcntl

    from storage.sqlite_schema import WRITER_LOCK

    store = SqliteStore(str(tmp_path / "locked.db"))
    await store.open()
    probe = os.open(store.path + WRITER_LOCK, os.O_RDWR)  # another writer's view of it

    def free() -> bool:
        try:
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(probe, fcntl.LOCK_UN)
        return True

    def inside(conn: sqlite3.Connection) -> bool:
        return free()

    def fails(conn: sqlite3.Connection) -> None:
        raise RuntimeError("the transaction fails")

    try:
        assert free()
        assert await store._run(store._write, inside) is False  # taken while it runs
        assert free()
        with pytest.raises(RuntimeError):
            await store._run(store._write, fails)
        assert free()  # a rolled-back transaction lets it go too
        await store.create_user({"user_id": "u1", "username": "ann", "password_hash": "h"})
        assert free()
    finally:
        os.close(probe)
        await store.close()


class CommitFailsOnce:
    """Stands in for a store's sqlite3 connection; the first COMMIT fails like a full disk."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.failed = False

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if sql == "COMMIT" and not self.failed:
            self.failed = True
            raise sqlite3.OperationalError("database or disk is full (injected)")
        return self.conn.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)


async def test_failed_commit_is_rolled_back_and_store_keeps_working(tmp_path: Path) -> None:
    path = str(tmp_path / "c.db")
    store, other = SqliteStore(path), SqliteStore(path)
    await store.open()
    await other.open()
    try:
        await store.create_asset(asset("a0", "u1"))
        await store.create_auction(auction("x1", "a0", "u1"))
        assert store._conn is not None
        faulty = CommitFailsOnce(store._conn)
        store._conn = faulty  # type: ignore[assignment]

        lost = CommitBatch(events=[event("x1", 1)], views={"x1": view("x1", "live", 1)})
        with pytest.raises(StoreError):
            await store.commit(lost)
        assert faulty.failed
        assert not faulty.conn.in_transaction
        for reader in (store, other):
            assert await reader.load_events("x1") == []
            assert (await reader.get_auction("x1") or {})["seq"] == 0

        # This connection writes again, and it no longer holds the file's write lock.
        await store.commit(lost)
        await other.create_asset(asset("a1", "u2"))
        for reader in (store, other):
            assert await reader.load_events("x1") == [event("x1", 1)]
            assert (await reader.get_auction("x1") or {})["seq"] == 1
            assert (await reader.get_asset("a1") or {})["owner_id"] == "u2"
    finally:
        await store.close()
        await other.close()


async def _pragma(store: SqliteStore, name: str) -> Any:
    def q() -> Any:
        return store._db.execute(f"PRAGMA {name}").fetchone()[0]

    return await store._run(q)


@pytest.mark.parametrize(("mode", "level"), [("FULL", 2), ("normal", 1), ("OFF", 0)])
async def test_pragmas(tmp_path: Path, mode: str, level: int) -> None:
    store = SqliteStore(str(tmp_path / "p.db"), synchronous=mode)
    await store.open()
    try:
        assert await _pragma(store, "journal_mode") == "wal"
        assert await _pragma(store, "synchronous") == level
        assert await _pragma(store, "busy_timeout") == 10_000
    finally:
        await store.close()


def test_bad_synchronous_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        SqliteStore(str(tmp_path / "p.db"), synchronous="SOMETIMES")


async def test_open_is_idempotent_and_schema_survives_reopen(tmp_path: Path) -> None:
    path = str(tmp_path / "r.db")
    store = SqliteStore(path)
    await store.open()
    await store.open()
    await store.create_asset(asset("a1", "u1"))
    await store.close()
    await store.close()
    again = SqliteStore(path)
    await again.open()
    try:
        assert (await again.get_asset("a1") or {})["owner_id"] == "u1"
    finally:
        await again.close()


async def test_file_from_before_settle_error_is_migrated(tmp_path: Path) -> None:
    path = str(tmp_path / "old.db")
    store = SqliteStore(path)
    await store.open()
    await store.create_asset(asset("a1", "u1"))
    await store.create_auction(auction("x1", "a1", "u1"))
    await store.close()
    # Back to the auctions table as the first release made it.
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("ALTER TABLE auctions DROP COLUMN settle_error")

    again = SqliteStore(path)
    await again.open()
    try:
        assert (await again.get_auction("x1") or {})["settle_error"] is None
        await again.commit(CommitBatch(views={"x1": view("x1", "closed", 1)}))
        await again.release("x1", "a1")
        assert (await again.get_auction("x1") or {})["settled"] is True
    finally:
        await again.close()


# The assets table as releases before the card catalog made it.
_ASSETS_BEFORE_CATALOG = """
CREATE TABLE assets (
    asset_id   TEXT PRIMARY KEY,
    owner_id   TEXT NOT NULL,
    title      TEXT NOT NULL,
    metadata   TEXT NOT NULL,
    created_at,
    listed_in  TEXT
)"""


async def test_file_from_before_the_catalog_is_migrated(tmp_path: Path) -> None:
    path = str(tmp_path / "old.db")
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute(_ASSETS_BEFORE_CATALOG)
        conn.execute("CREATE INDEX assets_owner ON assets(owner_id)")
        conn.execute("INSERT INTO assets VALUES ('a_old', 'u1', 'Old card', '{\"x\": 1}', 5, NULL)")
    # Several instances open (and migrate) the old file at once.
    stores = [SqliteStore(path) for _ in range(4)]
    await asyncio.gather(*(s.open() for s in stores))
    store = stores[0]
    try:
        assert await store.get_asset("a_old") == {
            "asset_id": "a_old", "owner_id": "u1", "title": "Old card", "metadata": {"x": 1},
            "created_at": 5, "listed_in": None, "card_id": None, "grader": None, "grade": None,
            "cert": None, "token_id": token_id_for("a_old")}  # derived when it opened
        copy = {**asset("a_new", "u1"), "card_id": "card_1", "grader": "PSA", "grade": 9.5,
                "cert": "123", "token_id": "42"}
        await store.create_asset(copy)
        assert await stores[1].get_asset("a_new") == {**copy, "listed_in": None}
        with pytest.raises(Conflict) as err:
            await stores[2].create_asset({**copy, "asset_id": "a_dup"})
        assert err.value.code == "CERT_EXISTS"
        assert await store.population("card_1") == [{"grader": "PSA", "grade": 9.5, "count": 1}]
        await store.create_card({"card_id": "card_1", "name": "Pikachu", "set": "Base Set",
                                 "number": "58/102", "year": 1999, "category": "pokemon",
                                 "terms": ["pikachu", "base", "set"], "created_at": None})
        assert [c["card_id"] for c in await stores[3].search_cards(["pik"])] == ["card_1"]
    finally:
        for s in stores:
            await s.close()
    # The database itself refuses a duplicate (grader, cert), whoever writes.
    with (contextlib.closing(sqlite3.connect(path)) as conn,
          pytest.raises(sqlite3.IntegrityError)):
        conn.execute("INSERT INTO assets(asset_id, owner_id, title, metadata, grader, cert)"
                     " VALUES ('a_raw', 'u2', 't', '{}', 'PSA', '123')")


async def test_file_from_before_tokens_is_migrated(tmp_path: Path) -> None:
    path = str(tmp_path / "old.db")
    store = SqliteStore(path)
    await store.open()
    await store.create_asset(asset("a_old", "u1"))
    await store.create_asset({**asset("a_graded", "u1"), "card_id": "card_1", "grader": "PSA",
                              "grade": 9, "cert": "5", "token_id": token_id_for("a_graded")})
    await store.close()
    # Back to the file as the catalog's release made it: no provenance table, no redeemed
    # column, no token index, and no token id on an asset made without one.
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("DROP TABLE provenance")
        conn.execute("DROP INDEX assets_token")
        conn.execute("ALTER TABLE assets DROP COLUMN redeemed")
        conn.execute("UPDATE assets SET token_id=NULL WHERE asset_id='a_old'")

    stores = [SqliteStore(path) for _ in range(4)]
    await asyncio.gather(*(s.open() for s in stores))  # several processes migrate it at once
    try:
        old = await stores[0].get_asset("a_old")
        assert old is not None and old["token_id"] == token_id_for("a_old")
        assert "redeemed" not in old
        for asset_id in ("a_old", "a_graded"):
            token = token_id_for(asset_id)
            assert (await stores[1].get_asset_by_token(token) or {})["asset_id"] == asset_id
            assert await stores[2].load_provenance(token) == []
        first = mint({**asset("a_graded", "u1")})
        await stores[3].append_provenance(token_id_for("a_graded"), first)
        redeem = follow(token_id_for("a_graded"), first, "redeem", "u1", None)
        await stores[0].append_provenance(token_id_for("a_graded"), redeem)
        assert await verified(stores[1], token_id_for("a_graded")) == [first, redeem]
        assert (await stores[2].get_asset("a_graded") or {}).get("redeemed") is True
        assert await stores[3].population("card_1") == []
        plan = " | ".join(str(r[-1]) for r in stores[0]._db.execute(
            "EXPLAIN QUERY PLAN SELECT asset_id FROM assets WHERE token_id IS NULL"))
        assert "SEARCH assets USING INDEX assets_token" in plan, plan  # run at each open
    finally:
        for s in stores:
            await s.close()


async def test_card_search_is_driven_by_the_term_index(tmp_path: Path) -> None:
    from storage.sqlite_catalog import _search_sql

    store = SqliteStore(str(tmp_path / "plan.db"))
    await store.open()
    try:
        for terms, category in ((["pika"], None), (["pika", "base"], "pokemon")):
            sql, args = _search_sql(terms, category, None, 50, ("a", "b"))
            plan = " | ".join(str(r[-1]) for r in store._db.execute(
                "EXPLAIN QUERY PLAN " + sql, args))
            assert plan.count("SEARCH card_terms USING PRIMARY KEY (term>? AND term<?)") == len(
                terms), plan
            assert "SCAN card_terms" not in plan and "SCAN c " not in plan, plan
        sql, args = _search_sql([], None, None, 50, ("a", "b"))
        plan = " | ".join(str(r[-1]) for r in store._db.execute("EXPLAIN QUERY PLAN " + sql, args))
        assert "USING INDEX cards_sort" in plan and "TEMP B-TREE" not in plan, plan
    finally:
        await store.close()


def test_open_store_urls(tmp_path: Path) -> None:
    s = open_store(f"sqlite://{tmp_path}/x.db")
    assert isinstance(s, SqliteStore) and (s.path, s.synchronous) == (f"{tmp_path}/x.db", "FULL")
    s = open_store(f"sqlite://{tmp_path}/x.db?synchronous=NORMAL")
    assert isinstance(s, SqliteStore) and s.synchronous == "NORMAL"
    m = open_store("memory:bench")
    assert isinstance(m, SqliteStore) and m.synchronous == "OFF"
    assert os.path.basename(m.path) == "ece-bench.db"
    g = open_store("mongodb://db1:27017,db2:27017/auctions?replicaSet=rs0")
    assert isinstance(g, MongoStore) and g.db_name == "auctions"
    assert g.write_concern.document == {"w": "majority", "j": True}
    g = open_store("mongodb://localhost/?w=1&journal=false")
    assert isinstance(g, MongoStore) and g.db_name == "ece"
    assert g.write_concern.document == {"w": 1, "j": False}
    with pytest.raises(ValueError):
        open_store("postgres://nope")


async def test_memory_store_is_shared_between_instances() -> None:
    name = f"test-{uuid.uuid4().hex[:8]}"
    a, b = open_store(f"memory:{name}"), open_store(f"memory:{name}")
    assert isinstance(a, SqliteStore)
    try:
        await a.open()
        await b.open()
        await a.create_asset(asset("a1", "u1"))
        assert (await b.get_asset("a1") or {})["owner_id"] == "u1"
    finally:
        await a.close()
        await b.close()
        for suffix in FILE_SUFFIXES:
            Path(a.path + suffix).unlink(missing_ok=True)


async def test_a_big_projection_save_is_written_in_fenced_chunks(tmp_path: Path) -> None:
    from storage import sqlite_facts
    from storage.sqlite import SqliteStore

    store = SqliteStore(str(tmp_path / "chunks.db"))
    await store.open()
    try:
        n = sqlite_facts.SAVE_CHUNK * 2 + 7
        puts: list[tuple[str, str, dict | None]] = [
            ("candle", f"k{i:06d}", {"i": i}) for i in range(n)]
        # A stale instance (it expects a checkpoint that is not there) writes nothing at all.
        assert await store.save_projection("p", 5, 9, puts) is False
        assert await store.count_projection("candle") == 0
        writes = 0
        real = store._write

        def counting(fn: Any) -> Any:
            nonlocal writes
            writes += 1
            return real(fn)

        store._write = counting  # type: ignore[method-assign]
        assert await store.save_projection("p", 0, 9, puts,
                                           [{"channel": "market", "type": "x", "data": {}}])
        assert writes == 3  # two full chunks, then the rest with the checkpoint
        assert await store.count_projection("candle") == n
        assert await store.projection_checkpoint("p") == 9
        assert len(await store.analytics_log(0)) == 1
    finally:
        await store.close()


def _wal_pages(path: str) -> int:
    """Pages (frames) in the WAL file so far."""
    size = os.path.getsize(path + "-wal")
    return max(0, size - 32) // (4096 + 24)


async def test_a_bid_commit_rewrites_no_auction_index(tmp_path: Path) -> None:
    """A commit whose views keep their status and end time writes the event's page and the
    auction's row's page, not the five indexes on status or ends_at (13.3 pages per one-bid
    commit before, in a bench-sized file; 8.3 after)."""
    store = SqliteStore(str(tmp_path / "pages.db"))
    await store.open()
    try:
        for i in range(20):
            await store.create_asset(asset(f"as-a{i}", "u1"))
            await store.create_auction(auction(f"a{i}", f"as-a{i}", "u1"))
        await store.commit(CommitBatch(events=[event("a0", 1)],
                                       views={"a0": view("a0", "live", 1)}))
        before = _wal_pages(store.path)
        for seq in range(2, 12):
            await store.commit(CommitBatch(events=[event("a0", seq)],
                                           views={"a0": view("a0", "live", seq)}))
        assert (_wal_pages(store.path) - before) / 10 <= 2.0
    finally:
        await store.close()


async def test_a_bid_commit_neither_reads_nor_rewrites_the_snapshot(tmp_path: Path) -> None:
    """An auction's snapshot (here 100 KB) is not in the row a bid's view UPDATE changes:
    in the auctions row it cost ~28 WAL pages per one-bid commit whose view changed length
    (its overflow pages rewritten) and a read of every overflow page when it did not."""
    store = SqliteStore(str(tmp_path / "snap.db"))
    await store.open()
    try:
        await store.create_asset(asset("as-a0", "u1"))
        await store.create_auction(auction("a0", "as-a0", "u1"))
        await store.commit(CommitBatch(events=[event("a0", 1)],
                                       views={"a0": view("a0", "live", 1)},
                                       snapshots={"a0": {"seq": 1, "bids": "x" * 100_000}}))
        before = _wal_pages(store.path)
        for seq in range(2, 12):  # a view whose length changes each time
            grown = {**view("a0", "live", seq), "leader": "u" * seq}
            await store.commit(CommitBatch(events=[event("a0", seq)], views={"a0": grown}))
        assert (_wal_pages(store.path) - before) / 10 <= 3.0
        got = await store.get_auction("a0")
        assert got is not None and got["snapshot"] == {"seq": 1, "bids": "x" * 100_000}
        assert got["view"]["leader"] == "u" * 11
    finally:
        await store.close()


async def test_a_file_with_snapshots_in_the_auctions_row_is_migrated(tmp_path: Path) -> None:
    """Files written before `auction_snapshots` keep each snapshot in the auctions row: on
    open they move to the table (the newest kept) and the column is emptied."""
    path = str(tmp_path / "old.db")
    store = SqliteStore(path)
    await store.open()
    for aid in ("x1", "x2"):
        await store.create_asset(asset(f"as-{aid}", "u1"))
        await store.create_auction(auction(aid, f"as-{aid}", "u1"))
    await store.close()
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("ALTER TABLE auctions ADD COLUMN snapshot TEXT")
        conn.execute("ALTER TABLE auctions ADD COLUMN snapshot_seq INTEGER NOT NULL DEFAULT -1")
        conn.execute("UPDATE auctions SET snapshot=?, snapshot_seq=4 WHERE auction_id='x1'",
                     ('{"seq": 4, "old": true}',))
        conn.execute("PRAGMA user_version=1")  # as the version before wrote it

    again = SqliteStore(path)
    await again.open()
    try:
        x1, x2 = await again.get_auction("x1"), await again.get_auction("x2")
        assert x1 is not None and x1["snapshot"] == {"seq": 4, "old": True}
        assert x2 is not None and x2["snapshot"] is None
        await again.commit(CommitBatch(snapshots={"x1": {"seq": 3, "stale": True}}))
        assert (await again.get_auction("x1") or {})["snapshot"] == {"seq": 4, "old": True}
        await again.commit(CommitBatch(snapshots={"x1": {"seq": 5}}))
        assert (await again.get_auction("x1") or {})["snapshot"] == {"seq": 5}
    finally:
        await again.close()
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert conn.execute("SELECT count(*) FROM auctions WHERE snapshot IS NOT NULL"
                            ).fetchone() == (0,)
        assert conn.execute("PRAGMA user_version").fetchone() == (2,)


async def test_views_land_whether_or_not_status_and_end_time_change(tmp_path: Path) -> None:
    """One batch: a bid (same status and end), a soft-close extension (end moved), a close
    (status changed), and a stale view (an older seq) that must change nothing."""
    store = SqliteStore(str(tmp_path / "views.db"))
    await store.open()
    try:
        for aid in ("bid", "ext", "end", "old"):
            await store.create_asset(asset(f"as-{aid}", "u1"))
            await store.create_auction(auction(aid, f"as-{aid}", "u1"))
        await store.commit(CommitBatch(views={a: view(a, "live", 5) for a in ("bid", "ext",
                                                                              "end", "old")}))
        later = view("ext", "live", 6)["ends_at"] + 30
        await store.commit(CommitBatch(
            events=[event("bid", 6), event("ext", 6), event("end", 6)],
            views={"bid": view("bid", "live", 6), "ext": view("ext", "live", 6, ends_at=later),
                   "end": view("end", "ended", 6), "old": view("old", "ended", 4)}))
        got = {a: await store.get_auction(a) for a in ("bid", "ext", "end", "old")}
        assert {a: (r["status"], r["seq"], r["view"]["seq"]) for a, r in got.items() if r} == {
            "bid": ("live", 6, 6), "ext": ("live", 6, 6), "end": ("ended", 6, 6),
            "old": ("live", 5, 5)}
        assert got["ext"] is not None and got["ext"]["view"]["ends_at"] == later
        ended = await store.list_auctions(status="ended")
        assert [r["auction_id"] for r in ended] == ["end"]
    finally:
        await store.close()
