"""Black-76 implied vol, vectorized: safeguarded Newton (a bisection bracket keeps every step inside it).

A price outside the no-arbitrage bounds (below intrinsic, above the forward or the strike) has no implied vol and
gives NaN, and so does a time value below MIN_TIME_VALUE of the forward: there no method recovers the vol (see
PERFORMANCE_NOTES.md), so such quotes are dropped rather than inverted.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from risk_core.pricing.black76 import black76_greeks, black76_price

Array = NDArray[np.float64]

MIN_TIME_VALUE = 1e-8  # of the forward
SIGMA_LO = 1e-4
SIGMA_HI = 20.0
ITERATIONS = 60
PRICE_RTOL = 1e-12


def compute_implied_vol(
    price: ArrayLike, forward: ArrayLike, strike: ArrayLike, years: ArrayLike, is_call: ArrayLike
) -> Array:
    """Undiscounted Black-76 implied vol of each price (same currency as forward and strike)."""
    p, f, k, t = np.broadcast_arrays(*(np.asarray(x, dtype=np.float64) for x in (price, forward, strike, years)))
    call = np.broadcast_to(np.asarray(is_call, dtype=bool), p.shape)
    intrinsic = np.where(call, np.maximum(f - k, 0.0), np.maximum(k - f, 0.0))
    upper = np.where(call, f, k)
    valid = np.isfinite(p) & (t > 0) & (p - intrinsic > MIN_TIME_VALUE * f) & (p < upper)

    lo = np.full(p.shape, SIGMA_LO)
    hi = np.full(p.shape, SIGMA_HI)
    # Brenner-Subrahmanyam start near the money, clipped into the bracket
    sigma = np.clip(np.sqrt(2.0 * np.pi / np.where(t > 0, t, 1.0)) * p / f, 0.05, 3.0)
    safe_t = np.where(valid, t, 1.0)
    for _ in range(ITERATIONS):
        g = black76_greeks(f, k, safe_t, sigma, call)
        diff = g.price - p
        lo = np.where(diff < 0, sigma, lo)
        hi = np.where(diff > 0, sigma, hi)
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            newton = sigma - diff / g.vega
        inside = np.isfinite(newton) & (newton > lo) & (newton < hi)
        sigma = np.where(inside, newton, 0.5 * (lo + hi))
        if np.all(np.abs(diff[valid]) <= PRICE_RTOL * f[valid]):
            break
    final = black76_price(f, k, safe_t, sigma, call)
    converged = np.abs(final - p) <= 1e-9 * f
    return np.where(valid & converged, sigma, np.nan)
