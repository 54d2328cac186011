"""Acceptance: the eSSVI surface fitted to the two real Deribit chains of reference_data/market/deribit/ (calm
2026-01-05, sell-off 2026-02-05), against every target of issue 14.

* Repricing: the surface (as risk_core reads it) reprices Deribit's own mark implied vols of the out-of-the-money
  options with |delta| >= 0.02 with a vega-weighted RMSE of at most 1 vol point per currency on the calm day and 2
  on the sell-off day; any single expiry within 3 on both.
  Deribit's `implied_volatility` and `vega` columns are independent of the fit, which sees only bids, asks, marks
  and futures.
* No expiry dropped: every expiry of the file more than an hour out has a fitted slice.
* No arbitrage, checked here with formulas of the test's own (not the fitter's): g(k) >= 0 for |k| <= 5 on every
  slice (its eSSVI parameters and, where it has one, its B-spline correction) and on the surface between and beyond
  them, and total variance non-decreasing in T for every k in [-3, 3],
  from before the first expiry to a year past the last.
Speed is a benchmark (benchmarks/bench_snapshot.py), not a test. The chain is read from the CSV here,
independently of the venue servers.
"""

from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from scipy.interpolate import BSpline

import reference_data
from oracles.surface import OptionQuote, SurfaceFit, VenueChain, compute_surface, vega_weighted_rmse
from risk_core.pricing.vol_surface import SECONDS_PER_YEAR, ResolvedSurface
from risk_core.schema.market import ESSVICorrection, ESSVISurface

DERIBIT = reference_data.path("market", "deribit")
CALM = DERIBIT / "deribit_options_snapshot_20260105T153329Z.csv"
SELL_OFF = DERIBIT / "deribit_options_snapshot_20260205T212937Z.csv"
RMSE_LIMIT = {CALM.name: 1.0, SELL_OFF.name: 2.0}  # vol points, per currency
EXPIRY_LIMIT = 3.0  # vol points, any single expiry
MIN_ABS_DELTA = 0.02
K_BUTTERFLY = np.linspace(-5.0, 5.0, 4001)
K_CALENDAR = np.linspace(-3.0, 3.0, 601)


def _num(text: str) -> float | None:
    return float(text) if text not in ("", None) and float(text) > 0 else None


def read_chain(path: Path, currency: str) -> tuple[VenueChain, list[dict[str, str]]]:
    with path.open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["currency"] == currency]
    as_of = datetime.fromisoformat(rows[0]["timestamp"])
    quotes, futures = [], {}
    for r in rows:
        expiry = datetime.fromisoformat(r["expiry_datetime"])
        quotes.append(
            OptionQuote(
                venue="deribit", instrument=r["instrument_name"], expiry=expiry, strike=float(r["strike"]),
                is_call=r["option_type"] == "call", bid=_num(r["bid_price"]), ask=_num(r["ask_price"]),
                mark=_num(r["mark_price"]), underlying_price=float(r["underlying"]), inverse=True,
            )
        )
        if not r["futures_instrument_name"].startswith("SYN."):
            futures[expiry] = float(r["futures_price"])
    return VenueChain(venue="deribit", asset=currency, as_of=as_of, quotes=tuple(quotes), futures=futures), rows


_FITS: dict[tuple[str, str], tuple[SurfaceFit, list[dict[str, str]]]] = {}


def fitted(path: Path, currency: str) -> tuple[SurfaceFit, list[dict[str, str]]]:
    key = (path.name, currency)
    if key not in _FITS:
        chain, rows = read_chain(path, currency)
        _FITS[key] = (compute_surface([chain], asset=currency, as_of=chain.as_of), rows)
    return _FITS[key]


CASES = [(p, c) for p in (CALM, SELL_OFF) for c in ("BTC", "ETH")]
IDS = [f"{p.stem[-16:-8]}-{c}" for p, c in CASES]


@pytest.fixture(params=CASES, ids=IDS)
def case(request: pytest.FixtureRequest) -> tuple[Path, str]:
    return request.param  # type: ignore[no-any-return]


