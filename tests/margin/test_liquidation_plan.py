"""The liquidation plan updates only the tried position's groups at each step (RiskArrays.margin_changes): its
trials' margins are those of re-margining the whole book, and its plans those of the greedy search that
re-margins every open position at every step (written out here as the reference)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.batch_books import batch_market, random_wallet

from risk_core.margin.instruments import resolve_book
from risk_core.margin.liquidation import liquidation_plan
from risk_core.margin.risk_arrays import ClosingTrials, RiskArrays
from risk_core.schema.params import default_params

MARKET = batch_market()
PARAMS = default_params().with_overrides({"cross_underlying_credit": {"BTC-ETH": 0.4}})


def arrays_of(seed: int) -> RiskArrays:
    wallet = random_wallet(np.random.default_rng(seed), seed)
    return RiskArrays(resolve_book(wallet, MARKET, PARAMS), PARAMS)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32 - 1))
def test_changing_one_position_gives_the_margin_of_the_changed_weights(seed: int) -> None:
    arrays = arrays_of(seed)
    n = len(arrays.book.positions)
    rng = np.random.default_rng(seed)
    weights = rng.choice([0.0, 0.3, 1.0], size=n)
    position = rng.integers(0, n, size=12)
    new_weight = rng.choice([0.0, 0.5, 1.0, 2.0], size=12)
    trials = np.repeat(weights[None, :], 12, axis=0)
    trials[np.arange(12), position] = new_weight
    full, changed = arrays.margin(trials), arrays.margin_changes(weights, position, new_weight)
    assert changed.risk == pytest.approx(full.risk, rel=1e-9, abs=1e-7)
    assert changed.contingency == pytest.approx(full.contingency, rel=1e-9, abs=1e-7)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32 - 1))
def test_kept_trials_give_the_margin_of_closing_each_position_as_positions_close(seed: int) -> None:
    arrays = arrays_of(seed)
    n = len(arrays.book.positions)
    rng = np.random.default_rng(seed)
    weights = np.ones(n)
    kept = ClosingTrials(arrays, weights)
    for closed in rng.permutation(n)[: min(n - 1, 8)].tolist():
        open_positions = np.flatnonzero(weights > 0)
        trials = np.repeat(weights[None, :], open_positions.size, axis=0)
        trials[np.arange(open_positions.size), open_positions] = 0.0
        full = arrays.margin(trials).maintenance  # every trial re-margined in full
        assert kept.maintenance(open_positions) == pytest.approx(full, rel=1e-9, abs=1e-7)
        weights[closed] = 0.0
        kept.close(closed)


def reference_plan(arrays: RiskArrays, collateral: float, closable: np.ndarray, proceeds: np.ndarray,
                   cost: np.ndarray) -> np.ndarray:
    """The greedy plan re-margining every trial in full: close the open position gaining the most surplus per
    dollar of cost, until IM is covered; the last one only in part (the largest weight kept, on a 33-point grid
    refined three times)."""
    weights = np.ones(closable.size)

    def surplus(trials: np.ndarray) -> np.ndarray:
        return collateral + (1.0 - trials) @ proceeds - PARAMS.im_factor * arrays.margin(trials).maintenance

    current = float(surplus(weights[None, :])[0])
    while current < 0:
        open_positions = np.flatnonzero(closable & (weights > 0))
        if not open_positions.size:
            break
        trials = np.repeat(weights[None, :], open_positions.size, axis=0)
        trials[np.arange(open_positions.size), open_positions] = 0.0
        gains = surplus(trials) - current
        ratio = np.where(gains > 0, gains / np.maximum(cost[open_positions], 1e-12), -np.inf)
        best = int(np.flatnonzero(ratio >= ratio.max() - 1e-9 * abs(ratio.max()))[0])
        if gains[best] <= 0:
            break
        i = int(open_positions[best])
        if current + gains[best] >= 0:
            lo, hi = 0.0, 1.0
            for _ in range(3):
                grid = np.linspace(lo, hi, 33)
                trials = np.repeat(weights[None, :], 33, axis=0)
                trials[:, i] = grid
                last = int(np.flatnonzero(surplus(trials) >= 0)[-1])
                lo, hi = grid[last], grid[min(last + 1, 32)]
            weights[i] = lo
            break
        weights[i] = 0.0
        current += float(gains[best])
    return 1.0 - weights


@pytest.mark.parametrize("seed", [3, 11, 29, 47])
@pytest.mark.parametrize("short_of", [0.2, 0.6, 0.95])
def test_the_incremental_plan_is_the_full_remargin_plan(seed: int, short_of: float) -> None:
    arrays = arrays_of(seed)
    n = len(arrays.book.positions)
    rng = np.random.default_rng(seed)
    mm = float(arrays.margin(np.ones((1, n))).maintenance[0])
    collateral = (1.0 - short_of) * PARAMS.im_factor * mm  # short of IM by `short_of` of it
    closable = np.array([p is not None for p in arrays.book.primary]) & (rng.random(n) < 0.9)
    cost = rng.uniform(0.001, 0.01, n) * arrays.book.notional
    release = rng.uniform(0.0, 0.05, n) * arrays.book.notional
    fractions, restored, bounded = liquidation_plan(arrays, collateral=collateral, im_factor=PARAMS.im_factor,
                                           closable=closable, release=release, cost=cost)
    want = reference_plan(arrays, collateral, closable, release - cost, cost)
    assert not bounded
    assert fractions == pytest.approx(want, abs=1e-12)
    assert fractions.sum() > 0
    assert restored == (collateral + fractions @ (release - cost)
                        >= PARAMS.im_factor * float(arrays.margin((1.0 - fractions)[None, :]).maintenance[0]) - 1e-6)


