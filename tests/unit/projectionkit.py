"""What the projection tests share: the fixed clock, the demo cards, simulated and hand-made
sales, and the fixtures `stores` (SQLite stores holding them), `every_batch` and
`no_backoff` (re-exported by tests/unit/conftest.py)."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import cast

import pytest
import pytest_asyncio

from actors.analytics import market as market_module
from actors.analytics import runner as runner_module
from gateway.catalog import card_record
from market.catalog_demo import demo_catalog
from market.simulate import sale_records, simulate_sales
from storage import Store
from storage.records import Json, SaleRecord
from storage.sqlite import SqliteStore

DAY = 86_400_000
HOUR = 3_600_000
NOW = 1_700_000_000_000 - 1_700_000_000_000 % DAY + 12 * HOUR  # the fixed clock: a noon, UTC
CARDS = demo_catalog(1, 8)
PRICE_KINDS = ("sale", "candle", "segment")
MARKET_KINDS = ("index", "movers", "market")
BEHAVIOUR_KINDS = ("behaviour", "behaviour_market")
ALL_KINDS = (*PRICE_KINDS, *MARKET_KINDS, *BEHAVIOUR_KINDS)
NAMES = ("prices.0", "market", "behaviour.0")
EVERYTHING = "\U0010ffff"

Docs = dict[tuple[str, str], Json]
MakeStore = Callable[[list[SaleRecord]], Awaitable[SqliteStore]]


def clock() -> int:
    return NOW


# -- facts -----------------------------------------------------------------------------------
def history(n: int, seed: int = 3, end: int = NOW - 3 * DAY, days: int = 120) -> list[SaleRecord]:
    """n simulated external sales of the demo cards, ending `end` (old: none is live)."""
    sim = simulate_sales(CARDS, end, seed=seed, days=days, target_sales=n)
    return [cast(SaleRecord, r) for r in sale_records(CARDS, sim)]


def sale(key: str, card: int, price: int, at: int, grader: str = "PSA",
         grade: float | None = 9, seller: str | None = None,
         buyer: str | None = None) -> SaleRecord:
    return {"key": key, "card_id": CARDS[card].card_id, "grader": grader, "grade": grade,
            "price": price, "at": at, "source": "external", "ref": None,
            "seller_id": seller if seller is not None else f"s:{key}",
            "buyer_id": buyer if buyer is not None else f"b:{key}"}


def live(n: int, start: int = 0) -> list[SaleRecord]:
    """n sales of the last day (hours old), spread over the cards."""
    return [sale(f"live:{i}", i % len(CARDS), 50_000 + 1_000 * i, NOW - (1 + i % 20) * HOUR,
                 grader="RAW", grade=None) for i in range(start, start + n)]


async def add_facts(store: Store, sales: list[SaleRecord]) -> None:
    for card in CARDS:
        await store.create_card(card_record(card, NOW - 1_000 * DAY))
    assert await store.add_sales(sales) == len(sales)


@pytest_asyncio.fixture
async def stores(tmp_path: Path) -> AsyncIterator[MakeStore]:
    """Makes SQLite stores in tmp_path holding the demo cards and the given sales (the same
    sales give the same feed positions: SQLite's are gap-free)."""
    opened: list[SqliteStore] = []

    async def make(sales: list[SaleRecord]) -> SqliteStore:
        store = SqliteStore(str(tmp_path / f"store{len(opened)}.db"))
        await store.open()
        opened.append(store)
        await add_facts(store, sales)
        return store

    yield make
    for store in opened:
        await store.close()


@pytest.fixture
def every_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    """The market projection recomputes after every batch (not at most every 5 s of clock)."""
    monkeypatch.setattr(market_module, "RECOMPUTE_MS", 0)


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """The runner retries a failed save at once (no sleep)."""
    monkeypatch.setattr(runner_module, "backoff_delays", lambda: itertools.repeat(0.0))
