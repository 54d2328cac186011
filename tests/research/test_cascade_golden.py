"""Golden cascades on hand-sized populations: every round's figures restated here in scalar arithmetic, from the
venues' published rules (Aave v3 LiquidationLogic, Hyperliquid's maintenance margin) and Uniswap v3's swap maths
(whitepaper eq. 6.15: selling dx moves 1/sqrt(P) by dx / L)."""

from __future__ import annotations

import math

import pyarrow as pa
import pytest

from research.contagion.accounts import AssetIndex
from research.contagion.cascade import InProcessRunner, run_cascade
from research.contagion.outputs import summary
from research.contagion.params import load_cascade_params
from research.contagion.population import POPULATION_SCHEMA
from risk_core.schema.market import PoolTick, UniswapV3Pool

PRICES = {"ETH": 3_000.0, "USDC": 1.0}
ASSETS = AssetIndex(("ETH", "USDC"))
DEPTH_USD_2PCT = 10_000.0  # a thin single-range pool, so round 0's sales push the next account under


def population(rows: list[tuple[int, str, int, str, str, float, float | None]]) -> pa.Table:
    columns = list(zip(*rows, strict=True))
    return pa.table({name: list(values) for name, values in zip(POPULATION_SCHEMA.names, columns, strict=True)},
                    schema=POPULATION_SCHEMA)


TWO_VENUES = population([
    (0, "aave-v3", 0, "ETH", "supply", 10.0, None),
    (0, "aave-v3", 0, "USDC", "borrow", 20_000.0, None),
    (1, "aave-v3", 0, "ETH", "supply", 5.0, None),
    (1, "aave-v3", 0, "USDC", "borrow", 12_000.0, None),
    (2, "hyperliquid", 0, "ETH", "perp", 20.0, 3_000.0),
    (2, "hyperliquid", 0, "USDC", "cash", 5_000.0, None),
    (3, "hyperliquid", 0, "ETH", "perp", 10.0, 3_000.0),
    (3, "hyperliquid", 0, "USDC", "cash", 20_000.0, None),
])


def single_range_params(depth: float = DEPTH_USD_2PCT):
    return load_cascade_params({"depth": {"ETH": {"depth_usd_2pct": depth}}, "depth_profile": {"bands": [[0.0, 1.0]]}})


def uniswap_price_after_selling(price: float, sold: float, liquidity: float) -> float:
    return (1.0 / (1.0 / math.sqrt(price) + sold / liquidity)) ** 2


