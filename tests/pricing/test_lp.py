"""Uniswap v3 range maths (risk_core/pricing/lp.py) against the whitepaper, computed independently.

Whitepaper section 6.2.1 (eqs. 6.29-6.30), liquidity L on [Pa, Pb], price P = token1 per token0:
    P <= Pa:       x = L (1/sqrt(Pa) - 1/sqrt(Pb)),  y = 0
    Pa < P < Pb:   x = L (1/sqrt(P) - 1/sqrt(Pb)),   y = L (sqrt(P) - sqrt(Pa))
    P >= Pb:       x = 0,                            y = L (sqrt(Pb) - sqrt(Pa))
On chain the prices are ticks, P = 1.0001^tick, kept as sqrtPriceX96 = sqrt(P) 2^96 in raw token units; here those
are computed in exact integer arithmetic and the on-chain amounts are rebuilt from them.
"""

from __future__ import annotations

import math
from decimal import Decimal, localcontext

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from risk_core.pricing.lp import lp_amounts, lp_gamma_in_token1, lp_value_in_token1

FORMULA_RTOL = 1e-13
TICK_MATH_RTOL = 1e-12
SQRT_PRICE_RTOL = 1e-13
CONTINUITY_RTOL = 1e-9
FD_RTOL = 1e-6
HOLD_RTOL = 1e-12
Q96 = 2**96


# --- independent references -----------------------------------------------------------------------------------


def whitepaper_amounts(liquidity: float, price: float, lower: float, upper: float) -> tuple[float, float]:
    if price <= lower:
        return liquidity * (1.0 / math.sqrt(lower) - 1.0 / math.sqrt(upper)), 0.0
    if price >= upper:
        return 0.0, liquidity * (math.sqrt(upper) - math.sqrt(lower))
    amount0 = liquidity * (1.0 / math.sqrt(price) - 1.0 / math.sqrt(upper))
    return amount0, liquidity * (math.sqrt(price) - math.sqrt(lower))


def sqrt_price_x96(tick: int) -> int:
    """floor(sqrt(1.0001^tick) * 2^96), in 120-digit decimal arithmetic (exact for any tick used here)."""
    with localcontext() as ctx:
        ctx.prec = 120
        return int(((Decimal(10001) / Decimal(10000)) ** tick).sqrt() * Q96)


def onchain_amounts(liquidity: int, sqrt_p: int, sqrt_a: int, sqrt_b: int) -> tuple[int, int]:
    """Raw token amounts of a position in Q64.96 integer arithmetic (floored), eqs. 6.29-6.30."""
    sqrt_p = min(max(sqrt_p, sqrt_a), sqrt_b)
    amount0 = liquidity * Q96 * (sqrt_b - sqrt_p) // (sqrt_p * sqrt_b)
    amount1 = liquidity * (sqrt_p - sqrt_a) // Q96
    return amount0, amount1


# --- amounts ----------------------------------------------------------------------------------------------------


def test_amounts_match_the_whitepaper() -> None:
    rng = np.random.default_rng(3)
    lower = 10.0 ** rng.uniform(-4, 4, 500)
    upper = lower * rng.uniform(1.0001, 5.0, 500)
    price = np.exp(rng.uniform(np.log(lower) - 1.0, np.log(upper) + 1.0))
    liquidity = 10.0 ** rng.uniform(0, 9, 500)
    amount0, amount1 = lp_amounts(liquidity, price, lower, upper)
    expected = np.array([whitepaper_amounts(*a) for a in zip(liquidity, price, lower, upper, strict=True)])
    np.testing.assert_allclose(amount0, expected[:, 0], rtol=FORMULA_RTOL, atol=0)
    np.testing.assert_allclose(amount1, expected[:, 1], rtol=FORMULA_RTOL, atol=0)
    assert (price < lower).any() and (price > upper).any() and ((price > lower) & (price < upper)).any()


@pytest.mark.parametrize("tick", [0, 1, -1, 100, -100, 23_027, -23_028, 69_081, -200_000, 201_017])
def test_sqrt_price_x96_of_a_tick(tick: int) -> None:
    """Exact integer vs float: exp(tick ln(1.0001) / 2) 2^96. (Not 1.0001**tick in floats: 1.0001 is not a binary
    fraction, and its representation error, raised to the tick, reaches 2e-12 at tick 200000.)"""
    exact = sqrt_price_x96(tick)
    assert float(exact) == pytest.approx(math.exp(0.5 * tick * math.log1p(1e-4)) * Q96, rel=SQRT_PRICE_RTOL)
    with localcontext() as ctx:
        ctx.prec = 120
        scaled = (Decimal(10001) / Decimal(10000)) ** tick * Q96 * Q96
        assert Decimal(exact) ** 2 <= scaled < Decimal(exact + 1) ** 2
    if tick == 0:
        assert exact == Q96


