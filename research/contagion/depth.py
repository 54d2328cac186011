"""Price impact of a net flow of an asset, on concentrated-liquidity curves (Uniswap v3's swap maths, without fees).

A curve is a stack of bands, each with constant liquidity L between two prices, as a Uniswap v3 pool's active
liquidity is between initialised ticks. Inside a band, selling dx of the asset (token0 against USD) moves
1/sqrt(P) up by dx / L, and buying moves it down by as much (whitepaper eq. 6.15-6.16). A flow larger than the
band's capacity crosses into the next band, exactly as a swap crosses a tick. The end price depends only on the
net flow, so a cascade applies each round's cumulative net flow to the curve anchored where the round started.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from research.contagion.params import CascadeParams

TWO_PCT_SQRT_FACTOR = 1.0 / math.sqrt(0.98) - 1.0  # sqrt(P) x (1/sqrt(0.98 P) - 1/sqrt(P)) per unit of L


class ImpactOutOfRange(ValueError):
    """A buy larger than all the liquidity above the price: the price would be unbounded."""


@dataclass(frozen=True)
class Band:
    lower_price: float  # 0 for the last band
    upper_price: float  # inf for the first band
    liquidity: float  # L, in sqrt(asset x USD) units


@dataclass(frozen=True)
class LiquidityCurve:
    """Bands from the highest price down, contiguous."""

    bands: tuple[Band, ...]

    def price_after(self, price: float, net_sold: float) -> float:
        """The price after `net_sold` units of the asset are sold into the curve (negative: bought)."""
        index = next(i for i, band in enumerate(self.bands) if band.lower_price <= price)
        inverse_sqrt = 1.0 / math.sqrt(price)
        remaining = net_sold
        while remaining > 0:  # selling walks down through the bands
            band = self.bands[index]
            floor = math.inf if band.lower_price == 0 else 1.0 / math.sqrt(band.lower_price)
            capacity = band.liquidity * (floor - inverse_sqrt)
            if remaining <= capacity:
                return 1.0 / (inverse_sqrt + remaining / band.liquidity) ** 2
            remaining -= capacity
            inverse_sqrt = floor
            index += 1
        while remaining < 0:  # buying walks up
            band = self.bands[index]
            ceiling = 0.0 if math.isinf(band.upper_price) else 1.0 / math.sqrt(band.upper_price)
            capacity = band.liquidity * (inverse_sqrt - ceiling)
            if -remaining < capacity:
                return 1.0 / (inverse_sqrt + remaining / band.liquidity) ** 2
            if index == 0:
                raise ImpactOutOfRange(f"buying {-net_sold:g} units exceeds the liquidity above {price:g}")
            remaining += capacity
            inverse_sqrt = ceiling
            index -= 1
        return 1.0 / inverse_sqrt**2


def depth_curve(params: CascadeParams, asset: str, reference_price: float) -> LiquidityCurve | None:
    """The parameter file's curve of `asset` centred on `reference_price`; None for an asset without one (a
    stablecoin: its price does not move)."""
    depth = params.depth.get(asset)
    if depth is None:
        return None
    # L of the first band: selling depth_usd_2pct of USD value moves P to 0.98 P.
    base_liquidity = depth.depth_usd_2pct / (math.sqrt(reference_price) * TWO_PCT_SQRT_FACTOR)
    bands = []
    upper = math.inf
    for lower_ratio, multiplier in params.depth_profile.bands:
        lower = lower_ratio * reference_price
        bands.append(Band(lower_price=lower, upper_price=upper, liquidity=base_liquidity * multiplier))
        upper = lower
    if bands[-1].lower_price != 0.0:
        bands.append(Band(lower_price=0.0, upper_price=upper, liquidity=bands[-1].liquidity))
    return LiquidityCurve(bands=tuple(bands))
