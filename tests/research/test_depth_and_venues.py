"""The depth curves against Uniswap v3's range maths, and Derive's PM2 per-unit balances against whole accounts."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from research.contagion.accounts import AssetIndex, derive_requirements
from research.contagion.depth import depth_curve
from research.contagion.params import load_cascade_params
from risk_core.venues.derive_pm2 import Pm2Case, evaluate_pm2


def amount0_between(lower: float, upper: float, liquidity: float) -> float:
    """Whitepaper eq. 6.30: token0 in a range = L (1/sqrt(lower) - 1/sqrt(upper))."""
    return liquidity * (1 / math.sqrt(lower) - 1 / math.sqrt(upper))


def test_the_default_curve_crosses_its_first_band_edge_like_a_tick() -> None:
    """The default profile's first band (L0 down to 0.9 x reference, on the nearest tick) then 0.6 L0 below."""
    params = load_cascade_params()
    depth = depth_curve(params, "ETH", 2_500.0)
    assert depth is not None
    l0 = params.depth["ETH"].depth_usd_2pct / (math.sqrt(2_500.0) * (1 / math.sqrt(0.98) - 1))
    edge = 1.0001 ** round(math.log(0.9 * 2_500.0) / math.log(1.0001))
    to_edge = amount0_between(edge, 2_500.0, l0)
    extra = 100.0
    expected = 1 / (1 / math.sqrt(edge) + extra / (0.6 * l0)) ** 2
    assert depth.price_after(2_500.0, to_edge + extra) == pytest.approx(expected, rel=1e-9)


@settings(max_examples=100, deadline=None)
@given(st.floats(min_value=1e-3, max_value=5_000.0))
def test_selling_then_buying_back_returns_to_the_start(units: float) -> None:
    depth = depth_curve(load_cascade_params(), "ETH", 2_500.0)
    assert depth is not None
    [pool] = depth.pools
    _, sold = pool.trade(units)
    assert sold.price() < 2_500.0
    _, back = sold.trade(-units)
    assert back.price() == pytest.approx(2_500.0, rel=1e-9)


def test_the_parameter_files_depth_is_what_moves_the_price_two_percent() -> None:
    params = load_cascade_params()
    curve = depth_curve(params, "ETH", 2_500.0)
    assert curve is not None
    units = params.depth["ETH"].depth_usd_2pct / 2_500.0
    assert curve.price_after(2_500.0, units) == pytest.approx(0.98 * 2_500.0, rel=1e-12)
    assert curve.source == "depth curve"
    assert depth_curve(params, "USDC", 1.0) is None


@pytest.mark.parametrize("size", [0.37, -2.5, 12.0, -40.0])
@pytest.mark.parametrize("cash", [0.0, 15_000.0, -300.0])
def test_derive_unit_balances_give_pm2_on_the_whole_account(size: float, cash: float) -> None:
    """PM2 is positively homogeneous in the perp size and linear in cash: cash + PnL + |size| x unit balance is
    Derive's maintenance balance of the account itself (risk_core.venues.derive_pm2)."""
    params = load_cascade_params()
    pm2 = params.pm2_parameters()
    assets = AssetIndex(("BTC", "ETH", "USDC"))
    prices = np.array([91_000.0, 3_100.0, 1.0])
    unit = derive_requirements(prices, assets, np.array([0, 1]), pm2)
    entry = 2_950.0
    pnl = size * (3_100.0 - entry)
    vectorised = cash + pnl + abs(size) * unit[1, 0 if size > 0 else 1]
    whole = evaluate_pm2(Pm2Case.model_validate({"Scenario": {
        "Cash": cash, "SpotPrice": 3_100.0, "SpotConfidence": 1.0, "StablePrice": 1.0, "StableConfidence": 1.0,
        "NumPerps": size, "PerpPrice": 3_100.0, "PerpConfidence": 1.0, "UnrealisedPerpPNL": pnl,
        "UnrealisedFunding": 0.0}, "Parameters": pm2})).mm
    assert vectorised == pytest.approx(whole, rel=1e-12, abs=1e-9)
    assert unit[1, 0] < 0 and unit[1, 1] < 0  # a perp always needs margin
