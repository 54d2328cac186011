"""Filtered historical simulation (params.model = "fhs"): scenarios from the market's own joint history.

The joint daily log returns of every underlying (on the history's common dates, so correlations are the market's)
are each divided by their EWMA volatility of the day and multiplied by today's (Barone-Adesi, Giannopoulos and
Vosper 1999, "VaR without correlations for portfolios of derivative securities"), then summed over the margin
period of risk. A book's margin is the expected shortfall of its loss over those scenarios, floored by the same
book under the stressed window's unscaled returns. Options move with the vol history where the market has one (a
DVOL-like ATM series), else each scenario is tried at every vol shock of the grid and the worst counts.

Columns of a historical scenario set are scenario-major: scenario j at vol column v is column j x n_vol + v; the
first n_filtered scenarios are the filtered ones, the rest the stressed window's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, timedelta

import numpy as np
from numpy.typing import NDArray
from scipy.signal import lfilter

from risk_core.errors import InputError
from risk_core.margin.scenarios import SKEW_NONE, ScenarioSet
from risk_core.schema.market import MarketHistory, MarketSnapshot
from risk_core.schema.params import RiskParams

Array = NDArray[np.float64]
_EPOCH = date(1970, 1, 1)
# numerical guard, not a model parameter: a flat stretch of a series has zero variance, and a return divided by it
_MIN_DAILY_VARIANCE = 1e-12


@dataclass(frozen=True)
class HistoricalLayout:
    """What the columns of a historical scenario set are (see the module's docstring)."""

    day: NDArray[np.int64]  # per scenario: the day (since 1970-01-01) its margin period ends
    n_filtered: int
    n_vol: int
    confidence: float
    stress_weight: float

    def scenario_of(self, column: int) -> int:
        return column // self.n_vol

    def date_of(self, column: int) -> date:
        return _EPOCH + timedelta(days=int(self.day[self.scenario_of(column)]))

    def is_stressed(self, column: int) -> bool:
        return self.scenario_of(column) >= self.n_filtered


def expected_shortfall(loss: Array, confidence: float) -> Array:
    """Mean of the worst ceil((1 - confidence) x n) of each row's n losses (last axis): the discrete expected
    shortfall (Acerbi and Tasche 2002, for n (1 - confidence) whole)."""
    n = loss.shape[-1]
    k = max(1, math.ceil(round((1.0 - confidence) * n, 9)))
    return np.partition(loss, n - k, axis=-1)[..., n - k :].mean(axis=-1)


def historical_loss(pnl: Array, layout: HistoricalLayout) -> Array:
    """Margin of each row of P&L (historical scenario columns last), >= 0: the expected shortfall of the filtered
    scenarios' losses, or (1 - w) x that + w x the stressed window's when larger. A scenario's P&L is its worst
    over the vol columns."""
    per_scenario = pnl.reshape(*pnl.shape[:-1], -1, layout.n_vol).min(axis=-1)
    filtered = expected_shortfall(-per_scenario[..., : layout.n_filtered], layout.confidence)
    stressed = expected_shortfall(-per_scenario[..., layout.n_filtered :], layout.confidence)
    floor = (1.0 - layout.stress_weight) * filtered + layout.stress_weight * stressed
    return np.maximum(np.maximum(filtered, floor), 0.0)


def worst_scenarios(pnl: Array, layout: HistoricalLayout, count: int) -> list[tuple[date, float, bool]]:
    """The `count` worst scenarios of one P&L row: (date, P&L at its worst vol column, from the stressed window)."""
    per_scenario = pnl.reshape(-1, layout.n_vol).min(axis=-1)
    order = np.argsort(per_scenario, kind="stable")[:count]
    return [
        (layout.date_of(int(j) * layout.n_vol), float(per_scenario[j]), bool(j >= layout.n_filtered)) for j in order
    ]


def vol_columns(params: RiskParams) -> int:
    """How many vol columns each historical scenario has: the most vol shocks any underlying's grid has."""
    counts = [len(dict.fromkeys([0.0, *c.vol_shocks])) for c in params.classes.values()]
    counts += [len(dict.fromkeys([0.0, *o.vol_shocks])) for o in params.scenarios.values() if o.vol_shocks]
    return max(counts)


def historical_scenario_sets(
    market: MarketSnapshot, assets: Sequence[str], params: RiskParams
) -> dict[str, ScenarioSet]:
    """Each underlying's historical scenario set, from the market's history up to its `as_of` (a close dated D is
    the price at 00:00 UTC of D). Raises InputError when the history is missing, lacks an asset or is too short."""
    history = market.history
    if history is None:
        raise InputError("market.history", "required by params.model = fhs: the daily closes of every underlying")
    fhs = params.fhs
    m = fhs.margin_period_days
    as_of_day = (market.as_of.astimezone(UTC).date() - _EPOCH).days
    known = int(np.searchsorted(history.day_numbers, as_of_day, side="right"))  # closes at or before as_of
    n_returns = known - 1
    n_windows = n_returns - fhs.seed_days - m + 1  # filtered m-day windows after the seed
    if n_windows < fhs.min_scenarios:
        raise InputError(
            "market.history",
            f"{max(known, 0)} closes at or before as_of; the fhs model needs {fhs.min_scenarios + fhs.seed_days + m}",
        )
    missing = [a for a in assets if a not in history.close]
    if missing:
        raise InputError(f"market.history.close.{missing[0]}", f"no history for {missing[0]}: fhs cannot margin it")
    returns = {a: np.diff(np.log(history.close_array[a][:known])) for a in assets}
    kept = min(n_windows, fhs.lookback_days)
    filtered_first = fhs.seed_days + n_windows - kept  # first return of the first kept filtered window
    lookback_first = max(0, n_returns - fhs.lookback_days)
    stress_first, stress_count = _stressed_window(
        {a: r[lookback_first:] for a, r in returns.items()}, m, fhs.stress_window_days
    )
    stress_first += lookback_first
    # per scenario: the index (in returns) of its window's first return
    starts = np.concatenate([np.arange(filtered_first, filtered_first + kept), stress_first + np.arange(stress_count)])
    ends = starts + m  # index in dates of the window's last close
    layout = HistoricalLayout(
        day=history.day_numbers[ends],
        n_filtered=kept,
        n_vol=vol_columns(params),
        confidence=fhs.confidence,
        stress_weight=fhs.stress_weight,
    )
    out = {}
    for asset in assets:
        r = returns[asset]
        log_move = np.concatenate([
            _filtered_windows(r, fhs.ewma_lambda, fhs.seed_days, m)[filtered_first - fhs.seed_days :],
            _window_sums(r, m)[stress_first : stress_first + stress_count],
        ])
        grid_vols = list(params.scenarios_for(asset).vol_shocks)
        grid_vols += [0.0] * (layout.n_vol - len(grid_vols))
        vol_move = _vol_moves(history, asset, starts, ends)
        vol = np.where(np.isnan(vol_move)[:, None], np.array(grid_vols)[None, :], vol_move[:, None])
        size = starts.size * layout.n_vol
        out[asset] = ScenarioSet(
            spot_shock=np.repeat(np.expm1(log_move), layout.n_vol),
            vol_shock=vol.reshape(size),
            skew=np.full(size, SKEW_NONE, dtype=np.int8),
            damp=np.ones(size),
            grid_spots=(),
            grid_vols=(),
            history=layout,
        )
    return out


def ewma_variance(returns: Array, decay: float, seed: int) -> tuple[Array, float]:
    """(variance forecast of each return made the day before it, the forecast for tomorrow): RiskMetrics' EWMA
    s2[t+1] = decay s2[t] + (1 - decay) r[t]^2, seeded with the mean square of the first `seed` returns."""
    start = max(float(np.mean(returns[:seed] ** 2)), _MIN_DAILY_VARIANCE)
    after, _ = lfilter([1.0 - decay], [1.0, -decay], returns**2, zi=[decay * start])
    before = np.concatenate([[start], after[:-1]])
    return np.maximum(before, _MIN_DAILY_VARIANCE), max(float(after[-1]), _MIN_DAILY_VARIANCE)


def _filtered_windows(returns: Array, decay: float, seed: int, days: int) -> Array:
    """Log moves over each `days`-day window of returns after the seed, each return rescaled from its own EWMA
    volatility to tomorrow's."""
    variance, today = ewma_variance(returns, decay, seed)
    standardised = returns[seed:] / np.sqrt(variance[seed:])
    return _window_sums(standardised, days) * math.sqrt(today)


def _window_sums(values: Array, days: int) -> Array:
    """Sum of each run of `days` consecutive values (the window starting at each index)."""
    total = np.concatenate([[0.0], np.cumsum(values)])
    return total[days:] - total[:-days]


def _stressed_window(returns: dict[str, Array], days: int, length: int) -> tuple[int, int]:
    """(first window start, number of `days`-day windows) of the stretch of `length` returns with the largest
    realised variance summed over the underlyings: the stressed period, fixed by the market, not the book. The
    caller passes the lookback's returns: a market's early, illiquid years do not set today's floor forever."""
    squared = sum(r**2 for r in returns.values())
    n = next(iter(returns.values())).size
    span = min(length, n)
    load = _window_sums(np.asarray(squared, dtype=np.float64), span)
    first = int(np.argmax(load))
    return first, span - days + 1


def _vol_moves(history: MarketHistory, asset: str, starts: NDArray[np.intp], ends: NDArray[np.intp]) -> Array:
    """Relative change of the asset's ATM vol over each scenario's window, NaN where not recorded."""
    iv = history.atm_iv_array.get(asset)
    if iv is None:
        return np.full(starts.size, np.nan)
    return iv[ends] / iv[starts] - 1.0
