"""Long operator commands, with a progress bar (counts and rate), interruptible and resumable:
`ece seed` (the demo catalog and two years of simulated market history) and
`ece rebuild analytics` (every analytics projection recomputed from the facts)."""

from __future__ import annotations

import asyncio
import sys
import time

from tqdm import tqdm

from actors.analytics.actor import all_kinds, projections
from actors.analytics.runner import Runner
from gateway.config import Settings
from gateway.history import seed_history
from gateway.seed import seed_catalog
from storage import open_store


def _bar(total: int, unit: str, desc: str) -> tqdm:
    return tqdm(total=total, unit=unit, desc=desc, file=sys.stderr, dynamic_ncols=True,
                unit_scale=True, disable=None)


async def seed(settings: Settings, sales: int) -> int:
    store = open_store(settings.store_url)
    await store.open()
    try:
        await seed_catalog(store)
        with _bar(sales, "sale", "market history") as bar:
            def progress(done: int, total: int) -> None:
                bar.total = total
                bar.update(done - bar.n)

            added = await seed_history(store, sales, progress=progress)
        print(f"added {added} sales; the feed holds {await store.sales_position()}",
              file=sys.stderr)
    finally:
        await store.close()
    return 0


async def rebuild(settings: Settings, resume: bool) -> int:
    """Reset (unless `resume`) and recompute every analytics projection from the facts. A
    running server's projections are fenced by the reset and restart from the store."""
    store = open_store(settings.store_url)
    await store.open()
    try:
        found = projections(store, settings.cluster())
        if not resume:
            await store.reset_projections([p.name for p in found], all_kinds(found))
        for projection in found:
            runner = Runner(store, projection)
            await runner.restore()
            head = await projection.position(store)
            started = time.monotonic()
            with _bar(max(0, head - runner.checkpoint), "fact", projection.name) as bar:
                await runner.catch_up(bar.update)
            print(f"{projection.name}: {runner.folded} facts in "
                  f"{time.monotonic() - started:.1f} s", file=sys.stderr)
    finally:
        await store.close()
    return 0


def run(coro: object) -> int:
    try:
        return asyncio.run(coro)  # type: ignore[arg-type]
    except KeyboardInterrupt:
        print("interrupted: run the same command again to resume "
              "(`ece rebuild analytics --resume` for a rebuild)", file=sys.stderr)
        return 130
