"""Black-76 on forwards, vectorized over numpy arrays (any broadcastable shapes).

Prices are in the forward's currency, discounted by `discount` (exp(-rT), 1 at zero rates). At zero total
volatility (expiry reached or sigma = 0) the price is the discounted intrinsic value.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import ndtr

Array = NDArray[np.float64]
_INV_SQRT_2PI = 1.0 / np.sqrt(2.0 * np.pi)


class Greeks(NamedTuple):
    """Sensitivities of the discounted price to the forward (delta, gamma), to sigma (vega, per 1.00 of vol)
    and to the passage of time (theta, per year: the change as T shrinks)."""

    price: Array
    delta: Array
    gamma: Array
    vega: Array
    theta: Array


def _d1_d2(forward: Array, strike: Array, total_vol: Array) -> tuple[Array, Array, NDArray[np.bool_]]:
    live = total_vol > 0
    safe_vol = np.where(live, total_vol, 1.0)
    d1 = (np.log(forward / strike) + 0.5 * safe_vol * safe_vol) / safe_vol
    return d1, d1 - safe_vol, live


def black76_price(
    forward: ArrayLike, strike: ArrayLike, years: ArrayLike, sigma: ArrayLike, is_call: ArrayLike,
    discount: ArrayLike = 1.0,
) -> Array:
    f, k, t, s = (np.asarray(x, dtype=np.float64) for x in (forward, strike, years, sigma))
    call = np.asarray(is_call, dtype=bool)
    total_vol = s * np.sqrt(np.maximum(t, 0.0))
    d1, d2, live = _d1_d2(f, k, total_vol)
    sign = np.where(call, 1.0, -1.0)
    live_price = sign * (f * ndtr(sign * d1) - k * ndtr(sign * d2))
    intrinsic = np.maximum(sign * (f - k), 0.0)
    return np.asarray(discount, dtype=np.float64) * np.where(live, live_price, intrinsic)


def black76_greeks(
    forward: ArrayLike, strike: ArrayLike, years: ArrayLike, sigma: ArrayLike, is_call: ArrayLike,
    discount: ArrayLike = 1.0,
) -> Greeks:
    f, k, t, s = (np.asarray(x, dtype=np.float64) for x in (forward, strike, years, sigma))
    df = np.asarray(discount, dtype=np.float64)
    call = np.asarray(is_call, dtype=bool)
    sqrt_t = np.sqrt(np.maximum(t, 0.0))
    total_vol = s * sqrt_t
    d1, d2, live = _d1_d2(f, k, total_vol)
    sign = np.where(call, 1.0, -1.0)
    nd1 = ndtr(sign * d1)
    pdf_d1 = _INV_SQRT_2PI * np.exp(-0.5 * d1 * d1)
    price = df * np.where(live, sign * (f * nd1 - k * ndtr(sign * d2)), np.maximum(sign * (f - k), 0.0))
    itm = sign * (f - k) > 0
    delta = df * np.where(live, sign * nd1, np.where(itm, sign, 0.0))
    safe_total = np.where(live, total_vol, 1.0)
    gamma = np.where(live, df * pdf_d1 / (f * safe_total), 0.0)
    vega = np.where(live, df * f * pdf_d1 * sqrt_t, 0.0)
    safe_sqrt_t = np.where(live, sqrt_t, 1.0)
    # zero rates assumed in theta's discount term: forwards already carry the carry.
    theta = np.where(live, -df * f * pdf_d1 * s / (2.0 * safe_sqrt_t), 0.0)
    return Greeks(price=price, delta=delta, gamma=gamma, vega=vega, theta=theta)
