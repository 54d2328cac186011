"""Total variance of one expiry's smile and its derivatives in log-moneyness k: the eSSVI slice, the cubic B-spline
correction a short expiry may carry on top of it, and Gatheral's butterfly function g(k).

Pure functions on arrays, shared by the surface reader (risk_core.pricing.vol_surface), the market schema's
no-arbitrage check and the fitter (oracles.essvi), so that each formula is written once.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]


def essvi_wings(
    k: Array, theta: float | Array, up: float | Array, down: float | Array, derivatives: int = 0
) -> tuple[Array, ...]:
    """eSSVI in its ATM total variance theta and wing slopes up = psi (1 + rho) / 2, down = psi (1 - rho) / 2:
    w(k) = (theta + (up - down) k + R) / 2, R = sqrt(((up + down) k)^2 + 2 theta (up - down) k + theta^2).
    Returns (w,), (w, w'), or (w, w', w'') for `derivatives` 0, 1, 2."""
    psi, rho_psi = up + down, up - down
    root = np.sqrt((psi * k) ** 2 + 2.0 * theta * rho_psi * k + theta * theta)
    w = 0.5 * (theta + rho_psi * k + root)
    if derivatives == 0:
        return (w,)
    root1 = (psi * psi * k + theta * rho_psi) / root
    if derivatives == 1:
        return w, 0.5 * (rho_psi + root1)
    return w, 0.5 * (rho_psi + root1), 0.5 * (psi * psi - root1 * root1) / root


def _pieces(t: Array, k_step: float, derivative: int) -> tuple[tuple[Array, Array, Array, Array], float]:
    """On knot interval m, at t = u - m in [0, 1) (u in knot steps), the values (or derivatives in u) of the four
    live cubic B-splines m - 3, m - 2, m - 1, m, and the factor that turns derivatives in u into derivatives in k."""
    s = 1.0 - t
    if derivative == 0:
        return (s**3 / 6, (3 * t**3 - 6 * t**2 + 4) / 6, (-3 * t**3 + 3 * t**2 + 3 * t + 1) / 6, t**3 / 6), 1.0
    if derivative == 1:
        return (-(s**2) / 2, 1.5 * t**2 - 2 * t, -1.5 * t**2 + t + 0.5, t**2 / 2), 1.0 / k_step
    return (s, 3 * t - 2, 1 - 3 * t, t), 1.0 / (k_step * k_step)


def bspline_basis(k: Array, k_start: float, k_step: float, n: int, derivative: int = 0) -> Array:
    """The n cubic B-splines on the uniform knots k_start + j k_step (j = 0 .. n + 3) at every k, shape (k.size, n).
    B_j is supported on [k_start + j k_step, k_start + (j + 4) k_step]; any combination of them is twice continuously
    differentiable and zero, with its first two derivatives, outside [k_start, k_start + (n + 3) k_step].
    `derivative` 0, 1 or 2 gives the value or the derivatives in k."""
    u = (np.asarray(k, dtype=np.float64) - k_start) / k_step
    interval = np.floor(u)
    t = u - interval
    pieces, scale = _pieces(t, k_step, derivative)
    out = np.zeros((u.size, n))
    rows = np.arange(u.size)
    m = interval.astype(np.intp) if u.size else np.zeros(0, dtype=np.intp)
    for offset, piece in zip((3, 2, 1, 0), pieces, strict=True):
        j = m - offset
        live = (j >= 0) & (j < n) & (u >= 0) & (u < n + 3)
        out[rows[live], j[live]] = piece[live] * scale
    return out


def bspline_values(k: Array, k_start: float, k_step: float, coefficients: Array, derivative: int = 0) -> Array:
    """sum_j coefficients[j] B_j(k) (or its derivative), `bspline_basis` @ coefficients without the matrix."""
    k = np.asarray(k, dtype=np.float64)
    n = coefficients.size
    u = (k - k_start) / k_step
    inside = (u >= 0) & (u < n + 3)
    out = np.zeros(k.shape)
    if not inside.any():
        return out
    u = u[inside]
    m = np.floor(u).astype(np.intp)
    t = u - m
    padded = np.concatenate([np.zeros(3), coefficients, np.zeros(3)])  # padded[j + 3] = coefficients[j]
    pieces, scale = _pieces(t, k_step, derivative)
    value = sum(padded[m - offset + 3] * piece for offset, piece in zip((3, 2, 1, 0), pieces, strict=True))
    out[inside] = value * scale
    return out


def bspline_support(k_start: float, k_step: float, n: int) -> tuple[float, float]:
    """Where a combination of `bspline_basis`'s n splines can be non-zero."""
    return k_start, k_start + (n + 3) * k_step


def butterfly_g(k: Array, w: Array, w1: Array, w2: Array) -> Array:
    """Gatheral's g(k) = (1 - k w' / (2 w))^2 - w'^2 / 4 (1 / w + 1 / 4) + w'' / 2 (Gatheral & Jacquier 2014, (2.1)):
    the slice is free of butterfly arbitrage where g >= 0 (and w > 0); -inf where w <= 0."""
    safe = np.where(w > 0, w, np.nan)
    g = (1.0 - k * w1 / (2.0 * safe)) ** 2 - 0.25 * w1 * w1 * (1.0 / safe + 0.25) + 0.5 * w2
    return np.where(w > 0, g, -np.inf)


def corrected_essvi(
    k: Array, theta: float, up: float, down: float, correction: tuple[float, float, Array] | None,
    derivatives: int = 0,
) -> tuple[Array, ...]:
    """An eSSVI slice plus its B-spline correction (k_start, k_step, coefficients), and derivatives in k."""
    terms = essvi_wings(k, theta, up, down, derivatives)
    if correction is None:
        return terms
    k_start, k_step, coefficients = correction
    return tuple(term + bspline_values(k, k_start, k_step, coefficients, d) for d, term in enumerate(terms))


CHECK_POINTS = 801  # points of the grid a correction is checked on, over its support


def correction_check_grid(corrections: list[tuple[float, float, Array]]) -> Array:
    """The grid on which corrected slices are checked: CHECK_POINTS over each correction's support, merged."""
    grids = [np.linspace(*bspline_support(a, h, c.size), CHECK_POINTS) for a, h, c in corrections]
    return np.unique(np.concatenate(grids))