# (decimals0, decimals1, tick_lower, tick_upper, liquidity): a USDC/WETH range near 1850 USDC per ETH, a WBTC/WETH
# range (ETH/BTC ~ 0.06), and an 18/18-decimals range around a price of 1.
POOLS = [
    (6, 18, 199_980, 202_020, 2_000_000_000_000_000),
    (8, 18, 256_320, 263_160, 3_500_000_000_000_000),
    (18, 18, -1_200, 900, 10**24),
]


@pytest.mark.parametrize("pool", POOLS, ids=["usdc-weth", "wbtc-weth", "stable"])
@pytest.mark.parametrize("where", [-0.3, 0.0, 0.2, 0.5, 0.77, 1.0, 1.4])
def test_amounts_match_integer_tick_math(pool: tuple[int, int, int, int, int], where: float) -> None:
    """The float formulas in human units equal the on-chain integer amounts (raw units, Q64.96 prices).

    Human units: P = P_raw 10^(decimals0 - decimals1), L = L_raw / 10^((decimals0 + decimals1) / 2),
    amount_i = raw_i / 10^decimals_i. `where` places the price along the range in ticks (<0 below, >1 above)."""
    d0, d1, tick_lower, tick_upper, liquidity_raw = pool
    tick = tick_lower + round(where * (tick_upper - tick_lower))
    sqrt_a, sqrt_b = sqrt_price_x96(tick_lower), sqrt_price_x96(tick_upper)
    sqrt_p = sqrt_price_x96(tick) + (12_345 if 0.0 < where < 1.0 else 0)  # inside: between ticks, as after a swap
    raw0, raw1 = onchain_amounts(liquidity_raw, sqrt_p, sqrt_a, sqrt_b)

    def human_price(sqrt_x96: int) -> float:
        return (sqrt_x96 / Q96) ** 2 * 10.0 ** (d0 - d1)

    liquidity = liquidity_raw / 10.0 ** ((d0 + d1) / 2)
    amount0, amount1 = lp_amounts(liquidity, human_price(sqrt_p), human_price(sqrt_a), human_price(sqrt_b))
    # the integer amounts are floored: one raw unit is far below the float tolerance for these liquidities
    assert float(amount0) == pytest.approx(raw0 / 10.0**d0, rel=TICK_MATH_RTOL, abs=2.0 / 10.0**d0)
    assert float(amount1) == pytest.approx(raw1 / 10.0**d1, rel=TICK_MATH_RTOL, abs=2.0 / 10.0**d1)
    if where <= 0.0:
        assert raw1 == 0 and float(amount1) == 0.0
    if where >= 1.0:
        assert raw0 == 0 and float(amount0) == 0.0
    if 0.0 < where < 1.0:
        assert raw0 > 10**d0 and raw1 > 10**d1 // 1000  # both tokens, in meaningful size


# --- value ------------------------------------------------------------------------------------------------------

L, PA, PB = 1_000.0, 1_500.0, 2_500.0


def test_value_below_range_is_all_token0_and_above_all_token1() -> None:
    below = np.array([1.0, 700.0, 1_499.999])
    a0, a1 = lp_amounts(L, below, PA, PB)
    np.testing.assert_array_equal(a1, 0.0)
    np.testing.assert_allclose(a0, L * (1 / math.sqrt(PA) - 1 / math.sqrt(PB)), rtol=FORMULA_RTOL)
    np.testing.assert_allclose(lp_value_in_token1(L, below, PA, PB), a0 * below, rtol=FORMULA_RTOL)

    above = np.array([2_500.001, 4_000.0, 1e7])
    a0, a1 = lp_amounts(L, above, PA, PB)
    np.testing.assert_array_equal(a0, 0.0)
    np.testing.assert_allclose(a1, L * (math.sqrt(PB) - math.sqrt(PA)), rtol=FORMULA_RTOL)
    np.testing.assert_allclose(lp_value_in_token1(L, above, PA, PB), a1, rtol=FORMULA_RTOL)


