"""The portfolio projection (actors.portfolio.projection) over a real SQLite store: holdings,
cost basis and P/L from ownership rows, revaluation of exactly the holders of a position whose
value changed, `portfolio` events, and a restart from the persisted accounts."""

from __future__ import annotations

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
    assert ann["totals"]["value"] == 0 and ann["totals"]["unvalued"] == 1  # never valued at 0
    assert docs[SNAP, f"ben|{NOW - NOW % DAY}"]["value"] == 8_000
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
        kinds = ("holdings", "portfolio", SNAP)
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
