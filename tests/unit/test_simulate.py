"""market.simulate: a deterministic market history for `ece seed`."""

from __future__ import annotations

import numpy as np
import pytest

from market.catalog import GRADERS, RAW, Card, parse_grade, segment_key
from market.catalog_demo import demo_catalog, demo_copies
from market.simulate import (
    CATEGORY_TRENDS,
    DAY_MS,
    SimulatedSales,
    sale_records,
    simulate_sales,
)

END_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
YEAR_MS = 365.25 * DAY_MS


@pytest.fixture(scope="module")
def cards() -> list[Card]:
    return demo_catalog(7, 320)


@pytest.fixture(scope="module")
def sim(cards: list[Card]) -> SimulatedSales:
    return simulate_sales(cards, END_MS, seed=7)


def _segment_keys(sim: SimulatedSales) -> np.ndarray:
    """One integer per card × grader × grade (RAW's NaN grade as 0)."""
    half = np.nan_to_num(sim.grade * 2, nan=0).astype(np.int64)
    return (sim.card_index.astype(np.int64) * 10 + sim.grader) * 100 + half


def _same(a: SimulatedSales, b: SimulatedSales) -> bool:
    return all(
        np.array_equal(x, y, equal_nan=True)
        if isinstance(x, np.ndarray) and isinstance(y, np.ndarray) else x == y
        for x, y in zip(a, b, strict=True)
    )


def test_same_seed_same_arrays_other_seed_differs(cards: list[Card], sim: SimulatedSales) -> None:
    assert _same(sim, simulate_sales(cards, END_MS, seed=7))
    other = simulate_sales(cards, END_MS, seed=8)
    assert not np.array_equal(sim.price, other.price)
    assert not np.array_equal(sim.at, other.at)


def test_volume_and_shapes(cards: list[Card], sim: SimulatedSales) -> None:
    n = len(sim.at)
    assert n == 120_000  # exactly target_sales, shill rows included
    for column in (sim.card_index, sim.grader, sim.grade, sim.price, sim.at, sim.seller,
                   sim.buyer, sim.shill):
        assert column.shape == (n,)
    assert sim.card_index.dtype == np.int32 and sim.seller.dtype == np.int32
    assert sim.buyer.dtype == np.int32
    assert sim.price.dtype == np.int64 and sim.at.dtype == np.int64
    assert sim.shill.dtype == np.bool_
    assert sim.graders == GRADERS
    assert sim.card_index.min() >= 0 and sim.card_index.max() < len(cards)
    # Nearly every card trades; some daily, many rarely (heavy-tailed popularity).
    per_card = np.bincount(sim.card_index, minlength=len(cards))
    assert (per_card > 0).mean() > 0.95
    assert per_card.max() / 730 >= 1.0
    assert np.median(per_card) / 730 < 0.5


def test_sorted_in_range_and_well_formed(sim: SimulatedSales) -> None:
    assert np.all(np.diff(sim.at) >= 0)
    assert sim.at.min() >= END_MS - 730 * DAY_MS and sim.at.max() < END_MS
    assert sim.price.min() >= 100
    assert np.all(sim.seller != sim.buyer)
    assert sim.seller.min() >= 0 and sim.buyer.min() >= 0
    raw = sim.grader == GRADERS.index(RAW)
    assert np.all(np.isnan(sim.grade) == raw)
    graded = sim.grade[~raw]
    assert np.all((graded >= 1) & (graded <= 10) & (graded * 2 % 1 == 0))
    # Every grader appears, and each (grader, grade) is one the grader gives.
    assert set(np.unique(sim.grader).tolist()) == set(range(len(GRADERS)))
    assert not np.any((sim.grader == GRADERS.index("PSA")) & (sim.grade == 9.5))


def _rising(sim: SimulatedSales, n_cards: int) -> tuple[int, int]:
    """(card × graders whose median price rises grade by grade, card × graders checked), over
    grades with at least 15 organic sales."""
    organic = ~sim.shill
    checked = rising = 0
    for card in range(n_cards):
        mine = organic & (sim.card_index == card)
        for grader in range(len(GRADERS)):
            if GRADERS[grader] == RAW:
                continue
            rows = mine & (sim.grader == grader)
            grades, prices = sim.grade[rows], sim.price[rows]
            enough = [g for g in np.unique(grades) if (grades == g).sum() >= 15]
            if len(enough) < 2:
                continue
            medians = [np.median(prices[grades == g]) for g in enough]
            checked += 1
            rising += bool(np.all(np.diff(medians) > 0))
    return rising, checked


def test_grade_premia_median_rises_with_grade(sim: SimulatedSales) -> None:
    rising, checked = _rising(sim, 320)
    assert checked >= 100
    assert rising / checked >= 0.9


def test_grade_premia_rise_with_a_demo_population(cards: list[Card]) -> None:
    """As `ece seed` runs it: populations from the demo copies (a few per card)."""
    population: dict[tuple[str, str, float | None], int] = {}
    for card_id, grading in demo_copies(cards, 7, 5_000):
        key = (card_id, grading.grader, grading.grade)
        population[key] = population.get(key, 0) + 1
    sim = simulate_sales(cards, END_MS, seed=7, population=population)
    rising, checked = _rising(sim, 320)
    assert checked >= 100
    assert rising / checked >= 0.9