@pytest.mark.parametrize("bound", [PA, PB])
def test_value_is_continuous_at_the_range_bounds(bound: float) -> None:
    eps = 1e-10
    at, left, right = (float(lp_value_in_token1(L, bound * m, PA, PB)) for m in (1.0, 1.0 - eps, 1.0 + eps))
    assert left == pytest.approx(at, rel=CONTINUITY_RTOL)
    assert right == pytest.approx(at, rel=CONTINUITY_RTOL)
    # and exactly at the bound the in-range formula meets the outside one
    x, y = lp_amounts(L, bound, PA, PB)
    if bound == PA:
        assert float(y) == 0.0
        assert float(x) == pytest.approx(L * (1 / math.sqrt(PA) - 1 / math.sqrt(PB)), rel=FORMULA_RTOL)
    else:
        assert float(x) == 0.0
        assert float(y) == pytest.approx(L * (math.sqrt(PB) - math.sqrt(PA)), rel=FORMULA_RTOL)


def test_delta_and_gamma_equal_finite_differences_of_value() -> None:
    """dV/dP = amount0 (the range's token0 holding) and d2V/dP2 = lp_gamma: -L / (2 P^1.5) inside, 0 outside."""
    price = np.concatenate([np.linspace(500.0, 1_490.0, 7), np.linspace(1_510.0, 2_490.0, 25),
                            np.linspace(2_510.0, 6_000.0, 7)])
    h = 1e-3 * price
    v = lp_value_in_token1(L, price, PA, PB)
    up, down = lp_value_in_token1(L, price + h, PA, PB), lp_value_in_token1(L, price - h, PA, PB)
    fd_delta = (up - down) / (2.0 * h)
    fd_gamma = (up - 2.0 * v + down) / (h * h)
    amount0, _ = lp_amounts(L, price, PA, PB)
    gamma = lp_gamma_in_token1(L, price, PA, PB)
    scale = L / (2.0 * PA**1.5)  # the largest |gamma| in range
    np.testing.assert_allclose(fd_delta, amount0, rtol=FD_RTOL, atol=FD_RTOL * float(np.max(amount0)))
    np.testing.assert_allclose(fd_gamma, gamma, rtol=FD_RTOL * 100, atol=FD_RTOL * scale)
    inside = (price > PA) & (price < PB)
    np.testing.assert_array_equal(gamma[~inside], 0.0)
    np.testing.assert_allclose(gamma[inside], -L / (2.0 * price[inside] ** 1.5), rtol=FORMULA_RTOL)
    assert np.all(gamma[inside] < 0)  # short gamma


# --- properties -------------------------------------------------------------------------------------------------

prices = st.floats(1e-4, 1e6)


@settings(max_examples=500, deadline=None)
@given(
    liquidity=st.floats(1e-3, 1e9),
    lower=prices,
    width=st.floats(1e-4, 5.0),
    entry=st.floats(-1.0, 1.0),
    move=st.floats(-3.0, 3.0),
)
def test_range_never_beats_holding_its_initial_tokens(
    liquidity: float, lower: float, width: float, entry: float, move: float
) -> None:
    """Impermanent loss is never positive: V(P) <= x0 P + y0 with (x0, y0) held at the entry price P0.

    (V is concave in P and dV/dP = x(P), so the holding line is V's tangent at P0.)"""
    upper = lower * math.exp(width)
    p0 = lower * math.exp(entry * width * 1.5 + 0.25 * width)  # entries below, inside and above the range
    p = p0 * math.exp(move)
    x0, y0 = lp_amounts(liquidity, p0, lower, upper)
    held = float(x0) * p + float(y0)
    value = float(lp_value_in_token1(liquidity, p, lower, upper))
    # float round-off: the amounts are differences of terms up to L / sqrt(Pa) and L sqrt(Pb)
    scale = liquidity * (p / math.sqrt(lower) + math.sqrt(upper))
    assert value <= held + HOLD_RTOL * scale
    assert value >= 0.0


@settings(max_examples=300, deadline=None)
@given(liquidity=st.floats(1e-3, 1e9), lower=prices, width=st.floats(1e-4, 5.0), a=st.floats(-2, 2), b=st.floats(-2, 2))
def test_amounts_move_the_right_way(liquidity: float, lower: float, width: float, a: float, b: float) -> None:
    """As the price rises the range sells token0 for token1: amount0 falls, amount1 rises, value rises."""
    upper = lower * math.exp(width)
    p1, p2 = sorted((lower * math.exp(a * width), lower * math.exp(b * width)))
    (x1, y1), (x2, y2) = (lp_amounts(liquidity, p, lower, upper) for p in (p1, p2))
    assert x2 <= x1 and y2 >= y1
    assert x2 >= 0.0 and y1 >= 0.0
    v1, v2 = (float(lp_value_in_token1(liquidity, p, lower, upper)) for p in (p1, p2))
    assert v2 >= v1 - HOLD_RTOL * liquidity * (p2 / math.sqrt(lower) + math.sqrt(upper))
