"""Hyperliquid cross margin, worked out by hand."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from risk_core.venues.hyperliquid import HyperliquidAccount, HyperliquidPosition, hyperliquid_cross_margin


def test_maintenance_is_half_the_initial_margin_at_max_leverage() -> None:
    account = HyperliquidAccount(usdc_balance=5_000, positions=(
        HyperliquidPosition(coin="BTC", size=0.5, entry_price=60_000, mark_price=62_000, max_leverage=40),
        HyperliquidPosition(coin="ETH", size=-10, entry_price=3_000, mark_price=3_100, max_leverage=25),
    ))
    margin = hyperliquid_cross_margin(account)
    # BTC: 31000 / 80 = 387.5; ETH: 31000 / 50 = 620. PnL: +1000 on BTC, -1000 on ETH.
    assert margin.position_maintenance_margin == pytest.approx((387.5, 620.0))
    assert margin.maintenance_margin == pytest.approx(1_007.5)
    assert margin.total_notional == pytest.approx(62_000)
    assert margin.account_value == pytest.approx(5_000)
    assert margin.margin_surplus == pytest.approx(3_992.5)
    assert not margin.is_liquidatable


@pytest.mark.parametrize(
    ("mark", "account_value", "maintenance", "liquidatable"),
    [(59_000, 600.0, 590.0, False), (58_900, 500.0, 589.0, True)],
)
def test_liquidatable_once_account_value_falls_below_maintenance(
    mark: float, account_value: float, maintenance: float, liquidatable: bool
) -> None:
    account = HyperliquidAccount(usdc_balance=1_600, positions=(
        HyperliquidPosition(coin="BTC", size=1, entry_price=60_000, mark_price=mark, max_leverage=50),
    ))
    margin = hyperliquid_cross_margin(account)
    assert margin.account_value == pytest.approx(account_value)
    assert margin.maintenance_margin == pytest.approx(maintenance)
    assert margin.is_liquidatable is liquidatable


def test_no_positions_needs_no_margin() -> None:
    margin = hyperliquid_cross_margin(HyperliquidAccount(usdc_balance=100, positions=()))
    assert (margin.account_value, margin.maintenance_margin, margin.is_liquidatable) == (100.0, 0.0, False)


def test_zero_leverage_is_rejected_naming_the_field() -> None:
    with pytest.raises(ValidationError) as raised:
        HyperliquidAccount.model_validate({"usdc_balance": 0.0, "positions": [
            {"coin": "BTC", "size": 1.0, "entry_price": 1.0, "mark_price": 1.0, "max_leverage": 0}]})
    assert raised.value.errors()[0]["loc"] == ("positions", 0, "max_leverage")
