"""Uniswap v3's swap across ticks (risk_core/pricing/uniswap_v3.py) against the whitepaper's range maths, computed
here independently in 60-digit decimals.

Whitepaper section 6.2.3 (eqs. 6.13-6.16): inside a range of constant liquidity L, swapping in dx of token0 (after
the fee, dx (1 - fee)) moves 1/sqrt(P) up by dx / L and pays out dy = L (sqrt(P) - sqrt(P')); token1 in moves
sqrt(P) up by dy / L. At an initialised tick the active L changes by the tick's liquidityNet (added when crossed
upwards, subtracted downwards), and the rest of the swap continues in the next range. P = 1.0001^tick.
The contract's rounding (to the wei, in the pool's favour) is checked against the real pool on the devnet
(tests/devnet/test_uniswap_swap_devnet.py); here the golden figures are the real-number ones, to 1e-12.
"""

from __future__ import annotations

from decimal import Decimal, getcontext

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from risk_core.pricing.pool_impact import ImpactOutOfRange, route, virtual_pool
from risk_core.pricing.uniswap_v3 import (
    MAX_TICK,
    MIN_TICK,
    Q96,
    TickProfile,
    amount_to_price,
    sqrt_ratio_at_tick,
    swap,
    tick_at_sqrt_ratio,
)

getcontext().prec = 60
RTOL = Decimal("1e-12")
E18 = 10**18


def sqrt_p(tick: int) -> Decimal:
    return Decimal("1.0001") ** (Decimal(tick) / 2)


# Three ranges: A = 1e18 on [-600, 600], B = 2e18 on [-1200, -600], C = 5e17 on [300, 1800]; price at tick 0.
RANGES = ((-600, 600, 10**18), (-1200, -600, 2 * 10**18), (300, 1800, 5 * 10**17))


def profile(fee: int = 3000) -> TickProfile:
    net: dict[int, int] = {}
    for lower, upper, liquidity in RANGES:
        net[lower] = net.get(lower, 0) + liquidity
        net[upper] = net.get(upper, 0) - liquidity
    return TickProfile.from_ticks(sqrt_price_x96=Q96, liquidity=10**18, fee=fee, tick_spacing=60, liquidity_net=net)


def close(ours: int | float, theirs: Decimal) -> bool:
    return abs(Decimal(ours) - theirs) <= RTOL * abs(theirs)


def test_selling_token0_across_a_tick_spends_the_first_range_then_moves_inside_the_next() -> None:
    """0 -> -600 in range A (L = 1e18), then on in range B (L = 2e18; A's 1e18 left as B's 2e18 came in)."""
    fee = Decimal(3000) / Decimal(10**6)
    capacity_a = Decimal(10**18) * (1 / sqrt_p(-600) - 1 / sqrt_p(0))  # token0 that takes A down to -600
    amount_in = 4 * 10**16
    effective = Decimal(amount_in) * (1 - fee)
    assert effective > capacity_a  # it crosses
    inverse_end = 1 / sqrt_p(-600) + (effective - capacity_a) / Decimal(2 * 10**18)
    out = Decimal(10**18) * (sqrt_p(0) - sqrt_p(-600)) + Decimal(2 * 10**18) * (sqrt_p(-600) - 1 / inverse_end)

    result = swap(profile(), zero_for_one=True, amount_specified=amount_in)
    assert result.amount0 == amount_in and result.complete
    assert close(-result.amount1, out)
    assert close(result.after.sqrt_price_x96, Q96 / inverse_end)
    assert result.after.liquidity == 2 * 10**18 and result.ticks_crossed == 1
    assert -1200 <= result.after.tick < -600
    assert close(result.fee_paid, Decimal(amount_in) * fee)


def test_buying_token0_exactly_crosses_two_ticks_upwards() -> None:
    """An exact output of token0 upwards: 0 -> 300 in A (1e18), 300 -> 600 in A + C (1.5e18), then C alone."""
    want = 4 * 10**16
    in_a = Decimal(10**18) * (1 / sqrt_p(0) - 1 / sqrt_p(300))
    in_ac = Decimal(15 * 10**17) * (1 / sqrt_p(300) - 1 / sqrt_p(600))
    assert in_a + in_ac < want
    inverse_end = 1 / sqrt_p(600) - (Decimal(want) - in_a - in_ac) / Decimal(5 * 10**17)
    paid_net = (Decimal(10**18) * (sqrt_p(300) - sqrt_p(0)) + Decimal(15 * 10**17) * (sqrt_p(600) - sqrt_p(300))
                + Decimal(5 * 10**17) * (1 / inverse_end - sqrt_p(600)))
    fee = Decimal(500) / Decimal(10**6)

    result = swap(profile(fee=500), zero_for_one=False, amount_specified=-want)
    assert result.amount0 == -want and result.ticks_crossed == 2 and result.after.liquidity == 5 * 10**17
    assert close(result.amount1, paid_net / (1 - fee))  # the fee is on the input: in = net / (1 - fee)


