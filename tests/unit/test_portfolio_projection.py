"""The portfolio projection (actors.portfolio.projection) over a real SQLite store: holdings,
cost basis and P/L from ownership rows, revaluation of exactly the holders of a position whose
value changed, `portfolio` events, and a restart from the persisted accounts."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from actors.portfolio.projection import CHANNEL, SNAP, PortfolioProjection
from gateway.catalog import card_record
from market.catalog_demo import demo_catalog
from storage.sqlite import SqliteStore

DAY = 86_400_000
NOW = 20_000 * DAY + 12 * 3_600_000
CARDS = demo_catalog(1, 2)
C1, C2 = CARDS[0].card_id, CARDS[1].card_id
P1, P2 = f"{C1}|PSA|9", f"{C2}|PSA|10"


def value(point: int, confidence: str = "high") -> dict[str, Any]:
    return {"point": point, "low": point - 100, "high": point + 100, "confidence": confidence,
            "method": "sales", "n": 6, "last_sale_at": NOW - DAY}


def valuation(position: str, point: int | None) -> tuple[str, str, dict[str, Any]]:
    card_id, grader, grade = position.split("|")
    return ("valuation", position, {"card_id": card_id, "grader": grader, "grade": int(grade),
                                    "value": value(point) if point else None, "sales": [],
                                    "sales_365d": 12, "index": None})


def row(pos: int, asset: str, card: str, grade: int, frm: str | None, to: str | None,
        how: str, **kw: Any) -> dict[str, Any]:
    return {"pos": pos, "key": f"{how}:{asset}:{pos}", "asset_id": asset, "token_id": None,
            "card_id": card, "grader": "PSA", "grade": grade, "from_user": frm,
            "to_user": to, "at": NOW - DAY + pos, "how": how, "price": None, "premium": None,
            "fee": None, "ref": None, "legs": None, **kw}


ROWS = [row(1, "a1", C1, 9, None, "ann", "mint"),
        row(2, "a2", C2, 10, None, "ann", "mint"),
        row(3, "a1", C1, 9, "ann", "ben", "auction", price=5_000, premium=250, fee=500)]


@pytest_asyncio.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(str(tmp_path / "p.db"))
    await s.open()
    for card in CARDS:
        await s.create_card(card_record(card, NOW - 1_000 * DAY))
    assert await s.save_projection("market", 0, 0, [valuation(P1, 8_000), valuation(P2, None)])
    yield s
    await s.close()


async def run(p: PortfolioProjection, store: SqliteStore, rows: list, now: int = NOW) -> tuple:
    await p.apply(rows, now)
    puts, messages = await p.flush(now)
    expect = await store.projection_checkpoint(p.name)
    pos = max([expect, *(r["pos"] for r in rows)])
    assert await store.save_projection(p.name, expect, pos, puts, messages)
    return {(k, key): d for k, key, d in puts}, messages


@pytest.mark.asyncio
async def test_holdings_basis_pnl_and_live_revaluation(store: SqliteStore) -> None:
    p = PortfolioProjection(store)
    docs, messages = await run(p, store, ROWS)
    ann, ben = docs["portfolio", "ann"], docs["portfolio", "ben"]
    [held] = ben["holdings"]
    assert held["asset_id"] == "a1" and held["cost_basis"] == 5_250
    assert held["value"]["point"] == 8_000 and held["pnl"] == 8_000 - 5_250
    assert ben["totals"]["value"] == 8_000 and ben["totals"]["unrealised_pnl"] == 2_750
    assert ann["totals"]["realised_pnl"] == 5_000 - 500  # a mint's basis is 0
    [kept] = ann["holdings"]
    assert kept["asset_id"] == "a2" and kept["value"] is None and kept["pnl"] is None
    assert ann["totals"]["value"] is None and ann["totals"]["unvalued"] == 1  # never 0
    assert docs[SNAP, f"ben|{NOW - NOW % DAY}"]["value"] == 8_000
    # A save is written kind by kind in the order they come: the history point before the
    # portfolio that made it, so whoever sees the portfolio sees the point too.
    order = list(dict.fromkeys(kind for kind, _ in docs))
    assert order.index(SNAP) < order.index("portfolio")
    [message] = messages
    assert message["channel"] == CHANNEL and set(message["data"]["users"]) == {"ann", "ben"}

    # A comparable sale moves P1's value: only its holder is recomputed and told.
    assert await store.save_projection("market", 0, 0, [valuation(P1, 9_000)])
    assert p.revalue([P1]) == {"ben"}
    docs, messages = await run(p, store, [], NOW + 1)
    assert {key for kind, key in docs if kind == "portfolio"} == {"ben"}
    [message] = messages
    told = message["data"]["users"]["ben"]
    assert told["total"]["value"] == 9_000
    assert told["changed"] == [{"asset_id": "a1", "value": value(9_000)}]

    # Nothing moved: nothing written, nothing told.
    p.revalue([P2])
    docs, messages = await run(p, store, [], NOW + 2)
    assert messages == [] and ("portfolio", "ann") not in docs


@pytest.mark.asyncio
async def test_a_steady_stream_of_revaluations_does_not_starve_whole_portfolios(
        store: SqliteStore) -> None:
    """Every flush has someone to tell; the deferred views still get some of each."""
    p = PortfolioProjection(store)
    await run(p, store, ROWS)
    written = []
    for i in range(4):
        assert await store.save_projection("market", 0, 0, [valuation(P1, 9_000 + i)])
        p.revalue([P1])
        docs, messages = await run(p, store, [], NOW + 1 + i)
        assert messages, "each revaluation is told at once"
        if ("portfolio", "ben") in docs:
            written.append(docs["portfolio", "ben"]["totals"]["value"])
    assert written == [9_000, 9_001, 9_002, 9_003]


@pytest.mark.asyncio
async def test_a_busy_machine_holds_off_whole_portfolios_of_users_told_but_not_for_long(
        store: SqliteStore) -> None:
    """The bid path first: while others keep the CPUs busy, users told of a new value get
    their whole portfolio MAX_DEFER_S later at most; accounts that changed never wait."""
    from actors.portfolio.projection import MAX_DEFER_S

    now = [100.0]
    p = PortfolioProjection(store, busy=lambda: True, clock=lambda: now[0])
    docs, _ = await run(p, store, ROWS)
    assert ("portfolio", "ben") in docs  # rows: news, written at once however busy
    assert await store.save_projection("market", 0, 0, [valuation(P1, 9_100)])
    p.revalue([P1])
    docs, messages = await run(p, store, [], NOW + 1)
    assert messages and ("portfolio", "ben") not in docs  # told at once, the view waits
    now[0] += MAX_DEFER_S / 2
    docs, _ = await run(p, store, [], NOW + 2)
    assert ("portfolio", "ben") not in docs
    now[0] += MAX_DEFER_S / 2 + 0.01
    docs, _ = await run(p, store, [], NOW + 3)
    assert docs["portfolio", "ben"]["totals"]["value"] == 9_100


@pytest.mark.asyncio
async def test_a_restart_reads_the_accounts_and_a_redone_batch_counts_once(
        store: SqliteStore) -> None:
    first = PortfolioProjection(store)
    await run(first, store, ROWS[:2])
    # The results of row 3 were saved but the checkpoint did not move (MongoDB's crash window).
    await first.apply(ROWS[2:], NOW)
    puts, _ = await first.flush(NOW)
    assert await store.save_projection(first.name, 2, 2, puts)

    again = PortfolioProjection(store)
    docs, messages = await run(again, store, ROWS[2:])  # the batch redone
    assert docs["portfolio", "ann"]["totals"]["realised_pnl"] == 4_500  # once, not twice
    assert [h["asset_id"] for h in docs["portfolio", "ben"]["holdings"]] == ["a1"]
    assert messages == []  # a restart's first computation is no news when nothing changed


@pytest.mark.asyncio
async def test_ece_rebuild_portfolio_recomputes_what_the_running_projection_wrote(
        tmp_path: Path) -> None:
    """Real ownership rows (a mint each, one auction sale), folded live, then `ece rebuild
    portfolio` from scratch: the same holdings and portfolios, the snapshots kept."""
    from actors.analytics.runner import Runner
    from gateway.config import Settings
    from gateway.maintenance import rebuild_portfolio
    from tests.storage.test_ownership_contract import sell
    from tests.storage.test_provenance_contract import minted

    settings = Settings(data_dir=tmp_path, seed=False,
                        secret="test-secret-of-at-least-thirty-two-bytes")
    store = SqliteStore(str(tmp_path / "ece.db"))
    await store.open()
    try:
        await minted(store, "x1", "ann")
        await minted(store, "x2", "ann")
        await sell(store, "x1", "auc1", "ann", "ben", price=4_000)
        assert await store.save_projection("market", 0, 0, [valuation("card_1|PSA|9", 6_000)])
        runner = Runner(store, PortfolioProjection(store))
        await runner.catch_up()
        kinds = ("holdings", "portfolio", "portfolio_flows", SNAP)
        before = {(k, key): d for k in kinds
                  for key, d in await store.scan_projection(k, "", "\U0010ffff", 100)}
    finally:
        await store.close()
    assert before["portfolio", "ben"]["totals"]["value"] == 6_000
    assert before["portfolio", "ann"]["totals"]["realised_pnl"] == 4_000 - 200  # 5% fee

    assert await rebuild_portfolio(settings, resume=False) == 0
    store = SqliteStore(str(tmp_path / "ece.db"))
    await store.open()
    try:
        after = {(k, key): d for k in kinds
                 for key, d in await store.scan_projection(k, "", "\U0010ffff", 100)}
        assert await store.projection_checkpoint("portfolio.0") == \
            await store.ownership_position()
    finally:
        await store.close()
    def strip(doc: dict) -> dict:
        return {k: v for k, v in doc.items() if k != "computed_at"}

    assert {k: strip(d) for k, d in after.items()} == {k: strip(d) for k, d in before.items()}


class GatedStore:
    """The store, but a valuation read waits at `gate` after reading (and says so on `read`):
    what the portfolio actor's values tail can do meanwhile, a test does there."""

    def __init__(self, store: SqliteStore) -> None:
        self._store = store
        self.read, self.gate = asyncio.Event(), asyncio.Event()
        self.gate.set()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def get_projection_docs(self, kind: str, keys: list[str]) -> dict[str, Any]:
        found = await self._store.get_projection_docs(kind, keys)
        self.read.set()
        await self.gate.wait()
        return found


