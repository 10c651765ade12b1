"""A deterministic, vectorised market simulator: years of card sales for a fresh install.

`simulate_sales` gives `ece seed` a plausible sales history for a catalog, as parallel numpy
arrays (`SimulatedSales`); `sale_records` turns them into the sales feed's records (source
"external"). Pure: no I/O, no clock (the caller passes `end_ms`); every random draw comes from
one `np.random.default_rng(seed)` in a fixed order, so the same inputs give identical arrays.

The model, per card `c`, graded segment `s` (grader × grade) and day `d`:

    log price = base[c] + premium[c, s] + category_walk[cat(c), d] + set_walk[set(c), d]
                + sigma[c] * N(0, 1)

- `category_walk` and `set_walk` are geometric random walks of the log level (daily steps with
  an annual drift and volatility: CATEGORY_TRENDS, pokemon hot and volatile, hockey flat and
  calm; each set draws a drift of its own on top). Both end at 0 on the last day, so `base` is
  today's RAW price of the card.
- `base` is log-normal around a category median, dearer for older cards and for rarer
  rarities/variants (1st Edition, Refractor, Secret Rare, ...).
- `premium` is 0 for RAW. Within a grader it climbs grade by grade; the step from one grade to
  the next is `GRADE_STEP` per half grade plus a scarcity term that grows as that grade's share
  of the card's population shrinks (weighted towards the top grades, where scarcity is what
  buyers pay for). Populations are `population` counts when given, else synthetic ones that
  follow market.catalog_demo's grade tables (falling steeply towards 10, vintage far steeper);
  given counts are shrunk towards those (POP_PRIOR pseudo-copies), so a few copies only nudge.
- `sigma[c]` (0.08-0.15) is the card's idiosyncratic noise per sale.
- Sales arrive as a Poisson process per card and day (drawn jointly, conditioned on the total
  via one multinomial): a heavy-tailed (log-normal) popularity per card, more at weekends, a
  slowly growing market, and more sales while the card's price is high. Graders and grades of
  each sale follow the card's own (perturbed) mix of the demo grade tables.
- About SHILL_SHARE of the rows are injected shill bursts: one seller/buyer pair trading the
  same card × grader × grade 3-5 times within a few days at 2-4x the market (the larger of the
  model's level then and the segment's median simulated price). They are flagged `shill`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

# The demo grade tables are the one source of the grade mix (copies and simulated sales agree).
from market.catalog import CATEGORIES, GRADERS, GRADES, RAW, Card, normal_grade
from market.catalog_demo import (
    _GRADER_WEIGHTS,
    _MODERN_GRADES,
    _VINTAGE_GRADES,
    VINTAGE_BEFORE,
)
from market.money import MAX_AMOUNT

__all__ = [
    "CATEGORY_TRENDS",
    "DAY_MS",
    "SHILL_SHARE",
    "SimulatedSales",
    "account_id",
    "sale_records",
    "simulate_sales",
]

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
_YEAR_DAYS = 365.25
_MS_PER_YEAR = _YEAR_DAYS * DAY_MS

# Annual drift and volatility of each category's log level.
CATEGORY_TRENDS: dict[str, tuple[float, float]] = {
    "pokemon": (0.35, 0.22),
    "magic": (0.12, 0.22),
    "yugioh": (0.06, 0.24),
    "basketball": (0.05, 0.20),
    "baseball": (0.04, 0.14),
    "football": (0.02, 0.18),
    "soccer": (0.05, 0.20),
    "hockey": (-0.05, 0.08),
}
_SET_DRIFT_SD = 0.08  # per-set annual drift ~ N(0, this), on top of the category's
_SET_VOL = 0.10  # per-set annual volatility
# A category's median RAW price today, cents.
_CATEGORY_BASE: dict[str, int] = {
    "pokemon": 3_000, "baseball": 2_500, "basketball": 3_000, "football": 2_000,
    "hockey": 1_500, "soccer": 1_800, "magic": 5_000, "yugioh": 2_000,
}
_AGE_PREMIUM = 0.045  # log price per year of age
_BASE_SD = 0.6  # log-normal spread of base prices around the category's median
_BASE_RANGE = (math.log(300), math.log(50_000_000))  # base RAW price clipped to $3..$500k
# Log premia of rarities and variants (first matching keyword of each, case-insensitive).
_RARITY_PREMIUM: tuple[tuple[str, float], ...] = (
    ("secret", 0.9), ("special illustration", 1.0), ("hyper", 0.9), ("alternate art", 0.8),
    ("ultra", 0.7), ("autograph", 1.2), ("young guns", 0.6), ("star rookie", 0.5),
    ("holo", 0.6), ("super", 0.3), ("illustration", 0.4), ("uncommon", 0.1), ("rare", 0.4),
    ("common", -0.5),
)
# The hobby's stars (name keywords): the demo catalog's headline cards should look the part.
_STAR_PREMIUM: tuple[tuple[str, float], ...] = (
    ("black lotus", 3.5), ("mickey mantle", 3.0), ("charizard", 2.5), ("babe ruth", 2.5),
    ("tom brady", 2.5), ("ancestral recall", 2.5), ("mox ", 2.5), ("time walk", 2.3),
    ("lou gehrig", 2.0), ("jackie robinson", 2.0), ("michael jordan", 2.0),
    ("lebron james", 2.0), ("wayne gretzky", 2.0), ("timetwister", 2.0), ("willie mays", 1.8),
    ("kobe bryant", 1.8), ("connor mcdavid", 1.5), ("sidney crosby", 1.5), ("mike trout", 1.5),
    ("patrick mahomes", 1.5), ("blue-eyes", 1.5), ("umbreon vmax", 1.5), ("juzám", 1.5),
    ("library of alexandria", 1.5), ("shohei ohtani", 1.3), ("lionel messi", 1.2),
    ("ken griffey", 1.0), ("luka", 1.0), ("jim brown", 1.0), ("kylian mbapp", 1.0),
    ("erling haaland", 1.0), ("dark magician", 1.0), ("exodia", 1.0), ("lugia", 1.0),
    ("bazaar of baghdad", 1.0), ("larry bird", 0.8), ("magic johnson", 0.8),
    ("dan marino", 0.8), ("pikachu", 0.5), ("john elway", 0.5),
)
_VARIANT_PREMIUM: tuple[tuple[str, float], ...] = (
    ("1st edition", 0.9), ("shadowless", 0.6), ("gold refractor", 0.8),
    ("diamond anniversary", 0.2), ("gold", 0.7), ("refractor", 0.4), ("silver prizm", 0.5),
    ("unlimited", -0.1),
)
# Grade premia: GRADE_STEP per half grade, plus SCARCITY * (grade/10)^2 * ln(1 + 0.5/share).
GRADE_STEP = 0.10
SCARCITY = 0.35
_MAX_STEP = math.log(8.0)
POP_PRIOR = 20.0  # pseudo-copies of the synthetic mix added to given population counts
# Where a graded copy is worth its RAW price (x 1.15): raw copies of vintage cards are worn.
_ANCHOR_GRADE = {False: 7, True: 4}
_ANCHOR_PREMIUM = math.log(1.15)
_GRADER_EFFECT: dict[str, float] = {"PSA": 0.0, "BGS": -0.05, "SGC": -0.12, "CGC": -0.18}
_MIX_SD = 0.4  # per-card log-normal perturbation of the grader/grade mix
# Noise, popularity and volume.
_NOISE_RANGE = (0.08, 0.15)
_POPULARITY_SD = 1.3
_HOT_CATEGORY_VOLUME = {"pokemon": 1.5, "basketball": 1.2}
_WEEKEND_VOLUME = 1.2
_VOLUME_GROWTH = 0.3  # volume rises by this much (relative) over the window
_PRICE_VOLUME_ELASTICITY = 0.6  # more sales while the card trades above its average
# Shill bursts.
SHILL_SHARE = 0.003
_SHILL_SIZES = (3, 6)  # 3..5 trades per burst
_SHILL_MULTIPLE = (2.0, 4.0)
_SHILL_GAP_MS = (HOUR_MS // 2, 30 * HOUR_MS)
_MIN_PRICE = 100

# Every segment: RAW, then each graded grader × every grade (index = position here).
_GRADED = tuple(g for g in GRADERS if g != RAW)
_SEG_GRADER = np.array([GRADERS.index(RAW)] + [GRADERS.index(g) for g in _GRADED
                                               for _ in GRADES], dtype=np.int8)
_SEG_GRADE = np.array([np.nan] + [float(x) for _ in _GRADED for x in GRADES])
_N_GRADES = len(GRADES)
_N_SEGMENTS = len(_SEG_GRADE)

Int32Array = npt.NDArray[np.int32]
Int64Array = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


class SimulatedSales(NamedTuple):
    """Parallel arrays, one row per sale, sorted by `at` (ties keep generation order)."""

    card_index: Int32Array  # into the `cards` given
    grader: npt.NDArray[np.int8]  # into `graders`
    grade: FloatArray  # NaN for RAW
    price: Int64Array  # cents, >= 100
    at: Int64Array  # epoch ms in [end_ms - days * DAY_MS, end_ms)
    seller: Int32Array  # synthetic account numbers (the caller names them, e.g. "sim:12")
    buyer: Int32Array  # never the row's seller
    shill: npt.NDArray[np.bool_]  # the injected outliers
    graders: tuple[str, ...]  # grader names by code (market.catalog.GRADERS)
    seed: int


def _premium(keywords: tuple[tuple[str, float], ...], text: str | None) -> float:
    if not text:
        return 0.0
    low = text.lower()
    return next((p for word, p in keywords if word in low), 0.0)


def _grade_weights(vintage: bool) -> FloatArray:
    """The demo tables' mix over every segment: P(grader) * P(grade | grader)."""
    weights = np.zeros(_N_SEGMENTS)
    graders = _GRADER_WEIGHTS[vintage]
    total = sum(graders.values())
    weights[0] = graders[RAW] / total
    for gi, grader in enumerate(_GRADED):
        table = _VINTAGE_GRADES if vintage else _MODERN_GRADES[grader]
        share = graders[grader] / total / sum(table.values())
        for grade, w in table.items():
            weights[1 + gi * _N_GRADES + GRADES.index(grade)] = w * share
    return weights