def test_two_venues_one_pool_round_by_round() -> None:
    params = single_range_params()
    result = run_cascade(InProcessRunner.from_table(TWO_VENUES, ASSETS), ASSETS, PRICES, {"ETH": -0.2}, params)

    lt, bonus = 0.83, 0.05
    p0 = 2_400.0
    # round 0 at 2,400. Wallet 0: HF = 10 x 2400 x 0.83 / 20000 = 0.996 (>= 0.95: half the debt is repaid)
    assert 10 * p0 * lt / 20_000 == pytest.approx(0.996)
    w0_seized_eth = 10_000 * (1 + bonus) / p0  # 4.375 ETH
    w0_eth, w0_debt = 10 - w0_seized_eth, 10_000.0  # HF after: 1.1205, healthy at this price
    # wallet 1: HF = 0.83 < 0.95, all its debt is due: 12,600 of collateral owed, only 12,000 there
    w1_repaid = 5 * p0 / (1 + bonus)
    w1_bad_debt = 12_000 - w1_repaid
    # wallet 2: account value 5000 + 20 x (2400 - 3000) = -7000 < MM 20 x 2400 / (2 x 25): closed, -7000 bad debt
    # wallet 3: 20000 - 6000 = 14000 > 480: safe
    sold_0 = w0_seized_eth + 5 + 20
    round0 = result.per_round[0]
    assert round0.prices["ETH"] == pytest.approx(p0)
    assert round0.liquidated_usd_by_venue["aave-v3"] == pytest.approx(10_500 + 12_000)
    assert round0.liquidated_usd_by_venue["hyperliquid"] == pytest.approx(20 * p0)
    assert round0.sold_by_asset["ETH"] == pytest.approx(sold_0)
    assert round0.sold_by_asset["USDC"] == pytest.approx(-(10_000 + w1_repaid))
    assert round0.bad_debt_usd_by_venue == pytest.approx(
        {"aave-v3": w1_bad_debt, "hyperliquid": 7_000.0, "derive": 0.0, "gmx-v2": 0.0, "uniswap-v3": 0.0})
    assert round0.accounts_liquidated == {"aave-v3": 2, "hyperliquid": 1, "derive": 0, "gmx-v2": 0, "uniswap-v3": 0}

    # the pool as it stood before the shock: L such that selling 10,000 USD of ETH at 3,000 moves it to 2,940
    liquidity = DEPTH_USD_2PCT / (math.sqrt(3_000.0) * (1 / math.sqrt(0.98) - 1))
    assert uniswap_price_after_selling(3_000.0, DEPTH_USD_2PCT / 3_000.0, liquidity) == pytest.approx(2_940.0)
    p1 = uniswap_price_after_selling(p0, sold_0, liquidity)
    # round 1: wallet 0 is under again (HF = 5.625 x p1 x 0.83 / 10000 < 1)
    health = w0_eth * p1 * lt / w0_debt
    assert health < 1
    close_factor = 1.0 if health < 0.95 else 0.5
    seized_usd = min(close_factor * w0_debt * (1 + bonus), w0_eth * p1)
    round1 = result.per_round[1]
    assert round1.prices["ETH"] == pytest.approx(p1, rel=1e-12)
    assert round1.accounts_liquidated["aave-v3"] == 1
    assert round1.liquidated_usd_by_venue["aave-v3"] == pytest.approx(seized_usd)
    assert round1.sold_by_asset["ETH"] == pytest.approx(seized_usd / p1)
    # contagion: round 1's Aave liquidation was caused by round 0's sales, shared by the USD each venue sold
    aave_sold_usd = (w0_seized_eth + 5) * p0
    hyperliquid_sold_usd = 20 * p0
    edges = {(e.source, e.target): e.value_usd for e in result.contagion if e.round == 1}
    share = aave_sold_usd / (aave_sold_usd + hyperliquid_sold_usd)
    assert edges[("aave-v3", "aave-v3")] == pytest.approx(seized_usd * share)
    assert edges[("hyperliquid", "aave-v3")] == pytest.approx(seized_usd * (1 - share))
    assert {(e.source, e.target) for e in result.contagion if e.round == 0} == {
        ("shock", "aave-v3"), ("shock", "hyperliquid")}
    # a fixed point, with the price the cumulative sales give
    assert result.reached_fixed_point
    last = result.per_round[-1]
    cumulative = sum(r.sold_by_asset["ETH"] for r in result.per_round)
    assert result.final_prices["ETH"] == pytest.approx(uniswap_price_after_selling(p0, cumulative, liquidity))
    assert last.round == result.rounds - 1
    # wallet 3 (value 20000 + 10 (P - 3000) against MM 10 P / 50) holds above P = 1020.4: never liquidated
    assert result.final_prices["ETH"] > 10_000 / 9.8
    assert sum(r.accounts_liquidated["hyperliquid"] for r in result.per_round) == 1


def test_without_price_impact_the_cascade_stops_after_one_round() -> None:
    result = run_cascade(InProcessRunner.from_table(TWO_VENUES, ASSETS), ASSETS, PRICES, {"ETH": -0.2},
                         single_range_params(), price_impact=False)
    assert result.rounds == 1
    assert result.reached_fixed_point
    assert result.final_prices["ETH"] == pytest.approx(2_400.0)


def test_no_shock_liquidates_nothing() -> None:
    result = run_cascade(InProcessRunner.from_table(TWO_VENUES, ASSETS), ASSETS, PRICES, {}, single_range_params())
    assert result.rounds == 0 and result.liquidated_usd == 0.0
    assert result.final_prices == PRICES


def test_a_shock_on_an_unpriced_asset_names_it() -> None:
    with pytest.raises(ValueError, match=r"shock\.BTC"):
        run_cascade(InProcessRunner.from_table(TWO_VENUES, ASSETS), ASSETS, PRICES, {"BTC": -0.1},
                    single_range_params())


# A cascade priced through a read Uniswap v3 pool (market.pools) instead of the depth curve: the round-0 sale crosses
# a tick; every figure restated from the whitepaper's range maths (eq. 6.15: selling dx, after the pool's fee, moves
# 1/sqrt(P) by dx (1 - fee) / L inside a range; at a range's edge L changes by the tick's liquidityNet and the rest
# moves inside the next range) and Aave v3's liquidation rule.

