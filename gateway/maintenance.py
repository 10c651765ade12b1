"""Long operator commands, with a progress bar (counts and rate), interruptible and resumable:
`ece seed` (the demo catalog and two years of simulated market history),
`ece rebuild analytics` (every analytics projection recomputed from the facts) and
`ece rebuild portfolio` (every user's holdings, P/L and portfolio, from the ownership feed)."""

from __future__ import annotations

import asyncio
import sys
import time

from tqdm import tqdm

from actors.analytics.actor import all_kinds, projections
from actors.analytics.behaviour import RETIRED_NAMES
from actors.analytics.runner import Projection, Runner
from actors.portfolio.projection import KINDS as PORTFOLIO_KINDS
from actors.portfolio.projection import PortfolioProjection
from gateway.config import Settings
from gateway.history import seed_history
from gateway.seed import seed_catalog
from storage import Store, open_store


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
    running server's projections are fenced by the reset and restart from the store. The
    behaviour shards run side by side, so that each closing is loaded once for all of them
    (`ClosingFacts`); the others one after the other."""
    store = open_store(settings.store_url)
    await store.open()
    try:
        found = projections(store, settings.cluster())
        if not resume:
            await store.reset_projections([*(p.name for p in found), *RETIRED_NAMES],
                                          all_kinds(found))
        together = [p for p in found if p.name.startswith("behaviour.")]
        for group in [*([p] for p in found if p not in together), together]:
            if group:
                await _catch_up(store, group)
    finally:
        await store.close()
    return 0


async def _catch_up(store: Store, group: list[Projection]) -> None:
    """Run the projections of `group` to the head of their feed, side by side."""
    runners = [Runner(store, projection) for projection in group]
    behind = 0
    for runner in runners:
        await runner.restore()
        behind += max(0, await runner.projection.position(store) - runner.checkpoint)
    started = time.monotonic()
    with _bar(behind, "fact", ", ".join(r.name for r in runners)) as bar:
        await asyncio.gather(*(runner.catch_up(bar.update) for runner in runners))
    for runner in runners:
        print(f"{runner.name}: {runner.folded} facts in {time.monotonic() - started:.1f} s",
              file=sys.stderr)


async def rebuild_portfolio(settings: Settings, resume: bool) -> int:
    """Reset (unless `resume`) and recompute the portfolio projections from the ownership
    feed, valued with the analytics' current valuations (rebuild analytics first when those
    are being rebuilt too). The daily snapshots are kept: a value observed on a past day
    cannot be observed again. A running server's portfolio actors are fenced by the reset
    and restart from the store."""
    store = open_store(settings.store_url)
    await store.open()
    try:
        cluster = settings.cluster()
        found: list[Projection] = [PortfolioProjection(store, i, cluster.portfolio_shards)
                                   for i in range(cluster.portfolio_shards)]
        if not resume:
            await store.reset_projections([p.name for p in found], list(PORTFOLIO_KINDS))
        for projection in found:
            await _catch_up(store, [projection])
    finally:
        await store.close()
    return 0


def run(coro: object) -> int:
    try:
        return asyncio.run(coro)  # type: ignore[arg-type]
    except KeyboardInterrupt:
        print("interrupted: run the same command again to resume "
              "(`ece rebuild analytics|portfolio --resume` for a rebuild)", file=sys.stderr)
        return 130
