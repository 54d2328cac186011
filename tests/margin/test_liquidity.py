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


# A read Uniswap v3 pool of ETH in the market (market.pools): the add-on takes the pool's exact price move instead of
# the curve's. One range of liquidity L (human sqrt(ETH x USDC)) from 1,000 to 9,000 around 3,000, fee 0.05%:
# selling dx ETH moves 1/sqrt(P) by dx (1 - fee) / L, buying dx back moves it by -dx / L (exact output: the fee is
# on the USDC paid), whitepaper eq. 6.15-6.16.
POOL_L = 300_000.0


def eth_pool(**extra: Any) -> dict[str, Any]:
    raw = ETH_PRICE / 1e12  # WETH (18) / USDC (6): raw token1 per token0

    def tick(price: float) -> int:
        return math.floor(math.log(price / 1e12) / math.log(1.0001) / 10) * 10

    return {"asset": "ETH", "quote": "USDC", "asset_is_token0": True, "decimals0": 18, "decimals1": 6, "fee": 500,
            "tick_spacing": 10, "sqrt_price_x96": int(math.sqrt(raw) * 2**96),
            "tick": math.floor(math.log(raw) / math.log(1.0001)), "liquidity": int(POOL_L * 1e12),
            "ticks": [{"tick": tick(1_000.0), "liquidity_net": int(POOL_L * 1e12)},
                      {"tick": tick(9_000.0), "liquidity_net": -int(POOL_L * 1e12)}],
            "source": "onchain", "address": "0x" + "cd" * 20, "block": 7, **extra}


ETH_PRICE = 3_000.0


def pool_addon(quantity: float) -> float:
    """Q x max(0, |P'/P - 1| - 1%), the ETH curve's impact_at_depth being 1%."""
    assert default_params().liquidity.depth["ETH"].impact_at_depth == 0.01
    q = abs(quantity) * ETH_PRICE
    inverse = 1 / math.sqrt(ETH_PRICE) + (quantity * (1 - 0.0005) if quantity > 0 else quantity) / POOL_L
    return q * max(0.0, abs(1 / inverse**2 / ETH_PRICE - 1) - 0.01)


def pool_report(positions: list[dict[str, Any]], **extra: Any) -> Any:
    return compute_margin_request(MarginRequest.model_validate(
        {"positions": positions, "market": market(pools=[eth_pool()], **extra)}))


@pytest.mark.parametrize("quantity", [500.0, -500.0, 5.0])
def test_a_read_pool_prices_the_addon_by_its_exact_move(quantity: float) -> None:
    r = pool_report([position("spot" if quantity > 0 else "perp", **(
        {"asset": "ETH"} if quantity > 0 else {"underlying": "ETH"}), quantity=quantity)])
    assert r.liquidity_addon_usd == pytest.approx(pool_addon(quantity), rel=1e-9)
    assert r.liquidity_depth_source["ETH"].startswith("uniswap-v3 onchain ")
    assert (pool_addon(500.0) > 0) and pool_addon(5.0) == 0.0  # 5 ETH moves it less than 1%
    without = report([position("spot", asset="ETH", quantity=500.0)])
    assert without.liquidity_depth_source == {"ETH": "depth curve"}


def test_the_pool_addon_in_the_fhs_model_too() -> None:
    from datetime import date

    from support.history import history

    doc = history(700, date(2026, 11, 25))
    r = compute_margin_request(MarginRequest.model_validate({
        "positions": [position("spot", asset="ETH", quantity=500.0)],
        "market": market(pools=[eth_pool()], history=doc), "params": {"model": "fhs"}}))
    assert r.model == "fhs"
    assert r.liquidity_addon_usd == pytest.approx(pool_addon(500.0), rel=1e-9)


def test_a_net_larger_than_all_the_pools_liquidity_is_charged_whole() -> None:
    """Selling 20,000 ETH empties the range (1/sqrt(P) would pass 1/sqrt(1000)): no price can absorb it."""
    assert POOL_L * (1 / math.sqrt(1_000.0) - 1 / math.sqrt(ETH_PRICE)) < 20_000.0
    r = pool_report([position("spot", asset="ETH", quantity=20_000.0)])
    assert r.liquidity_addon_usd == pytest.approx(20_000.0 * ETH_PRICE, rel=1e-12)


def test_a_net_beyond_the_pools_known_ticks_falls_back_to_the_curve() -> None:
    """Ticks read only within a narrow window: a large sale would price past it, so the curve prices it."""
    narrow = eth_pool(tick_range=[eth_pool()["tick"] - 200, eth_pool()["tick"] + 200])
    r = compute_margin_request(MarginRequest.model_validate(
        {"positions": [position("spot", asset="ETH", quantity=5_000.0)], "market": market(pools=[narrow])}))
    curve = default_params().liquidity.depth["ETH"]
    q = 5_000.0 * ETH_PRICE
    assert r.liquidity_addon_usd == pytest.approx(q * max(0.0, 0.01 * math.sqrt(q / curve.depth_usd) - 0.01),
                                                  rel=1e-12)


def test_the_text_report_names_a_read_pool_as_the_depth() -> None:
    from api.report_text import render_report

    text = render_report(pool_report([position("spot", asset="ETH", quantity=500.0)]))
    assert "    ETH depth: uniswap-v3 onchain 0xcdcd" in text
    assert "depth:" not in render_report(report([position("spot", asset="ETH", quantity=500.0)]))
