"""Uniswap v3's own integer maths (TickMath, SqrtPriceMath, the pool's fee-growth bookkeeping), so the amounts
and fees we compute equal to the wei what the pool would pay out. Pure: no I/O.
"""

from __future__ import annotations

from eth_abi import encode
from eth_utils import keccak, to_checksum_address

Q96 = 2**96
Q128 = 2**128
UINT256 = 2**256
MIN_TICK = -887272
MAX_TICK = 887272
# keccak of UniswapV3Pool's creation code, as v3-periphery's PoolAddress library has it.
POOL_INIT_CODE_HASH = bytes.fromhex("e34f199b19b2b4f47f68442619d555527d244f78a3297ea89325f843f87b8b54")

# TickMath.getSqrtRatioAtTick: 1/sqrt(1.0001)^(2^i) in Q128, for each bit i of |tick|.
_TICK_FACTORS = (
    0xFFF97272373D413259A46990580E213A,
    0xFFF2E50F5F656932EF12357CF3C7FDCC,
    0xFFE5CACA7E10E4E61C3624EAA0941CD0,
    0xFFCB9843D60F6159C9DB58835C926644,
    0xFF973B41FA98C081472E6896DFB254C0,
    0xFF2EA16466C96A3843EC78B326B52861,
    0xFE5DEE046A99A2A811C461F1969C3053,
    0xFCBE86C7900A88AEDCFFC83B479AA3A4,
    0xF987A7253AC413176F2B074CF7815E54,
    0xF3392B0822B70005940C7A398E4B70F3,
    0xE7159475A2C29B7443B29C7FA6E889D9,
    0xD097F3BDFD2022B8845AD8F792AA5825,
    0xA9F746462D870FDF8A65DC1F90E061E5,
    0x70D869A156D2A1B890BB3DF62BAF32F7,
    0x31BE135F97D08FD981231505542FCFA6,
    0x9AA508B5B7A84E1C677DE54F3E99BC9,
    0x5D6AF8DEDB81196699C329225EE604,
    0x2216E584F5FA1EA926041BEDFE98,
    0x48A170391F7DC42444E8FA2,
)


def compute_sqrt_ratio_at_tick(tick: int) -> int:
    """sqrt(1.0001^tick) in Q64.96, rounded up as TickMath does.

    Raises:
        ValueError: tick outside [MIN_TICK, MAX_TICK].
    """
    if not MIN_TICK <= tick <= MAX_TICK:
        raise ValueError(f"tick {tick} out of range")
    magnitude = abs(tick)
    ratio = 0xFFFCB933BD6FAD37AA2D162D1A594001 if magnitude & 1 else 2**128
    for bit, factor in enumerate(_TICK_FACTORS, start=1):
        if magnitude & (1 << bit):
            ratio = (ratio * factor) >> 128
    if tick > 0:
        ratio = (UINT256 - 1) // ratio
    return (ratio >> 32) + (1 if ratio % (1 << 32) else 0)


def compute_amount0_delta(sqrt_a: int, sqrt_b: int, liquidity: int) -> int:
    """Token0 between two prices, rounded down (what burning liquidity pays out)."""
    sqrt_a, sqrt_b = sorted((sqrt_a, sqrt_b))
    return ((liquidity << 96) * (sqrt_b - sqrt_a) // sqrt_b) // sqrt_a


def compute_amount1_delta(sqrt_a: int, sqrt_b: int, liquidity: int) -> int:
    sqrt_a, sqrt_b = sorted((sqrt_a, sqrt_b))
    return liquidity * (sqrt_b - sqrt_a) // Q96


def compute_position_amounts(
    *, liquidity: int, tick_lower: int, tick_upper: int, current_tick: int, sqrt_price_x96: int
) -> tuple[int, int]:
    """(amount0, amount1) that removing all of `liquidity` pays out now (UniswapV3Pool._modifyPosition, which
    compares ticks, not prices, to tell where the range is)."""
    sqrt_lower = compute_sqrt_ratio_at_tick(tick_lower)
    sqrt_upper = compute_sqrt_ratio_at_tick(tick_upper)
    if current_tick < tick_lower:
        return compute_amount0_delta(sqrt_lower, sqrt_upper, liquidity), 0
    if current_tick < tick_upper:
        return (
            compute_amount0_delta(sqrt_price_x96, sqrt_upper, liquidity),
            compute_amount1_delta(sqrt_lower, sqrt_price_x96, liquidity),
        )
    return 0, compute_amount1_delta(sqrt_lower, sqrt_upper, liquidity)


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
