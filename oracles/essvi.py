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

`fit_corrections` then gives the slices this surface misses by more than CORRECT_ABOVE_VOL_POINTS a correction:
cubic B-splines of total variance over the quoted range, zero outside it, fitted by constrained least squares
(butterfly g(k) and calendar order against both neighbours, on fine grids, by constraint generation) and kept only
if the corrected surface passes every check on dense grids (else scaled down, else dropped: the eSSVI surface
remains). docs/vol-surface.md, "Corrected slices".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.linalg import solve_triangular
from scipy.optimize import OptimizeResult, minimize
from threadpoolctl import threadpool_limits

from risk_core.pricing.smile import bspline_basis, butterfly_g, corrected_essvi, correction_check_grid, essvi_wings
from risk_core.pricing.vol_surface import SliceCorrection

Array = NDArray[np.float64]
Index = NDArray[np.intp]

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

    def gauss_newton(self, z: Array, weight: Array) -> Array:
        """2 J^T W J, the Gauss-Newton Hessian of the objective at z (J: the residuals' Jacobian in z)."""
        theta, up, down = self.split(z)
        i = self.index
        _, d_theta, d_up, d_down = _wings_and_gradient(self.k, theta[i], up[i], down[i])
        jac = np.zeros((self.k.size, 3 * self.n))
        rows = np.arange(self.k.size)
        for block, d in enumerate((d_theta, d_up, d_down)):
            jac[rows, block * self.n + i] = d * self.to_vol_points
        jac *= self.scale[None, :]
        return 2.0 * jac.T @ (weight[:, None] * jac)

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


def _scaling(hessian: Array) -> tuple[Array, Array]:
    """y = L^T z and z = L^-T y for L L^T = hessian; the identity if that is not positive definite and finite."""
    eye = np.eye(hessian.shape[0])
    try:
        chol = np.linalg.cholesky(hessian)
    except np.linalg.LinAlgError:
        return eye, eye
    to_z = np.asarray(solve_triangular(chol.T, eye, lower=False), dtype=np.float64)
    if not np.all(np.isfinite(to_z)):
        return eye, eye
    return np.asarray(chol.T, dtype=np.float64), to_z


def _preconditioned_slsqp(problem: _Problem, z: Array, weight: Array) -> tuple[OptimizeResult, Array]:
    """SLSQP from z in the variables y = L^T z, L L^T the Gauss-Newton Hessian at z (plus a small ridge): the
    quasi-Newton matrix SLSQP starts from, the identity, is then close to the true Hessian, and it converges in a
    few iterations rather than one per variable. The bounds on z become linear constraints on y."""
    hessian = problem.gauss_newton(z, weight)
    hessian += np.eye(z.size) * (1e-6 * float(np.trace(hessian)) / z.size + 1e-12)
    to_y, to_z = _scaling(hessian)
    lo, hi = (np.array(b) for b in zip(*problem.bounds(), strict=True))
    constraints = [
        {"type": "ineq", "fun": lambda y: problem.constraints(to_z @ y),
         "jac": lambda y: problem.constraints_jacobian(to_z @ y) @ to_z},
        {"type": "ineq", "fun": lambda y: np.concatenate([to_z @ y - lo, hi - to_z @ y]),
         "jac": lambda y: np.vstack([to_z, -to_z])},
    ]

    def objective(y: Array) -> tuple[float, Array]:
        f, grad = problem.objective(to_z @ y, weight)
        return f, to_z.T @ grad

    result = minimize(objective, to_y @ z, jac=True, method="SLSQP", constraints=constraints,
                      options={"maxiter": MAX_ITERATIONS, "ftol": FTOL})
    return result, np.clip(to_z @ result.x, lo, hi)


