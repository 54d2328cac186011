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

Array = NDArray[np.float64]


@dataclass(frozen=True)
class SVIParams:
    """Raw SVI for one slice: w(k) = a + b (rho (k - m) + sqrt((k - m)^2 + sigma^2))."""

    a: float
    b: float
    rho: float
    m: float
    sigma: float

    def total_variance(self, k: Array) -> Array:
        x = np.asarray(k, dtype=np.float64) - self.m
        return self.a + self.b * (self.rho * x + np.sqrt(x * x + self.sigma * self.sigma))

    def butterfly_g(self, k: Array) -> Array:
        return compute_butterfly_g(
            np.asarray(k, dtype=np.float64)[None, :],
            a=np.array([self.a]),
            b=np.array([self.b]),
            rho=np.array([self.rho]),
            m=np.array([self.m]),
            sigma=np.array([self.sigma]),
        )[0]

    @classmethod
    def from_essvi(cls, theta: float, rho: float, psi: float) -> SVIParams:
        root = float(np.sqrt(1.0 - rho * rho))
        return cls(a=0.5 * theta * root * root, b=0.5 * psi, rho=rho, m=-rho * theta / psi, sigma=theta * root / psi)

    @property
    def min_total_variance(self) -> float:
        return self.a + self.b * self.sigma * float(np.sqrt(1.0 - self.rho * self.rho))


def compute_butterfly_g(k: Array, *, a: Array, b: Array, rho: Array, m: Array, sigma: Array) -> Array:
    """g(k) for a batch of slices: parameters of shape (N,), k of shape (N, n) or (1, n); returns (N, n)."""
    a_, b_, rho_, m_, s_ = (np.asarray(p, dtype=np.float64)[:, None] for p in (a, b, rho, m, sigma))
    x = k - m_
    r = np.sqrt(x * x + s_ * s_)
    w = a_ + b_ * (rho_ * x + r)
    w1 = b_ * (rho_ + x / r)
    w2 = b_ * s_ * s_ / (r * r * r)
    safe_w = np.where(w > 0, w, np.nan)
    g = (1.0 - k * w1 / (2.0 * safe_w)) ** 2 - 0.25 * w1 * w1 * (1.0 / safe_w + 0.25) + 0.5 * w2
    return np.where(w > 0, g, -np.inf)
