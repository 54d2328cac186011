"""Price impact of selling or buying an asset through Uniswap v3 pools, in the asset's and its quote's units.

One `AssetPool` is a pool seen from one of its tokens (the asset; the other is its quote): selling `units` of the
asset is the pool's exact-input swap, buying them its exact-output swap (risk_core.pricing.uniswap_v3, to the wei,
crossing ticks, the pool's fee). Where a pool was read only around its price (`lower_tick`..`upper_tick`), a swap
never prices beyond that range: a flow that would is refused (`ImpactOutOfRange`), not extrapolated.

Several pools of one asset are one market: a flow is split so that every pool ends at the same price (what
arbitrage between them leaves), found by bisection on that price over the pools' exact inverse swaps, and the
remainder of the split (the bisection's last float step) goes to the deepest pool.

A depth curve of the parameter file is a virtual pool of the same kind (`virtual_pool`): no fee, tick spacing 1,
bands of constant liquidity between ticks, so one swap routine prices both.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from risk_core.pricing.uniswap_v3 import (
    MAX_SQRT_RATIO,
    MAX_TICK,
    MIN_SQRT_RATIO,
    MIN_TICK,
    TickProfile,
    amount_to_price,
    price_of,
    sqrt_price_x96_of,
    sqrt_ratio_at_tick,
    swap,
)
from risk_core.schema.market import UniswapV3Pool

VIRTUAL_DECIMALS = 18  # a virtual pool's two tokens: raw = human x 1e18, so its raw price is the human one
LOG_TICK = math.log(1.0001)


class ImpactOutOfRange(ValueError):
    """A flow larger than the liquidity known on its side of the price: `exhausted` when that is all the liquidity
    the pool has (every tick known: the market cannot absorb it), else the edge of the ticks read (unknown beyond)."""

    def __init__(self, message: str, *, exhausted: bool = False) -> None:
        super().__init__(message)
        self.exhausted = exhausted


@dataclass(frozen=True)
class AssetPool:
    profile: TickProfile
    asset_is_token0: bool
    decimals0: int
    decimals1: int
    lower_tick: int = MIN_TICK  # the range of ticks whose depth is known
    upper_tick: int = MAX_TICK
    name: str = "pool"

    @property
    def asset_decimals(self) -> int:
        return self.decimals0 if self.asset_is_token0 else self.decimals1

    @property
    def quote_decimals(self) -> int:
        return self.decimals1 if self.asset_is_token0 else self.decimals0

    def price(self) -> float:
        """Quote per asset, human units, at the pool's price."""
        token1_per_token0 = price_of(self.profile.sqrt_price_x96, self.decimals0, self.decimals1)
        return token1_per_token0 if self.asset_is_token0 else 1.0 / token1_per_token0

    def _knows_all(self, zero_for_one: bool) -> bool:
        """Every tick on that side of the price is known (no read window there)."""
        return self.lower_tick <= MIN_TICK if zero_for_one else self.upper_tick >= MAX_TICK

    def _limit(self, zero_for_one: bool) -> int:
        if zero_for_one:
            return max(sqrt_ratio_at_tick(self.lower_tick), MIN_SQRT_RATIO + 1)
        return min(sqrt_ratio_at_tick(self.upper_tick), MAX_SQRT_RATIO - 1)

    def trade(self, units: float) -> tuple[float, AssetPool]:
        """Sell `units` of the asset (< 0: buy them): the quote units received (< 0: paid) and the pool after."""
        raw = round(abs(units) * 10.0**self.asset_decimals)
        if raw == 0:
            return 0.0, self
        selling = units > 0
        zero_for_one = selling == self.asset_is_token0  # token0 in when selling token0 or buying token1
        limit = self._limit(zero_for_one)
        if (limit >= self.profile.sqrt_price_x96) if zero_for_one else (limit <= self.profile.sqrt_price_x96):
            raise ImpactOutOfRange(f"{self.name}: the price is at the edge of the ticks read",
                                   exhausted=self._knows_all(zero_for_one))
        result = swap(self.profile, zero_for_one=zero_for_one, amount_specified=raw if selling else -raw,
                      sqrt_price_limit_x96=limit)
        if not result.complete:
            side = "selling" if selling else "buying"
            raise ImpactOutOfRange(f"{self.name}: {side} {abs(units):g} exceeds the liquidity known on that side",
                                   exhausted=self._knows_all(zero_for_one))
        quote_raw = -(result.amount1 if self.asset_is_token0 else result.amount0)
        return quote_raw / 10.0**self.quote_decimals, replace(self, profile=result.after)

    def edge_price(self, selling: bool) -> float:
        """The asset's price at the edge of the known ticks on the side a sale (or a buy) moves it to."""
        zero_for_one = selling == self.asset_is_token0
        token1_per_token0 = price_of(self._limit(zero_for_one), self.decimals0, self.decimals1)
        return token1_per_token0 if self.asset_is_token0 else 1.0 / token1_per_token0

    def sqrt_price_for(self, asset_price: float) -> int:
        token1_per_token0 = asset_price if self.asset_is_token0 else 1.0 / asset_price
        return sqrt_price_x96_of(token1_per_token0, self.decimals0, self.decimals1)

    def moved_to(self, asset_price: float, clamp: bool = False) -> tuple[float, AssetPool]:
        """The pool moved to `asset_price` by the swap that does it (what an arbitrageur trades): the asset units
        that swap sells into the pool (< 0: buys), and the pool after. Beyond the ticks read: refused, or with
        `clamp` moved to their edge."""
        target = self.sqrt_price_for(asset_price)
        zero_for_one = target < self.profile.sqrt_price_x96
        limit = self._limit(zero_for_one)
        if (target < limit) if zero_for_one else (target > limit):
            if not clamp:
                raise ImpactOutOfRange(f"{self.name}: {asset_price:g} is beyond the ticks read")
            target = limit
        result = amount_to_price(self.profile, target)
        asset_raw = result.amount0 if self.asset_is_token0 else result.amount1
        return asset_raw / 10.0**self.asset_decimals, replace(self, profile=result.after)


