"""A joint eSSVI fit of every expiry of one asset, free of static arbitrage by construction.

Slice i is eSSVI (Hendriks & Martini, "The extended SSVI volatility surface", 2019) in its ATM total variance
theta_i and its wing slopes up_i = psi_i (1 + rho_i) / 2, down_i = psi_i (1 - rho_i) / 2:

    w_i(k) = (theta + (up - down) k + sqrt(((up + down) k)^2 + 2 theta (up - down) k + theta^2)) / 2

All slices are fitted in one constrained least squares (scipy's SLSQP) under constraints that make the surface
arbitrage-free at every k, not on a check grid:
- butterfly, per slice (Gatheral & Jacquier, "Arbitrage-free SVI volatility surfaces", 2014, Theorem 4.2):
  psi (1 + |rho|) = 2 max(up, down) <= 4 and psi^2 (1 + |rho|) = 2 psi max(up, down) <= 4 theta;
- calendar, between consecutive slices (the sufficient condition of Hendriks & Martini 2019, in the form Mingone
  2022 parametrises globally): up and down non-decreasing, and phi = psi / theta non-increasing, which with psi
  non-decreasing makes theta non-decreasing too.
The starting point (every slice at up = down = sqrt(theta) / 2 on the running maximum of the quoted ATM variance)
meets every constraint, so a fit always exists: no expiry is ever dropped.

The objective is the vega-weighted squared error in implied vol, through d iv = d w / (2 iv T); each quote's weight
is its vega times its quality (one-sided or mark-only quotes count less). A second pass lowers the weight of
quotes the first fit misses by more than `HUBER_VOL_POINTS` (Huber's weights), so a stray quote loses influence
without being deleted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import minimize
from threadpoolctl import threadpool_limits

Array = NDArray[np.float64]

HUBER_VOL_POINTS = 1.0  # residuals beyond this many vol points get weight HUBER / |residual|
LEE_MARGIN = 1e-9  # wing slopes stay this far below Lee's bound of 2
MIN_SLOPE = 1e-6  # and above 0, so that |rho| < 1 and psi > 0
MAX_ITERATIONS = 200
FTOL = 1e-10


@dataclass(frozen=True)
class SliceData:
    """One expiry's usable quotes: log-moneyness, market total variance, market implied vol and fit weight."""

    years: float
    k: Array
    total_variance: Array
    iv: Array
    weight: Array


@dataclass(frozen=True)
class ESSVIFit:
    """Fitted parameters per slice (in the order given) and the SLSQP outcome."""

    theta: Array
    up: Array
    down: Array
    converged: bool
    message: str

    @property
    def psi(self) -> Array:
        return self.up + self.down

    @property
    def rho(self) -> Array:
        return (self.up - self.down) / (self.up + self.down)


def _wings_and_gradient(k: Array, theta: Array, up: Array, down: Array) -> tuple[Array, Array, Array, Array]:
    """w(k) and its derivatives in theta, up and down (elementwise)."""
    psi, rho_psi = up + down, up - down
    root = np.sqrt((psi * k) ** 2 + 2.0 * theta * rho_psi * k + theta * theta)
    w = 0.5 * (theta + rho_psi * k + root)
    d_theta = 0.5 * (1.0 + (rho_psi * k + theta) / root)
    d_up = 0.5 * (k + (psi * k * k + theta * k) / root)
    d_down = 0.5 * (-k + (psi * k * k - theta * k) / root)
    return w, d_theta, d_up, d_down


def _atm_variance(s: SliceData) -> float:
    order = np.argsort(s.k)
    return float(np.interp(0.0, s.k[order], s.total_variance[order]))


