"""Payment failure (fail_payment, second chances) and the money on trades, in the Store
contract, run against every back end."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from storage import Conflict, Store
from storage.base import SETTLE_PAYMENT_FAILED
from storage.records import SecondChanceRecord, TradeRecord
from tests.storage.conftest import Backend
from tests.storage.test_contract import T0, auction, finish, listed, trade


def lost_sale(auction_id: str, buyer: str = "u2") -> TradeRecord:
    return cast(TradeRecord, trade(auction_id, buyer, 250, T0 + 61))


def second_chance(auction_id: str, user_id: str = "u3", at: float = T0 + 62,
                  price: int = 200) -> SecondChanceRecord:
    return cast(SecondChanceRecord, {
        "auction_id": auction_id, "asset_id": f"as-{auction_id}", "seller_id": "u1",
        "user_id": user_id, "price": price, "at": at, "expires_at": at + 86_400,
        "status": "open"})


async def closed(store: Store, auction_id: str) -> None:
    await listed(store, auction_id)
    await finish(store, auction_id, "closed")


async def test_fail_payment_unlists_and_settles_without_a_sale(store: Store) -> None:
    await closed(store, "x1")
    sc = second_chance("x1")
    assert await store.fail_payment(lost_sale("x1"), sc) is True
    a = await store.get_asset("as-x1")
    assert a is not None and (a["owner_id"], a["listed_in"]) == ("u1", None)
    rec = await store.get_auction("x1")
    assert rec is not None
    assert (rec["settled"], rec["settle_error"]) == (True, SETTLE_PAYMENT_FAILED)
    assert await store.get_trade("x1") is None
    assert await store.list_trades() == []
    assert [r["auction_id"] for r in await store.unsettled_finished()] == ["x1"]  # untold
    await store.mark_told("x1")
    assert await store.unsettled_finished() == []
    assert await store.get_second_chance("x1") == sc
    assert await store.list_second_chances("u3") == [sc]
    assert await store.list_second_chances("u2") == []

    # Settled already: every later call is a no-op, the first second chance stays.
    state = (await store.get_asset("as-x1"), await store.get_auction("x1"))
    assert await store.fail_payment(lost_sale("x1"), second_chance("x1", "u4")) is False
    assert await store.fail_payment(lost_sale("x1")) is False
    assert await store.settle(lost_sale("x1")) is False
    assert (await store.get_asset("as-x1"), await store.get_auction("x1")) == state
    assert await store.get_trade("x1") is None
    assert await store.get_second_chance("x1") == sc
    assert await store.list_second_chances("u4") == []


async def test_fail_payment_without_a_second_chance(store: Store) -> None:
    await closed(store, "x1")
    assert await store.fail_payment(lost_sale("x1")) is True
    assert await store.get_second_chance("x1") is None
    assert await store.get_second_chance("nope") is None
    # The seller can list the asset again.
    await store.create_auction(auction("x2", "as-x1", "u1"))
    assert (await store.get_asset("as-x1") or {})["listed_in"] == "x2"


async def test_fail_payment_of_a_missing_auction(store: Store) -> None:
    with pytest.raises(Conflict) as err:
        await store.fail_payment(lost_sale("nope"), second_chance("nope"))
    assert err.value.code == "AUCTION_NOT_FOUND"
    assert await store.get_second_chance("nope") is None


async def test_fail_payment_of_a_sold_auction_changes_nothing(store: Store) -> None:
    await closed(store, "x1")
    assert await store.settle(lost_sale("x1")) is True
    assert await store.fail_payment(lost_sale("x1"), second_chance("x1")) is False
    assert (await store.get_asset("as-x1") or {})["owner_id"] == "u2"
    assert (await store.get_auction("x1") or {})["settle_error"] is None
    assert await store.get_second_chance("x1") is None


async def test_concurrent_fail_payment_applies_once(backend: Backend) -> None:
    stores = [await backend.open() for _ in range(3)]
    await closed(stores[0], "x1")
    results = await asyncio.gather(
        *(s.fail_payment(lost_sale("x1"), second_chance("x1", f"r{i}"))
          for i, s in enumerate(stores)))
    assert sorted(results) == [False, False, True]
    winner = f"r{results.index(True)}"
    assert (await stores[0].get_second_chance("x1") or {}).get("user_id") == winner


async def test_list_second_chances_newest_first(store: Store) -> None:
    for i, aid in enumerate(("x1", "x2", "x3")):
        await closed(store, aid)
        await store.fail_payment(lost_sale(aid), second_chance(aid, "u3", at=T0 + 100 + i))
    await closed(store, "x4")
    await store.fail_payment(lost_sale("x4"), second_chance("x4", "u5"))

    def ids(offers: list[SecondChanceRecord]) -> list[str]:
        return [o["auction_id"] for o in offers]

    assert ids(await store.list_second_chances("u3")) == ["x3", "x2", "x1"]
    assert ids(await store.list_second_chances("u3", limit=2)) == ["x3", "x2"]
    assert ids(await store.list_second_chances("u5")) == ["x4"]


# -- the money on a trade --------------------------------------------------------------------
async def test_trades_keep_premium_and_seller_fee(store: Store) -> None:
    await closed(store, "x1")
    await closed(store, "x2")
    paid: dict[str, Any] = {**trade("x1", "u2", 5000, T0 + 61), "premium": 150,
                            "seller_fee": 250}
    plain = trade("x2", "u2", 100, T0 + 62)
    assert await store.settle(cast(TradeRecord, paid)) is True
    assert await store.settle(cast(TradeRecord, plain)) is True
    assert await store.get_trade("x1") == paid
    assert await store.get_trade("x2") == plain  # no premium or seller_fee keys
    assert await store.list_trades(user_id="u2") == [plain, paid]