def route(pools: Sequence[AssetPool], units: float) -> tuple[float, float, tuple[AssetPool, ...]]:
    """Sell `units` of the asset (< 0: buy) across pools of one asset so that they end at one price: the quote
    received (< 0: paid), that price, and the pools after. One pool: its own swap, exact."""
    if len(pools) == 1 or units == 0:
        if units == 0:
            return 0.0, pools[0].price(), tuple(pools)
        quote, after = pools[0].trade(units)
        return quote, after.price(), (after,)
    selling = units > 0
    start = [p.price() for p in pools]
    # the common end price: between the highest start price and twelve orders of magnitude below it (a sale)
    low, high = (min(start) * 1e-12, max(start)) if selling else (min(start), max(start) * 1e12)

    def sold_at(price: float) -> float:
        return math.fsum(pool.moved_to(price, clamp=True)[0] for i, pool in enumerate(pools)
                         if ((price < start[i]) if selling else (price > start[i])))

    for _ in range(200):
        middle = math.sqrt(low * high)
        sold = sold_at(middle)
        if (sold > units) if selling else (sold < units):
            low, high = (middle, high) if selling else (low, middle)
        else:
            low, high = (low, middle) if selling else (middle, high)
        if high / low - 1.0 < 1e-15:
            break
    end = high if selling else low  # the side that does not overshoot
    if any((end < p.edge_price(True)) if selling else (end > p.edge_price(False)) for p in pools):
        raise ImpactOutOfRange(f"{units:g} units move the price to {end:g}, beyond the ticks read of a pool")
    deepest = _deepest(pools)
    amounts = [0.0] * len(pools)
    for i, (pool, p0) in enumerate(zip(pools, start, strict=True)):
        if i != deepest and ((end < p0) if selling else (end > p0)):
            amounts[i] = pool.moved_to(end)[0]
    amounts[deepest] = units - math.fsum(amounts)
    quote, moved = 0.0, []
    for pool, amount in zip(pools, amounts, strict=True):
        received, moved_pool = pool.trade(amount)
        quote += received
        moved.append(moved_pool)
    return quote, moved[deepest].price(), tuple(moved)


def virtual_pool(bands: Sequence[tuple[float, float]], price: float, name: str = "depth curve") -> AssetPool:
    """A pool of the asset against USD from bands (lower edge price, liquidity L in sqrt(asset x USD) human
    units), highest first, each band from its lower edge up to the previous band's (the first up to the top of the
    price range); below the last band's lower edge nothing (0: down to the bottom of the range). Edges are rounded
    to the nearest tick (1 bp apart)."""
    scale = 10**VIRTUAL_DECIMALS
    levels = [round(liquidity * scale) for _, liquidity in bands]
    edges = [MIN_TICK if lower <= 0 else round(math.log(lower) / LOG_TICK) for lower, _ in bands]
    net: dict[int, int] = {}
    for i, tick in enumerate(edges):
        below = levels[i + 1] if i + 1 < len(levels) else 0
        if tick > MIN_TICK:
            net[tick] = net.get(tick, 0) + levels[i] - below  # crossing upwards: this band's L replaces the one below
    sqrt_price = sqrt_price_x96_of(price, VIRTUAL_DECIMALS, VIRTUAL_DECIMALS)
    profile = TickProfile.from_ticks(sqrt_price_x96=sqrt_price, liquidity=0, fee=0, tick_spacing=1,
                                     liquidity_net=net)
    # active L: the last band's when it reaches the bottom of the range, plus the nets of the edges at or below
    base = levels[-1] if edges[-1] == MIN_TICK else 0
    profile = replace(profile, liquidity=base + sum(n for t, n in net.items() if t <= profile.tick))
    return AssetPool(profile=profile, asset_is_token0=True, decimals0=VIRTUAL_DECIMALS,
                     decimals1=VIRTUAL_DECIMALS, name=name)


def _deepest(pools: Sequence[AssetPool]) -> int:
    return max(range(len(pools)), key=lambda i: pools[i].profile.liquidity)


def reference_price(pools: Sequence[AssetPool]) -> float:
    """The price `route` reports moves from: the deepest pool's (most active liquidity)."""
    return pools[_deepest(pools)].price()


def asset_pool(pool: UniswapV3Pool) -> AssetPool:
    """A read pool (a market snapshot's) as the swap maths see it, limited to the ticks whose words were read."""
    profile = TickProfile(
        sqrt_price_x96=pool.sqrt_price_x96, tick=pool.tick, liquidity=pool.liquidity, fee=pool.fee,
        tick_spacing=pool.tick_spacing, ticks=tuple((t.tick, t.liquidity_net) for t in pool.ticks),
    )
    lower, upper = pool.tick_range or (MIN_TICK, MAX_TICK)
    return AssetPool(profile=profile, asset_is_token0=pool.asset_is_token0, decimals0=pool.decimals0,
                     decimals1=pool.decimals1, lower_tick=lower, upper_tick=upper, name=pool_label(pool))


def pool_label(pool: UniswapV3Pool) -> str:
    """`uniswap-v3 onchain ethereum 0x... ETH/USDC fee 500 @ block N`: the depth source a report names."""
    where = f" {pool.chain}" if pool.chain else ""
    at = f" @ block {pool.block}" if pool.block is not None else ""
    return f"uniswap-v3 {pool.source}{where} {pool.address or '?'} {pool.asset}/{pool.quote} fee {pool.fee}{at}"