class _Problem:
    """The stacked quotes of every slice, with the scaling that makes SLSQP's variables of order 1."""

    def __init__(self, slices: Sequence[SliceData]) -> None:
        self.n = len(slices)
        self.index = np.concatenate([np.full(s.k.size, i) for i, s in enumerate(slices)])
        self.k = np.concatenate([s.k for s in slices])
        self.w = np.concatenate([s.total_variance for s in slices])
        # d iv = d w / (2 iv T): squared total-variance errors scaled to squared vol points
        self.to_vol_points = 100.0 / np.concatenate([2.0 * s.iv * s.years for s in slices])
        self.theta0 = np.maximum.accumulate(np.array([_atm_variance(s) for s in slices]))
        root = np.sqrt(self.theta0)
        self.scale = np.concatenate([self.theta0, root, root])

    def split(self, z: Array) -> tuple[Array, Array, Array]:
        x = z * self.scale
        return x[: self.n], x[self.n : 2 * self.n], x[2 * self.n :]

    def objective(self, z: Array, weight: Array) -> tuple[float, Array]:
        theta, up, down = self.split(z)
        i = self.index
        w, d_theta, d_up, d_down = _wings_and_gradient(self.k, theta[i], up[i], down[i])
        r = (w - self.w) * self.to_vol_points
        f = float(np.sum(weight * r * r))
        g = 2.0 * weight * r * self.to_vol_points
        grad = np.concatenate([np.bincount(i, g * d, minlength=self.n) for d in (d_theta, d_up, d_down)])
        return f, grad * self.scale

    def constraints(self, z: Array) -> Array:
        theta, up, down = self.split(z)
        psi, root = up + down, np.sqrt(self.theta0)
        phi = psi / theta
        return np.concatenate(
            [
                (up[1:] - up[:-1]) / root[1:],
                (down[1:] - down[:-1]) / root[1:],
                (phi[:-1] - phi[1:]) * root[1:],
                (2.0 * theta - psi * up) / self.theta0,
                (2.0 * theta - psi * down) / self.theta0,
            ]
        )

    def constraints_jacobian(self, z: Array) -> Array:
        theta, up, down = self.split(z)
        n, psi, root = self.n, up + down, np.sqrt(self.theta0)
        jac = np.zeros((5 * n - 3, 3 * n))
        rows = np.arange(n - 1)
        for block, offset in ((0, n), (1, 2 * n)):  # up, then down, non-decreasing
            jac[block * (n - 1) + rows, offset + rows + 1] = 1.0 / root[1:]
            jac[block * (n - 1) + rows, offset + rows] = -1.0 / root[1:]
        r = 2 * (n - 1) + rows  # phi[i] - phi[i + 1] >= 0
        jac[r, rows] = -psi[:-1] / theta[:-1] ** 2 * root[1:]
        jac[r, rows + 1] = psi[1:] / theta[1:] ** 2 * root[1:]
        for offset in (n, 2 * n):
            jac[r, offset + rows] = root[1:] / theta[:-1]
            jac[r, offset + rows + 1] = -root[1:] / theta[1:]
        each = np.arange(n)
        for block, wing in ((0, up), (1, down)):  # 2 theta - psi wing >= 0
            r = 3 * (n - 1) + block * n + each
            jac[r, each] = 2.0 / self.theta0
            own, other = (n, 2 * n) if block == 0 else (2 * n, n)
            jac[r, own + each] = -(psi + wing) / self.theta0
            jac[r, other + each] = -wing / self.theta0
        return jac * self.scale[None, :]

    def bounds(self) -> list[tuple[float, float]]:
        theta_hi = 10.0 * float(self.w.max()) / self.theta0
        slope_lo, slope_hi = MIN_SLOPE / np.sqrt(self.theta0), (2.0 - LEE_MARGIN) / np.sqrt(self.theta0)
        return (
            [(1e-6, float(h)) for h in theta_hi]
            + [(float(lo), float(hi)) for lo, hi in zip(slope_lo, slope_hi, strict=True)] * 2
        )

    def residual_vol_points(self, z: Array) -> Array:
        theta, up, down = self.split(z)
        i = self.index
        w = _wings_and_gradient(self.k, theta[i], up[i], down[i])[0]
        return (w - self.w) * self.to_vol_points


def _feasible(theta: Array, up: Array, down: Array) -> tuple[Array, Array, Array]:
    """The nearest point that meets every constraint exactly: SLSQP stops within its tolerance of the boundary.
    Slopes are raised to their running maximum, then each theta to the least value its butterfly bound and the
    previous slice's phi allow; raising theta only loosens the constraints already met."""
    up = np.clip(np.maximum.accumulate(up), MIN_SLOPE, 2.0 - LEE_MARGIN)
    down = np.clip(np.maximum.accumulate(down), MIN_SLOPE, 2.0 - LEE_MARGIN)
    psi = up + down
    theta = np.maximum(theta, 0.5 * psi * np.maximum(up, down))
    for i in range(1, theta.size):
        theta[i] = max(theta[i], theta[i - 1] * psi[i] / psi[i - 1])
    return theta, up, down


def fit_essvi(slices: Sequence[SliceData]) -> ESSVIFit:
    """The eSSVI surface of least weighted squared IV error over `slices` (increasing expiry, each with a quote)."""
    problem = _Problem(slices)
    base = np.concatenate([s.weight for s in slices])
    base = base / base.sum()
    n = problem.n
    z = np.concatenate([np.ones(n), np.full(2 * n, 0.5)])
    constraints = [{"type": "ineq", "fun": problem.constraints, "jac": problem.constraints_jacobian}]
    weight = base
    result = None
    # SLSQP's linear algebra is on matrices of a few dozen rows: BLAS threads only add their start-up and spinning
    # (10x the CPU time on a loaded 2-core machine)
    with threadpool_limits(limits=1, user_api="blas"):
        for _ in range(2):
            result = minimize(
                problem.objective, z, args=(weight,), jac=True, method="SLSQP", bounds=problem.bounds(),
                constraints=constraints, options={"maxiter": MAX_ITERATIONS, "ftol": FTOL},
            )
            if not np.all(np.isfinite(result.x)):
                break  # keep the last finite point (at worst the feasible start); `converged` says it stopped
            z = result.x
            residual = np.abs(problem.residual_vol_points(z))
            huber = np.minimum(1.0, HUBER_VOL_POINTS / np.maximum(residual, 1e-12))
            weight = base * huber
            weight = weight / weight.sum()
    assert result is not None
    theta, up, down = _feasible(*problem.split(z))
    converged = bool(result.success) and bool(np.all(np.isfinite(result.x)))
    return ESSVIFit(theta=theta, up=up, down=down, converged=converged, message=str(result.message))