def _walks(rng: np.random.Generator, drift: FloatArray, vol: FloatArray,
           days: int) -> FloatArray:
    """Daily log levels of len(drift) random walks, each ending at 0 on the last day."""
    steps = (drift[:, None] / _YEAR_DAYS
             + vol[:, None] / math.sqrt(_YEAR_DAYS) * rng.standard_normal((len(drift), days)))
    level = np.cumsum(steps, axis=1)
    return level - level[:, -1:]


def _premia(mix: FloatArray, pop: FloatArray, vintage: npt.NDArray[np.bool_]) -> FloatArray:
    """Log premium of every segment over the card's RAW price, per card (cards × segments).

    `mix` says which grades occur at all (weight > 0); `pop` their population. Within a grader
    each present grade's step over the previous half grade grows as its population share
    falls; absent grades add only GRADE_STEP (so gaps such as PSA 9 -> 10 still count)."""
    n = mix.shape[0]
    out = np.zeros((n, _N_SEGMENTS))
    scale = (np.array(GRADES) / 10.0) ** 2
    anchor = np.where(vintage, GRADES.index(_ANCHOR_GRADE[True]),
                      GRADES.index(_ANCHOR_GRADE[False]))
    rows = np.arange(n)
    for gi, grader in enumerate(_GRADED):
        cols = slice(1 + gi * _N_GRADES, 1 + (gi + 1) * _N_GRADES)
        present = mix[:, cols] > 0
        counts = np.where(present, pop[:, cols], 0.0)
        share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1e-12)
        share = np.maximum(share, 1e-4)
        scarcity = np.where(present, SCARCITY * scale * np.log1p(0.5 / share), 0.0)
        step = np.minimum(GRADE_STEP + scarcity, _MAX_STEP)
        step[:, 0] = 0.0
        ladder = np.cumsum(step, axis=1)
        out[:, cols] = (ladder - ladder[rows, anchor][:, None] + _ANCHOR_PREMIUM
                        + _GRADER_EFFECT[grader])
    return out


