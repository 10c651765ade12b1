"""The price projection's trend figures: moving averages on every candle and the segment's
7/30/90-day value changes and 30-day count and volume with their change - on hand-made sales,
and folded in batches with sales arriving out of time order (a late sale moves the moving
averages of the candles after it) equal to one fold of everything."""

from __future__ import annotations

import random
from typing import Any

import pytest

from actors.analytics.cards import Cards
from actors.analytics.prices import PriceProjection
from actors.analytics.runner import Runner
from storage import Store
from tests.unit.projectionkit import CARDS, DAY, NOW, MakeStore, clock, sale

pytestmark = pytest.mark.asyncio
SEGMENT = f"{CARDS[0].card_id}|PSA|9"


async def docs(store: Store, kind: str) -> dict[str, Any]:
    return dict(await store.scan_projection(kind, "", "\U0010ffff", limit=10**6))


async def fold(store: Store, page: int) -> None:
    runner = Runner(store, PriceProjection(Cards(store)), page=page, clock=clock)
    await runner.restore()
    await runner.catch_up()


async def test_candles_carry_trailing_means_and_segments_their_changes(
        stores: MakeStore) -> None:
    days = [100, 95, 60, 40, 20, 8, 6, 1]  # days ago, one sale each at noon
    prices = [1_000, 1_100, 1_200, 1_300, 1_400, 1_500, 1_600, 2_000]
    store = await stores([sale(f"s{i}", 0, p, NOW - d * DAY, seller=f"a{i}", buyer=f"b{i}")
                          for i, (d, p) in enumerate(zip(days, prices, strict=True))])
    await fold(store, 1_000)
    candles = await docs(store, "candle")
    last = candles[f"{SEGMENT}|1d|{NOW - NOW % DAY - DAY:013d}"]
    assert last["close"] == 2_000
    # The windows end with the candle's day: 7 days hold the sales 6 and 1 day ago...
    assert last["ma_7d"] == 1_800
    # ...30 days the last four, 90 days the last six (95 days ago is out).
    assert last["ma_30d"] == round((1_400 + 1_500 + 1_600 + 2_000) / 4)
    assert last["ma_90d"] == sum(prices[2:]) / 6 == 1_500
    first = candles[f"{SEGMENT}|1d|{NOW - NOW % DAY - 100 * DAY:013d}"]
    assert first["ma_7d"] == first["ma_30d"] == first["ma_90d"] == 1_000
    segment = (await docs(store, "segment"))[SEGMENT]
    # Values: the median of the latest <= 5 sales within 90 days of each time.
    value = 1_500  # median of 1300, 1400, 1500, 1600, 2000
    assert segment["value"] == value
    # 7 days ago: the sales 95..8 days ago; 30 days ago: 100..40; 90 days ago: 100 and 95.
    assert segment["change_7d"] == round(value / 1_300 - 1, 4)
    assert segment["change_30d"] == round(value / 1_150 - 1, 4)
    assert segment["change_90d"] == round(value / 1_050 - 1, 4)
    assert segment["count_30d"] == 4 and segment["volume_30d"] == 6_500
    assert segment["count_change_30d"] == round(4 / 1 - 1, 4)  # vs one sale 30-60 days ago
    assert segment["volume_change_30d"] == round(6_500 / 1_300 - 1, 4)


@pytest.mark.parametrize("page", [5, 17])
async def test_late_sales_refresh_the_averages_after_them(stores: MakeStore, page: int) -> None:
    rng = random.Random(page)
    times = [NOW - rng.randrange(1, 200) * DAY - rng.randrange(DAY) for _ in range(120)]
    sales = [sale(f"s{i}", i % 3, rng.randrange(900, 1_100), t, seller=f"a{i}", buyer=f"b{i}")
             for i, t in enumerate(times)]  # feed order is not time order
    batched, whole = await stores(sales), await stores(sales)
    await fold(batched, page)
    await fold(whole, 10_000)
    got, want = await docs(batched, "candle"), await docs(whole, "candle")
    assert got == want
    assert all("ma_30d" in doc for doc in got.values())
    assert await docs(batched, "segment") == await docs(whole, "segment")
