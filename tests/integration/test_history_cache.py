"""The card history's cache of encoded answers (`gateway.analytics.Answers`), on a real
gateway whose store a price projection folds sales into (run here, step by step, by a
`Runner`): a kept answer is the same bytes as a fresh one, a new sale - clean or suspect -
shows in the very next answer, conditional GETs answer 304 while nothing changed, and the
cache stays within its byte budget."""

from __future__ import annotations

import collections
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest
import pytest_asyncio
from prometheus_client import CollectorRegistry

from actors.analytics.cards import Cards
from actors.analytics.prices import PriceProjection
from actors.analytics.runner import Runner
from gateway.analytics import Answers, _history, answers_of
from gateway.malformed import SERVER_LOGGER
from testkit.client import unique
from tests.integration.conftest import Ece, gateway_with

pytestmark = pytest.mark.asyncio(loop_scope="session")

DAY = 86_400_000
T0 = 1_700_000_000_000
PATH = "/api/cards/{card}/history?grader=PSA&grade=9"


@dataclass
class Fixture:
    ece: Ece
    card_id: str
    runner: Runner
    added: int = 0

    async def sell(self, price: int, at: int, seller: str = "s", buyer: str | None = None) -> None:
        """One sale of the card's PSA 9 into the feed, folded and saved by the projection."""
        self.added += 1
        sale: Any = {"key": unique("k"), "card_id": self.card_id, "grader": "PSA", "grade": 9,
                     "price": price, "at": at, "source": "external", "ref": None,
                     "seller_id": f"{seller}{self.added}", "buyer_id": buyer or f"b{self.added}"}
        assert await self.ece.gateway.store.add_sales([sale]) == 1
        assert await self.runner.step() == 1

    async def get(self, **headers: str) -> tuple[int, bytes, Any]:
        url = self.ece.base + PATH.format(card=self.card_id)
        async with self.ece.http.get(url, headers=headers) as r:
            return r.status, await r.read(), r.headers.copy()  # case-insensitive

    def looked(self) -> collections.Counter[str]:
        """The gateway's cache counters by result."""
        registry = self.ece.gateway.metrics.registry
        return collections.Counter({s.labels["result"]: int(s.value)
                                    for m in registry.collect() if m.name == "ece_history_cache"
                                    for s in m.samples if s.name.endswith("_total")})


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def shop(ray_cluster, tmp_path_factory) -> AsyncIterator[Fixture]:
    async with gateway_with(tmp_path_factory.mktemp("history_cache")) as ece:
        seller = await ece.api.signup("sel")
        card = await ece.api.expect(201, "POST", "/api/cards", seller, json={
            "name": unique("Blastoise"), "set": "Base Set", "number": "2/102",
            "year": 1999, "category": "pokemon"})
        store = ece.gateway.store
        runner = Runner(store, PriceProjection(Cards(store)))
        await runner.restore()
        found = Fixture(ece, card["card_id"], runner)
        for day in range(6):  # clean peers, so an outlier can be vetted as suspect
            await found.sell(10_000 + 100 * day, T0 + day * DAY)
        yield found


async def test_a_kept_answer_is_the_bytes_of_a_fresh_one(shop):
    before = shop.looked()
    status, first, headers = await shop.get()
    status2, second, headers2 = await shop.get()
    assert status == status2 == 200
    assert shop.looked() - before == {"miss": 1, "hit": 1}
    fresh = await _history(shop.ece.gateway.store, f"{shop.card_id}|PSA|9", "1d", 0,
                           2**53 - 1, 50, None)
    assert first == second == fresh
    assert headers["ETag"] == headers2["ETag"]
    assert (headers["X-Cache"], headers2["X-Cache"]) == ("miss", "hit")
    assert headers["Content-Type"] == "application/json; charset=utf-8"


async def test_a_new_sale_shows_in_the_next_answer(shop):
    _, before, headers = await shop.get()
    await shop.get()  # kept
    await shop.sell(10_700, T0 + 10 * DAY)
    status, after, headers2 = await shop.get()
    assert status == 200 and after != before and headers2["ETag"] != headers["ETag"]
    sales = json.loads(after)["sales"]
    assert sales[0]["price"] == 10_700 and sales[0]["suspect"] is False
    assert json.loads(after)["candles"][-1]["t"] == T0 + 10 * DAY - (T0 + 10 * DAY) % DAY


