"""Uniswap v3's swap in integers, as the pool computes it: TickMath, SqrtPriceMath, SwapMath, TickBitmap's search
bounded to one bitmap word, and UniswapV3Pool.swap's loop crossing initialised ticks (v3-core 1.0.0). Pure.

A pool's depth is a `TickProfile`: slot0's sqrtPriceX96 and tick, the active liquidity, the fee tier, the tick
spacing and every initialised tick's liquidityNet. `swap` returns what the pool returns for the same swap, to the
wei: the amounts, the price and tick after, the active liquidity after. Its inverse, the amount that moves the
price to a target, is the same swap with that target as its price limit (`amount_to_price`).

The range maths of one band (whitepaper 6.14-6.16; risk_core.pricing.lp in floats) are here in the pool's integer
rounding: amount0 = L (1/sqrt(Pa) - 1/sqrt(Pb)), amount1 = L (sqrt(Pb) - sqrt(Pa)).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

Q96 = 2**96
UINT256 = 2**256
UINT160_MAX = 2**160 - 1
MIN_TICK = -887272
MAX_TICK = 887272
MIN_SQRT_RATIO = 4295128739
MAX_SQRT_RATIO = 1461446703485210103287273052203988822378723970342
FEE_DENOMINATOR = 1_000_000  # fees are in pips (hundredths of a basis point)
# UniswapV3Factory's fee tiers and their tick spacings.
TICK_SPACING = {100: 1, 500: 10, 3000: 60, 10000: 200}

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


class SwapError(ValueError):
    """A swap the pool would revert (zero amount, a price limit on the wrong side), or inputs out of range."""


def sqrt_ratio_at_tick(tick: int) -> int:
    """TickMath.getSqrtRatioAtTick: sqrt(1.0001^tick) in Q64.96, rounded up."""
    if not MIN_TICK <= tick <= MAX_TICK:
        raise SwapError(f"tick {tick} out of range")
    magnitude = abs(tick)
    ratio = 0xFFFCB933BD6FAD37AA2D162D1A594001 if magnitude & 1 else 2**128
    for bit, factor in enumerate(_TICK_FACTORS, start=1):
        if magnitude & (1 << bit):
            ratio = (ratio * factor) >> 128
    if tick > 0:
        ratio = (UINT256 - 1) // ratio
    return (ratio >> 32) + (1 if ratio % (1 << 32) else 0)


def tick_at_sqrt_ratio(sqrt_price_x96: int) -> int:
    """TickMath.getTickAtSqrtRatio: the greatest tick whose sqrt ratio is <= sqrt_price_x96 (the same fixed-point
    log2, so the same tick at the boundaries)."""
    if not MIN_SQRT_RATIO <= sqrt_price_x96 < MAX_SQRT_RATIO:
        raise SwapError(f"sqrtPriceX96 {sqrt_price_x96} out of range")
    ratio = sqrt_price_x96 << 32
    msb = ratio.bit_length() - 1
    r = ratio >> (msb - 127) if msb >= 128 else ratio << (127 - msb)
    log_2 = (msb - 128) << 64
    for shift in range(63, 49, -1):
        r = (r * r) >> 127
        f = r >> 128
        log_2 |= f << shift
        r >>= f
    log_sqrt10001 = log_2 * 255738958999603826347141
    tick_low = (log_sqrt10001 - 3402992956809132418596140100660247210) >> 128
    tick_high = (log_sqrt10001 + 291339464771989622907027621153398088495) >> 128
    if tick_low == tick_high:
        return tick_low
    return tick_high if sqrt_ratio_at_tick(tick_high) <= sqrt_price_x96 else tick_low


def _div_up(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)


def amount0_delta(sqrt_a: int, sqrt_b: int, liquidity: int, round_up: bool) -> int:
    """SqrtPriceMath.getAmount0Delta: L (1/sqrt(Pa) - 1/sqrt(Pb)) in token0's raw units."""
    sqrt_a, sqrt_b = sorted((sqrt_a, sqrt_b))
    numerator = (liquidity << 96) * (sqrt_b - sqrt_a)
    if round_up:
        return _div_up(_div_up(numerator, sqrt_b), sqrt_a)
    return numerator // sqrt_b // sqrt_a


