"""Aave v3 health factor, worked out by hand."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from risk_core.venues.aave import AaveAccount, AaveReserve, EModeCategory, aave_health


def reserve(asset: str, *, supplied: float = 0.0, borrowed: float = 0.0, price: float, lt_bps: int,
            collateral: bool = True, category: int | None = None) -> AaveReserve:
    return AaveReserve(asset=asset, supplied=supplied, borrowed=borrowed, price_usd=price,
                       liquidation_threshold_bps=lt_bps, usage_as_collateral=collateral, emode_category=category)


def test_health_factor_weights_each_collateral_by_its_threshold() -> None:
    account = AaveAccount(reserves=(
        reserve("WETH", supplied=10, price=2000, lt_bps=8250),
        reserve("USDC", supplied=5000, price=1.0, lt_bps=7800),
        reserve("USDT", borrowed=8000, price=1.0, lt_bps=7800),
    ))
    health = aave_health(account)
    # (20000 x 0.825 + 5000 x 0.78) / 8000 = (16500 + 3900) / 8000
    assert health.health_factor == pytest.approx(2.55)
    assert health.total_collateral_usd == pytest.approx(25_000)
    assert health.total_debt_usd == pytest.approx(8_000)
    assert health.liquidation_threshold == pytest.approx(20_400 / 25_000)


def test_collateral_switched_off_or_with_zero_threshold_does_not_count() -> None:
    account = AaveAccount(reserves=(
        reserve("WETH", supplied=10, price=2000, lt_bps=8250),
        reserve("USDC", supplied=5000, price=1.0, lt_bps=7800, collateral=False),
        reserve("FROZEN", supplied=1000, price=3.0, lt_bps=0),
        reserve("USDT", borrowed=8000, price=1.0, lt_bps=7800),
    ))
    assert aave_health(account).health_factor == pytest.approx(16_500 / 8_000)


def test_no_debt_is_infinitely_healthy() -> None:
    health = aave_health(AaveAccount(reserves=(reserve("WETH", supplied=1, price=2000, lt_bps=8250),)))
    assert health.health_factor == math.inf
    assert health.total_debt_usd == 0.0


STABLECOIN_POSITIONS = (
    reserve("USDC", supplied=10_000, price=0.998, lt_bps=7800, category=1),
    reserve("DAI", borrowed=9_000, price=1.002, lt_bps=7700, category=1),
    reserve("WETH", supplied=1, price=2000, lt_bps=8250),
)


@pytest.mark.parametrize(
    ("emode", "expected"),
    [
        # e-mode off: (10000 x 0.998 x 0.78 + 2000 x 0.825) / (9000 x 1.002) = 9434.4 / 9018
        (None, 9_434.4 / 9_018),
        # category threshold 97.5% on USDC, own prices: (9730.5 + 1650) / 9018
        (EModeCategory(category_id=1, liquidation_threshold_bps=9750), 11_380.5 / 9_018),
        # plus the category's $1 price source for USDC and DAI: (9750 + 1650) / 9000
        (EModeCategory(category_id=1, liquidation_threshold_bps=9750, price_usd=1.0), 11_400 / 9_000),
        # another category leaves these reserves alone
        (EModeCategory(category_id=2, liquidation_threshold_bps=9300, price_usd=1.0), 9_434.4 / 9_018),
    ],
    ids=["off", "category-threshold", "category-price-source", "other-category"],
)
def test_emode_overrides_threshold_and_price_of_its_category(emode: EModeCategory | None, expected: float) -> None:
    health = aave_health(AaveAccount(reserves=STABLECOIN_POSITIONS, emode=emode))
    assert health.health_factor == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    ("bad_reserve", "location"),
    [
        ({"liquidation_threshold_bps": 10_001}, ("reserves", 0, "liquidation_threshold_bps")),
        ({"supplied": -1.0}, ("reserves", 0, "supplied")),
        ({"price_usd": "2000"}, ("reserves", 0, "price_usd")),
    ],
)
def test_bad_reserve_is_rejected_naming_the_field(bad_reserve: dict[str, object], location: tuple[object, ...]) -> None:
    fields = {"asset": "WETH", "supplied": 1.0, "borrowed": 0.0, "price_usd": 2000.0,
              "liquidation_threshold_bps": 8250, "usage_as_collateral": True}
    with pytest.raises(ValidationError) as raised:
        AaveAccount.model_validate({"reserves": [{**fields, **bad_reserve}]})
    assert raised.value.errors()[0]["loc"] == location


def test_an_asset_listed_twice_is_rejected() -> None:
    weth = reserve("WETH", supplied=1, price=2000, lt_bps=8250)
    with pytest.raises(ValidationError, match="appears twice"):
        AaveAccount(reserves=(weth, weth))
