"""Market history for a fresh install (`ece seed`, and `make run`'s demo): the deterministic
simulator's sales of the demo catalog added to the sales feed as external sales, in batches,
idempotent by key - an interrupted run is resumed by running it again."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from market.catalog_demo import demo_catalog, demo_copies
from market.simulate import sale_records, simulate_sales
from storage import Store
from storage.records import SaleRecord

BATCH = 5_000
SIM_SEED = 7
# The demo catalog and its graded copies are the same on every run (market.catalog_demo).
CATALOG_SEED = 1
COPIES = 5_000


def population(copies: list[Any]) -> dict[tuple[str, str, float | None], int]:
    counts: dict[tuple[str, str, float | None], int] = {}
    for card_id, grading in copies:
        key = (card_id, grading.grader, grading.grade)
        counts[key] = counts.get(key, 0) + 1
    return counts


async def seed_history(store: Store, sales: int, end_ms: int | None = None,
                       progress: Callable[[int, int], None] | None = None) -> int:
    """Add `sales` simulated sales ending now (or at `end_ms`), unless the feed already
    holds at least that many; `progress(done, total)` after each batch. Returns how many
    were added."""
    if sales <= 0 or await store.sales_position() >= sales:
        return 0
    end = end_ms if end_ms is not None else int(time.time() * 1000)
    # The simulation is anchored to the day, so a resumed run on the same day makes the
    # same sales (the same keys) and adds only the missing ones. It runs in a thread: the
    # gateway that seeds its demo is serving meanwhile.
    end -= end % 86_400_000
    records = await asyncio.to_thread(_simulate, sales, end)
    added = 0
    for i in range(0, len(records), BATCH):
        batch = records[i:i + BATCH]
        added += await store.add_sales([SaleRecord(**r) for r in batch])  # type: ignore[typeddict-item]
        if progress is not None:
            progress(min(i + BATCH, len(records)), len(records))
    return added


def _simulate(sales: int, end: int) -> list[dict[str, Any]]:
    cards = demo_catalog(CATALOG_SEED)
    sim = simulate_sales(cards, end, seed=SIM_SEED, target_sales=sales,
                         population=population(demo_copies(cards, CATALOG_SEED, COPIES)))
    return list(sale_records(cards, sim))
