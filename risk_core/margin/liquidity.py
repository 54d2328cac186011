"""The liquidity add-on: a net exposure larger than the market absorbs pays for its price impact (both models).

Closing Q USD of an asset moves its price by an impact; the scenarios' own close-out assumes at most
`impact_at_depth` (the parameter file's), so only the impact beyond it is charged, on Q.

- Where the market snapshot carries Uniswap v3 pools of the asset (`market.pools`), the impact is the pools' own:
  the relative move of the price when the net is sold (a long) or bought back (a short) through them, exactly as
  the pools would swap it (risk_core.pricing.pool_impact: crossing ticks, fee tiers, several pools ending at one
  price). A net beyond the liquidity the pools show (all of it, or the ticks read) falls back to the depth curve,
  or, for an asset without one, is charged whole: the market read cannot absorb it.
- Otherwise the depth curve per asset of the parameter file: impact_at_depth x (Q / depth_usd)^exponent, the
  square-root law of market impact (Almgren et al. 2005, "Direct estimation of equity market impact", exponent
  ~0.6; Toth et al. 2011 for crypto-like order books, 0.5): nothing up to depth_usd, then a charge growing like
  Q^(1 + exponent).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from risk_core.pricing.pool_impact import AssetPool, ImpactOutOfRange, asset_pool, pool_label, reference_price, route
from risk_core.schema.market import UniswapV3Pool
from risk_core.schema.params import DepthCurve, LiquidityParams

Array = NDArray[np.float64]


def liquidity_addon(net_usd: Array, curve: DepthCurve) -> Array:
    """USD add-on for closing each net exposure (signed USD; the side does not matter)."""
    size = np.abs(net_usd)
    impact = curve.impact_at_depth * (size / curve.depth_usd) ** curve.exponent
    return size * np.maximum(impact - curve.impact_at_depth, 0.0)


@dataclass(frozen=True)
class PoolDepth:
    """An asset's read pools, its USD spot, the impact the close-out already assumes, and its curve if any."""

    pools: tuple[AssetPool, ...]
    spot: float
    allowance: float
    fallback: DepthCurve | None
    source: str

    def addon(self, net_usd: Array) -> Array:
        """USD add-on for closing each net exposure through the pools (each distinct net priced once)."""
        net = np.asarray(net_usd, dtype=np.float64)
        out = np.zeros(net.shape)
        start = reference_price(self.pools)
        for value in np.unique(net):
            if value == 0.0:
                continue
            try:
                _, end, _ = route(self.pools, float(value) / self.spot)
                charge = abs(value) * max(abs(end / start - 1.0) - self.allowance, 0.0)
            except ImpactOutOfRange as beyond:
                if beyond.exhausted or self.fallback is None:
                    charge = abs(float(value))  # the pools cannot absorb it, or nothing is known beyond them
                else:
                    charge = float(liquidity_addon(np.array([value]), self.fallback)[0])
            out[net == value] = charge
        return out


Depth = DepthCurve | PoolDepth


def asset_depth(asset: str, spot: float, liquidity: LiquidityParams,
                pools: Sequence[UniswapV3Pool] = ()) -> Depth | None:
    """The asset's depth for the add-on: its read pools where the market has any, else its curve, else none."""
    own = [pool for pool in pools if pool.asset == asset]
    curve = liquidity.depth.get(asset)
    if own:
        allowance = curve.impact_at_depth if curve is not None else liquidity.pool_impact_allowance
        return PoolDepth(tuple(asset_pool(p) for p in own), spot, allowance, curve,
                         "; ".join(pool_label(p) for p in own))
    return curve


def addon(net_usd: Array, depth: Depth) -> Array:
    return depth.addon(net_usd) if isinstance(depth, PoolDepth) else liquidity_addon(net_usd, depth)


def depth_source(depth: Depth) -> str:
    return depth.source if isinstance(depth, PoolDepth) else "depth curve"
