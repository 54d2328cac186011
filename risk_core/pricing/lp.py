"""Exact value of a concentrated-liquidity range (Uniswap v3 whitepaper, section 6.2.1), vectorized.

Liquidity L on [Pa, Pb] at price P (token1 per token0, human units) holds
    amount0 = L (1/sqrt(P') - 1/sqrt(Pb)),  amount1 = L (sqrt(P') - sqrt(Pa)),  P' = clip(P, Pa, Pb).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

Array = NDArray[np.float64]


def lp_amounts(
    liquidity: ArrayLike, price: ArrayLike, price_lower: ArrayLike, price_upper: ArrayLike
) -> tuple[Array, Array]:
    """Token amounts (amount0, amount1) the range holds at `price`."""
    liq, p, pa, pb = (np.asarray(x, dtype=np.float64) for x in (liquidity, price, price_lower, price_upper))
    sqrt_p = np.sqrt(np.clip(p, pa, pb))
    return liq * (1.0 / sqrt_p - 1.0 / np.sqrt(pb)), liq * (sqrt_p - np.sqrt(pa))


def lp_value_in_token1(
    liquidity: ArrayLike, price: ArrayLike, price_lower: ArrayLike, price_upper: ArrayLike
) -> Array:
    amount0, amount1 = lp_amounts(liquidity, price, price_lower, price_upper)
    return amount0 * np.asarray(price, dtype=np.float64) + amount1


def lp_gamma_in_token1(
    liquidity: ArrayLike, price: ArrayLike, price_lower: ArrayLike, price_upper: ArrayLike
) -> Array:
    """d^2 value / d price^2: -L / (2 P^1.5) inside the range, zero outside (the range is short gamma)."""
    liq, p, pa, pb = (np.asarray(x, dtype=np.float64) for x in (liquidity, price, price_lower, price_upper))
    inside = (p > pa) & (p < pb)
    return np.where(inside, -liq / (2.0 * p**1.5), 0.0)


def tick_price(tick: int, decimals0: int, decimals1: int) -> float:
    """Token1 per token0 in human units at a Uniswap v3 tick: 1.0001^tick is in raw units, so shift by the
    decimals difference (the adapters and the subgraph discovery both convert through here)."""
    return float(1.0001**tick * 10.0 ** (decimals0 - decimals1))


def human_liquidity(raw: int, decimals0: int, decimals1: int) -> float:
    """A range's raw L in the schema's human units: L / 10^((decimals0 + decimals1) / 2)."""
    return raw / 10 ** ((decimals0 + decimals1) / 2)