@pytest.mark.asyncio
async def test_a_value_change_told_during_a_flush_is_not_lost(store: SqliteStore) -> None:
    gated = GatedStore(store)
    p = PortfolioProjection(gated)  # type: ignore[arg-type]
    await run(p, store, ROWS)
    # P1 changes (8,000 -> 9,000) while a flush is reading the old valuation of P1: the
    # `values` message arrives mid-flush (the actor's tail runs beside the runner).
    p.revalue([P1])
    gated.gate.clear()
    gated.read.clear()
    flush = asyncio.ensure_future(p.flush(NOW + 1))
    await gated.read.wait()  # the flush has read P1's old valuation
    assert await store.save_projection("market", 0, 0, [valuation(P1, 9_000)])
    assert p.revalue([P1]) == {"ben"}
    gated.gate.set()
    puts, messages = await flush  # saved, as the runner saves them
    assert await store.save_projection(p.name, 3, 3, puts, messages)
    await run(p, store, [], NOW + 2)
    doc = await store.get_projection_doc("portfolio", "ben")
    assert doc is not None and doc["totals"]["value"] == 9_000


async def flows_of(store: SqliteStore) -> dict[str, Any]:
    return dict(await store.scan_projection("portfolio_flows", "", "\U0010ffff", 100))


@pytest.mark.asyncio
@pytest.mark.parametrize("kinds_written", [1, 2, 3])
async def test_a_crash_between_kinds_of_a_save_neither_loses_nor_doubles_flows(
        tmp_path: Path, store: SqliteStore, kinds_written: int) -> None:
    """A save is written kind by kind, in the order the kinds come (MongoDB; SQLite in
    chunks): a crash may leave the first kinds of a batch's results stored and not the
    others, the checkpoint not moved. The batch redone after the restart gives the flows a
    save without a crash gives."""
    clean = SqliteStore(str(tmp_path / "clean.db"))
    await clean.open()
    try:
        for card in CARDS:
            await clean.create_card(card_record(card, NOW - 1_000 * DAY))
        assert await clean.save_projection("market", 0, 0, [valuation(P1, 8_000)])
        once = PortfolioProjection(clean)
        await run(once, clean, ROWS[:2])
        await run(once, clean, ROWS[2:])
        want = await flows_of(clean)
    finally:
        await clean.close()

    first = PortfolioProjection(store)
    await run(first, store, ROWS[:2])
    await first.apply(ROWS[2:], NOW)
    puts, _ = await first.flush(NOW)
    kinds = list(dict.fromkeys(kind for kind, _, _ in puts))[:kinds_written]
    assert await store.save_projection(first.name, 2, 2, [x for x in puts if x[0] in kinds])
    again = PortfolioProjection(store)  # the restart
    await run(again, store, ROWS[2:])
    assert await flows_of(store) == want


