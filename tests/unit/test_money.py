import pickle

import pytest

from market.errors import BID_TOO_LOW, MarketError
from market.money import MAX_AMOUNT, increment_for, is_amount


@pytest.mark.parametrize(
    ("price", "increment"),
    [
        (0, 5), (99, 5),
        (100, 25), (499, 25),
        (500, 50), (2_499, 50),
        (2_500, 100), (9_999, 100),
        (10_000, 250), (24_999, 250),
        (25_000, 500), (49_999, 500),
        (50_000, 1_000), (99_999, 1_000),
        (100_000, 2_500), (249_999, 2_500),
        (250_000, 5_000), (499_999, 5_000),
        (500_000, 10_000), (MAX_AMOUNT, 10_000),
    ],
)
def test_increment_ladder_boundaries(price: int, increment: int) -> None:
    assert increment_for(price) == increment


def test_increment_rejects_negative_price() -> None:
    with pytest.raises(ValueError):
        increment_for(-1)


@pytest.mark.parametrize("value", [0, 1, 5_000, MAX_AMOUNT])
def test_is_amount_accepts_ints_in_range(value: int) -> None:
    assert is_amount(value)


@pytest.mark.parametrize(
    "value", [True, False, -1, MAX_AMOUNT + 1, 1.0, 10.5, "100", None, [100], float("nan")]
)
def test_is_amount_rejects_everything_else(value: object) -> None:
    assert not is_amount(value)


def test_market_error_shape_and_pickle() -> None:
    err = MarketError(BID_TOO_LOW, "too low", min_bid=5200)
    assert err.code == BID_TOO_LOW
    assert err.message == "too low"
    assert err.details == {"min_bid": 5200}
    assert err.to_dict() == {"code": BID_TOO_LOW, "message": "too low", "min_bid": 5200}
    assert str(err) == "too low"
    clone = pickle.loads(pickle.dumps(err))
    assert isinstance(clone, MarketError)
    assert clone.to_dict() == err.to_dict()
