"""Several writers on one SQLite file: SQLite's busy handler against an flock (storage.sqlite).

`python -m loadtests.sqlite_writers PROCESSES RATE busy|flock`: PROCESSES processes, each
committing one small write transaction (5 rows) at Poisson arrivals of RATE per second for
8 s to one WAL file with synchronous=FULL; prints the latency from each transaction's
intended start to its commit (p50/p99/p99.9/max) over all of them. `busy`: SQLite alone (a
writer that finds the file locked sleeps in the busy handler); `flock`: every transaction
takes its turn on the store's own writer lock (`storage.sqlite_lock.WriterLock`), as
`SqliteStore` does.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import random
import sqlite3
import sys
import tempfile
import time

from storage.sqlite_lock import WriterLock
from storage.sqlite_schema import FILE_SUFFIXES

SECONDS = 8.0
ROW = b"x" * 300


def _writer(path: str, rate: float, use_flock: bool, out: mp.Queue) -> None:
    conn = sqlite3.connect(path, timeout=10, isolation_level=None)
    conn.execute("PRAGMA busy_timeout=10000")
    conn.execute("PRAGMA synchronous=FULL")
    lock = WriterLock(path)
    lock.open()
    rng = random.Random(os.getpid())
    latencies: list[float] = []
    due = time.perf_counter()
    end = due + SECONDS
    while True:
        due += rng.expovariate(rate)
        if due > end:
            break
        wait = due - time.perf_counter()
        if wait > 0:
            time.sleep(wait)  # the arrival's time (the load's schedule, not a synchronisation)
        with lock.turn() if use_flock else contextlib.nullcontext():
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany("INSERT INTO t(v) VALUES (?)", [(ROW,)] * 5)
            conn.execute("COMMIT")
        latencies.append((time.perf_counter() - due) * 1e3)
    out.put(latencies)


def main(processes: int, rate: float, mode: str) -> str:
    path = os.path.join(tempfile.mkdtemp(prefix="ece-writers-"), "w.db")
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)")
    conn.close()
    ctx = mp.get_context("spawn")
    out: mp.Queue = ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(path, rate, mode == "flock", out))
             for _ in range(processes)]
    for p in procs:
        p.start()
    lat = sorted(x for _ in procs for x in out.get())
    for p in procs:
        p.join()
    for suffix in FILE_SUFFIXES:
        with contextlib.suppress(OSError):
            os.unlink(path + suffix)
    os.rmdir(os.path.dirname(path))

    def q(f: float) -> float:
        return lat[min(len(lat) - 1, int(f * len(lat)))]

    return (f"{processes} processes x {rate:g}/s, {mode}: {len(lat)} transactions, "
            f"p50 {q(.5):.2f} p99 {q(.99):.2f} p99.9 {q(.999):.2f} max {lat[-1]:.1f} ms")


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[3] not in ("busy", "flock"):
        sys.exit(__doc__)
    print(main(int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]))
