"""Liquidation distance and liquidation plan, both by full revaluation."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray
from scipy.special import ndtr

from risk_core.margin.book import ResolvedBook, RowParams
from risk_core.margin.risk_arrays import RiskArrays

Array = NDArray[np.float64]
_COARSE_STEPS = 40
_FINE_STEPS = 8
# Each refinement narrows the bracket 8-fold: to 1/40/64 of the range (0.04% of spot down, 0.4% up), where
# linear interpolation is off by (bracket^2 x curvature / 8): below 1e-6 of spot for any smooth book.
_REFINEMENTS = 2
_COARSE_AT = np.linspace(0.0, 1.0, _COARSE_STEPS + 1)  # fractions of the range
_FINE_AT = np.linspace(0.0, 1.0, _FINE_STEPS + 1)[1:-1]  # fractions of the bracket, interior points
_DEEPEST_FALL = -0.999  # a fall is searched to -99.9%
# The liquidation plan's work, in weights x margin groups revalued (one trial of n positions over G groups
# costs n x G): 25-40 ns each on a loaded 2-vCPU Xeon, so a plan stops within ~2 s whatever the book.
_PLAN_CELLS = 50_000_000
_STEP_CELLS = 10_000_000
_CHUNK_CELLS = 2_000_000  # revalued per margin call: bounds the plan's memory (~16 MB per product)
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


class _NetValueLadder:
    """A book's net value (value less haircut) per underlying as a function of its spot move alone, vols held at
    the snapshot's: what the liquidation search evaluates stage after stage. What does not depend on the move is
    computed once: linear rows reduce to a level and a slope per underlying, options to Black-76 on log-moneyness
    (puts by parity), LP ranges to their token amounts' coefficients, each valued net of its haircut."""

    def __init__(self, rows: RowParams, bounds: list[tuple[slice, slice, slice]]) -> None:
        n_under = len(bounds)
        self.n_under = n_under
        lin_owner, opt_owner, lp_owner = (
            np.repeat(np.arange(n_under), [b[block].stop - b[block].start for b in bounds]) for block in range(3)
        )
        cut = rows.lin_haircut  # a linear row's haircut grows with its value: haircut x (1 + move)
        self.lin_level = np.bincount(lin_owner, rows.lin_base - cut, minlength=n_under)
        self.lin_slope = np.bincount(lin_owner, rows.lin_slope - cut, minlength=n_under)
        self.opt_owner = opt_owner
        self.opt_own = (np.arange(n_under)[:, None] == opt_owner[None, :]).astype(np.float64)
        total_vol = np.maximum(rows.opt_sigma * np.sqrt(rows.opt_years), 1e-300)
        self.opt_log_fk = np.log(rows.opt_forward / rows.opt_strike)[:, None]
        self.opt_inv_vol = (1.0 / total_vol)[:, None]
        self.opt_half_vol = (0.5 * total_vol)[:, None]
        self.opt_vol = total_vol[:, None]
        qd = rows.opt_quantity * rows.opt_discount
        self.opt_qdf = (qd * rows.opt_forward)[:, None]
        self.opt_qdk = (qd * rows.opt_strike)[:, None]
        put = ~rows.opt_call
        # a put is the call less the forward contract: linear in the move, summed per underlying once
        self.put_level = np.bincount(opt_owner, np.where(put, qd * rows.opt_strike, 0.0), minlength=n_under)
        self.put_slope = np.bincount(opt_owner, np.where(put, qd * rows.opt_forward, 0.0), minlength=n_under)
        self.lp_owner = lp_owner
        self.lp_own = (np.arange(n_under)[:, None] == lp_owner[None, :]).astype(np.float64)
        held = (rows.lp_liquidity > 0).astype(np.float64)  # only a long range holds tokens to haircut
        self.lp_on0 = rows.lp_on_token0[:, None]
        self.lp_sqrt_price = np.sqrt(rows.lp_price)[:, None]
        self.lp_sqrt_lower = np.sqrt(rows.lp_lower)[:, None]
        self.lp_sqrt_upper = np.sqrt(rows.lp_upper)[:, None]
        self.lp_inv_sqrt_upper = 1.0 / self.lp_sqrt_upper
        self.lp_coef0 = (rows.lp_liquidity * rows.lp_price0 * (1.0 - held * rows.lp_haircut0))[:, None]
        self.lp_coef1 = (rows.lp_liquidity * rows.lp_price1 * (1.0 - held * rows.lp_haircut1))[:, None]

    def net(self, moves: Array) -> Array:
        """Net value per underlying (rows) at each column of `moves` (underlyings x columns, relative moves)."""
        growth = 1.0 + moves
        out = self.lin_level[:, None] + self.lin_slope[:, None] * moves
        if self.opt_owner.size:
            d1 = (self.opt_log_fk + np.log(growth)[self.opt_owner]) * self.opt_inv_vol + self.opt_half_vol
            calls = self.opt_qdf * ndtr(d1) * growth[self.opt_owner] - self.opt_qdk * ndtr(d1 - self.opt_vol)
            out += self.opt_own @ calls - self.put_slope[:, None] * growth + self.put_level[:, None]
        if self.lp_owner.size:
            root = np.sqrt(growth)[self.lp_owner]
            g = growth[self.lp_owner]
            on0 = self.lp_on0
            sqrt_p = np.minimum(
                np.maximum(np.where(on0, self.lp_sqrt_price * root, self.lp_sqrt_price / root), self.lp_sqrt_lower),
                self.lp_sqrt_upper,
            )
            amount0 = 1.0 / sqrt_p - self.lp_inv_sqrt_upper  # per unit of liquidity
            amount1 = sqrt_p - self.lp_sqrt_lower
            value = np.where(on0, amount0 * self.lp_coef0 * g + amount1 * self.lp_coef1,
                             amount0 * self.lp_coef0 + amount1 * self.lp_coef1 * g)
            out += self.lp_own @ value
        return out


