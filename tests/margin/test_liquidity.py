"""The liquidity add-on: nothing within the market's depth, the square-root law's excess beyond it, on the net."""

from __future__ import annotations

import math
from typing import Any

import pytest
from support.golden import market, position

from risk_core.margin.engine import compute_margin_request
from risk_core.schema.params import default_params
from risk_core.schema.request import MarginRequest

BTC = 100_000.0


def report(positions: list[dict[str, Any]], **params: Any) -> Any:
    return compute_margin_request(
        MarginRequest.model_validate({"positions": positions, "market": market(), "params": params})
    )


def expected_addon(notional: float) -> float:
    """The params file's BTC curve, restated: Q x max(0, 1% x sqrt(Q / $100M) - 1%)."""
    curve = default_params().liquidity.depth["BTC"]
    assert (curve.depth_usd, curve.impact_at_depth, curve.exponent) == (1e8, 0.01, 0.5)
    return notional * max(0.0, 0.01 * math.sqrt(notional / 1e8) - 0.01)


def test_a_book_within_depth_pays_nothing() -> None:
    r = report([position("spot", asset="BTC", quantity=900.0)])  # $90M < $100M
    assert r.liquidity_addon_usd == 0.0
    assert r.maintenance_margin_usd == pytest.approx(r.risk_usd + r.contingency_usd, rel=1e-12)


def test_a_book_beyond_depth_pays_the_excess_impact_as_its_own_line() -> None:
    r = report([position("spot", asset="BTC", quantity=2_000.0)])  # $200M
    assert r.liquidity_addon_usd == pytest.approx(expected_addon(2e8), rel=1e-12)
    assert r.liquidity_addon_usd == pytest.approx(2e8 * 0.01 * (math.sqrt(2) - 1), rel=1e-12)
    assert r.maintenance_margin_usd == pytest.approx(
        r.risk_usd + r.contingency_usd + r.liquidity_addon_usd, rel=1e-12
    )
    off = report([position("spot", asset="BTC", quantity=2_000.0)], liquidity={"enabled": False})
    assert off.maintenance_margin_usd == pytest.approx(r.maintenance_margin_usd - r.liquidity_addon_usd, rel=1e-12)


def test_a_hedge_lowers_the_addon_and_it_is_charged_on_the_net() -> None:
    big = position("spot", asset="BTC", quantity=3_000.0)
    hedged = report([big, position("perp", underlying="BTC", quantity=-2_000.0)])
    assert hedged.liquidity_addon_usd == pytest.approx(expected_addon(1e8), abs=1e-6)  # net $100M: at depth
    alone = report([big])
    assert alone.liquidity_addon_usd == pytest.approx(expected_addon(3e8), rel=1e-12)
    assert hedged.liquidity_addon_usd < alone.liquidity_addon_usd


def test_the_addon_grows_faster_than_the_book() -> None:
    one = report([position("spot", asset="BTC", quantity=2_000.0)]).liquidity_addon_usd
    two = report([position("spot", asset="BTC", quantity=4_000.0)]).liquidity_addon_usd
    assert two > 2 * one
