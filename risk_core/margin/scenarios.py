"""Scenario sets per underlying: the spot x vol grid, dampened tails and skew tilts (docs/margin-model.md).

A scenario set is data only; revaluation applies it. The scenario axis is the last array axis everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from risk_core.schema.params import AssetScenarios, SkewParams

if TYPE_CHECKING:
    from risk_core.margin.fhs import HistoricalLayout

Array = NDArray[np.float64]

SKEW_NONE, SKEW_LINEAR_UP, SKEW_LINEAR_DOWN, SKEW_ABS = 0, 1, 2, 3
SKEW_NAMES = {SKEW_LINEAR_UP: "skew_linear_up", SKEW_LINEAR_DOWN: "skew_linear_down", SKEW_ABS: "skew_abs"}


@dataclass(frozen=True)
class ScenarioSet:
    spot_shock: Array  # relative spot move
    vol_shock: Array  # relative vol move before tenor scaling
    skew: NDArray[np.int8]  # SKEW_* code; spot and vol shocks are 0 there
    damp: Array  # multiplier on the scenario's P&L (tail cover)
    grid_spots: tuple[float, ...]  # the first len(grid_spots) x len(grid_vols) scenarios, row-major
    grid_vols: tuple[float, ...]
    history: HistoricalLayout | None = None  # set for the fhs model's historical scenarios (risk_core.margin.fhs)

    @property
    def size(self) -> int:
        return int(self.spot_shock.size)

    @property
    def grid_size(self) -> int:
        return len(self.grid_spots) * len(self.grid_vols)

    def kind(self, index: int) -> str:
        if self.history is not None:
            return "historical"
        if index < self.grid_size:
            return "grid"
        return "skew" if self.skew[index] != SKEW_NONE else "extreme"

    @cached_property
    def extremes(self) -> list[int]:
        """Indices of the extreme (tail) scenarios."""
        if self.history is not None:
            return []
        return [i for i in range(self.grid_size, self.size) if self.kind(i) == "extreme"]

    @cached_property
    def tilts(self) -> list[tuple[int, str]]:
        """Indices and names of the skew scenarios."""
        if self.history is not None:
            return []
        return [(i, SKEW_NAMES[int(self.skew[i])]) for i in range(self.grid_size, self.size) if self.kind(i) == "skew"]


def build_scenarios(spec: AssetScenarios, *, tail_cover: float, widen: float = 1.0) -> ScenarioSet:
    """The scenario set of one underlying; `widen` scales the grid's spot shocks (oracle dispersion)."""
    grid_spots = tuple(float(s) * widen for s in spec.spot_shocks)
    grid_vols = spec.vol_shocks
    spot = [s for s in grid_spots for _ in grid_vols]
    vol = [v for _ in grid_spots for v in grid_vols]
    skew = [SKEW_NONE] * len(spot)
    damp = [1.0] * len(spot)
    tail_vol = max(max(grid_vols), 0.0)
    for move in spec.extreme_shocks:
        spot.append(move)
        vol.append(tail_vol)
        skew.append(SKEW_NONE)
        damp.append(min(1.0, tail_cover / abs(move)))
    if spec.skew_enabled:
        for code in (SKEW_LINEAR_UP, SKEW_LINEAR_DOWN, SKEW_ABS):
            spot.append(0.0)
            vol.append(0.0)
            skew.append(code)
            damp.append(1.0)
    return ScenarioSet(
        spot_shock=np.array(spot, dtype=np.float64),
        vol_shock=np.array(vol, dtype=np.float64),
        skew=np.array(skew, dtype=np.int8),
        damp=np.array(damp, dtype=np.float64),
        grid_spots=grid_spots,
        grid_vols=tuple(grid_vols),
    )


def shocked_vols(
    sigma: Array,
    tenor_scale: Array,
    log_moneyness: Array,
    scenarios: ScenarioSet,
    *,
    min_vol_up: float,
    skew: SkewParams,
) -> Array:
    """Each option's vol in each scenario: options x scenarios.

    Vol shocks scale with tenor, shock x (reference / DTE)^power, and an up shock never leaves the vol below
    `min_vol_up`; skew scenarios tilt each vol by its log-moneyness, capped.
    """
    sig = sigma[:, None]
    growth = 1.0 + scenarios.vol_shock[None, :] * tenor_scale[:, None]
    # up shocks (growth > 1, where max(growth, 0) = growth) are floored at min_vol_up, others at -inf (no floor):
    # the per-column floor avoids a broadcast np.where, which costs more than the rest of the arithmetic
    floor = np.where(scenarios.vol_shock > 0, min_vol_up, -np.inf)
    shocked = np.maximum(sig * np.maximum(growth, 0.0), floor[None, :])
    tilted = np.flatnonzero(scenarios.skew)  # the few skew scenarios: only their columns are recomputed
    if not tilted.size:
        return shocked
    # a clip, as two ufuncs: np.clip's Python wrapper costs more than the arithmetic at this size
    linear_tilt = np.minimum(np.maximum(skew.linear_slope * log_moneyness, -skew.cap), skew.cap)[:, None]
    abs_tilt = np.minimum(skew.abs_slope * np.abs(log_moneyness), skew.cap)[:, None]
    code = scenarios.skew[tilted][None, :]
    tilt = np.where(
        code == SKEW_LINEAR_UP, linear_tilt, np.where(code == SKEW_LINEAR_DOWN, -linear_tilt, abs_tilt)
    )
    shocked[:, tilted] = sig * (1.0 + tilt)
    return shocked
