"""Acceptance: the SVI surface fitted to the two real Deribit chains of reference_data/market/deribit/.

* Repricing: the surface (as risk_core reads it, total variance interpolated across expiries) reprices Deribit's own
  mark implied vols of the out-of-the-money options with |delta| >= 0.02 with a vega-weighted RMSE of at most
  1 vol point on the calm day (2026-01-05) and 3 on the sell-off day (2026-02-05). Deribit's `implied_volatility`
  and `vega` columns are independent of the fit, which sees only bids, asks, marks and futures.
* No arbitrage on dense grids: every fitted slice has g(k) >= 0 on 2,001 points spanning its quotes +- 4 standard
  deviations, and every pair of consecutive fitted slices has non-decreasing total variance on 2,001 points
  spanning both slices' quoted log-moneyness (+- 25%); the interpolated surface is then non-decreasing in time.
* Speed: one currency's chain fits in well under a second of CPU (the thread's CPU time, 0.2-0.35 s here: wall time
  on a shared 2-core machine measures the neighbours too; benchmarks/bench_snapshot.py reports both).

The chain is read from the CSV here, independently of the venue servers.
"""

from __future__ import annotations

import csv
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

import reference_data
from oracles.surface import OptionQuote, SurfaceFit, VenueChain, compute_surface, vega_weighted_rmse
from risk_core.pricing.vol_surface import SECONDS_PER_YEAR, ResolvedSurface
from risk_core.schema.market import SVISurface

DERIBIT = reference_data.path("market", "deribit")
CALM = DERIBIT / "deribit_options_snapshot_20260105T153329Z.csv"
SELL_OFF = DERIBIT / "deribit_options_snapshot_20260205T212937Z.csv"
RMSE_LIMIT = {CALM.name: 1.0, SELL_OFF.name: 3.0}  # vol points
MIN_ABS_DELTA = 0.02
DENSE = 2001
FIT_CPU_SECONDS = 0.6



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


_FITS: dict[tuple[str, str], tuple[SurfaceFit, list[dict[str, str]], float]] = {}


def fitted(path: Path, currency: str) -> tuple[SurfaceFit, list[dict[str, str]], float]:
    key = (path.name, currency)
    if key not in _FITS:
        chain, rows = read_chain(path, currency)
        start = time.perf_counter()
        fit = compute_surface([chain], asset=currency, as_of=chain.as_of)
        _FITS[key] = (fit, rows, time.perf_counter() - start)
    return _FITS[key]


CASES = [(p, c) for p in (CALM, SELL_OFF) for c in ("BTC", "ETH")]
IDS = [f"{p.stem[-16:-8]}-{c}" for p, c in CASES]


@pytest.fixture(params=CASES, ids=IDS)
def case(request: pytest.FixtureRequest) -> tuple[Path, str]:
    return request.param  # type: ignore[no-any-return]


def test_fit_reprices_deribit_marks(case: tuple[Path, str]) -> None:
    path, currency = case
    fit, rows, _ = fitted(path, currency)
    assert fit.status == "ok" and isinstance(fit.surface, SVISurface)
    surface = ResolvedSurface(fit.surface, fit.as_of, lambda e: fit.forwards[e])
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
    model_iv = surface.implied_vol(years[chosen], np.log(strike[chosen] / forward[chosen]))
    rmse = vega_weighted_rmse(model_iv, mark_iv[chosen], vega[chosen])
    assert rmse <= RMSE_LIMIT[path.name], f"{currency}: vega-weighted RMSE {rmse:.3f} vol points"


def test_every_fitted_slice_is_butterfly_free(case: tuple[Path, str]) -> None:
    path, currency = case
    fit, _, _ = fitted(path, currency)
    fitted_slices = [s for s in fit.slices if s.status == "fitted"]
    assert len(fitted_slices) >= 8
    for s in fitted_slices:
        assert s.params is not None
        sd = np.sqrt(s.params.total_variance(np.array([0.0]))[0])
        grid = np.linspace(-1.5 - 4 * sd, 1.5 + 4 * sd, DENSE)
        g = s.params.butterfly_g(grid)
        assert g.min() >= -1e-9, f"{s.expiry}: g(k) = {g.min():.3g} at k = {grid[np.argmin(g)]:.3f}"
        assert s.params.min_total_variance >= -1e-12


def test_total_variance_never_falls_with_expiry(case: tuple[Path, str]) -> None:
    path, currency = case
    fit, rows, _ = fitted(path, currency)
    quoted_k: dict[datetime, list[float]] = {}
    for r in rows:
        e = datetime.fromisoformat(r["expiry_datetime"])
        if e in fit.forwards:
            quoted_k.setdefault(e, []).append(float(np.log(float(r["strike"]) / fit.forwards[e])))
    fitted_slices = [s for s in fit.slices if s.status == "fitted"]
    for before, after in zip(fitted_slices, fitted_slices[1:], strict=False):
        assert before.params is not None and after.params is not None
        ks = quoted_k[before.expiry] + quoted_k[after.expiry]
        lo, hi = min(ks), max(ks)
        grid = np.linspace(lo - 0.25 * (hi - lo) * 0.999, hi + 0.25 * (hi - lo) * 0.999, DENSE)
        gap = after.params.total_variance(grid) - before.params.total_variance(grid)
        assert gap.min() >= -1e-8, f"{before.expiry:%d%b} -> {after.expiry:%d%b}: {gap.min():.3g}"
    # through risk_core's interpolation: at fixed k inside every slice's checked range, w(T) is non-decreasing
    assert isinstance(fit.surface, SVISurface)
    surface = ResolvedSurface(fit.surface, fit.as_of, lambda e: fit.forwards[e])
    t = np.linspace(surface.expiry_years[0], surface.expiry_years[-1], 200)
    for k in np.linspace(-0.15, 0.15, 31):
        w = surface.implied_vol(t, np.full_like(t, k)) ** 2 * t
        assert np.all(np.diff(w) >= -1e-10), f"k = {k:.2f}"


def test_rejected_slices_are_flagged_not_hidden(case: tuple[Path, str]) -> None:
    path, currency = case
    fit, _, _ = fitted(path, currency)
    for s in fit.slices:
        if s.status != "fitted":
            assert s.reason
            assert any(f"{s.expiry:%Y-%m-%d}" in flag for flag in fit.flags)


def test_a_full_chain_fits_well_under_a_second(case: tuple[Path, str]) -> None:
    path, currency = case
    chain, _ = read_chain(path, currency)
    start = time.thread_time()
    compute_surface([chain], asset=currency, as_of=chain.as_of)
    assert time.thread_time() - start < FIT_CPU_SECONDS
