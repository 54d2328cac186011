"""Golden margins: each expected figure is worked out independently from docs/margin-model.md's default scenarios
(tests/support/golden.py re-states them in scalar Python), never read back from the engine."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
from support.golden import BTC, BTC_VOL, ETH, YEARS_30D, bs, market, option, position, worst_loss

from risk_core.margin.engine import compute_margin_request
from risk_core.schema.report import MarginReport
from risk_core.schema.request import MarginRequest

REL = 1e-9
SHORT_OPTION_MINIMUM = 0.005
PERP_CONTINGENCY = 0.005
IM_FACTOR = 1.25
Vol = Callable[[float, float], float]


def run(positions: list[dict[str, Any]], **request: Any) -> MarginReport:
    return compute_margin_request(MarginRequest.model_validate({"positions": positions, "market": market(), **request}))


def usdc(amount: float, **kw: Any) -> dict[str, Any]:
    return position("spot", asset="USDC", quantity=amount, **kw)


def option_pnl(legs: list[tuple[float, str, float]]) -> Callable[[float, Vol], float]:
    """P&L of BTC option legs (quantity, type, strike) on the flat 50% surface at 30 days."""

    def pnl(move: float, vol_of: Vol) -> float:
        total = 0.0
        for q, kind, strike in legs:
            k = math.log(strike / BTC)
            now = bs(BTC, strike, YEARS_30D, BTC_VOL, kind == "call")
            then = bs(BTC * (1 + move), strike, YEARS_30D, vol_of(BTC_VOL, k), kind == "call")
            total += q * (then - now)
        return total

    return pnl


def mark(legs: list[tuple[float, str, float]]) -> float:
    return sum(q * bs(BTC, k, YEARS_30D, BTC_VOL, t == "call") for q, t, k in legs)


def assert_figures(report: MarginReport, *, mm: float, equity: float, collateral: float) -> None:
    assert report.maintenance_margin_usd == pytest.approx(mm, rel=REL)
    assert report.initial_margin_usd == pytest.approx(mm * IM_FACTOR, rel=REL)
    assert report.equity_usd == pytest.approx(equity, rel=REL)
    assert report.collateral_usd == pytest.approx(collateral, rel=REL)
    assert report.free_collateral_usd == pytest.approx(collateral - mm * IM_FACTOR, rel=REL, abs=1e-6)


def test_naked_short_call() -> None:
    legs = [(-1.0, "call", 110_000.0)]
    report = run([option(-1, "call", 110_000), usdc(20_000)])
    risk = worst_loss(option_pnl(legs))
    mm = risk + SHORT_OPTION_MINIMUM * BTC
    assert_figures(report, mm=mm, equity=20_000 + mark(legs), collateral=20_000 + mark(legs))
    assert report.contingency_usd == pytest.approx(SHORT_OPTION_MINIMUM * BTC, rel=REL)
    # a short call's worst case is a rally: the +300% tail, counted at 0.1386/3 of its size, binds
    assert report.underlyings["BTC"].worst_scenario.spot_shock > 0


def test_short_strangle() -> None:
    legs = [(-1.0, "call", 110_000.0), (-1.0, "put", 90_000.0)]
    report = run([option(-1, "call", 110_000), option(-1, "put", 90_000), usdc(50_000)])
    mm = worst_loss(option_pnl(legs)) + 2 * SHORT_OPTION_MINIMUM * BTC
    assert_figures(report, mm=mm, equity=50_000 + mark(legs), collateral=50_000 + mark(legs))


def test_covered_call() -> None:
    legs = [(-1.0, "call", 110_000.0)]
    calls = option_pnl(legs)
    report = run([position("spot", asset="BTC", quantity=1.0), option(-1, "call", 110_000)])
    mm = worst_loss(lambda move, vol_of: BTC * move + calls(move, vol_of)) + SHORT_OPTION_MINIMUM * BTC
    assert_figures(report, mm=mm, equity=BTC + mark(legs), collateral=BTC * 0.98 + mark(legs))
    naked = run([option(-1, "call", 110_000)])
    assert report.maintenance_margin_usd < naked.maintenance_margin_usd + 0.16 * BTC


def test_long_call_never_risks_more_than_its_premium() -> None:
    legs = [(1.0, "call", 100_000.0)]
    report = run([option(1, "call", 100_000)])
    premium = mark(legs)
    assert_figures(report, mm=worst_loss(option_pnl(legs)), equity=premium, collateral=premium)
    assert 0 < report.maintenance_margin_usd <= premium


def test_put_spread() -> None:
    legs = [(1.0, "put", 95_000.0), (-1.0, "put", 85_000.0)]
    report = run([option(1, "put", 95_000), option(-1, "put", 85_000), usdc(10_000)])
    mm = worst_loss(option_pnl(legs)) + SHORT_OPTION_MINIMUM * BTC
    assert_figures(report, mm=mm, equity=10_000 + mark(legs), collateral=10_000 + mark(legs))
    assert report.risk_usd <= 10_000  # never more than the spread's width


def test_synthetic_forward_against_short_perp_in_one_account() -> None:
    perp = position("perp", underlying="BTC", quantity=-1)
    report = run([option(1, "call", 100_000), option(-1, "put", 100_000), perp])
    # C - P = F - K at every spot and vol, so the perp cancels it in every scenario: only contingencies remain
    assert report.risk_usd == pytest.approx(0.0, abs=1e-6)
    assert report.maintenance_margin_usd == pytest.approx((SHORT_OPTION_MINIMUM + PERP_CONTINGENCY) * BTC, rel=REL)


def test_synthetic_forward_against_short_perp_across_chains_earns_partial_credit() -> None:
    perp = position("perp", underlying="BTC", quantity=-1, venue="hyperliquid", chain="hyperliquid", account="0xa")
    report = run([option(1, "call", 100_000), option(-1, "put", 100_000), perp])
    synthetic = worst_loss(option_pnl([(1.0, "call", 100_000.0), (-1.0, "put", 100_000.0)]))
    short_perp = worst_loss(lambda move, vol_of: -BTC * move)
    cross_chain_credit = 0.25
    combined = 0.0 + (1 - cross_chain_credit) * (synthetic + short_perp - 0.0)
    assert report.risk_usd == pytest.approx(combined, rel=REL)
    assert report.maintenance_margin_usd == pytest.approx(combined + (SHORT_OPTION_MINIMUM + PERP_CONTINGENCY) * BTC)


def lp_value(liquidity: float, price: float, lower: float, upper: float) -> float:
    p = min(max(price, lower), upper)
    amount0 = liquidity * (1 / math.sqrt(p) - 1 / math.sqrt(upper))
    amount1 = liquidity * (math.sqrt(p) - math.sqrt(lower))
    return amount0 * price + amount1


@pytest.mark.parametrize("liquidity", [1_000.0, -1_000.0], ids=["long-range", "short-range"])
def test_lp_range(liquidity: float) -> None:
    lower, upper = 2_500.0, 3_600.0
    lp = position(
        "lp", venue="uniswap-v3", chain="arbitrum", account="0xa", token0="ETH", token1="USDC",
        liquidity=liquidity, price_lower=lower, price_upper=upper,
    )
    report = run([lp])
    now = lp_value(liquidity, ETH, lower, upper)
    risk = worst_loss(lambda move, vol_of: lp_value(liquidity, ETH * (1 + move), lower, upper) - now)
    eth_held = max(liquidity * (1 / math.sqrt(ETH) - 1 / math.sqrt(upper)), 0.0)
    assert_figures(report, mm=risk, equity=now, collateral=now - 0.02 * eth_held * ETH)
    gamma = report.positions[0].gamma
    assert gamma == pytest.approx(-liquidity / (2 * ETH**1.5), rel=1e-12)  # the range is short gamma when long


def test_aave_style_supply_and_borrow() -> None:
    aave = {"venue": "aave-v3", "chain": "ethereum", "account": "0xa"}
    supply = position("lend", asset="ETH", quantity=10, **aave)
    debt = position("borrow", asset="USDC", quantity=15_000, **aave)
    report = run([supply, debt])
    supplied = 10 * ETH
    mm = max(0.16 * supplied, supplied * 0.1386)  # the -16% grid move binds over the dampened -66% tail
    assert_figures(report, mm=mm, equity=supplied - 15_000, collateral=supplied * 0.98 - 15_000)
    assert report.status == "healthy"
    assert report.margin_ratio == pytest.approx(mm / (supplied * 0.98 - 15_000), rel=REL)
    # collateral meets MM (held) when 29,400 (1 + m) - 15,000 = 4,800
    assert report.underlyings["ETH"].liquidation_move.down == pytest.approx(19_800 / 29_400 - 1, abs=1e-7)
    assert report.underlyings["ETH"].liquidation_move.up is None


def test_liquidation_plan_closes_the_least_costly_fraction() -> None:
    legs = [(-1.0, "call", 110_000.0)]
    report = run([option(-1, "call", 110_000), usdc(5_000)])
    assert report.status == "liquidatable"
    mm = report.maintenance_margin_usd
    collateral = 5_000 + mark(legs)
    cost_per_unit = 0.001 * BTC  # deribit's close-out cost on the notional
    # surplus after closing f: collateral - cost f - 1.25 (1 - f) MM = 0
    fraction = (IM_FACTOR * mm - collateral) / (IM_FACTOR * mm - cost_per_unit)
    plan = report.liquidation_plan
    assert plan is not None and plan.restores_initial_margin
    assert [s.index for s in plan.steps] == [0]
    assert plan.steps[0].fraction == pytest.approx(fraction, abs=1e-4)