def _populations(rng: np.random.Generator, cards: Sequence[Card], mix: FloatArray,
                 vintage: npt.NDArray[np.bool_],
                 population: Mapping[tuple[str, str, float | None], int] | None) -> FloatArray:
    """Population per card × segment: synthetic (size × mix); where `population` has counts
    for a card × grader, those counts plus POP_PRIOR copies spread like the synthetic mix (so
    a handful of copies nudges the premia, thousands decide them)."""
    size = np.exp(np.where(vintage, 5.5, 7.0) + 0.8 * rng.standard_normal(len(cards)))
    pop = size[:, None] * mix / mix.sum(axis=1, keepdims=True)
    if not population:
        return pop
    index = {card.card_id: i for i, card in enumerate(cards)}
    given = np.zeros_like(pop)
    for (card_id, grader, grade), count in population.items():
        i = index.get(card_id)
        if i is None or grader not in _GRADED or grade is None or count <= 0:
            continue
        half = float(grade) * 2
        if half % 1 or not 2 <= half <= 20:
            continue
        given[i, 1 + _GRADED.index(grader) * _N_GRADES + int(half) - 2] += count
    for gi in range(len(_GRADED)):
        cols = slice(1 + gi * _N_GRADES, 1 + (gi + 1) * _N_GRADES)
        has = given[:, cols].sum(axis=1) > 0
        prior = mix[has, cols] / mix[has, cols].sum(axis=1, keepdims=True)
        pop[has, cols] = given[has, cols] + POP_PRIOR * prior
    return pop


