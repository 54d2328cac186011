"""Uniswap v3's own integer maths for a range (the pool's fee-growth bookkeeping, the pool address; TickMath and
SqrtPriceMath live in risk_core.pricing.uniswap_v3), so the amounts and fees we compute equal to the wei what the
pool would pay out. Pure: no I/O.
"""

from __future__ import annotations

from eth_abi import encode
from eth_utils import keccak, to_checksum_address

from risk_core.pricing.uniswap_v3 import MAX_TICK, MIN_TICK, UINT256, amount0_delta, amount1_delta
from risk_core.pricing.uniswap_v3 import sqrt_ratio_at_tick as compute_sqrt_ratio_at_tick

__all__ = ["MAX_TICK", "MIN_TICK", "compute_sqrt_ratio_at_tick"]

Q128 = 2**128
# keccak of UniswapV3Pool's creation code, as v3-periphery's PoolAddress library has it.
POOL_INIT_CODE_HASH = bytes.fromhex("e34f199b19b2b4f47f68442619d555527d244f78a3297ea89325f843f87b8b54")


def compute_position_amounts(
    *, liquidity: int, tick_lower: int, tick_upper: int, current_tick: int, sqrt_price_x96: int
) -> tuple[int, int]:
    """(amount0, amount1) that removing all of `liquidity` pays out now (UniswapV3Pool._modifyPosition, which
    compares ticks, not prices, to tell where the range is)."""
    sqrt_lower = compute_sqrt_ratio_at_tick(tick_lower)
    sqrt_upper = compute_sqrt_ratio_at_tick(tick_upper)
    if current_tick < tick_lower:
        return amount0_delta(sqrt_lower, sqrt_upper, liquidity, False), 0
    if current_tick < tick_upper:
        return (
            amount0_delta(sqrt_price_x96, sqrt_upper, liquidity, False),
            amount1_delta(sqrt_lower, sqrt_price_x96, liquidity, False),
        )
    return 0, amount1_delta(sqrt_lower, sqrt_upper, liquidity, False)


def compute_fee_growth_inside(
    *,
    current_tick: int,
    tick_lower: int,
    tick_upper: int,
    fee_growth_global: int,
    outside_lower: int,
    outside_upper: int,
) -> int:
    """Tick.getFeeGrowthInside for one token; the pool relies on wrap-around arithmetic, so do we."""
    below = outside_lower if current_tick >= tick_lower else (fee_growth_global - outside_lower) % UINT256
    above = outside_upper if current_tick < tick_upper else (fee_growth_global - outside_upper) % UINT256
    return (fee_growth_global - below - above) % UINT256


def compute_uncollected_fees(
    *, tokens_owed: int, fee_growth_inside: int, fee_growth_inside_last: int, liquidity: int
) -> int:
    """What NonfungiblePositionManager.collect would pay: owed so far plus the growth since the last update."""
    return tokens_owed + ((fee_growth_inside - fee_growth_inside_last) % UINT256) * liquidity // Q128


def compute_pool_address(*, factory: str, token0: str, token1: str, fee: int) -> str:
    """The pool's CREATE2 address (PoolAddress.computeAddress)."""
    salt = keccak(encode(["address", "address", "uint24"], [token0, token1, fee]))
    digest = keccak(b"\xff" + bytes.fromhex(factory.removeprefix("0x")) + salt + POOL_INIT_CODE_HASH)
    return to_checksum_address(digest[12:])
