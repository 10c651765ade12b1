"""Valuations kept beside the market projection (actors.analytics.valuations)."""

from __future__ import annotations

import pytest

from actors.analytics.book import Book, sale_segment
from actors.analytics.cards import CardInfo, Cards
from actors.analytics.market import MarketProjection
from actors.analytics.runner import Runner
from actors.analytics.valuations import (
    FULL_MS,
    RECOMPUTE_MS,
    VALUES_CHANNEL,
    ValuationProjection,
    Valuations,
    value_of,
)
from tests.unit.projectionkit import NOW as KIT_NOW
from tests.unit.projectionkit import MakeStore, history, live

DAY = 86_400_000
NOW = 1_000 * DAY  # the pure tests' clock (the projection's is projectionkit's NOW)


def book_of(sales: list[tuple[str, int, int]]) -> Book:
    book = Book()
    book.extend([s for s, _, _ in sales], [a for _, a, _ in sales], [p for _, _, p in sales],
                list(range(1, len(sales) + 1)), [True] * len(sales))
    return book


INFO = {"c1": CardInfo("One", "pokemon", "Base"), "c2": CardInfo("Two", "pokemon", "Base")}
# The pokemon index doubled a year ago: sales before then are worth twice their price now.
INDEXES = [("1w", "category:pokemon", {"points": [{"t": 0, "value": 100.0},
                                                   {"t": NOW - 365 * DAY, "value": 200.0}]}),
           ("1mo", "category:pokemon", {"points": [{"t": 0, "value": 1.0}]})]


def test_values_are_index_adjusted_derived_between_grades_and_written_when_they_change() -> None:
    book = book_of([("c1|PSA|8", NOW - 400 * DAY, 1_000), ("c1|PSA|8", NOW - 300 * DAY, 2_000),
                    ("c1|PSA|10", NOW - 10 * DAY, 9_000), ("c1|PSA|9", NOW - 500 * DAY, 1),
                    ("c2|BGS|9", NOW - DAY, 500)])
    vals = Valuations()
    puts, changed = vals.compute(book, INFO, INDEXES, NOW)
    docs = {key: doc for kind, key, doc in puts if kind == "valuation"}
    assert set(docs) == set(changed) == {"c1|PSA|8", "c1|PSA|9", "c1|PSA|10", "c2|BGS|9"}
    psa8 = docs["c1|PSA|8"]
    # Only the sale within 365 days counts, at its price: the index has not moved since.
    assert [s["price"] for s in psa8["sales"]] == [2_000]
    assert psa8["value"]["point"] == 2_000 and psa8["index"] == "category:pokemon"
    assert psa8["sales_365d"] == 1 and docs["c1|PSA|9"]["sales_365d"] == 0
    # PSA 9's one sale is older than a year: derived between PSA 8 and PSA 10, never inverted.
    psa9 = docs["c1|PSA|9"]["value"]
    assert psa9["method"] == "derived" and 2_000 < psa9["point"] < 9_000
    assert docs["c1|PSA|9"]["sales"] == []

    # Nothing new: nothing written. A sale of c2 only: c2 only, until a full recompute is due.
    assert vals.compute(book, INFO, INDEXES, NOW + 1) == ([], [])
    book.extend(["c2|BGS|9"], [NOW], [700], [99], [True])
    vals.touch(["c2"])
    puts, changed = vals.compute(book, INFO, INDEXES, NOW + 2)
    assert changed == ["c2|BGS|9"] and [k for _, k, _ in puts] == ["c2|BGS|9"]
    moved = [("1w", "category:pokemon", {"points": [{"t": 0, "value": 100.0},
                                                    {"t": NOW - 365 * DAY, "value": 200.0},
                                                    {"t": NOW, "value": 400.0}]})]
    assert vals.compute(book, INFO, moved, NOW + 3) == ([], [])  # not due yet
    _, changed = vals.compute(book, INFO, moved, NOW + FULL_MS)
    assert "c1|PSA|8" in changed  # the index doubled again: every value moved


def test_a_grade_never_sold_is_derived_from_the_others_or_has_no_value() -> None:
    def doc(grade: int, point: int) -> dict:
        return {"grade": grade, "value": {"point": point, "low": point - 10, "high": point + 10,
                                          "confidence": "high", "method": "sales", "n": 5,
                                          "last_sale_at": NOW}}
    docs = [doc(8, 1_000), doc(10, 4_000)]
    assert value_of(docs, 10)["point"] == 4_000
    derived = value_of(docs, 9)
    assert derived["method"] == "derived" and derived["confidence"] == "medium"
    assert 1_000 < derived["point"] < 4_000
    assert value_of([], 9) is None
    assert value_of([{"grade": 8, "value": None}], 9) is None


# -- the projection, through its runner, beside the market's -----------------------------

@pytest.mark.asyncio
async def test_the_projection_values_after_the_market_and_tells_which_positions_moved(
        stores: MakeStore, every_batch: None) -> None:
    store = await stores(history(300))
    now = [KIT_NOW]
    market = MarketProjection(Cards(store))
    market_runner = Runner(store, market, page=10_000, clock=lambda: now[0])
    values_runner = Runner(store, ValuationProjection(market), page=10_000,
                           clock=lambda: now[0])
    for runner in (market_runner, values_runner):
        await runner.restore()
    # The market has not folded the sales yet: the valuations wait for it.
    await values_runner.catch_up()
    assert await store.scan_projection("valuation", "", "~", 10) == []
    await market_runner.catch_up()
    now[0] += RECOMPUTE_MS
    await values_runner.step()
    docs = dict(await store.scan_projection("valuation", "", "~", 10_000))
    assert set(docs) == set(market.book.segments)  # every segment, valued or not
    assert any(d["value"] for d in docs.values())
    # The first computation tells every position (a portfolio may have read them before).
    [first] = [m for m in await store.analytics_log(0) if m["channel"] == VALUES_CHANNEL]
    assert set(first["data"]["positions"]) == set(docs)

    sales = live(6)
    assert await store.add_sales(sales) == 6
    await market_runner.step()
    now[0] += RECOMPUTE_MS
    assert await values_runner.step() == 6
    [_, message] = [m for m in await store.analytics_log(0) if m["channel"] == VALUES_CHANNEL]
    assert message["type"] == "values"
    moved = {sale_segment(s) for s in sales}
    assert moved <= set(message["data"]["positions"])
    for key in moved:
        doc = await store.get_projection_doc("valuation", key)
        assert doc is not None and doc["computed_at"] == now[0]


def test_a_value_saved_between_the_routes_two_reads_is_answered_with_its_sales() -> None:
    # The route read no doc for PSA 9, then scanned the grader's docs after the projection
    # saved it: the answer is that doc whole, never its value beside an empty sales list.
    from gateway.valuations import answer

    part = {"card_id": "c1", "grader": "PSA", "grade": 9}
    value = {"point": 100, "low": 90, "high": 110, "n": 1, "method": "sales",
             "confidence": "high", "last_sale_at": 1}
    saved = {**part, "value": value, "sales": [{"price": 100}], "sales_365d": 1}
    other = {**part, "grade": 10, "value": {**value, "point": 300}, "sales": [{"price": 300}]}
    assert answer(part, None, [saved, other]) == {**saved, "derived_from": None}
    never = answer({**part, "grade": 8}, None, [saved, other])
    assert never["sales"] == [] and never["derived_from"] == [9, 10]
