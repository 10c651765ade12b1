"""The price projection catching up (`more`): segment docs wait for the feed to run dry (or
CATCH_UP_WRITE_MS), written once, and a restore in between loses none of them; the rounding
of figures to cents (`_rounded`) is Python's `round`, NaN as None."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from actors.analytics.cards import Cards
from actors.analytics.prices import CATCH_UP_WRITE_MS, PriceProjection, _rounded
from actors.analytics.runner import Put
from tests.unit.projectionkit import NOW, history, live

Docs = dict[tuple[str, str], Any]


def rows(n: int) -> list[dict[str, Any]]:
    sales = history(n - 6) + live(6)
    return [{**s, "pos": pos} for pos, s in enumerate(sales, 1)]


def fresh() -> PriceProjection:
    return PriceProjection(Cards(None))


def applied(docs: Docs, puts: list[Put]) -> Docs:
    for kind, key, doc in puts:
        docs[kind, key] = doc
    return docs


async def one_go(feed: list[dict[str, Any]]) -> Docs:
    projection = fresh()
    await projection.apply(feed, NOW)
    return applied({}, (await projection.flush(NOW))[0])


def segments(puts: list[Put]) -> list[str]:
    return [key for kind, key, _ in puts if kind == "segment"]


async def test_catching_up_writes_each_segment_doc_once_when_the_feed_runs_dry() -> None:
    feed = rows(300)
    projection = fresh()
    docs: Docs = {}
    written: list[str] = []
    for start in range(0, len(feed), 50):
        await projection.apply(feed[start:start + 50], NOW)
        puts, _ = await projection.flush(NOW, more=start + 50 < len(feed))
        written += segments(puts)
        applied(docs, puts)
        if start + 50 < len(feed):
            assert segments(puts) == []  # waiting; sales and candles are not
            assert any(kind == "sale" for kind, _, _ in puts)
    assert sorted(written) == sorted(set(written))  # once each
    assert docs == await one_go(feed)


async def test_a_restore_while_segment_docs_wait_loses_none() -> None:
    feed = rows(300)
    first = fresh()
    await first.apply(feed[:200], NOW)
    saved, _ = await first.flush(NOW, more=True)  # saved with checkpoint 200, then a crash
    assert segments(saved) == []
    # A new instance replays up to the checkpoint (state only), then folds the rest.
    second = fresh()
    await second.apply(feed[:200], NOW)
    second.replayed()
    await second.apply(feed[200:], NOW)
    puts, _ = await second.flush(NOW)
    docs = applied(applied({}, saved), puts)
    assert docs == await one_go(feed)
    # Segments only the first 200 sales touched are written too.
    assert {key for kind, key in docs if kind == "segment"} == \
        {key for kind, key in await one_go(feed[:200]) if kind == "segment"} | \
        {key for kind, key in await one_go(feed[200:]) if kind == "segment"}


async def test_a_long_catch_up_writes_segment_docs_every_catch_up_write_ms() -> None:
    feed = rows(120)
    projection = fresh()
    await projection.apply(feed[:60], NOW)
    assert segments((await projection.flush(NOW, more=True))[0]) == []
    await projection.apply(feed[60:], NOW + CATCH_UP_WRITE_MS)
    puts, _ = await projection.flush(NOW + CATCH_UP_WRITE_MS, more=True)
    assert set(segments(puts)) == {key for kind, key in await one_go(feed)
                                   if kind == "segment"}
    # Nothing new and nothing waiting: nothing to write.
    assert await projection.flush(NOW + CATCH_UP_WRITE_MS) == ([], [])


@given(st.lists(st.one_of(st.floats(min_value=-1e19, max_value=1e19), st.just(math.nan),
                          st.integers(-10**6, 10**6).map(lambda n: n + 0.5)), max_size=30))
def test_rounded_is_pythons_round_with_nan_as_none(values: list[float]) -> None:
    expected = [None if math.isnan(x) else round(x) for x in values]
    got = _rounded(np.array(values, dtype=np.float64))
    assert got == expected
    assert all(x is None or type(x) is int for x in got)
