"""Raw SVI per expiry, fitted by the quasi-explicit method inside its admissible domain.

Total variance w(k) = a + b (rho (k - m) + sqrt((k - m)^2 + sigma^2)), k = ln(K / F).

Quasi-explicit calibration (Zeliade Systems, "Quasi-explicit calibration of Gatheral's SVI model", 2009): for fixed
(m, sigma), with y = (k - m) / sigma the slice is linear in (a, d, c) = (a, rho b sigma, b sigma):

    w = a + d y + c sqrt(y^2 + 1)

and the admissible domain is a polytope: Zeliade's {|d| <= c, |d| <= 4 sigma - c, a <= max w_i} (|rho| <= 1 and
b (1 + |rho|) <= 4, the Rogers-Tehranchi bound), with their a >= 0 replaced by a + c - |d| >= 0. That is a
polyhedral inner bound of the exact condition of a non-negative minimum variance, a + sqrt(c^2 - d^2) >= 0
(c - |d| <= sqrt(c^2 - d^2) when |d| <= c), and far less restrictive: on the Deribit chains a >= 0 binds in every
slice. The inner problem, a weighted least squares over the polytope, is solved exactly: the minimum of a convex
quadratic over a polytope is the minimiser over the affine hull of one of its faces, and every such hull is the
solution set of at most 3 independent active constraints, so each candidate set is an equality-constrained least
squares (a KKT solve, in closed form) and the best feasible one is the minimum. Everything is batched over
candidate (m, sigma) pairs and faces with numpy; the outer problem is a grid over (m, sigma), then a batched
compass search (3 x 3 stencils) from the best admissible point.

Weights make the objective a vega-weighted squared error in implied vol: d sigma_iv = dw / (2 sigma_iv T), so
weighting squared total-variance errors by vega / (2 sigma_iv T)^2 approximates sum(vega x (sigma_fit -
sigma_quote)^2).

Butterfly arbitrage: the slice is free of it when g(k) >= 0 (Gatheral & Jacquier, "Arbitrage-free SVI volatility
surfaces", 2014):
    g(k) = (1 - k w' / (2 w))^2 - w'^2 / 4 (1 / w + 1 / 4) + w'' / 2
A candidate whose g is negative anywhere on the check grid is not chosen; the best admissible one is. The same
mechanism takes the calendar condition (see `calendar_free`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

GRID_M = 15  # outer grid: m values
GRID_SIGMA = 15  # outer grid: sigma values (log-spaced)
SEARCH_STEPS = 60  # compass-search steps after the grid
M_TOL = 2e-4  # stop when the stencil is finer than this in m
LOG_SIGMA_TOL = 2e-3  # and than this in log sigma
FEASIBILITY_TOL = 1e-10
G_TOL = -1e-9  # g(k) may dip below 0 by rounding only


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

    @property
    def min_total_variance(self) -> float:
        return self.a + self.b * self.sigma * float(np.sqrt(1.0 - self.rho * self.rho))


class SliceFitResult(NamedTuple):
    params: SVIParams
    objective: float  # weighted squared error, weights normalised to sum 1


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


# The admissible domain in x = (a, d, c): rows of C x <= e, e = e_sigma * sigma + e_amax * amax.
_C = np.array(
    [
        [0.0, 1.0, -1.0],  # d <= c                    (|rho| <= 1)
        [0.0, -1.0, -1.0],  # -d <= c
        [0.0, 1.0, 1.0],  # d + c <= 4 sigma           (b (1 + |rho|) <= 4)
        [0.0, -1.0, 1.0],  # c - d <= 4 sigma
        [-1.0, 1.0, -1.0],  # a + c - d >= 0           (a + c - |d| >= 0, so the minimum variance
        [-1.0, -1.0, -1.0],  # a + c + d >= 0           a + sqrt(c^2 - d^2) >= a + c - |d| is >= 0)
        [1.0, 0.0, 0.0],  # a <= max w
    ]
)
_E_SIGMA = np.array([0.0, 0.0, 4.0, 4.0, 0.0, 0.0, 0.0])
_E_AMAX = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0])
# Every set of at most 3 linearly independent constraint rows: the affine hulls of the polytope's faces are among
# them (a set that is not a face gives an infeasible or a dominated point, never a wrong minimum).
_FACES = tuple(
    rows
    for size in range(4)
    for rows in itertools.combinations(range(_C.shape[0]), size)
    if np.linalg.matrix_rank(_C[list(rows)]) == size
)


class _Candidates(NamedTuple):
    m: Array
    sigma: Array
    a: Array
    d: Array
    c: Array
    objective: Array


def _null_space(rows: Array) -> Array:
    """Orthonormal basis (3, 3 - r) of {x : rows x = 0}."""
    if rows.shape[0] == 0:
        return np.eye(3)
    _, sv, vt = np.linalg.svd(rows)
    rank = int(np.sum(sv > 1e-12))
    return np.asarray(vt[rank:].T, dtype=np.float64)


class _FaceGroup(NamedTuple):
    rows: NDArray[np.intp]  # (F, r) indices of the active constraints
    pinv: Array  # (F, 3, r): particular solution x_p = pinv e
    null: Array  # (F, 3, q): x = x_p + null u, q = 3 - r


def _face_groups() -> tuple[_FaceGroup, ...]:
    groups = []
    for r in range(4):
        faces = [f for f in _FACES if len(f) == r]
        rows = np.array(faces, dtype=np.intp).reshape(len(faces), r)
        pinv = np.stack([np.linalg.pinv(_C[list(f)]) if r else np.zeros((3, 0)) for f in faces])
        null = np.stack([_null_space(_C[list(f)]) for f in faces])
        groups.append(_FaceGroup(rows=rows, pinv=pinv, null=null))
    return tuple(groups)


_GROUPS = _face_groups()


def _solve_inner(k: Array, w: Array, weight: Array, m: Array, sigma: Array, amax: float) -> _Candidates:
    """Exact weighted least squares over the admissible domain, for every (m, sigma) candidate at once.

    For every set of active constraints x = x_p + N u, and u solves (N' G N) u = N' (h - G x_p): a q x q system
    with q <= 3, solved in closed form for q <= 2, batched over candidates and faces.
    """
    y = (k[None, :] - m[:, None]) / sigma[:, None]  # (N, n)
    z = np.sqrt(y * y + 1.0)
    wy, wz = weight * y, weight * z
    s1, sy, sz = weight.sum(), wy.sum(axis=1), wz.sum(axis=1)
    syy, syz, szz = (wy * y).sum(axis=1), (wy * z).sum(axis=1), (wz * z).sum(axis=1)
    gram = np.empty((m.size, 3, 3))
    gram[:, 0, 0] = s1
    gram[:, 0, 1] = gram[:, 1, 0] = sy
    gram[:, 0, 2] = gram[:, 2, 0] = sz
    gram[:, 1, 1] = syy
    gram[:, 1, 2] = gram[:, 2, 1] = syz
    gram[:, 2, 2] = szz
    gram += 1e-12 * (s1 + syy + szz)[:, None, None] * np.eye(3)[None]
    rhs = np.stack([np.full(m.size, float(np.dot(weight, w))), wy @ w, wz @ w], axis=1)  # (N, 3)
    const = float(np.dot(weight, w * w))
    e_all = _E_SIGMA[None, :] * sigma[:, None] + _E_AMAX[None, :] * amax  # (N, rows)

    xs, objs = [], []
    gram4 = gram[:, None]  # (N, 1, 3, 3): broadcasts over faces
    for group in _GROUPS:
        nf, q = group.null.shape[0], group.null.shape[2]
        if group.rows.shape[1]:
            e_f = e_all[:, group.rows]  # (N, F, r)
            x_p = np.matmul(group.pinv[None], e_f[..., None])[..., 0]  # (N, F, 3)
        else:
            x_p = np.zeros((m.size, nf, 3))
        if q == 0:
            x = x_p
        else:
            null_t = np.swapaxes(group.null, 1, 2)[None]  # (1, F, q, 3)
            mat = np.matmul(null_t, np.matmul(gram4, group.null[None]))  # N' G N: (N, F, q, q)
            resid = rhs[:, None, :] - np.matmul(x_p, gram)  # h - G x_p (G symmetric): (N, F, 3)
            vec = np.matmul(null_t, resid[..., None])[..., 0]  # (N, F, q)
            if q == 1:
                u = vec / mat[..., 0]
            elif q == 2:
                det = mat[..., 0, 0] * mat[..., 1, 1] - mat[..., 0, 1] * mat[..., 1, 0]
                u = np.stack(
                    [
                        (mat[..., 1, 1] * vec[..., 0] - mat[..., 0, 1] * vec[..., 1]) / det,
                        (mat[..., 0, 0] * vec[..., 1] - mat[..., 1, 0] * vec[..., 0]) / det,
                    ],
                    axis=-1,
                )
            else:
                u = np.linalg.solve(mat, vec[..., None])[..., 0]
            x = x_p + np.matmul(group.null[None], u[..., None])[..., 0]
        slack = x @ _C.T - e_all[:, None, :]
        feasible = np.all(slack <= FEASIBILITY_TOL * (1.0 + np.abs(e_all[:, None, :])), axis=2)
        obj = np.sum((np.matmul(x, gram) - 2.0 * rhs[:, None, :]) * x, axis=2) + const
        xs.append(x)
        objs.append(np.where(feasible & np.isfinite(obj), obj, np.inf))
    all_x = np.concatenate(xs, axis=1)  # (N, faces, 3)
    all_obj = np.concatenate(objs, axis=1)
    best = np.argmin(all_obj, axis=1)
    rows = np.arange(m.size)
    bx = all_x[rows, best]
    return _Candidates(m=m, sigma=sigma, a=bx[:, 0], d=bx[:, 1], c=bx[:, 2], objective=all_obj[rows, best])


def _to_raw(cands: _Candidates) -> tuple[Array, Array, Array]:
    """(a, b, rho) from (a, d, c): b = c / sigma, rho = d / c."""
    b = cands.c / cands.sigma
    rho = np.where(cands.c > 0, cands.d / np.where(cands.c > 0, cands.c, 1.0), 0.0)
    return cands.a, b, np.clip(rho, -1.0 + 1e-12, 1.0 - 1e-12)


def candidate_total_variance(cands: _Candidates, k: Array) -> Array:
    """Total variance of every candidate on a grid: (N, n)."""
    a, b, rho = _to_raw(cands)
    x = k[None, :] - cands.m[:, None]
    return a[:, None] + b[:, None] * (rho[:, None] * x + np.sqrt(x * x + cands.sigma[:, None] ** 2))


Admissible = Callable[[_Candidates], BoolArray]


def butterfly_free(check_k: Array) -> Admissible:
    """Predicate: g(k) >= 0 at every point of `check_k`."""

    def predicate(cands: _Candidates) -> BoolArray:
        a, b, rho = _to_raw(cands)
        g = compute_butterfly_g(check_k[None, :], a=a, b=b, rho=rho, m=cands.m, sigma=cands.sigma)
        return np.asarray(np.all(g >= G_TOL, axis=1), dtype=bool)

    return predicate


def calendar_free(check_k: Array, floor: Array, tol: float) -> Admissible:
    """Predicate: total variance at every point of `check_k` not below `floor` (the previous slice's) - tol."""

    def predicate(cands: _Candidates) -> BoolArray:
        return np.asarray(np.all(candidate_total_variance(cands, check_k) >= floor[None, :] - tol, axis=1), dtype=bool)

    return predicate


def _take(c: _Candidates, index: NDArray[np.intp]) -> _Candidates:
    return _Candidates(*(getattr(c, f)[index] for f in _Candidates._fields))


def _best_admissible(cands: _Candidates, predicates: Sequence[Admissible]) -> int | None:
    """Index of the admissible candidate of least objective; predicates run lazily, best objectives first."""
    order = np.argsort(cands.objective, kind="stable")
    order = order[np.isfinite(cands.objective[order])]
    start = 0
    for size in (8, 64, order.size):
        chunk = order[start : start + size]
        if chunk.size == 0:
            break
        ok = np.ones(chunk.size, dtype=bool)
        sub = _take(cands, chunk)
        for predicate in predicates:
            ok &= predicate(sub)
        if ok.any():
            return int(chunk[int(np.argmax(ok))])
        start += size
    return None


def compute_svi_fit(
    k: Array, total_variance: Array, weight: Array, *, admissible: Sequence[Admissible] = ()
) -> SliceFitResult | None:
    """The admissible-domain SVI of least weighted error among those meeting every `admissible` predicate (e.g.
    `butterfly_free(grid)`, `calendar_free(grid, previous)`); None when no candidate meets them."""
    k = np.asarray(k, dtype=np.float64)
    w = np.asarray(total_variance, dtype=np.float64)
    wt = np.asarray(weight, dtype=np.float64)
    wt = wt / wt.sum()
    amax = float(w.max())
    k_lo, k_hi = float(k.min()), float(k.max())
    span = max(k_hi - k_lo, 1e-4)
    m_axis = np.linspace(k_lo - 0.25 * span, k_hi + 0.25 * span, GRID_M)
    s_axis = np.geomspace(max(1e-4, 0.005 * span), max(2.0, 2.0 * span), GRID_SIGMA)
    mm, ss = np.meshgrid(m_axis, s_axis, indexing="ij")
    cands = _solve_inner(k, w, wt, mm.ravel(), ss.ravel(), amax)
    best_i = _best_admissible(cands, admissible)
    if best_i is None:
        return None
    best = _take(cands, np.array([best_i]))
    # Batched compass search from the best grid point: a 3 x 3 stencil in (m, log sigma) per step; move to the best
    # admissible improvement, halve the stencil when the centre is best. It follows curved valleys, which a
    # shrinking zoom grid does not.
    step_m = float(m_axis[1] - m_axis[0])
    step_ls = float(np.log(s_axis[1] / s_axis[0]))
    offsets = np.arange(-1, 2, dtype=np.float64)
    om, ol = (x.ravel() for x in np.meshgrid(offsets, offsets, indexing="ij"))
    for _ in range(SEARCH_STEPS):
        if step_m < M_TOL and step_ls < LOG_SIGMA_TOL:
            break
        stencil = _solve_inner(k, w, wt, best.m[0] + om * step_m, best.sigma[0] * np.exp(ol * step_ls), amax)
        better = stencil.objective < best.objective[0] * (1.0 - 1e-12)
        moved = False
        if better.any():
            sub = _take(stencil, np.flatnonzero(better))
            j = _best_admissible(sub, admissible)
            if j is not None:
                best = _take(sub, np.array([j]))
                moved = True
        if not moved:
            step_m, step_ls = step_m / 2.0, step_ls / 2.0
    a, b, rho = _to_raw(best)
    params = SVIParams(a=float(a[0]), b=float(b[0]), rho=float(rho[0]), m=float(best.m[0]), sigma=float(best.sigma[0]))
    return SliceFitResult(params=params, objective=float(best.objective[0]))