def fit_essvi(slices: Sequence[SliceData]) -> ESSVIFit:
    """The eSSVI surface of least weighted squared IV error over `slices` (increasing expiry, each with a quote)."""
    problem = _Problem(slices)
    base = np.concatenate([s.weight for s in slices])
    base = base / base.sum()
    n = problem.n
    z = np.concatenate([np.ones(n), np.full(2 * n, 0.5)])
    weight = base
    result = None
    # SLSQP's linear algebra is on matrices of a few dozen rows: BLAS threads only add their start-up and spinning
    # (10x the CPU time on a loaded 2-core machine)
    with threadpool_limits(limits=1, user_api="blas"):
        for _ in range(2):
            result, z_next = _preconditioned_slsqp(problem, z, weight)
            if not np.all(np.isfinite(z_next)):
                break  # keep the last finite point (at worst the feasible start); `converged` says it stopped
            z = z_next
            weight = base * _huber(problem.residual_vol_points(z))
            weight = weight / weight.sum()
    assert result is not None
    theta, up, down = _feasible(*problem.split(z))
    converged = bool(result.success) and bool(np.all(np.isfinite(result.x)))
    return ESSVIFit(theta=theta, up=up, down=down, converged=converged, message=str(result.message))


# Corrections of the slices eSSVI cannot follow (docs/vol-surface.md, "Corrected slices")
CORRECT_ABOVE_VOL_POINTS = 1.5  # a slice whose eSSVI misses its quotes by more (vega-weighted RMSE) is corrected
CORRECTION_SPLINES = 12  # cubic B-splines a correction
CORRECTION_CORE_WEIGHT = 0.01  # the correction spans the quotes of at least this share of the slice's largest weight
CORRECTION_MARGIN = 0.5  # and beyond them this share of their range (at least CORRECTION_MARGIN_SD ATM deviations)
CORRECTION_MARGIN_SD = 2.0
CORRECTION_SMOOTHING = 1e-4  # weight of the squared second differences of the coefficients (in units of theta)
BUTTERFLY_MARGIN = 1e-3  # g(k) >= this on the fit's constraint grid (or the eSSVI slice's own g, if less)
CALENDAR_MARGIN = 1e-3  # total variance of the later slice exceeds the earlier's by this share of its theta
CONSTRAINT_ROUNDS = 4  # fits, each with the points of the fine grid the previous one broke a constraint at
FINE_PER_STEP = 16  # fine grid points a knot interval
CORRECTION_FTOL = 1e-7  # SLSQP's tolerance on the objective, in squared vol points (some units to hundreds)
COARSE_PER_STEP = 1  # of which the first fit's constraints take these
VERIFY_K = np.linspace(-5.0, 5.0, 4001)
VERIFY_STEPS = 8  # interpolated slices checked between two expiries, at least one corrected
SHRINK = (1.0, 0.5, 0.25)  # corrections scaled by these, in turn, until the surface passes every check


@dataclass(frozen=True)
class Node:
    """One expiry of the surface: its eSSVI slice, and its quotes when it has any."""

    years: float
    theta: float
    up: float
    down: float
    data: SliceData | None


@dataclass(frozen=True)
class CorrectionFit:
    corrections: tuple[SliceCorrection | None, ...]
    scale: float  # the least share of a run of corrections kept (1: all as fitted; 0: a run was dropped)
    message: str


def _support(node: Node) -> tuple[float, float]:
    assert node.data is not None
    s = node.data
    core = s.k[s.weight >= CORRECTION_CORE_WEIGHT * s.weight.max()]
    lo, hi = float(core.min()), float(core.max())
    margin = max(CORRECTION_MARGIN * (hi - lo), CORRECTION_MARGIN_SD * float(np.sqrt(node.theta)))
    return lo - margin, hi + margin


def _huber(residual: Array) -> Array:
    """Huber's weights: 1 within HUBER_VOL_POINTS, HUBER_VOL_POINTS / |residual| beyond."""
    return np.minimum(1.0, HUBER_VOL_POINTS / np.maximum(np.abs(residual), 1e-12))