def test_the_inverse_moves_the_price_exactly_to_the_target() -> None:
    target = sqrt_ratio_at_tick(-900)
    moved = amount_to_price(profile(), target)
    # stopped by the limit, not at the next initialised tick: the tick is the one of the price, -900
    assert moved.after.sqrt_price_x96 == target and moved.after.tick == -900
    fee = Decimal(3000) / Decimal(10**6)
    net_in = Decimal(10**18) * (1 / sqrt_p(-600) - 1) + Decimal(2 * 10**18) * (1 / sqrt_p(-900) - 1 / sqrt_p(-600))
    assert close(moved.amount0, net_in / (1 - fee))
    # swapping that input lands on the target up to the pool's rounding (the fee of the last step is then the
    # remainder of the input, not the rounded-up share of the limit step)
    again = swap(profile(), zero_for_one=True, amount_specified=moved.amount0)
    assert abs(again.amount1 - moved.amount1) <= 1 and abs(again.after.sqrt_price_x96 - target) <= target // 10**15


def test_a_swap_through_empty_words_jumps_the_gap() -> None:
    """Below -1200 there is no liquidity until the far range: the price crosses the empty words at no cost."""
    net = {-1200: 10**18, -600: -(10**18), -60000: 10**18, -59940: -(10**18)}
    pool = TickProfile.from_ticks(sqrt_price_x96=sqrt_ratio_at_tick(-900), liquidity=10**18, fee=0, tick_spacing=60,
                                  liquidity_net=net)
    capacity_near = Decimal(10**18) * (1 / sqrt_p(-1200) - 1 / sqrt_p(-900))
    extra = Decimal(10**12)
    result = swap(pool, zero_for_one=True, amount_specified=int(capacity_near + extra))
    inverse_end = 1 / sqrt_p(-59940) + (Decimal(int(capacity_near + extra)) - capacity_near) / Decimal(10**18)
    assert close(result.after.sqrt_price_x96, Q96 / inverse_end) and result.ticks_crossed == 2


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=MIN_TICK, max_value=MAX_TICK - 1))
def test_tick_of_a_price_is_the_greatest_tick_at_or_below_it(tick: int) -> None:
    assert tick_at_sqrt_ratio(sqrt_ratio_at_tick(tick)) == tick
    if tick > MIN_TICK:
        assert tick_at_sqrt_ratio(sqrt_ratio_at_tick(tick) - 1) == tick - 1


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=10**6, max_value=10**19), st.integers(min_value=2, max_value=50))
def test_a_deeper_pool_never_moves_the_price_further(amount: int, factor: int) -> None:
    shallow = swap(profile(), zero_for_one=True, amount_specified=amount)
    deep = swap(profile().scaled(factor), zero_for_one=True, amount_specified=amount)
    assert deep.after.sqrt_price_x96 >= shallow.after.sqrt_price_x96
    assert -deep.amount1 >= -shallow.amount1


def test_a_virtual_pool_from_bands_moves_like_the_bands() -> None:
    """Bands (lower edge, L) highest first, edges on ticks: selling to the first edge lands on it exactly."""
    top, middle = 1.0001**46054, 1.0001**39120  # ~100 and ~50
    pool = virtual_pool([(1.0001**45000, 1_000.0), (middle, 400.0), (0.0, 100.0)], top)
    to_edge = 1_000.0 * (1 / 1.0001 ** (45000 / 2) - 1 / 1.0001 ** (46054 / 2))
    to_middle = 400.0 * (1 / 1.0001 ** (39120 / 2) - 1 / 1.0001 ** (45000 / 2))
    assert route((pool,), to_edge)[1] == pytest.approx(1.0001**45000, rel=1e-10)
    extra = 3.0
    expected = 1 / (1 / middle**0.5 + extra / 100.0) ** 2
    # 1e-10: float 1.0001 is not exact, so 1.0001**46054 carries ~5e-13 here (the swap's own ticks are exact)
    assert route((pool,), to_edge + to_middle + extra)[1] == pytest.approx(expected, rel=1e-10)
    with pytest.raises(ImpactOutOfRange):  # more than all the liquidity above the price
        route((pool,), -1_000.0 / top**0.5 * 1.01)


def test_two_pools_end_at_one_price_and_share_the_flow() -> None:
    """Two pools of one asset: the flow splits so both end at the same price, each on its own curve."""
    one = virtual_pool([(0.0, 1_000.0)], 100.0)
    two = virtual_pool([(0.0, 3_000.0)], 100.0)
    units = 5.0
    _, price, after = route((one, two), units)
    # one band each: together one curve of L = 4000 (the pools' sums of 1/sqrt(P) moves are the flow)
    expected = 1 / (1 / 100.0**0.5 + units / 4_000.0) ** 2
    assert price == pytest.approx(expected, rel=1e-12)
    assert after[0].price() == pytest.approx(after[1].price(), rel=1e-12)


def test_two_pools_share_a_buy_too() -> None:
    """Buying back 5 units: 1/sqrt(P) falls by 5 / (L1 + L2), each pool's exact output its share."""
    one = virtual_pool([(0.0, 1_000.0)], 100.0)
    two = virtual_pool([(0.0, 3_000.0)], 100.0)
    paid, price, after = route((one, two), -5.0)
    assert price == pytest.approx(1 / (1 / 100.0**0.5 - 5.0 / 4_000.0) ** 2, rel=1e-12)
    assert after[0].price() == pytest.approx(after[1].price(), rel=1e-12)
    # what was paid: L (sqrt(P') - sqrt(P)) summed over both pools (no fee on a virtual pool)
    assert -paid == pytest.approx(4_000.0 * (price**0.5 - 10.0), rel=1e-12)