DECIMALS0, DECIMALS1 = 18, 6  # WETH / USDC: human price = raw price x 1e12, human L = raw L / 1e12
FEE = 500
L_WIDE, L_NARROW = 20_000.0, 15_000.0  # human units, sqrt(ETH x USDC)


def tick_of(price: float) -> int:
    """The tick at or below a human price, on the pool's spacing of 10."""
    return math.floor(math.log(price / 1e12) / math.log(1.0001) / 10) * 10


def human(tick: int) -> float:
    return 1.0001**tick * 1e12


WIDE = (tick_of(2_000.0), tick_of(4_000.0))
NARROW = (tick_of(2_350.0), tick_of(3_500.0))


def pool() -> UniswapV3Pool:
    raw = 3_000.0 / 1e12
    net = {WIDE[0]: L_WIDE, WIDE[1]: -L_WIDE, NARROW[0]: L_NARROW, NARROW[1]: -L_NARROW}
    return UniswapV3Pool(
        asset="ETH", quote="USDC", asset_is_token0=True, decimals0=DECIMALS0, decimals1=DECIMALS1, fee=FEE,
        tick_spacing=10, sqrt_price_x96=int(math.sqrt(raw) * 2**96),
        tick=math.floor(math.log(raw) / math.log(1.0001)), liquidity=int((L_WIDE + L_NARROW) * 1e12),
        ticks=[PoolTick(tick=t, liquidity_net=int(n * 1e12)) for t, n in sorted(net.items())],
        source="onchain", address="0x" + "ab" * 20, chain="ethereum", block=123,
    )


def test_the_sale_crosses_the_narrow_ranges_lower_tick() -> None:
    result = run_cascade(InProcessRunner.from_table(TWO_VENUES, ASSETS), ASSETS, PRICES, {"ETH": -0.2},
                         load_cascade_params(), pools=[pool()])
    assert result.depth_source["ETH"].startswith("uniswap-v3 onchain ethereum 0xabab")
    assert "@ block 123" in summary(result)["depth_source"]["ETH"]
    assert "USDC" not in result.depth_source  # no pool, no curve: its price does not move

    p0, lt, bonus, fee = 2_400.0, 0.83, 0.05, FEE / 1e6
    round0 = result.per_round[0]
    assert round0.prices["ETH"] == pytest.approx(p0)
    # round 0 as in test_cascade_golden: wallet 0 half closed, wallet 1 and wallet 2 closed
    w0_seized = 10_000 * (1 + bonus) / p0
    sold_0 = w0_seized + 5 + 20
    assert round0.sold_by_asset["ETH"] == pytest.approx(sold_0)

    # the shock moved the pool to 2,400 (inside both ranges, by arbitrage); the sale spends both ranges down to the
    # narrow range's lower tick, then moves inside the wide range alone
    edge = human(NARROW[0])
    capacity = (L_WIDE + L_NARROW) * (1 / math.sqrt(edge) - 1 / math.sqrt(p0))
    effective = sold_0 * (1 - fee)
    assert effective > capacity
    p1 = 1 / (1 / math.sqrt(edge) + (effective - capacity) / L_WIDE) ** 2
    round1 = result.per_round[1]
    assert round1.prices["ETH"] == pytest.approx(p1, rel=1e-9)
    # wallet 0 (5.625 ETH against 10,000 USDC) is under again, above 0.95: half its debt repaid
    w0_eth = 10 - w0_seized
    health = w0_eth * p1 * lt / 10_000
    assert 0.95 <= health < 1
    seized = 5_000 * (1 + bonus) / p1
    assert round1.accounts_liquidated["aave-v3"] == 1
    assert round1.sold_by_asset["ETH"] == pytest.approx(seized)
    # round 2 would be at the price after both sales, where wallet 0 is healthy again: the fixed point
    p2 = 1 / (1 / math.sqrt(edge) + (effective + seized * (1 - fee) - capacity) / L_WIDE) ** 2
    assert (w0_eth - seized) * p2 * lt / 5_000 >= 1
    assert result.rounds == 2 and result.reached_fixed_point
    assert result.final_prices["ETH"] == pytest.approx(p2, rel=1e-9)
    assert p2 > human(WIDE[0])  # still inside the wide range


def test_without_pools_the_same_market_uses_the_depth_curve() -> None:
    result = run_cascade(InProcessRunner.from_table(TWO_VENUES, ASSETS), ASSETS, PRICES, {"ETH": -0.2},
                         load_cascade_params())
    assert result.depth_source == {"ETH": "depth curve"}
