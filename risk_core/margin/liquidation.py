"""Liquidation distance and liquidation plan, both by full revaluation."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from risk_core.margin.book import UnderlyingRows
from risk_core.margin.risk_arrays import RiskArrays

Array = NDArray[np.float64]
_COARSE_STEPS = 40
_FINE_STEPS = 8
_REFINEMENTS = 3  # each narrows the bracket 8-fold: 1/40/512 of the range, then linear interpolation


def _first_crossings(surplus: Callable[[Array], Array], far: Array) -> list[float | None]:
    """Per direction d: the smallest |move| toward `far[d]` at which surplus(move) turns negative, None if it
    never does. Every direction's grid is evaluated in the same surplus call (one revaluation per stage instead
    of one per direction); each direction's points and bracketing are exactly those of a search on its own."""
    n_dir = far.size
    coarse = np.linspace(0.0, far, _COARSE_STEPS + 1)  # points x directions
    values = surplus(coarse.T.ravel()).reshape(n_dir, -1).T
    found: list[float | None] = [None] * n_dir
    brackets: dict[int, list[float]] = {}  # direction -> [x0, x1, y0, y1], surplus(x0) >= 0 > surplus(x1)
    for d in range(n_dir):
        below = np.flatnonzero(values[:, d] < 0)
        if below.size == 0:
            continue
        j = int(below[0])
        if j == 0:
            found[d] = 0.0
            continue
        brackets[d] = [coarse[j - 1, d], coarse[j, d], values[j - 1, d], values[j, d]]
    if not brackets:
        return found
    searched = list(brackets)
    for _ in range(_REFINEMENTS):
        lo = np.array([brackets[d][0] for d in searched])
        hi = np.array([brackets[d][1] for d in searched])
        fine = np.linspace(lo, hi, _FINE_STEPS + 1)[1:-1]  # interior points x searched directions
        fine_values = surplus(fine.T.ravel()).reshape(len(searched), -1).T
        for col, d in enumerate(searched):
            x0, x1, y0, y1 = brackets[d]
            below = np.flatnonzero(fine_values[:, col] < 0)
            m = int(below[0]) if below.size else fine.shape[0]
            x0, y0 = (fine[m - 1, col], fine_values[m - 1, col]) if m > 0 else (x0, y0)
            x1, y1 = (fine[m, col], fine_values[m, col]) if m < fine.shape[0] else (x1, y1)
            brackets[d] = [x0, x1, y0, y1]
    for d, (x0, x1, y0, y1) in brackets.items():
        found[d] = float(x0 + (x1 - x0) * y0 / (y0 - y1))
    return found


def liquidation_moves(
    rows: UnderlyingRows, collateral: float, maintenance: float, *, max_rise: float
) -> tuple[float | None, float | None]:
    """Relative spot moves (down, up) of one underlying, others held, at which the haircut collateral meets MM.

    MM is held at its current value; vols are held at the snapshot's.
    """
    base_value, base_cut = rows.base()
    base_change = float(base_value.sum() - base_cut.sum())

    def surplus(moves: Array) -> Array:
        vols = np.broadcast_to(rows.opt_sigma[:, None], (rows.opt_sigma.size, moves.size))
        values, cuts = rows.revalue(moves, vols)
        return collateral + (values.sum(axis=0) - cuts.sum(axis=0) - base_change) - maintenance

    down, up = _first_crossings(surplus, np.array([-0.999, max_rise]))
    return down, up


def liquidation_plan(
    arrays: RiskArrays,
    *,
    collateral: float,
    im_factor: float,
    closable: NDArray[np.bool_],
    release: Array,
    cost: Array,
) -> tuple[Array, bool]:
    """Fractions to close, chosen greedily by margin surplus gained per dollar of cost, until collateral
    covers IM again.

    Closing a fraction f of position i changes collateral by f x (release_i - cost_i) (haircut released when
    a holding is sold into stablecoin, less the close-out cost) and the margin by full revaluation.
    Returns (fractions closed per position, whether IM is restored).
    """
    n = closable.size
    weights = np.ones(n)

    def surplus(candidates: Array) -> Array:
        mm = arrays.margin(candidates).maintenance
        closed = 1.0 - candidates
        return collateral + closed @ (release - cost) - im_factor * mm

    current = float(surplus(weights[None, :])[0])
    while current < 0:
        open_positions = np.flatnonzero(closable & (weights > 0))
        if open_positions.size == 0:
            return 1.0 - weights, False
        trials = np.repeat(weights[None, :], open_positions.size, axis=0)
        trials[np.arange(open_positions.size), open_positions] = 0.0
        gains = surplus(trials) - current
        spend = np.maximum(cost[open_positions] * weights[open_positions], 1e-12)
        best = int(np.argmax(np.where(gains > 0, gains / spend, -np.inf)))
        if gains[best] <= 0:
            return 1.0 - weights, False
        i = int(open_positions[best])
        if current + gains[best] >= 0:
            weights[i] = _smallest_weight_cut(surplus, weights, i)
            return 1.0 - weights, True
        weights[i] = 0.0
        current += float(gains[best])
    return 1.0 - weights, True


def _smallest_weight_cut(surplus: Callable[[Array], Array], weights: Array, i: int) -> float:
    """The largest remaining weight of position i that still restores a non-negative surplus."""
    keep_lo, keep_hi = 0.0, float(weights[i])  # surplus(keep_lo) >= 0 > surplus(keep_hi)
    for _ in range(3):
        grid = np.linspace(keep_lo, keep_hi, 33)
        trials = np.repeat(weights[None, :], grid.size, axis=0)
        trials[:, i] = grid
        ok = surplus(trials) >= 0
        last_ok = int(np.flatnonzero(ok)[-1])
        keep_lo, keep_hi = grid[last_ok], grid[min(last_ok + 1, grid.size - 1)]
    return float(keep_lo)
