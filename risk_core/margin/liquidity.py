"""The liquidity add-on: a net exposure larger than the market absorbs pays for its price impact (both models).

Closing Q USD of an asset moves its price by impact_at_depth x (Q / depth_usd)^exponent, the square-root law of
market impact (Almgren et al. 2005, "Direct estimation of equity market impact", exponent ~0.6; Toth et al. 2011
for crypto-like order books, 0.5). The scenarios' own close-out assumes at most impact_at_depth, so only the impact
beyond it is charged, on Q: nothing up to depth_usd, then a charge growing like Q^(1 + exponent).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from risk_core.schema.params import DepthCurve

Array = NDArray[np.float64]


def liquidity_addon(net_usd: Array, curve: DepthCurve) -> Array:
    """USD add-on for closing each net exposure (signed USD; the side does not matter)."""
    size = np.abs(net_usd)
    impact = curve.impact_at_depth * (size / curve.depth_usd) ** curve.exponent
    return size * np.maximum(impact - curve.impact_at_depth, 0.0)