def _resolved(fit: SurfaceFit) -> ResolvedSurface:
    assert fit.status == "ok" and isinstance(fit.surface, ESSVISurface)
    return ResolvedSurface(fit.surface, fit.as_of, lambda e: fit.forwards[e])


def repricing_errors(fit: SurfaceFit, rows: list[dict[str, str]]) -> tuple[float, dict[str, float]]:
    """Vega-weighted RMSE against Deribit's marks: per currency, and per expiry."""
    surface = _resolved(fit)
    strike = np.array([float(r["strike"]) for r in rows])
    expiry = [datetime.fromisoformat(r["expiry_datetime"]) for r in rows]
    forward = np.array([fit.forwards[e] for e in expiry])
    years = np.array([(e - fit.as_of).total_seconds() / SECONDS_PER_YEAR for e in expiry])
    is_call = np.array([r["option_type"] == "call" for r in rows])
    delta = np.array([float(r["delta"]) for r in rows])
    mark_iv = np.array([float(r["implied_volatility"]) for r in rows])
    vega = np.array([float(r["vega"]) for r in rows])
    chosen = (is_call == (strike >= forward)) & (np.abs(delta) >= MIN_ABS_DELTA)
    assert chosen.sum() > 200
    model_iv = surface.implied_vol(years, np.log(strike / forward))
    total = vega_weighted_rmse(model_iv[chosen], mark_iv[chosen], vega[chosen])
    names = np.array([f"{e:%Y-%m-%d}" for e in expiry])
    per_expiry = {
        name: vega_weighted_rmse(model_iv[chosen & (names == name)], mark_iv[chosen & (names == name)],
                                 vega[chosen & (names == name)])
        for name in sorted(set(names[chosen]))
    }
    return total, per_expiry


def test_fit_reprices_deribit_marks_per_currency(case: tuple[Path, str]) -> None:
    path, currency = case
    fit, rows = fitted(path, currency)
    total, _ = repricing_errors(fit, rows)
    assert total <= RMSE_LIMIT[path.name], f"{currency}: vega-weighted RMSE {total:.3f} vol points"


@pytest.mark.parametrize("path", [CALM, SELL_OFF], ids=["calm", "sell-off"])
@pytest.mark.parametrize("currency", ["BTC", "ETH"])
def test_every_expiry_within_three_vol_points(path: Path, currency: str) -> None:
    fit, rows = fitted(path, currency)
    _, per_expiry = repricing_errors(fit, rows)
    worst = max(per_expiry, key=per_expiry.__getitem__)
    assert per_expiry[worst] <= EXPIRY_LIMIT, f"{worst}: {per_expiry[worst]:.2f} vol points"


def test_no_expiry_is_dropped(case: tuple[Path, str]) -> None:
    path, currency = case
    fit, rows = fitted(path, currency)
    listed = {
        datetime.fromisoformat(r["expiry_datetime"]) for r in rows
        if (datetime.fromisoformat(r["expiry_datetime"]) - fit.as_of).total_seconds() > 3600
    }
    assert len(listed) >= 10
    assert {s.expiry for s in fit.slices} == listed
    assert all(s.status == "fitted" and s.rmse_vol_points is not None for s in fit.slices)
    assert isinstance(fit.surface, ESSVISurface) and [s.expiry for s in fit.surface.essvi] == sorted(listed)


def essvi_variance(k: np.ndarray, theta: np.ndarray, rho: np.ndarray, psi: np.ndarray) -> np.ndarray:
    """Gatheral & Jacquier's SSVI written out: w = theta / 2 (1 + rho phi k + sqrt((phi k + rho)^2 + 1 - rho^2))."""
    phi = psi / theta
    return theta / 2 * (1 + rho * phi * k + np.sqrt((phi * k + rho) ** 2 + 1 - rho**2))