async def test_a_new_suspect_sale_shows_in_the_next_answer(shop):
    """A suspect sale changes no candle and no clean figure, only the sales page."""
    _, before, _ = await shop.get()
    await shop.get()  # kept
    await shop.sell(1_000_000, T0 + 11 * DAY)  # 100x the peers: an outlier
    answer = json.loads((await shop.get())[1])
    assert answer["sales"][0]["price"] == 1_000_000
    assert answer["sales"][0]["suspect"] is True
    assert answer["candles"] == json.loads(before)["candles"]


async def test_conditional_get_answers_304_until_a_sale_changes_it(shop):
    _, body, headers = await shop.get()
    etag = headers["ETag"]
    for match in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        status, empty, got = await shop.get(**{"If-None-Match": match})
        assert (status, empty, got["ETag"]) == (304, b"", etag), match
    status, again, _ = await shop.get(**{"If-None-Match": '"other"'})
    assert (status, again) == (200, body)
    await shop.sell(10_800, T0 + 12 * DAY)
    status, changed, got = await shop.get(**{"If-None-Match": etag})
    assert status == 200 and changed != body and got["ETag"] != etag


async def test_other_requests_are_kept_apart_and_spellings_together(shop):
    url = shop.ece.base + PATH.format(card=shop.card_id)
    before = shop.looked()
    bodies = set()
    for query in ("", "&limit=1", "&interval=1w", f"&to={T0 + 3 * DAY}"):
        async with shop.ece.http.get(url + query) as r:
            assert r.status == 200
            bodies.add(await r.read())
    assert len(bodies) == 4
    assert (shop.looked() - before)["miss"] >= 3
    # The same segment spelt otherwise is the same request: a hit.
    before = shop.looked()
    lenient = shop.ece.base + f"/api/cards/{shop.card_id}/history?grader=psa&grade=9.0"
    async with shop.ece.http.get(lenient) as r:
        assert await r.read() in bodies
    assert shop.looked() - before == {"hit": 1}
    assert answers_of(shop.ece.gateway) is answers_of(shop.ece.gateway)


async def test_the_cache_keeps_to_its_byte_budget() -> None:
    gateway: Any = SimpleNamespace(metrics=SimpleNamespace(registry=CollectorRegistry()))
    answers = Answers(gateway, max_bytes=3 * (1_000 + 512))
    for n in range(5):
        answers.put(("k", n), bytes(1_000))
    assert answers.bytes <= 3 * (1_000 + 512)
    assert answers.get(("k", 0)) is None and answers.get(("k", 4)) is not None
    body, etag = answers.put(("big",), bytes(10_000))  # larger than the cache: not kept
    assert len(body) == 10_000 and etag.startswith('"')
    assert answers.get(("big",)) is None
    assert answers.get(None) is None  # no version yet: never kept


@pytest.mark.parametrize("debug", [False, True])
async def test_a_header_past_aiohttps_limit_is_a_clean_400_without_a_traceback(
        shop, caplog, debug):
    """aiohttp refuses a header line over 8,190 bytes itself, before any handler; it used to
    log each one at ERROR with a traceback (log spam any client can cause)."""
    caplog.set_level(logging.DEBUG if debug else logging.INFO, logger=SERVER_LOGGER)
    for header in ("If-None-Match", "X-Anything"):
        status, body, _ = await shop.get(**{header: '"' + "a" * 9_000 + '"'})
        assert status == 400 and b"Traceback" not in body
    assert (await shop.get())[0] == 200  # and it keeps serving
    assert "Traceback" not in caplog.text
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.WARNING]
    # Still there for whoever asks for DEBUG, one line each.
    lines = [r.getMessage() for r in caplog.records if r.name == SERVER_LOGGER]
    assert len(lines) == (2 if debug else 0)
    assert all("malformed request answered 400" in line and len(line) < 300 for line in lines)
