"""Price impact of a net flow of an asset: through the Uniswap v3 pools read where the market carries them,
otherwise through the parameter file's depth curve.

Both are priced by one routine, Uniswap v3's own swap (risk_core.pricing.pool_impact over
risk_core.pricing.uniswap_v3): a read pool exactly as the pool would swap (within a tick range at constant
liquidity, crossing initialised ticks, its fee tier), a depth curve as a virtual pool of bands of constant liquidity
between ticks, without fee. Inside a band, selling dx of the asset moves 1/sqrt(P) up by dx / L (whitepaper eq.
6.15-6.16); a flow larger than the band crosses into the next, as a swap crosses a tick.

The market is the liquidity as it stood before the shock. The shock moves each pool to the shocked price by the
swap an arbitrageur would make; the liquidations' net flow is then swapped from there. The end price depends only
on the net flow (sales less buys), so a cascade applies each round's cumulative net flow to the market as the shock
left it. A read pool's price is in its quote token: the asset's USD price moves by the pool's relative move.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from research.contagion.params import CascadeParams
from risk_core.pricing.pool_impact import (
    AssetPool,
    ImpactOutOfRange,
    asset_pool,
    pool_label,
    reference_price,
    route,
    virtual_pool,
)
from risk_core.schema.market import UniswapV3Pool

__all__ = ["ImpactOutOfRange", "MarketDepth", "depth_curve", "market_depth"]

TWO_PCT_SQRT_FACTOR = 1.0 / math.sqrt(0.98) - 1.0  # sqrt(P) x (1/sqrt(0.98 P) - 1/sqrt(P)) per unit of L


@dataclass(frozen=True)
class MarketDepth:
    """An asset's market: its pools (one virtual pool for a depth curve) and where their price stands."""

    source: str  # "depth curve", or the pools read ("uniswap-v3 onchain 0x... fee 500 @ block N, ...")
    pools: tuple[AssetPool, ...]
    beyond: MarketDepth | None = None  # read pools only: the asset's depth curve, for what lies past the ticks read

    def price(self) -> float:
        """The deepest pool's price (the one `route` reports)."""
        return reference_price(self.pools)

    def shocked(self, ratio: float) -> MarketDepth:
        """Every pool moved by the arbitrage swap to its price x ratio; the depth curve from then on when the shock
        itself leaves the ticks read (the read depth says nothing past them).

        Raises ImpactOutOfRange when it does and the asset has no curve."""
        beyond = None if self.beyond is None else self.beyond.shocked(ratio)
        try:
            moved = tuple(pool.moved_to(pool.price() * ratio)[1] for pool in self.pools)
        except ImpactOutOfRange:
            if beyond is None:
                raise
            return beyond
        return MarketDepth(self.source, moved, beyond)

    def price_after(self, start: float, net_sold: float) -> float:
        """The asset's USD price after `net_sold` units are sold into the market (negative: bought), `start`
        being its USD price where the market now stands. A flow past the ticks read moves the pools to their edge
        and the rest of it moves the price along the asset's depth curve.

        Raises ImpactOutOfRange when it cannot be priced and the asset has no curve."""
        if net_sold == 0:
            return start
        try:
            _, end, _ = route(self.pools, net_sold)
        except ImpactOutOfRange:
            if self.beyond is None:
                raise
            # the pools to the first edge of their ticks read, the rest of the flow on the curve from there: the
            # price stays continuous and monotone in the flow
            selling = net_sold > 0
            edge = (max if selling else min)(pool.edge_price(selling) for pool in self.pools)
            absorbed = math.fsum(pool.moved_to(edge, clamp=True)[0] for pool in self.pools)
            return self.beyond.price_after(start * edge / self.price(), net_sold - absorbed)
        return start * end / self.price()


def depth_curve(params: CascadeParams, asset: str, reference_price: float) -> MarketDepth | None:
    """The parameter file's curve of `asset` centred on `reference_price` as a virtual pool; None for an asset
    without one (a stablecoin: its price does not move)."""
    depth = params.depth.get(asset)
    if depth is None:
        return None
    # L of the first band: selling depth_usd_2pct of USD value moves P to 0.98 P.
    base_liquidity = depth.depth_usd_2pct / (math.sqrt(reference_price) * TWO_PCT_SQRT_FACTOR)
    bands = [(ratio * reference_price, base_liquidity * multiplier)
             for ratio, multiplier in params.depth_profile.bands]
    if bands[-1][0] != 0.0:
        bands.append((0.0, bands[-1][1]))
    return MarketDepth("depth curve", (virtual_pool(bands, reference_price, name=f"{asset} depth curve"),))


def market_depth(params: CascadeParams, asset: str, reference_price: float,
                 pools: Sequence[UniswapV3Pool] = ()) -> MarketDepth | None:
    """The asset's read pools where there are any (its depth curve behind them, for flows past the ticks read),
    else its depth curve (None: its price does not move)."""
    own = [pool for pool in pools if pool.asset == asset]
    curve = depth_curve(params, asset, reference_price)
    if own:
        return MarketDepth("; ".join(pool_label(p) for p in own), tuple(asset_pool(p) for p in own), curve)
    return curve
