"""A read pool knows its depth only within the ticks read: a flow past them moves the pools to that edge and the
rest of it along the asset's depth curve, so the price stays continuous and monotone in the flow (a cascade's
cumulative sales cross the edge round by round); without a curve such a flow is refused."""

from __future__ import annotations

import math

import numpy as np
import pytest

from research.contagion.depth import ImpactOutOfRange, market_depth
from research.contagion.params import load_cascade_params
from risk_core.schema.market import PoolTick, UniswapV3Pool

L = 20_000.0  # human sqrt(ETH x USDC): one range, WETH/USDC decimals 18 / 6, fee 0.05%
FEE = 500


def tick_of(price: float) -> int:
    return math.floor(math.log(price / 1e12) / math.log(1.0001) / 10) * 10


def read_pool(lower_read: float) -> UniswapV3Pool:
    raw = 3_000.0 / 1e12
    wide = (tick_of(1_000.0), tick_of(9_000.0))
    return UniswapV3Pool(
        asset="ETH", quote="USDC", asset_is_token0=True, decimals0=18, decimals1=6, fee=FEE, tick_spacing=10,
        sqrt_price_x96=int(math.sqrt(raw) * 2**96), tick=math.floor(math.log(raw) / math.log(1.0001)),
        liquidity=int(L * 1e12), ticks=[PoolTick(tick=wide[0], liquidity_net=int(L * 1e12)),
                                        PoolTick(tick=wide[1], liquidity_net=-int(L * 1e12))],
        tick_range=(tick_of(lower_read), tick_of(9_000.0)), source="onchain",
    )


def test_a_flow_past_the_ticks_read_continues_on_the_curve() -> None:
    depth = market_depth(load_cascade_params(), "ETH", 3_000.0, [read_pool(2_500.0)])
    assert depth is not None and depth.beyond is not None
    edge = 1.0001 ** tick_of(2_500.0) * 1e12
    # inside one range, selling dx (after the fee) moves 1/sqrt(P) by dx / L: the units that reach the edge
    to_edge = L * (1 / math.sqrt(edge) - 1 / math.sqrt(3_000.0)) / (1 - FEE / 1e6)
    inside = depth.price_after(3_000.0, 0.999 * to_edge)
    past = depth.price_after(3_000.0, 1.001 * to_edge)
    assert edge < inside < edge * 1.001  # the pool's own swap, just short of the edge
    assert edge * 0.999 < past < edge  # continued on the curve from the edge, no jump
    flows = np.linspace(0.5, 3.0, 26) * to_edge
    prices = [depth.price_after(3_000.0, float(units)) for units in flows]
    assert all(b < a for a, b in zip(prices, prices[1:], strict=False))  # more sold, lower price, across the edge
    # far past the edge: the curve's own move for the rest of the flow, from the edge
    rest = 2 * to_edge
    curve_alone = depth.beyond.price_after(edge, rest)  # the pool absorbs to_edge (its swap, exact to rounding)
    assert depth.price_after(3_000.0, to_edge + rest) == pytest.approx(curve_alone, rel=1e-6)


def test_without_a_curve_a_flow_past_the_ticks_read_is_refused() -> None:
    params = load_cascade_params()
    no_curve = params.model_copy(update={"depth": {k: v for k, v in params.depth.items() if k != "ETH"}})
    depth = market_depth(no_curve, "ETH", 3_000.0, [read_pool(2_500.0)])
    assert depth is not None and depth.beyond is None
    with pytest.raises(ImpactOutOfRange):
        depth.price_after(3_000.0, 1e4)