def test_premium_grows_with_scarcity_from_population(cards: list[Card]) -> None:
    few = cards[:3]
    target = few[0].card_id

    def top_over_nine(pop10: int) -> float:
        population: dict[tuple[str, str, float | None], int] = {
            (target, "PSA", 8): 1_000, (target, "PSA", 9): 1_000, (target, "PSA", 10): pop10,
        }
        sim = simulate_sales(few, END_MS, seed=3, target_sales=20_000, population=population)
        rows = (sim.card_index == 0) & (sim.grader == GRADERS.index("PSA")) & ~sim.shill
        ten = np.median(sim.price[rows & (sim.grade == 10)])
        nine = np.median(sim.price[rows & (sim.grade == 9)])
        return float(ten / nine)

    scarce, common = top_over_nine(5), top_over_nine(5_000)
    assert scarce > 1.5 * common
    assert common > 1.0  # a higher grade is dearer however common


def test_shill_bursts(sim: SimulatedSales) -> None:
    n_shill = int(sim.shill.sum())
    assert 0.002 * len(sim.at) <= n_shill <= 0.005 * len(sim.at)
    keys = _segment_keys(sim)
    organic = ~sim.shill
    order = np.argsort(keys[organic], kind="stable")
    organic_keys, organic_prices = keys[organic][order], sim.price[organic][order]
    bursts: dict[tuple[int, int, int], int] = {}
    for i in np.flatnonzero(sim.shill):
        lo, hi = np.searchsorted(organic_keys, [keys[i], keys[i] + 1])
        assert hi > lo
        assert sim.price[i] > 1.8 * np.median(organic_prices[lo:hi])
        pair = (int(sim.seller[i]), int(sim.buyer[i]), int(keys[i]))
        bursts[pair] = bursts.get(pair, 0) + 1
    # One seller/buyer pair trading one card × grade 3-5 times (a pair could repeat by chance).
    assert all(size >= 3 for size in bursts.values())
    assert sum(3 <= size <= 5 for size in bursts.values()) >= 0.95 * len(bursts)


def _trend(sim: SimulatedSales, cards: list[Card], category: str) -> float:
    """Annual slope of log price around its card × grade's mean, over a category's sales."""
    keys = _segment_keys(sim)
    log_price = np.log(sim.price.astype(np.float64))
    _, inverse = np.unique(keys, return_inverse=True)
    mean = np.bincount(inverse, log_price) / np.bincount(inverse)
    residual = log_price - mean[inverse]
    of_category = np.array([c.category == category for c in cards])[sim.card_index]
    rows = of_category & ~sim.shill
    return float(np.polyfit(sim.at[rows] / YEAR_MS, residual[rows], 1)[0])


@pytest.mark.parametrize("seed", [7, 11])
def test_category_walks_differ(cards: list[Card], sim: SimulatedSales, seed: int) -> None:
    assert CATEGORY_TRENDS["pokemon"][0] > CATEGORY_TRENDS["hockey"][0]
    assert CATEGORY_TRENDS["pokemon"][1] > CATEGORY_TRENDS["hockey"][1]
    run = sim if seed == 7 else simulate_sales(cards, END_MS, seed=seed)
    assert _trend(run, cards, "pokemon") > _trend(run, cards, "hockey") + 0.1


def test_sale_records(cards: list[Card]) -> None:
    few = cards[:40]
    sim = simulate_sales(few, END_MS, seed=5, target_sales=3_000)
    records = list(sale_records(few, sim))
    assert len(records) == 3_000
    assert len({r["key"] for r in records}) == 3_000
    assert records[0]["key"] == "sim:5:0" and records[-1]["key"] == "sim:5:2999"
    ids = {c.card_id for c in few}
    for i, r in enumerate(records):
        assert set(r) == {"key", "card_id", "grader", "grade", "price", "at", "source", "ref",
                          "seller_id", "buyer_id"}
        assert r["card_id"] in ids and r["source"] == "external" and r["ref"] is None
        assert type(r["price"]) is int and r["price"] == sim.price[i]
        assert type(r["at"]) is int and r["at"] == sim.at[i]
        assert r["seller_id"] == f"sim:{sim.seller[i]}" and r["buyer_id"] == f"sim:{sim.buyer[i]}"
        if r["grader"] == RAW:
            assert r["grade"] is None
        else:
            assert parse_grade(r["grader"], r["grade"]) == r["grade"]  # normal form
            assert type(r["grade"]) is (int if r["grade"] % 1 == 0 else float)
        segment_key(r["card_id"], r["grader"], r["grade"])  # a valid segment


def test_edge_cases(cards: list[Card]) -> None:
    empty = simulate_sales(cards[:5], END_MS, target_sales=0)
    assert len(empty.at) == 0 and len(list(sale_records(cards[:5], empty))) == 0
    tiny = simulate_sales(cards[:2], END_MS, days=3, target_sales=10)
    assert len(tiny.at) == 10 and tiny.at.min() >= END_MS - 3 * DAY_MS
    with pytest.raises(ValueError):
        simulate_sales(cards, END_MS, days=0)
    with pytest.raises(ValueError):
        simulate_sales([], END_MS)
    with pytest.raises(ValueError):
        simulate_sales(cards, END_MS, target_sales=-1)
