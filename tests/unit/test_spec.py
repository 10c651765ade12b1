from typing import Any

import pytest

from market.auction import AuctionSpec, parse_spec
from market.errors import INVALID, MarketError
from market.money import MAX_AMOUNT

NOW = 1_700_000_000_000
DAY = 86_400_000


def parse(**raw: Any) -> AuctionSpec:
    return parse_spec(raw, auction_id="a1", asset_id="x1", seller_id="s1", now=NOW)


def english(**extra: Any) -> dict[str, Any]:
    return {"start_price": 1000, "duration_ms": DAY, **extra}


def dutch(**extra: Any) -> dict[str, Any]:
    return {"type": "dutch", "start_price": 10_000, "floor_price": 2_000, "step": 500,
            "step_ms": 60_000, "duration_ms": DAY, **extra}


def test_defaults() -> None:
    spec = parse(**english())
    assert spec == AuctionSpec(
        auction_id="a1", asset_id="x1", seller_id="s1", type="english", start_price=1000,
        starts_at=NOW, ends_at=NOW + DAY, created_at=NOW, soft_close_ms=60_000,
    )


def test_full_english_and_extra_keys_ignored() -> None:
    spec = parse(start_price=0, reserve_price=500, buy_now_price=9000, starts_at=NOW + 10,
                 ends_at=NOW + 20, soft_close_ms=0, increment=7, colour="blue")
    assert (spec.start_price, spec.reserve_price, spec.buy_now_price) == (0, 500, 9000)
    assert (spec.starts_at, spec.ends_at, spec.soft_close_ms, spec.increment) == (
        NOW + 10, NOW + 20, 0, 7)


def test_dutch_and_sealed() -> None:
    spec = parse(**dutch())
    assert (spec.type, spec.floor_price, spec.step, spec.step_ms) == ("dutch", 2000, 500, 60_000)
    assert parse(**dutch(floor_price=10_000)).floor_price == 10_000  # floor == start is fine
    sealed = parse(type="sealed", start_price=100, reserve_price=300, duration_ms=1000)
    assert (sealed.type, sealed.reserve_price) == ("sealed", 300)


def test_spec_dict_round_trip() -> None:
    spec = parse(**dutch())
    assert AuctionSpec.from_dict(spec.to_dict()) == spec
    assert AuctionSpec.from_dict({**spec.to_dict(), "extra": 1}) == spec


BAD = 2**53 + 1


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"type": "vickrey", "start_price": 1, "duration_ms": DAY}, "type"),
        ({"type": 3, "start_price": 1, "duration_ms": DAY}, "type"),
        ({"duration_ms": DAY}, "start_price"),
        (english(start_price=True), "start_price"),
        (english(start_price=10.0), "start_price"),
        (english(start_price="10"), "start_price"),
        (english(start_price=-1), "start_price"),
        (english(start_price=BAD), "start_price"),
        (english(reserve_price=999), "reserve_price"),
        (english(reserve_price=1.5), "reserve_price"),
        (english(buy_now_price=1000), "buy_now_price"),
        (english(buy_now_price=999), "buy_now_price"),
        (english(reserve_price=5000, buy_now_price=4000), "buy_now_price"),
        (english(buy_now_price=False), "buy_now_price"),
        ({**dutch(), "buy_now_price": 20_000}, "buy_now_price"),
        ({"type": "sealed", "start_price": 1, "duration_ms": DAY, "buy_now_price": 5},
         "buy_now_price"),
        (english(increment=0), "increment"),
        (english(increment=-5), "increment"),
        (english(increment=2.5), "increment"),
        ({**dutch(), "increment": 5}, "increment"),
        (english(floor_price=0), "floor_price"),
        (english(step=1), "step"),
        ({"type": "sealed", "start_price": 1, "duration_ms": DAY, "step_ms": 5}, "step_ms"),
        ({**dutch(), "reserve_price": 10_000}, "reserve_price"),
        ({k: v for k, v in dutch().items() if k != "floor_price"}, "floor_price"),
        (dutch(floor_price=10_001), "floor_price"),
        (dutch(floor_price=-1), "floor_price"),
        ({k: v for k, v in dutch().items() if k != "step"}, "step"),
        (dutch(step=0), "step"),
        (dutch(step=1.0), "step"),
        ({k: v for k, v in dutch().items() if k != "step_ms"}, "step_ms"),
        (dutch(step_ms=0), "step_ms"),
        (dutch(step_ms="1000"), "step_ms"),
        ({"start_price": 1}, "ends_at"),
        ({"start_price": 1, "ends_at": NOW + 10, "duration_ms": 10}, "ends_at"),
        (english(duration_ms=0), "duration_ms"),
        (english(duration_ms=-1), "duration_ms"),
        (english(duration_ms=30 * DAY + 1), "duration_ms"),
        (english(duration_ms=1.5), "duration_ms"),
        ({"start_price": 1, "ends_at": NOW}, "ends_at"),
        ({"start_price": 1, "ends_at": NOW - 1, "starts_at": NOW - 10}, "ends_at"),
        ({"start_price": 1, "starts_at": NOW + 100, "ends_at": NOW + 100}, "ends_at"),
        ({"start_price": 1, "starts_at": NOW + 100, "ends_at": NOW + 50}, "ends_at"),
        ({"start_price": 1, "ends_at": NOW + 30 * DAY + 1}, "ends_at"),
        ({"start_price": 1, "ends_at": float(NOW + 10)}, "ends_at"),
        ({"start_price": 1, "ends_at": True}, "ends_at"),
        ({"start_price": 1, "starts_at": NOW - 2 * DAY, "duration_ms": DAY}, "ends_at"),
        (english(starts_at="now"), "starts_at"),
        (english(starts_at=-1), "starts_at"),
        (english(starts_at=True), "starts_at"),
        (english(starts_at=NOW + 30 * DAY + 1), "starts_at"),
        (english(starts_at=NOW + 200 * 365 * DAY), "starts_at"),
        (english(soft_close_ms=-1), "soft_close_ms"),
        (english(soft_close_ms=86_400_001), "soft_close_ms"),
        (english(soft_close_ms=1.0), "soft_close_ms"),
    ],
)
def test_rejects_bad_input(raw: dict[str, Any], field: str) -> None:
    with pytest.raises(MarketError) as info:
        parse(**raw)
    assert info.value.code == INVALID
    assert info.value.details["field"] == field
    assert field in info.value.message


def test_rejects_non_object_body() -> None:
    with pytest.raises(MarketError) as info:
        parse_spec([1, 2], auction_id="a", asset_id="x", seller_id="s", now=NOW)  # type: ignore[arg-type]
    assert info.value.code == INVALID


def test_limits_are_inclusive() -> None:
    assert parse(**english(duration_ms=30 * DAY)).ends_at == NOW + 30 * DAY
    assert parse(**english(soft_close_ms=86_400_000)).soft_close_ms == 86_400_000
    assert parse(**english(start_price=MAX_AMOUNT - 1, buy_now_price=MAX_AMOUNT)).buy_now_price
    assert parse(**english(reserve_price=1000)).reserve_price == 1000  # reserve == start is ok
    # A start in the past is accepted (the auction starts at once) if the end is still ahead.
    assert parse(start_price=1, starts_at=NOW - 10, ends_at=NOW + 10).starts_at == NOW - 10