def liquidation_moves(
    book: ResolvedBook, collateral: float, maintenance: float, *, max_rise: float
) -> dict[str, tuple[float | None, float | None]]:
    """Per underlying: relative spot moves (down, up), other underlyings held, at which the haircut collateral
    meets MM. MM is held at its current value; vols are held at the snapshot's. Both directions of every
    underlying are searched together, one revaluation of the book per stage."""
    underlyings = list(book.underlyings.values())
    if not underlyings:
        return {}
    change = book.valuation.coarse_change(max_rise)  # underlyings x (falls, rises), when known
    known = None if change is None else change.reshape(2 * len(underlyings), -1) + (collateral - maintenance)
    ladder: _NetValueLadder | None = None  # built on the first stage that revalues
    base_net = np.zeros((len(underlyings), 1))

    def surplus(moves: Array) -> Array:
        nonlocal ladder, base_net
        if ladder is None:
            ladder = _NetValueLadder(book.valuation.stacked, book.valuation.block_bounds())
            base_net = ladder.net(base_net)
        per_underlying = moves.reshape(len(underlyings), -1)  # its down moves, then its up moves
        return (ladder.net(per_underlying) - base_net + (collateral - maintenance)).reshape(moves.shape)

    found = _first_crossings(surplus, np.tile([_DEEPEST_FALL, max_rise], len(underlyings)), known)
    return {rows.asset: (found[2 * u], found[2 * u + 1]) for u, rows in enumerate(underlyings)}


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
    a holding is sold into stablecoin, less the close-out cost) and the margin by full revaluation.

    Each greedy step revalues the book once per open position (n trials of n weights), so a full plan costs
    n^3: its work is bounded. A step tries at most _STEP_CELLS worth of candidates (above that, those with the
    most standalone margin per dollar of cost), and the whole search at most _PLAN_CELLS; past it the plan stops
    where it is, `bounded`, and IM is not restored.
    """
    n = closable.size
    weights = np.ones(n)
    cells_per_trial = max(1, len(arrays.assets) * arrays.groups.shape[0] * len(arrays.book.positions))
    chunk = max(1, _CHUNK_CELLS // cells_per_trial)
    spent = 0
    priority: Array | None = None  # standalone margin per dollar of cost, when candidates must be capped

    def surplus(candidates: Array) -> Array:
        nonlocal spent
        spent += candidates.shape[0] * cells_per_trial
        mm = np.concatenate([arrays.margin(candidates[i : i + chunk]).maintenance
                             for i in range(0, candidates.shape[0], chunk)])
        closed = 1.0 - candidates
        return collateral + closed @ (release - cost) - im_factor * mm

    current = float(surplus(weights[None, :])[0])
    while current < 0:
        open_positions = np.flatnonzero(closable & (weights > 0))
        if open_positions.size == 0:
            return PlanSearch(1.0 - weights, False, False)
        if spent >= _PLAN_CELLS:
            return PlanSearch(1.0 - weights, False, True)
        capped = max(1, min(_STEP_CELLS, _PLAN_CELLS - spent) // cells_per_trial)
        if open_positions.size > capped:
            if priority is None:
                priority = arrays.standalone_margins() / np.maximum(cost, 1e-12)
            open_positions = np.sort(open_positions[np.argsort(-priority[open_positions], kind="stable")[:capped]])
        trials = np.repeat(weights[None, :], open_positions.size, axis=0)
        trials[np.arange(open_positions.size), open_positions] = 0.0
        gains = surplus(trials) - current
        spend = np.maximum(cost[open_positions] * weights[open_positions], 1e-12)
        ratio = np.where(gains > 0, gains / spend, -np.inf)
        # ties (alike positions, or a perp and a future with the same delta per dollar of cost) go to the first
        # position, whatever the last bits of rounding say: the plan must not depend on how the sums were ordered
        best = int(np.flatnonzero(ratio >= ratio.max() - _TIE * abs(ratio.max()))[0])
        if gains[best] <= 0:
            return PlanSearch(1.0 - weights, False, priority is not None)
        i = int(open_positions[best])
        if current + gains[best] >= 0:
            weights[i] = _smallest_weight_cut(surplus, weights, i)
            return PlanSearch(1.0 - weights, True, priority is not None)
        weights[i] = 0.0
        current += float(gains[best])
    return PlanSearch(1.0 - weights, True, priority is not None)


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
