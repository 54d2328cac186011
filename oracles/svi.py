"""Raw SVI slices and Gatheral's butterfly function g(k): how a surface's slices are checked for arbitrage.

Total variance w(k) = a + b (rho (k - m) + sqrt((k - m)^2 + sigma^2)), k = ln(K / F). An eSSVI slice
(theta, rho, psi) is the raw SVI a = theta (1 - rho^2) / 2, b = psi / 2, m = -rho theta / psi,
sigma = theta sqrt(1 - rho^2) / psi (Gatheral & Jacquier, "Arbitrage-free SVI volatility surfaces", 2014, section 3,
with phi = psi / theta).

A slice is free of butterfly arbitrage when g(k) >= 0 (Gatheral & Jacquier 2014, Lemma 2.2):
    g(k) = (1 - k w' / (2 w))^2 - w'^2 / 4 (1 / w + 1 / 4) + w'' / 2
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from risk_core.pricing.smile import butterfly_g
from risk_core.pricing.vol_surface import svi_total_variance

Array = NDArray[np.float64]


@dataclass(frozen=True)
class SVIParams:
    """Raw SVI for one slice: w(k) = a + b (rho (k - m) + sqrt((k - m)^2 + sigma^2))."""

    a: float
    b: float
    rho: float
    m: float
    sigma: float

    @classmethod
    def from_essvi(cls, theta: float, rho: float, psi: float) -> SVIParams:
        root = float(np.sqrt(1.0 - rho * rho))
        return cls(a=0.5 * theta * root * root, b=0.5 * psi, rho=rho, m=-rho * theta / psi, sigma=theta * root / psi)

    def total_variance(self, k: Array) -> Array:
        return svi_total_variance(np.asarray(k, dtype=np.float64), self.a, self.b, self.rho, self.m, self.sigma)

    def butterfly_g(self, k: Array) -> Array:
        """g(k) from the closed-form derivatives of w; -inf where w <= 0 (no arbitrage-free reading there)."""
        k = np.asarray(k, dtype=np.float64)
        x = k - self.m
        r = np.sqrt(x * x + self.sigma * self.sigma)
        w = self.total_variance(k)
        w1 = self.b * (self.rho + x / r)
        w2 = self.b * self.sigma * self.sigma / (r * r * r)
        return butterfly_g(k, w, w1, w2)