def _slice_rmse(node: Node) -> float:
    """How far the eSSVI slice is from its quotes: the RMSE in vol points under the quotes' weights times Huber's,
    so that one stray quote does not make a slice look like a shape eSSVI cannot follow."""
    assert node.data is not None
    s = node.data
    w = essvi_wings(s.k, node.theta, node.up, node.down)[0]
    r = (np.sqrt(np.maximum(w, 0.0) / s.years) - s.iv) * 100.0
    return float(np.sqrt(np.sum(s.weight * r * r) / np.sum(s.weight)))


def _slice_terms(node: Node, correction: SliceCorrection | None, k: Array) -> tuple[Array, ...]:
    """w, w' and w'' of the node's slice, corrected."""
    return corrected_essvi(k, node.theta, node.up, node.down, correction.as_tuple() if correction else None, 2)


def _surface_passes(nodes: Sequence[Node], corrections: Sequence[SliceCorrection | None]) -> bool:
    """Every check, on dense grids: g >= 0 on every corrected slice and on the linear interpolation in total
    variance between it and its neighbours, total variance ordered between neighbours."""
    present = [c for c in corrections if c is not None]
    k = np.unique(np.concatenate([VERIFY_K, correction_check_grid([c.as_tuple() for c in present])]))
    needed = {j for i, c in enumerate(corrections) if c is not None for j in (i - 1, i, i + 1) if j >= 0}
    terms = {j: _slice_terms(nodes[j], corrections[j], k) for j in needed}
    for i, c in enumerate(corrections):
        if c is None:
            continue
        if butterfly_g(k, *terms[i]).min() < 0.0:
            return False
        below = terms[i - 1][0] if i > 0 else np.zeros_like(k)
        if np.min(terms[i][0] - below) < 0.0 or np.min(terms[i + 1][0] - terms[i][0]) < 0.0:
            return False
        for j in (i - 1, i):  # the intervals on either side
            if j < 0 or (j == i - 1 and corrections[j] is not None):
                continue  # before the first slice: w1 T / T1 keeps g >= 0; an interval checked once
            for lam in np.arange(1, VERIFY_STEPS) / VERIFY_STEPS:
                mixed = [(1.0 - lam) * a + lam * b for a, b in zip(terms[j], terms[j + 1], strict=True)]
                if butterfly_g(k, mixed[0], mixed[1], mixed[2]).min() < 0.0:
                    return False
    return True


