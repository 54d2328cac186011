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
    per_scenario = worst_over_vols(pnl, layout.n_vol)
    filtered = expected_shortfall(-per_scenario[..., : layout.n_filtered], layout.confidence)
    stressed = expected_shortfall(-per_scenario[..., layout.n_filtered :], layout.confidence)
    floor = (1.0 - layout.stress_weight) * filtered + layout.stress_weight * stressed
    return np.maximum(np.maximum(filtered, floor), 0.0)


def worst_over_vols(pnl: Array, n_vol: int) -> Array:
    """Each scenario's P&L at its worst vol column (scenario-major columns, last axis). Elementwise minima of the
    vol columns: a reduction along an axis of 3 costs several times more."""
    by_vol = pnl.reshape(*pnl.shape[:-1], -1, n_vol)
    worst = by_vol[..., 0].copy()
    for v in range(1, n_vol):
        np.minimum(worst, by_vol[..., v], out=worst)
    return worst


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
    as_of_day = (market.as_of.astimezone(UTC).date() - _EPOCH).days
    return FilteredHistory(history, assets, params, last_day=as_of_day).scenario_sets(as_of_day)


def closes_known(history: MarketHistory, as_of_day: int) -> int:
    """How many of the history's closes are dated at or before `as_of_day` (days since 1970-01-01)."""
    return int(np.searchsorted(history.day_numbers, as_of_day, side="right"))


def long_enough(history: MarketHistory, params: RiskParams, as_of_day: int) -> bool:
    """Whether the history up to `as_of_day` gives the fhs model its minimum of filtered scenarios."""
    fhs = params.fhs
    return closes_known(history, as_of_day) - 1 - fhs.seed_days - fhs.margin_period_days + 1 >= fhs.min_scenarios


class FilteredHistory:
    """One EWMA pass over a history's returns, up to its close of `last_day`, from which the scenario sets of any
    as_of day up to it are read. The filter is causal (each return is scaled by the variance forecast made the
    day before it, and the seed is the first returns'), so the sets of a day are those built from the closes up to
    that day alone: a backtest filters its history once for all its dates.

    Raises InputError when the history lacks an asset, or is too short for `last_day`."""

    def __init__(self, history: MarketHistory, assets: Sequence[str], params: RiskParams, *, last_day: int) -> None:
        self.history, self.assets, self.params = history, list(assets), params
        fhs = params.fhs
        m = fhs.margin_period_days
        self._check_length(last_day)
        missing = [a for a in assets if a not in history.close]
        if missing:
            raise InputError(f"market.history.close.{missing[0]}", f"no history for {missing[0]}: fhs cannot margin it")
        known = self.known(last_day)
        self.returns = {a: np.diff(np.log(history.close_array[a][:known])) for a in assets}
        # per asset: the m-day sums of the standardised returns after the seed, and the variance forecast made
        # after each return (the forecast for the day after it)
        self._windows: dict[str, Array] = {}
        self._after: dict[str, Array] = {}
        for a, r in self.returns.items():
            variance, after = _ewma(r, fhs.ewma_lambda, fhs.seed_days)
            standardised = r[fhs.seed_days :] / np.sqrt(variance[fhs.seed_days :])
            self._windows[a] = _window_sums(standardised, m)
            self._after[a] = after
        self._raw = {a: _window_sums(r, m) for a, r in self.returns.items()}
        self._n_vol = vol_columns(params)
        self._grid_vols = {}
        for a in assets:
            vols = list(params.scenarios_for(a).vol_shocks)
            self._grid_vols[a] = np.array(vols + [0.0] * (self._n_vol - len(vols)))

    def known(self, as_of_day: int) -> int:
        return closes_known(self.history, as_of_day)

    def long_enough(self, as_of_day: int) -> bool:
        return long_enough(self.history, self.params, as_of_day)

    def scenario_count(self, as_of_day: int) -> int:
        """How many columns `scenario_sets(as_of_day)` has: filtered and stressed windows, x the vol columns."""
        fhs = self.params.fhs
        m = fhs.margin_period_days
        n_returns = self.known(as_of_day) - 1
        kept = min(n_returns - fhs.seed_days - m + 1, fhs.lookback_days)
        span = min(fhs.stress_window_days, n_returns - max(0, n_returns - fhs.lookback_days))
        return (kept + span - m + 1) * self._n_vol

    def _check_length(self, as_of_day: int) -> None:
        if not self.long_enough(as_of_day):
            fhs = self.params.fhs
            need = fhs.min_scenarios + fhs.seed_days + fhs.margin_period_days
            raise InputError(
                "market.history",
                f"{max(self.known(as_of_day), 0)} closes at or before as_of; the fhs model needs {need}",
            )

    def scenario_sets(self, as_of_day: int) -> dict[str, ScenarioSet]:
        """Each asset's scenario set on `as_of_day` (at most the `last_day` filtered), from the closes up to it.
        Raises InputError when they are too few."""
        self._check_length(as_of_day)
        fhs, history = self.params.fhs, self.history
        m = fhs.margin_period_days
        known = self.known(as_of_day)
        n_returns = known - 1
        n_windows = n_returns - fhs.seed_days - m + 1  # filtered m-day windows after the seed
        kept = min(n_windows, fhs.lookback_days)
        filtered_first = fhs.seed_days + n_windows - kept  # first return of the first kept filtered window
        lookback_first = max(0, n_returns - fhs.lookback_days)
        stress_first, stress_count = _stressed_window(
            {a: r[lookback_first:n_returns] for a, r in self.returns.items()}, m, fhs.stress_window_days
        )
        stress_first += lookback_first
        # per scenario: the index (in returns) of its window's first return
        starts = np.concatenate(
            [np.arange(filtered_first, filtered_first + kept), stress_first + np.arange(stress_count)]
        )
        ends = starts + m  # index in dates of the window's last close
        n_vol = self._n_vol
        layout = HistoricalLayout(
            day=history.day_numbers[ends],
            n_filtered=kept,
            n_vol=n_vol,
            confidence=fhs.confidence,
            stress_weight=fhs.stress_weight,
        )
        out = {}
        first_window = filtered_first - fhs.seed_days
        for asset in self.assets:
            today = max(float(self._after[asset][n_returns - 1]), _MIN_DAILY_VARIANCE)  # the forecast for as_of
            log_move = np.concatenate([
                self._windows[asset][first_window : first_window + kept] * math.sqrt(today),
                self._raw[asset][stress_first : stress_first + stress_count],
            ])
            vol_move = _vol_moves(history, asset, starts, ends)
            vol = np.where(np.isnan(vol_move)[:, None], self._grid_vols[asset][None, :], vol_move[:, None])
            size = starts.size * n_vol
            out[asset] = ScenarioSet(
                spot_shock=np.repeat(np.expm1(log_move), n_vol),
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
    before, after = _ewma(returns, decay, seed)
    return before, max(float(after[-1]), _MIN_DAILY_VARIANCE)


def _ewma(returns: Array, decay: float, seed: int) -> tuple[Array, Array]:
    """(the forecast made the day before each return, floored; the forecast made after each return, unfloored)."""
    start = max(float(np.mean(returns[:seed] ** 2)), _MIN_DAILY_VARIANCE)
    after, _ = lfilter([1.0 - decay], [1.0, -decay], returns**2, zi=[decay * start])
    before = np.concatenate([[start], after[:-1]])
    return np.maximum(before, _MIN_DAILY_VARIANCE), after


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