def amount1_delta(sqrt_a: int, sqrt_b: int, liquidity: int, round_up: bool) -> int:
    """SqrtPriceMath.getAmount1Delta: L (sqrt(Pb) - sqrt(Pa)) in token1's raw units."""
    sqrt_a, sqrt_b = sorted((sqrt_a, sqrt_b))
    product = liquidity * (sqrt_b - sqrt_a)
    return _div_up(product, Q96) if round_up else product // Q96


def _next_sqrt_price_from_amount0(sqrt_price: int, liquidity: int, amount: int, add: bool) -> int:
    """SqrtPriceMath.getNextSqrtPriceFromAmount0RoundingUp, with its overflow fallback where the pool takes it."""
    if amount == 0:
        return sqrt_price
    numerator = liquidity << 96
    product = amount * sqrt_price
    if add:
        if product < UINT256 and numerator + product < UINT256:
            return _div_up(numerator * sqrt_price, numerator + product)
        return _div_up(numerator, numerator // sqrt_price + amount)
    if product >= UINT256 or numerator <= product:
        raise SwapError("the output exceeds the pool's token1 reserves in range")
    return _div_up(numerator * sqrt_price, numerator - product)


def _next_sqrt_price_from_amount1(sqrt_price: int, liquidity: int, amount: int, add: bool) -> int:
    """SqrtPriceMath.getNextSqrtPriceFromAmount1RoundingDown."""
    if add:
        return sqrt_price + (amount << 96) // liquidity
    quotient = _div_up(amount << 96, liquidity)
    if sqrt_price <= quotient:
        raise SwapError("the output exceeds the pool's token0 reserves in range")
    return sqrt_price - quotient


def swap_step(sqrt_current: int, sqrt_target: int, liquidity: int, amount_remaining: int,
              fee_pips: int) -> tuple[int, int, int, int]:
    """SwapMath.computeSwapStep: (sqrt price after, amount in, amount out, fee) of one step towards the target
    within constant liquidity; amount_remaining > 0 is an exact input, < 0 an exact output."""
    zero_for_one = sqrt_current >= sqrt_target
    exact_in = amount_remaining >= 0
    if exact_in:
        less_fee = amount_remaining * (FEE_DENOMINATOR - fee_pips) // FEE_DENOMINATOR
        amount_in = (amount0_delta(sqrt_target, sqrt_current, liquidity, True) if zero_for_one
                     else amount1_delta(sqrt_current, sqrt_target, liquidity, True))
        if less_fee >= amount_in:
            sqrt_next = sqrt_target
        elif zero_for_one:
            sqrt_next = _next_sqrt_price_from_amount0(sqrt_current, liquidity, less_fee, True)
        else:
            sqrt_next = _next_sqrt_price_from_amount1(sqrt_current, liquidity, less_fee, True)
    else:
        amount_out = (amount1_delta(sqrt_target, sqrt_current, liquidity, False) if zero_for_one
                      else amount0_delta(sqrt_current, sqrt_target, liquidity, False))
        if -amount_remaining >= amount_out:
            sqrt_next = sqrt_target
        elif zero_for_one:
            sqrt_next = _next_sqrt_price_from_amount1(sqrt_current, liquidity, -amount_remaining, False)
        else:
            sqrt_next = _next_sqrt_price_from_amount0(sqrt_current, liquidity, -amount_remaining, False)
    reached = sqrt_next == sqrt_target
    if zero_for_one:
        if not (reached and exact_in):
            amount_in = amount0_delta(sqrt_next, sqrt_current, liquidity, True)
        if not (reached and not exact_in):
            amount_out = amount1_delta(sqrt_next, sqrt_current, liquidity, False)
    else:
        if not (reached and exact_in):
            amount_in = amount1_delta(sqrt_current, sqrt_next, liquidity, True)
        if not (reached and not exact_in):
            amount_out = amount0_delta(sqrt_current, sqrt_next, liquidity, False)
    if not exact_in and amount_out > -amount_remaining:
        amount_out = -amount_remaining
    if exact_in and sqrt_next != sqrt_target:
        fee = amount_remaining - amount_in
    else:
        fee = _div_up(amount_in * fee_pips, FEE_DENOMINATOR - fee_pips)
    return sqrt_next, amount_in, amount_out, fee


@dataclass(frozen=True)
class TickProfile:
    """A pool's depth as the swap reads it: slot0 (sqrtPriceX96, tick), the active liquidity, the fee in pips, the
    tick spacing and each initialised tick's liquidityNet (ticks sorted ascending)."""

    sqrt_price_x96: int
    tick: int
    liquidity: int
    fee: int
    tick_spacing: int
    ticks: tuple[tuple[int, int], ...]  # (tick, liquidityNet), ascending; every tick a multiple of the spacing

    def __post_init__(self) -> None:
        if not MIN_SQRT_RATIO <= self.sqrt_price_x96 < MAX_SQRT_RATIO:
            raise SwapError(f"sqrtPriceX96 {self.sqrt_price_x96} out of range")
        if self.liquidity < 0 or not 0 <= self.fee < FEE_DENOMINATOR or self.tick_spacing < 1:
            raise SwapError("liquidity, fee or tick spacing out of range")
        if any(t % self.tick_spacing or not MIN_TICK <= t <= MAX_TICK for t, _ in self.ticks):
            raise SwapError("an initialised tick off the pool's spacing or range")
        if any(b <= a for (a, _), (b, _) in zip(self.ticks, self.ticks[1:], strict=False)):
            raise SwapError("ticks must be strictly ascending")

    @staticmethod
    def from_ticks(*, sqrt_price_x96: int, liquidity: int, fee: int, tick_spacing: int,
                   liquidity_net: Mapping[int, int], tick: int | None = None) -> TickProfile:
        """From slot0's price (the tick derived from it unless given) and the initialised ticks' {tick:
        liquidityNet}. Keep an initialised tick whose net is zero: the swap still stops there (one more step, one
        more rounding), as the pool's bitmap flags it while its liquidityGross is not zero."""
        return TickProfile(
            sqrt_price_x96=sqrt_price_x96, tick=tick_at_sqrt_ratio(sqrt_price_x96) if tick is None else tick,
            liquidity=liquidity, fee=fee, tick_spacing=tick_spacing,
            ticks=tuple(sorted(liquidity_net.items())),
        )

    @cached_property
    def _net(self) -> dict[int, int]:
        return dict(self.ticks)

    @cached_property
    def _words(self) -> dict[int, int]:
        """TickBitmap: word position -> 256-bit word of initialised compressed ticks."""
        words: dict[int, int] = {}
        for t, _ in self.ticks:
            compressed = t // self.tick_spacing
            words[compressed >> 8] = words.get(compressed >> 8, 0) | (1 << (compressed % 256))
        return words

    def next_initialized_tick_within_one_word(self, tick: int, lte: bool) -> tuple[int, bool]:
        """TickBitmap.nextInitializedTickWithinOneWord: the next initialised tick at or below (lte) or above
        `tick`, or the edge of its bitmap word when the word has none."""
        compressed = tick // self.tick_spacing  # floors, as the pool's `compressed--` for negative ticks
        if lte:
            bit = compressed % 256
            masked = self._words.get(compressed >> 8, 0) & ((1 << bit) - 1 + (1 << bit))
            if masked:
                return (compressed - (bit - (masked.bit_length() - 1))) * self.tick_spacing, True
            return (compressed - bit) * self.tick_spacing, False
        bit = (compressed + 1) % 256
        masked = self._words.get((compressed + 1) >> 8, 0) & ~((1 << bit) - 1)
        if masked:
            lowest = (masked & -masked).bit_length() - 1
            return (compressed + 1 + (lowest - bit)) * self.tick_spacing, True
        return (compressed + 1 + (255 - bit)) * self.tick_spacing, False

    def scaled(self, factor: int) -> TickProfile:
        """The same pool with every position's liquidity multiplied by an integer factor (a deeper pool)."""
        return TickProfile(self.sqrt_price_x96, self.tick, self.liquidity * factor, self.fee, self.tick_spacing,
                           tuple((t, n * factor) for t, n in self.ticks))


@dataclass(frozen=True)
class SwapResult:
    """The pool's side of a swap, as UniswapV3Pool.swap returns it: amount0 / amount1 > 0 paid into the pool,
    < 0 paid out; and the pool after it."""

    amount0: int
    amount1: int
    fee_paid: int  # in the input token
    ticks_crossed: int
    complete: bool  # the whole amount was swapped (False: the price limit stopped it)
    after: TickProfile


def swap(pool: TickProfile, *, zero_for_one: bool, amount_specified: int,
         sqrt_price_limit_x96: int | None = None) -> SwapResult:
    """UniswapV3Pool.swap without the token transfers: amount_specified > 0 swaps exactly that input, < 0 asks
    for exactly that output; the price never passes the limit (default: as far as the pool goes, as the periphery's
    quoter does). The fee stays out of the active liquidity, as in the pool (it accrues to the positions)."""
    if amount_specified == 0:
        raise SwapError("amount_specified is zero")
    limit = sqrt_price_limit_x96 if sqrt_price_limit_x96 is not None else (
        MIN_SQRT_RATIO + 1 if zero_for_one else MAX_SQRT_RATIO - 1)
    if zero_for_one and not MIN_SQRT_RATIO < limit < pool.sqrt_price_x96 or \
            not zero_for_one and not pool.sqrt_price_x96 < limit < MAX_SQRT_RATIO:
        raise SwapError("the price limit is on the wrong side of the price (the pool reverts with SPL)")
    exact_in = amount_specified > 0
    remaining, calculated, fees, crossed = amount_specified, 0, 0, 0
    sqrt_price, tick, liquidity = pool.sqrt_price_x96, pool.tick, pool.liquidity
    while remaining != 0 and sqrt_price != limit:
        start = sqrt_price
        tick_next, initialized = pool.next_initialized_tick_within_one_word(tick, zero_for_one)
        tick_next = min(max(tick_next, MIN_TICK), MAX_TICK)
        sqrt_next_tick = sqrt_ratio_at_tick(tick_next)
        target = limit if (sqrt_next_tick < limit if zero_for_one else sqrt_next_tick > limit) else sqrt_next_tick
        sqrt_price, amount_in, amount_out, fee = swap_step(sqrt_price, target, liquidity, remaining, pool.fee)
        fees += fee
        if exact_in:
            remaining -= amount_in + fee
            calculated -= amount_out
        else:
            remaining += amount_out
            calculated += amount_in + fee
        if sqrt_price == sqrt_next_tick:
            if initialized:
                net = pool._net.get(tick_next, 0)
                liquidity += -net if zero_for_one else net
                if liquidity < 0:
                    raise SwapError(f"liquidity below zero crossing tick {tick_next}: an inconsistent profile")
                crossed += 1
            tick = tick_next - 1 if zero_for_one else tick_next
        elif sqrt_price != start:
            tick = tick_at_sqrt_ratio(sqrt_price)
    specified_side = amount_specified - remaining
    amount0, amount1 = (specified_side, calculated) if zero_for_one == exact_in else (calculated, specified_side)
    after = TickProfile(sqrt_price, tick, liquidity, pool.fee, pool.tick_spacing, pool.ticks)
    return SwapResult(amount0=amount0, amount1=amount1, fee_paid=fees, ticks_crossed=crossed,
                      complete=remaining == 0, after=after)


def amount_to_price(pool: TickProfile, sqrt_price_target_x96: int) -> SwapResult:
    """The inverse of `swap`: the exact input (fee included) that moves the price to the target, token0 in when
    the target is below the price, token1 in when above; `after` is the pool at the target."""
    if sqrt_price_target_x96 == pool.sqrt_price_x96:
        return SwapResult(0, 0, 0, 0, True, pool)
    zero_for_one = sqrt_price_target_x96 < pool.sqrt_price_x96
    return swap(pool, zero_for_one=zero_for_one, amount_specified=UINT256 // 2 - 1,
                sqrt_price_limit_x96=sqrt_price_target_x96)


# Human units: token1 per token0 with the tokens' decimals, as risk_core.pricing.lp's tick_price.


def sqrt_price_x96_of(price: float, decimals0: int, decimals1: int) -> int:
    """The Q64.96 sqrt of a human price (token1 per token0), clamped into the pool's range."""
    raw = price * 10.0 ** (decimals1 - decimals0)
    if not (raw > 0 and math.isfinite(raw)):
        raise SwapError(f"price {price} is not a positive finite number")
    value = int(math.sqrt(raw) * Q96)
    return min(max(value, MIN_SQRT_RATIO + 1), MAX_SQRT_RATIO - 1)


def price_of(sqrt_price_x96: int, decimals0: int, decimals1: int) -> float:
    """Token1 per token0 in human units at a Q64.96 sqrt price."""
    return float((sqrt_price_x96 / Q96) ** 2 * 10.0 ** (decimals0 - decimals1))