class _CorrectionProblem:
    """Least squares in the corrections' coefficients (scaled by theta) under butterfly and calendar constraints at
    given points: g(k) >= its floor on each chosen slice, total variance ordered on each pair of neighbours of
    which one is chosen (pair (-1, 0): the first slice above 0)."""

    def __init__(self, nodes: Sequence[Node], chosen: Sequence[int]) -> None:
        self.nodes, self.chosen, m = nodes, list(chosen), CORRECTION_SPLINES
        self.index = {i: j for j, i in enumerate(self.chosen)}
        self.layout: dict[int, tuple[float, float]] = {}
        self._design: dict[int, tuple[Array, Array]] = {}  # per slice: residual of the eSSVI, design matrix
        for i in self.chosen:
            node = nodes[i]
            assert node.data is not None
            s = node.data
            lo, hi = _support(node)
            step = (hi - lo) / (m + 3)
            self.layout[i] = (lo, step)
            to_vol_points = 100.0 / (2.0 * s.iv * s.years)
            r0 = (essvi_wings(s.k, node.theta, node.up, node.down)[0] - s.total_variance) * to_vol_points
            self._design[i] = (r0, bspline_basis(s.k, lo, step, m) * (to_vol_points * node.theta)[:, None])
        self.weigh({i: np.ones(nodes[i].data.k.size) for i in self.chosen})  # type: ignore[union-attr]
        self.pairs = sorted({p for i in self.chosen for p in ((i - 1, i), (i, i + 1))})
        # the fine grid over each chosen slice's support; constraints sit on points of these grids
        self.grid = {i: self.support_grid(i, FINE_PER_STEP) for i in self.chosen}
        self._cache: dict[tuple[str, int, int, int], Array] = {}
        self.butterfly_at: dict[int, Index] = {i: np.zeros(0, dtype=np.intp) for i in self.chosen}
        self.calendar_at: dict[tuple[tuple[int, int], int], Index] = {
            (p, i): np.zeros(0, dtype=np.intp) for p in self.pairs for i in p if i in self.index
        }

    def weigh(self, robust: dict[int, Array]) -> None:
        """The quadratic objective with each quote's weight times robust[i] (1, or Huber's weight): per slice the
        weighted mean squared error in vol points, plus the smoothing penalty."""
        m = CORRECTION_SPLINES
        size = len(self.chosen) * m
        self.hessian, self.linear, self.constant = np.zeros((size, size)), np.zeros(size), 0.0
        smooth = np.diff(np.eye(m), 2, axis=0)
        for i in self.chosen:
            data = self.nodes[i].data
            assert data is not None
            weight = data.weight * robust[i]
            weight = weight / weight.sum()
            r0, design = self._design[i]
            block = self.block(i)
            # the smoothing leaves straight lines free, and a slice with one quote does not pin them: a small ridge
            self.hessian[block, block] = design.T @ (weight[:, None] * design) + CORRECTION_SMOOTHING * 1e4 * (
                smooth.T @ smooth) + 1e-6 * np.eye(m)
            self.linear[block] = design.T @ (weight * r0)
            self.constant += float(np.sum(weight * r0 * r0))

    def residuals(self, z: Array) -> dict[int, Array]:
        """Each chosen slice's errors at its quotes in vol points (to first order), corrected by z."""
        return {i: self._design[i][0] + self._design[i][1] @ z[self.block(i)] for i in self.chosen}

    def block(self, i: int) -> slice:
        m = CORRECTION_SPLINES
        return slice(self.index[i] * m, (self.index[i] + 1) * m)

    def support_grid(self, i: int, per_step: int) -> Array:
        lo, step = self.layout[i]
        return lo + step * np.arange((CORRECTION_SPLINES + 3) * per_step + 1) / per_step

    def _on_grid(self, kind: str, slice_index: int, grid: int, d: int) -> Array:
        """Cached on grid `grid`: slice `slice_index`'s eSSVI derivative d ("essvi", 0 for slice -1), or its
        B-spline basis' derivative d times theta ("basis")."""
        key = (kind, slice_index, grid, d)
        if key not in self._cache:
            k = self.grid[grid]
            if kind == "basis":
                value = bspline_basis(k, *self.layout[slice_index], CORRECTION_SPLINES, d) * (
                    self.nodes[slice_index].theta)
            elif slice_index < 0:
                value = np.zeros_like(k)
            else:
                node = self.nodes[slice_index]
                value = essvi_wings(k, node.theta, node.up, node.down, d)[d]
            self._cache[key] = value
        return self._cache[key]

    def variance(self, i: int, z: Array, grid: int, d: int = 0) -> Array:
        """Slice i's total variance (derivative d) on grid `grid`, with the correction z gives it."""
        base = self._on_grid("essvi", i, grid, d)
        return base + self._on_grid("basis", i, grid, d) @ z[self.block(i)] if i in self.index else base

    def _floor(self, i: int) -> Array:
        essvi = [self._on_grid("essvi", i, i, d) for d in range(3)]
        return np.minimum(BUTTERFLY_MARGIN, butterfly_g(self.grid[i], *essvi))

    def violations(self, z: Array) -> tuple[dict[int, Index], dict[tuple[tuple[int, int], int], Index]]:
        """Points of the fine grids where a constraint fails (butterfly: g below half its floor)."""
        butterfly = {}
        for i in self.chosen:
            g = butterfly_g(self.grid[i], *(self.variance(i, z, i, d) for d in range(3)))
            butterfly[i] = np.flatnonzero(g < 0.5 * self._floor(i))
        calendar = {}
        for (a, b), grid in self.calendar_at:
            calendar[((a, b), grid)] = np.flatnonzero(self.variance(b, z, grid) < self.variance(a, z, grid))
        return butterfly, calendar

    def add(self, butterfly: dict[int, Index], calendar: dict[tuple[tuple[int, int], int], Index]) -> int:
        added = 0
        for i, at in butterfly.items():
            added += np.setdiff1d(at, self.butterfly_at[i]).size
            self.butterfly_at[i] = np.union1d(self.butterfly_at[i], at)
        for key, at in calendar.items():
            added += np.setdiff1d(at, self.calendar_at[key]).size
            self.calendar_at[key] = np.union1d(self.calendar_at[key], at)
        self._prepare()
        return added

    def _prepare(self) -> None:
        self._butterfly = []
        for i in self.chosen:
            at = self.butterfly_at[i]
            essvi = tuple(self._on_grid("essvi", i, i, d)[at] for d in range(3))
            basis = [self._on_grid("basis", i, i, d)[at] for d in range(3)]
            self._butterfly.append((i, self.grid[i][at], essvi, basis, self._floor(i)[at]))
        self._calendar = []
        for ((a, b), grid), at in self.calendar_at.items():
            scale = 1.0 / self.nodes[b].theta
            gap = (self._on_grid("essvi", b, grid, 0)[at] - self._on_grid("essvi", a, grid, 0)[at]) * scale
            base = gap - np.minimum(CALENDAR_MARGIN, gap)  # the eSSVI slices meet it: the start is feasible
            sides = [(i, sign, self._on_grid("basis", i, grid, 0)[at] * scale)
                     for i, sign in ((a, -1.0), (b, 1.0)) if i in self.index]
            self._calendar.append((base, sides))

    def objective(self, z: Array) -> tuple[float, Array]:
        hz = self.hessian @ z
        return float(z @ hz + 2.0 * self.linear @ z + self.constant), 2.0 * (hz + self.linear)

    def constraints(self, z: Array) -> Array:
        out = []
        for i, k, (w, w1, w2), basis, floor in self._butterfly:
            zi = z[self.block(i)]
            out.append(butterfly_g(k, w + basis[0] @ zi, w1 + basis[1] @ zi, w2 + basis[2] @ zi) - floor)
        for base, sides in self._calendar:
            out.append(base + sum((sign * (basis @ z[self.block(i)]) for i, sign, basis in sides), np.zeros(base.size)))
        return np.nan_to_num(np.concatenate(out), nan=-1.0, neginf=-1.0)

    def constraints_jacobian(self, z: Array) -> Array:
        rows = []
        for i, k, (w, w1, _), basis, _ in self._butterfly:
            zi = z[self.block(i)]
            v, v1 = np.maximum(w + basis[0] @ zi, 1e-12), w1 + basis[1] @ zi
            a = 1.0 - k * v1 / (2.0 * v)
            d_w = a * k * v1 / (v * v) + v1 * v1 / (4.0 * v * v)
            d_w1 = -a * k / v - 0.5 * v1 * (1.0 / v + 0.25)
            block = np.zeros((k.size, z.size))
            block[:, self.block(i)] = d_w[:, None] * basis[0] + d_w1[:, None] * basis[1] + 0.5 * basis[2]
            rows.append(block)
        for base, sides in self._calendar:
            block = np.zeros((base.size, z.size))
            for i, sign, side in sides:
                block[:, self.block(i)] += sign * side
            rows.append(block)
        return np.vstack(rows)

    def solve(self, z: Array) -> Array:
        """SLSQP from z, in the variables y = L^T z (H = L L^T the objective's Hessian): there the Hessian is the
        identity SLSQP's quasi-Newton update starts from, so it converges in a few iterations instead of dozens."""
        to_y, to_z = _scaling(self.hessian)

        def objective(y: Array) -> tuple[float, Array]:
            f, grad = self.objective(to_z @ y)
            return f, to_z.T @ grad

        result = minimize(
            objective, to_y @ z, jac=True, method="SLSQP",
            constraints=[{"type": "ineq", "fun": lambda y: self.constraints(to_z @ y),
                          "jac": lambda y: self.constraints_jacobian(to_z @ y) @ to_z}],
            options={"maxiter": MAX_ITERATIONS, "ftol": CORRECTION_FTOL},
        )
        return np.asarray(to_z @ result.x)

    def corrections(self, z: Array, shrink: float) -> tuple[SliceCorrection | None, ...]:
        out: list[SliceCorrection | None] = [None] * len(self.nodes)
        for i in self.chosen:
            lo, step = self.layout[i]
            out[i] = SliceCorrection(lo, step, shrink * self.nodes[i].theta * z[self.block(i)])
        return tuple(out)


