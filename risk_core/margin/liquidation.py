"""Liquidation distance and liquidation plan, both by full revaluation."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from risk_core.margin.instruments import Book
from risk_core.margin.risk_arrays import ClosingTrials, RiskArrays

Array = NDArray[np.float64]
IntArray = NDArray[np.intp]
_COARSE_STEPS = 40
_FINE_STEPS = 8
# Each refinement narrows the bracket 8-fold: to 1/40/64 of the range (0.04% of spot down, 0.4% up), where
# linear interpolation is off by (bracket^2 x curvature / 8): below 1e-6 of spot for any smooth book.
_REFINEMENTS = 2
_COARSE_AT = np.linspace(0.0, 1.0, _COARSE_STEPS + 1)  # fractions of the range
_FINE_AT = np.linspace(0.0, 1.0, _FINE_STEPS + 1)[1:-1]  # fractions of the bracket, interior points
_DEEPEST_FALL = -0.999  # a fall is searched to -99.9%
# The plan's budget in trials (one position closed, its groups re-margined): a 40-option book's whole greedy search
# is about 1,600 trials; a 2,000-option book's would be millions. Kept trials (ClosingTrials) make a step cost a few
# operations over the positions plus the closed position's slots; the budget is unchanged, so the plans are those
# it gave before.
_PLAN_TRIALS = 200_000
_STEP_TRIALS = 2_000
_TIE = 1e-9  # relative: liquidation candidates this close in surplus per dollar are equally good


def coarse_grid(max_rise: float) -> Array:
    """The first stage of the search in each direction: 2 x points, the falls to -99.9%, then the rises to
    `max_rise`."""
    return np.array([_DEEPEST_FALL, max_rise])[:, None] * _COARSE_AT[None, :]


def _first_crossings(
    surplus: Callable[[Array], Array], far: Array, coarse_values: Array | None = None
) -> list[float | None]:
    """Per direction d: the smallest |move| toward `far[d]` at which surplus turns negative, None if it never
    does. `surplus` maps moves (directions x points) to surplus values of the same shape, so every direction's
    grid is evaluated in one call per stage; each direction's points and brackets are exactly those of a search
    on its own (coarse grid, then refinements of the bracketing step, then linear interpolation). The surplus on
    the coarse grid may be given, when known without revaluing."""
    coarse = far[:, None] * _COARSE_AT[None, :]  # directions x points
    values = surplus(coarse) if coarse_values is None else coarse_values
    below = values < 0
    crossed: NDArray[np.bool_] = np.any(below, axis=1)
    j = np.where(crossed, below.argmax(axis=1), 1)  # first point below (1 where none: a placeholder bracket)
    rows = np.arange(far.size)
    x0, x1, y0, y1 = coarse[rows, j - 1], coarse[rows, j], values[rows, j - 1], values[rows, j]
    searched: NDArray[np.bool_] = crossed & (j > 0)
    if searched.any():
        for _ in range(_REFINEMENTS):
            fine = x0[:, None] + (x1 - x0)[:, None] * _FINE_AT[None, :]  # interior points, directions x points
            fine_values = surplus(fine)
            below = fine_values < 0
            m = np.where(below.any(axis=1), below.argmax(axis=1), _FINE_STEPS - 1)  # first below, else past the end
            moves_lo, moves_hi = m > 0, m < _FINE_STEPS - 1
            lo_at, hi_at = np.maximum(m - 1, 0), np.minimum(m, _FINE_STEPS - 2)
            x0, y0 = np.where(moves_lo, fine[rows, lo_at], x0), np.where(moves_lo, fine_values[rows, lo_at], y0)
            x1, y1 = np.where(moves_hi, fine[rows, hi_at], x1), np.where(moves_hi, fine_values[rows, hi_at], y1)
    found: list[float | None] = []
    for d in range(far.size):
        if not crossed[d]:
            found.append(None)
        elif not searched[d]:
            found.append(0.0)
        else:
            found.append(float(x0[d] + (x1[d] - x0[d]) * y0[d] / (y0[d] - y1[d])))
    return found


def liquidation_moves(
    book: Book, collateral: float, maintenance: float, *, max_rise: float
) -> dict[str, tuple[float | None, float | None]]:
    """Per underlying: relative spot moves (down, up), other underlyings held, at which the haircut collateral
    meets MM. MM is held at its current value; vols are held at the snapshot's. Both directions of every
    underlying are searched together, one revaluation of the book per stage."""
    underlyings = book.assets
    if not underlyings:
        return {}
    change = book.coarse_change(max_rise)  # underlyings x (falls, rises), when known
    known = None if change is None else change.reshape(2 * len(underlyings), -1) + (collateral - maintenance)
    valuation = book

    def net(moves: Array) -> Array:
        """Value less haircut per underlying (rows) at each column of `moves`, vols held: the pricers of the
        scenario revaluation (risk_core.margin.instruments.RowParams.revalue_blocks)."""
        sigma = valuation.option_sigma[:, None]
        revalued = valuation.revalue(moves, np.broadcast_to(sigma, (sigma.size, moves.shape[1])))
        return np.array([(values - haircuts).sum(axis=0) for values, haircuts in revalued])

    base_net: Array | None = None  # revalued on the first stage that needs it

    def surplus(moves: Array) -> Array:
        nonlocal base_net
        if base_net is None:
            base_net = net(np.zeros((len(underlyings), 1)))
        per_underlying = moves.reshape(len(underlyings), -1)  # its down moves, then its up moves
        return (net(per_underlying) - base_net + (collateral - maintenance)).reshape(moves.shape)

    found = _first_crossings(surplus, np.tile([_DEEPEST_FALL, max_rise], len(underlyings)), known)
    return {asset: (found[2 * u], found[2 * u + 1]) for u, asset in enumerate(underlyings)}


class PlanSearch(NamedTuple):
    fractions: Array  # closed per position
    restored: bool  # whether IM is restored
    bounded: bool  # whether the search was cut short by its budget (the plan is then a partial, greedy-capped one)


def liquidation_plan(
    arrays: RiskArrays,
    *,
    collateral: float,
    im_factor: float,
    closable: NDArray[np.bool_],
    release: Array,
    cost: Array,
) -> PlanSearch:
    """Fractions to close, chosen greedily by margin surplus gained per dollar of cost, until collateral
    covers IM again.

    Closing a fraction f of position i changes collateral by f x (release_i - cost_i) (haircut released when
    a holding is sold into stablecoin, less the close-out cost) and the margin by full revaluation. Each step
    tries every open position; under the grid model the trials are kept up to date as positions close
    (RiskArrays' ClosingTrials: a step recomputes only the closed position's groups), under fhs each trial updates
    only the tried position's groups (RiskArrays.margin_changes).

    The search's work is bounded: a step tries at most _STEP_TRIALS candidates (above that, those with the most
    standalone margin per dollar of cost) and the whole search at most _PLAN_TRIALS; past it the plan stops where
    it is, `bounded`, and IM is not restored.
    """
    n = closable.size
    weights = np.ones(n)
    proceeds = release - cost
    spent = 0
    priority: Array | None = None  # standalone margin per dollar of cost, when candidates must be capped
    kept = ClosingTrials(arrays, weights) if arrays.layout is None else None

    def surplus(position: IntArray, new_weight: Array) -> Array:
        """Surplus with position[c] at new_weight[c], every other position as it stands."""
        mm = arrays.margin_changes(weights, position, new_weight).maintenance
        closed = float((1.0 - weights) @ proceeds) + (weights[position] - new_weight) * proceeds[position]
        return collateral + closed - im_factor * mm

    def closing_surplus(position: IntArray) -> Array:
        """Surplus with position[c] closed, every other position as it stands."""
        nonlocal spent
        spent += position.size
        if kept is None:
            return surplus(position, np.zeros(position.size))
        closed = float((1.0 - weights) @ proceeds) + weights[position] * proceeds[position]
        return collateral + closed - im_factor * kept.maintenance(position)

    current = float(collateral - im_factor * arrays.margin(weights[None, :]).maintenance[0])
    while current < 0:
        open_positions = np.flatnonzero(closable & (weights > 0))
        if open_positions.size == 0:
            return PlanSearch(1.0 - weights, False, False)
        if spent >= _PLAN_TRIALS:
            return PlanSearch(1.0 - weights, False, True)
        capped = max(1, min(_STEP_TRIALS, _PLAN_TRIALS - spent))
        if open_positions.size > capped:
            if priority is None:
                priority = arrays.standalone_margins() / np.maximum(cost, 1e-12)
            open_positions = np.sort(open_positions[np.argsort(-priority[open_positions], kind="stable")[:capped]])
        gains = closing_surplus(open_positions) - current
        spend = np.maximum(cost[open_positions] * weights[open_positions], 1e-12)
        ratio = np.where(gains > 0, gains / spend, -np.inf)
        # ties (alike positions, or a perp and a future with the same delta per dollar of cost) go to the first
        # position, whatever the last bits of rounding say: the plan must not depend on how the sums were ordered
        tied = np.flatnonzero(ratio >= ratio.max() - _TIE * abs(ratio.max()))
        best = int(tied[0]) if tied.size else int(np.argmax(ratio))  # an infinite ratio has no tolerance band
        if gains[best] <= 0:
            return PlanSearch(1.0 - weights, False, priority is not None)
        i = int(open_positions[best])
        if current + gains[best] >= 0:
            weights[i] = _smallest_weight_cut(surplus, weights, i)
            return PlanSearch(1.0 - weights, True, priority is not None)
        weights[i] = 0.0
        if kept is not None:
            kept.close(i)
        current += float(gains[best])
    return PlanSearch(1.0 - weights, True, priority is not None)


def _smallest_weight_cut(surplus: Callable[[IntArray, Array], Array], weights: Array, i: int) -> float:
    """The largest remaining weight of position i that still restores a non-negative surplus."""
    keep_lo, keep_hi = 0.0, float(weights[i])  # surplus(keep_lo) >= 0 > surplus(keep_hi)
    for _ in range(3):
        grid = np.linspace(keep_lo, keep_hi, 33)
        ok = np.flatnonzero(surplus(np.full(grid.size, i, dtype=np.intp), grid) >= 0)
        if ok.size == 0:  # rounding at extreme magnitudes can lose even keep_lo: close down to it
            break
        last_ok = int(ok[-1])
        keep_lo, keep_hi = grid[last_ok], grid[min(last_ok + 1, grid.size - 1)]
    return float(keep_lo)