def _accounts(rng: np.random.Generator, n_accounts: int, n: int,
              spread: float) -> Int32Array:
    """`n` draws of account numbers with heavy-tailed activity (a few very busy accounts)."""
    activity = rng.lognormal(0.0, spread, n_accounts)
    return rng.choice(n_accounts, size=n, p=activity / activity.sum()).astype(np.int32)


def _other(rng: np.random.Generator, seller: Int32Array, n_accounts: int) -> Int32Array:
    """An account different from each `seller`, uniformly among the others."""
    shift = rng.integers(1, n_accounts, size=seller.shape[0])
    return ((seller + shift) % n_accounts).astype(np.int32)


def simulate_sales(
    cards: list[Card],
    end_ms: int,
    seed: int = 7,
    days: int = 730,
    target_sales: int = 120_000,
    population: Mapping[tuple[str, str, float | None], int] | None = None,
) -> SimulatedSales:
    """`target_sales` sales (exactly, shill rows included) of `cards` over the `days` days
    before `end_ms`, deterministic in every argument. See the module docstring for the model.

    `population`: (card_id, grader, grade) -> copies, e.g. from the asset registry's Pop
    Report; where a card × grader has counts they set its grade premia (scarcer, dearer).
    """
    if days < 1:
        raise ValueError(f"days must be >= 1, got {days}")
    if target_sales < 0:
        raise ValueError(f"target_sales must be >= 0, got {target_sales}")
    if target_sales and not cards:
        raise ValueError("no cards to simulate")
    if end_ms - days * DAY_MS < 0 or end_ms > MAX_AMOUNT:
        raise ValueError("end_ms must be epoch ms with `days` days before it")
    rng = np.random.default_rng(seed)
    n_cards = len(cards)
    start_ms = end_ms - days * DAY_MS
    end_year = 1970 + end_ms / _MS_PER_YEAR

    # --- per card: segment of the market, base price, grade mix, premia, noise, popularity
    categories = np.array([CATEGORIES.index(c.category) for c in cards], dtype=np.int64)
    set_names = sorted({c.set for c in cards})
    sets = np.array([set_names.index(c.set) for c in cards], dtype=np.int64)
    vintage = np.array([c.year < VINTAGE_BEFORE for c in cards], dtype=np.bool_)
    base = np.array([
        math.log(_CATEGORY_BASE[c.category]) + _AGE_PREMIUM * max(0.0, end_year - c.year)
        + _premium(_RARITY_PREMIUM, c.rarity) + _premium(_VARIANT_PREMIUM, c.variant)
        + _premium(_STAR_PREMIUM, c.name)
        for c in cards
    ]).reshape(n_cards)
    base = np.clip(base + _BASE_SD * rng.standard_normal(n_cards), *_BASE_RANGE)
    table = np.stack([_grade_weights(False), _grade_weights(True)])
    mix = table[vintage.astype(np.int64)] * np.exp(
        _MIX_SD * rng.standard_normal((n_cards, _N_SEGMENTS)))
    mix_cdf = np.cumsum(mix / mix.sum(axis=1, keepdims=True), axis=1)
    premia = _premia(mix, _populations(rng, cards, mix, vintage, population), vintage)
    sigma = rng.uniform(*_NOISE_RANGE, n_cards)
    hot = np.array([_HOT_CATEGORY_VOLUME.get(c.category, 1.0) for c in cards]).reshape(n_cards)
    popularity = hot * rng.lognormal(0.0, _POPULARITY_SD, n_cards)

    # --- market walks: categories, then sets; a card's level is the sum of its two
    drift = np.array([CATEGORY_TRENDS[c][0] for c in CATEGORIES])
    vol = np.array([CATEGORY_TRENDS[c][1] for c in CATEGORIES])
    category_walk = _walks(rng, drift, vol, days)
    set_walk = _walks(rng, _SET_DRIFT_SD * rng.standard_normal(len(set_names)),
                      np.full(len(set_names), _SET_VOL), days)
    level = category_walk[categories] + set_walk[sets]  # cards × days

    # --- organic sales: counts per card × day, then time, segment, price, accounts
    n_bursts = round(SHILL_SHARE * target_sales / 4)
    burst_sizes = rng.integers(*_SHILL_SIZES, size=n_bursts)
    while burst_sizes.sum() > target_sales:  # only for tiny targets
        burst_sizes = burst_sizes[:-1]
    n_organic = target_sales - int(burst_sizes.sum())
    if n_organic == 0:  # a shill burst needs an organic sale to sit on
        burst_sizes, n_organic = burst_sizes[:0], target_sales
    day_number = start_ms // DAY_MS + np.arange(days)
    weekday = (day_number + 3) % 7  # 1970-01-01 was a Thursday; 0 = Monday
    volume = np.where(weekday >= 5, _WEEKEND_VOLUME, 1.0) * (
        1.0 + _VOLUME_GROWTH * (np.arange(days) / max(days - 1, 1) - 0.5))
    rate = popularity[:, None] * volume[None, :] * np.exp(
        _PRICE_VOLUME_ELASTICITY * (level - level.mean(axis=1, keepdims=True)))
    counts = (rng.multinomial(n_organic, (rate / rate.sum()).ravel()) if n_organic
              else np.zeros(n_cards * days, dtype=np.int64))
    cell = np.repeat(np.arange(n_cards * days), counts)
    card = cell // days  # ascending: cells are card-major
    day = cell % days
    at = start_ms + day * DAY_MS + rng.integers(0, DAY_MS, size=n_organic)
    u = rng.random(n_organic)
    seg = np.empty(n_organic, dtype=np.int64)
    bounds = np.searchsorted(card, np.arange(n_cards + 1))
    for c in range(n_cards):  # one searchsorted per card: its sales are contiguous
        lo, hi = bounds[c], bounds[c + 1]
        if lo < hi:
            seg[lo:hi] = np.searchsorted(mix_cdf[c], u[lo:hi], side="right")
    np.minimum(seg, _N_SEGMENTS - 1, out=seg)  # a u at the very top (float rounding)
    log_market = base[card] + premia[card, seg] + level[card, day]
    log_price = log_market + sigma[card] * rng.standard_normal(n_organic)
    price = np.clip(np.rint(np.exp(log_price)), _MIN_PRICE, MAX_AMOUNT).astype(np.int64)
    n_accounts = max(1_000, target_sales // 25)
    seller = _accounts(rng, n_accounts, n_organic, 1.5)
    buyer = _accounts(rng, n_accounts, n_organic, 1.0)
    same = buyer == seller
    buyer[same] = _other(rng, seller[same], n_accounts)

    # --- shill bursts, each on an organic sale's card × segment, from its time on
    n_shill = int(burst_sizes.sum())
    anchor = rng.integers(0, n_organic, size=len(burst_sizes))
    burst = np.repeat(np.arange(len(burst_sizes)), burst_sizes)
    first = np.repeat(np.cumsum(burst_sizes) - burst_sizes, burst_sizes)  # per row
    gaps = rng.integers(*_SHILL_GAP_MS, size=n_shill)
    gaps[np.arange(n_shill) == first] = 0
    elapsed = np.cumsum(gaps)
    offsets = elapsed - elapsed[first]
    s_at = at[anchor][burst] + offsets
    overshoot = np.maximum(0, s_at[np.cumsum(burst_sizes) - 1] - (end_ms - 1))
    s_at = np.maximum(s_at - np.repeat(overshoot, burst_sizes), start_ms)
    s_card, s_seg = card[anchor][burst], seg[anchor][burst]
    s_day = (s_at - start_ms) // DAY_MS
    model = np.exp(base[s_card] + premia[s_card, s_seg] + level[s_card, s_day])
    key = card * _N_SEGMENTS + seg
    order = np.argsort(key, kind="stable")
    sorted_key, sorted_price = key[order], price[order]
    median = np.empty(len(burst_sizes))
    for b, a in enumerate(anchor.tolist()):  # one per burst: tens to hundreds
        lo, hi = np.searchsorted(sorted_key, [key[a], key[a] + 1])
        median[b] = np.median(sorted_price[lo:hi])
    market = np.maximum(model, median[burst])
    s_price = np.clip(np.rint(market * rng.uniform(*_SHILL_MULTIPLE, n_shill)),
                      _MIN_PRICE, MAX_AMOUNT).astype(np.int64)
    pair_seller = rng.integers(0, n_accounts, size=len(burst_sizes)).astype(np.int32)
    pair_buyer = _other(rng, pair_seller, n_accounts)

    # --- together, by time
    all_at = np.concatenate([at, s_at]).astype(np.int64)
    all_seg = np.concatenate([seg, s_seg])
    by_time = np.argsort(all_at, kind="stable")
    return SimulatedSales(
        card_index=np.concatenate([card, s_card]).astype(np.int32)[by_time],
        grader=_SEG_GRADER[all_seg][by_time],
        grade=_SEG_GRADE[all_seg][by_time],
        price=np.concatenate([price, s_price])[by_time],
        at=all_at[by_time],
        seller=np.concatenate([seller, pair_seller[burst]]).astype(np.int32)[by_time],
        buyer=np.concatenate([buyer, pair_buyer[burst]]).astype(np.int32)[by_time],
        shill=np.concatenate([np.zeros(n_organic, dtype=np.bool_),
                              np.ones(n_shill, dtype=np.bool_)])[by_time],
        graders=GRADERS,
        seed=seed,
    )


def account_id(number: int) -> str:
    """The account id of a simulated seller or buyer: "sim:<n>"."""
    return f"sim:{number}"


def sale_records(cards: Sequence[Card], sim: SimulatedSales) -> Iterator[dict[str, Any]]:
    """The sales as sales-feed records (storage.records.SaleRecord without `pos`), in time
    order: key "sim:<seed>:<row>", source "external", no ref, grade None for RAW and a whole
    grade an int, seller and buyer "sim:<n>"."""
    ids = [card.card_id for card in cards]
    names = sim.graders
    rows = zip(sim.card_index.tolist(), sim.grader.tolist(), sim.grade.tolist(),
               sim.price.tolist(), sim.at.tolist(), sim.seller.tolist(), sim.buyer.tolist(),
               strict=True)
    for i, (card, grader, grade, price, at, seller, buyer) in enumerate(rows):
        yield {
            "key": f"sim:{sim.seed}:{i}",
            "card_id": ids[card],
            "grader": names[grader],
            "grade": None if math.isnan(grade) else normal_grade(grade),
            "price": price,
            "at": at,
            "source": "external",
            "ref": None,
            "seller_id": account_id(seller),
            "buyer_id": account_id(buyer),
        }