def fit_corrections(nodes: Sequence[Node]) -> CorrectionFit:
    """Corrections of the slices whose eSSVI misses its quotes by more than CORRECT_ABOVE_VOL_POINTS (never the
    last expiry's, which the surface extrapolates), fitted jointly. The constraints start on a coarse grid; points of
    a fine grid where the solution breaks one are added and the fit is run again (at most CONSTRAINT_ROUNDS times).
    The corrections are kept only as far as the corrected surface passes every no-arbitrage check on dense grids
    (`_surface_passes`), else dropped: the eSSVI surface remains."""
    none: tuple[SliceCorrection | None, ...] = (None,) * len(nodes)
    chosen = [i for i, n in enumerate(nodes[:-1]) if n.data is not None and _slice_rmse(n) > CORRECT_ABOVE_VOL_POINTS]
    if not chosen:
        return CorrectionFit(none, 1.0, "no slice needs a correction")
    # runs of consecutive chosen slices share constraints; different runs do not, and are fitted apart
    runs = np.split(np.array(chosen), np.flatnonzero(np.diff(chosen) > 1) + 1)
    problems, rounds = [], 0
    with threadpool_limits(limits=1, user_api="blas"):
        for run in runs:
            problem = _CorrectionProblem(nodes, [int(i) for i in run])
            coarse = {i: np.arange(0, problem.grid[i].size, FINE_PER_STEP // COARSE_PER_STEP) for i in problem.chosen}
            problem.add(coarse, {key: coarse[key[1]] for key in problem.calendar_at})
            z = np.zeros(len(problem.chosen) * CORRECTION_SPLINES)
            # a first fit on the coarse constraints gives the errors of Huber's weights; then the robust fit, with
            # its constraints refined
            z = problem.solve(z)
            if not np.all(np.isfinite(z)):
                return CorrectionFit(none, 0.0, "correction fit failed (not finite)")
            problem.weigh({i: _huber(r) for i, r in problem.residuals(z).items()})
            for attempt in range(1, CONSTRAINT_ROUNDS + 1):
                z = problem.solve(z)
                if not np.all(np.isfinite(z)):
                    return CorrectionFit(none, 0.0, "correction fit failed (not finite)")
                rounds = max(rounds, attempt)
                if not problem.add(*problem.violations(z)):
                    break
            problems.append((problem, z))
    # each run is checked on its own (the checks of one run involve only its slices and their neighbours)
    kept: list[SliceCorrection | None] = list(none)
    scale = 1.0
    for problem, z in problems:
        shrink = next((f for f in SHRINK if _surface_passes(nodes, problem.corrections(z, f))), 0.0)
        scale = min(scale, shrink)
        if shrink > 0.0:
            for i, c in enumerate(problem.corrections(z, shrink)):
                kept[i] = c if c is not None else kept[i]
    message = f"{rounds} constraint rounds" if scale == 1.0 else (
        f"corrections scaled by down to {scale} to pass the no-arbitrage checks (0: some dropped, eSSVI kept)")
    return CorrectionFit(tuple(kept), scale, message)