def correction_variance(k: np.ndarray, correction: ESSVICorrection | None) -> np.ndarray:
    """A slice's correction written out independently: scipy's B-spline (de Boor) on the uniform knots, padded with
    zero coefficients, so that it is zero outside its knots."""
    if correction is None:
        return np.zeros_like(k)
    n = len(correction.coefficients)
    knots = correction.k_start + correction.k_step * np.arange(-3, n + 7)
    coefficients = np.concatenate([np.zeros(3), correction.coefficients, np.zeros(3)])
    return np.nan_to_num(BSpline(knots, coefficients, 3, extrapolate=False)(k))


def butterfly_g(w: np.ndarray, dk: float, k: np.ndarray) -> np.ndarray:
    """Gatheral's g(k) from w on a uniform grid, derivatives by central differences."""
    w1 = np.gradient(w, dk, edge_order=2)
    w2 = np.gradient(w1, dk, edge_order=2)
    return (1 - k * w1 / (2 * w)) ** 2 - w1**2 / 4 * (1 / w + 0.25) + w2 / 2


def test_every_slice_is_butterfly_free_for_k_within_5(case: tuple[Path, str]) -> None:
    path, currency = case
    fit, _ = fitted(path, currency)
    assert isinstance(fit.surface, ESSVISurface)
    dk = float(K_BUTTERFLY[1] - K_BUTTERFLY[0])
    for s in fit.surface.essvi:
        w = essvi_variance(K_BUTTERFLY, np.float64(s.theta), np.float64(s.rho), np.float64(s.psi))
        g = butterfly_g(w + correction_variance(K_BUTTERFLY, s.correction), dk, K_BUTTERFLY)
        assert g.min() >= -1e-6, f"{s.expiry}: g = {g.min():.3g} at k = {K_BUTTERFLY[np.argmin(g)]:.2f}"
    # and on the surface between and beyond the slices, as risk_core reads it
    surface = _resolved(fit)
    times = surface.expiry_years
    between = [np.linspace(a, b, 7)[1:-1] for a, b in zip(times[:-1], times[1:], strict=True)]  # 5 in each interval
    for t in np.concatenate([np.geomspace(times[0] / 10, times[-1] * 2, 40), *between]):
        w = surface.implied_vol(np.full_like(K_BUTTERFLY, t), K_BUTTERFLY) ** 2 * t
        g = butterfly_g(w, dk, K_BUTTERFLY)
        assert g.min() >= -1e-6, f"T = {t:.4f}: g = {g.min():.3g}"


def test_slices_essvi_cannot_follow_are_corrected_only_on_the_sell_off(case: tuple[Path, str]) -> None:
    path, currency = case
    fit, _ = fitted(path, currency)
    assert isinstance(fit.surface, ESSVISurface)
    corrected = [s.expiry for s in fit.surface.essvi if s.correction is not None]
    assert bool(corrected) == (path == SELL_OFF)
    assert fit.surface.essvi[-1].correction is None  # the long end is eSSVI's extrapolation


def test_total_variance_never_falls_with_expiry(case: tuple[Path, str]) -> None:
    path, currency = case
    fit, _ = fitted(path, currency)
    surface = _resolved(fit)
    times = np.unique(np.concatenate([
        np.geomspace(surface.expiry_years[0] / 20, surface.expiry_years[-1] + 1.0, 400), surface.expiry_years,
    ]))
    tt, kk = np.meshgrid(times, K_CALENDAR, indexing="ij")
    w = surface.implied_vol(tt, kk) ** 2 * tt
    gap = np.diff(w, axis=0)
    assert gap.min() >= -1e-12 * w.max(), f"min calendar gap {gap.min():.3g}"
    # beyond the last expiry in total variance, not at flat vol: the last interval's forward variance continues
    before_last, last = surface.expiry_years[-2], surface.expiry_years[-1]
    atm = surface.implied_vol(np.array([before_last, last, last + 1.0]), np.zeros(3)) ** 2 * np.array(
        [before_last, last, last + 1.0])
    slope = (atm[1] - atm[0]) / (last - before_last)
    assert atm[2] == pytest.approx(atm[1] + slope, rel=1e-9)