@pytest.mark.asyncio
async def test_holders_are_told_at_once_and_their_whole_portfolios_follow(
        store: SqliteStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """Forty holders of P1: a change of its value tells every one of them in the same flush
    (totals and the holding), even when no time is left to recompute their whole portfolios;
    those follow in later flushes. A holding that leaves is told as removed."""
    from actors.portfolio import projection as module

    rows = [row(i + 1, f"h{i}", C1, 9, None, f"u{i}", "mint") for i in range(40)]
    p = PortfolioProjection(store)
    await run(p, store, rows)
    assert await store.save_projection("market", 0, 0, [valuation(P1, 9_500)])
    monkeypatch.setattr(module, "TOLD_BUDGET_S", -1.0)  # no time for whole portfolios
    assert len(p.revalue([P1])) == 40
    docs, messages = await run(p, store, [], NOW + 1)
    told = {u: m for message in messages for u, m in message["data"]["users"].items()}
    assert set(told) == {f"u{i}" for i in range(40)}
    assert all(m["total"]["value"] == 9_500 and m["changed"][0]["value"]["point"] == 9_500
               for m in told.values())
    assert not [k for k in docs if k[0] == "portfolio"]  # not recomputed yet
    # The next flush has the time for all 40 (a budget of CPU, which a loaded CI machine's
    # flush could spend before the last of them: they would follow one flush later).
    monkeypatch.setattr(module, "FULL_BUDGET_S", 60.0)
    docs, messages = await run(p, store, [], NOW + 2)
    assert messages == []  # told already
    assert {key for kind, key in docs if kind == "portfolio"} == {f"u{i}" for i in range(40)}
    assert all(docs["portfolio", f"u{i}"]["totals"]["value"] == 9_500 for i in range(40))

    _, messages = await run(p, store, [row(41, "h0", C1, 9, "u0", "u1", "auction",
                                           price=100, premium=0, fee=0)], NOW + 3)
    told = {u: m for message in messages for u, m in message["data"]["users"].items()}
    assert told["u0"]["removed"] == ["h0"] and told["u0"]["total"]["value"] == 0
    assert {c["asset_id"] for c in told["u1"]["changed"]} == {"h0"}


@pytest.mark.asyncio
async def test_a_values_tail_left_behind_by_the_trimmed_log_revalues_everyone(
        store: SqliteStore) -> None:
    from actors.config import ClusterConfig
    from actors.portfolio.actor import PortfolioCore

    core = PortfolioCore(ClusterConfig(store_url="unused"), 0, store=store)
    await run(core.projection, store, ROWS)
    assert core.projection.stale == set()
    filler = [{"channel": "market", "type": "index", "data": {}} for _ in range(11_000)]
    assert await store.save_projection("market", 0, 0, [], filler)  # the log keeps 10,000
    await core.step_values()  # its cursor at 0: a thousand and more messages gone unread
    assert core.projection.stale == {"ann", "ben"}
    core.projection.stale.clear()
    await core.step_values()  # caught up: nothing more
    assert core.projection.stale == set()


@pytest.mark.asyncio
async def test_a_card_moved_in_kind_long_ago_is_valued_as_it_was_then(
        store: SqliteStore) -> None:
    """A swap folded late (a rebuild, a catch-up) takes the value at the row's date: today's
    value moved back by the position's index, not today's value."""
    doc = valuation(P1, 8_000)[2]
    index = {"points": [{"t": NOW - 400 * DAY, "value": 100.0},
                        {"t": NOW - DAY, "value": 200.0}]}
    assert await store.save_projection("market", 0, 0, [
        ("valuation", P1, {**doc, "index": "category:pokemon"}),
        ("index", "1w|category:pokemon", index)])
    swap = {**row(1, "a1", C1, 9, None, "ben", "offer"), "at": NOW - 400 * DAY}
    p = PortfolioProjection(store)
    docs, _ = await run(p, store, [swap])
    [held] = docs["portfolio", "ben"]["holdings"]
    assert held["basis_how"] == "swap" and held["cost_basis"] == 4_000  # the index halves it
    assert held["value"]["point"] == 8_000 and held["pnl"] == 4_000


@pytest.mark.asyncio
async def test_a_revaluation_wakes_the_runner_instead_of_waiting_out_its_poll(
        store: SqliteStore, monkeypatch: pytest.MonkeyPatch) -> None:
    from actors.analytics import runner as runner_module
    from actors.analytics.runner import Runner
    from tests.storage.test_ownership_contract import sell
    from tests.storage.test_provenance_contract import minted

    monkeypatch.setattr(runner_module, "POLL_S", 120.0)  # an idle runner would sleep 2 min
    await minted(store, "x1", "ann")
    await sell(store, "x1", "auc1", "ann", "ben", price=4_000)
    p = PortfolioProjection(store)
    runner = Runner(store, p)
    task = asyncio.create_task(runner.run())
    try:
        head = await store.ownership_position()
        async with asyncio.timeout(30):
            while runner.checkpoint < head:  # the first fold, then the runner idles
                await asyncio.sleep(0.05)
        told_before = len(await store.analytics_log(0))
        assert await store.save_projection("market", 0, 0,
                                           [valuation("card_1|PSA|9", 6_000)])
        assert p.revalue(["card_1|PSA|9"]) == {"ben"}
        runner.wake()
        async with asyncio.timeout(30):  # far less than the 120 s poll
            while len(await store.analytics_log(0)) == told_before:
                await asyncio.sleep(0.05)
        [message] = (await store.analytics_log(0))[told_before:]
        assert message["data"]["users"]["ben"]["total"]["value"] == 6_000
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
