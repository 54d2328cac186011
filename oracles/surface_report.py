"""The surface report of one asset's chain: the fit per expiry (eSSVI, with its correction where it has one) beside
the market, and its no-arbitrage checks.

- min_butterfly_g: the least of Gatheral's g(k) over |k| <= 5 (`BUTTERFLY_K`) on every slice, from the closed-form
  derivatives of its eSSVI form and of its B-spline correction, if any (`risk_core.pricing.smile`);
- min_calendar_gap: the least increase of total variance over the report's k grid from each expiry to the next, and
  from T = 0 (where it is 0) to the first.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from oracles.surface import SurfaceFit
from risk_core.errors import InputError
from risk_core.pricing.smile import butterfly_g
from risk_core.schema.surface_report import ESSVIParams, ExpirySurface, QuoteComparison, SurfaceReport

Array = NDArray[np.float64]
METHOD = (
    "eSSVI, joint fit (Hendriks-Martini 2019 calendar, Gatheral-Jacquier 2014 butterfly conditions); slices eSSVI "
    "misses by more than 1.5 vol points corrected by cubic B-splines of total variance under butterfly and calendar "
    "constraints"
)
BUTTERFLY_K = np.linspace(-5.0, 5.0, 2001)
MAX_K_POINTS = 100_001


def parse_k_grid(text: str) -> Array:
    """`START:STOP:STEP`, both ends included (up to rounding of the step)."""
    parts = text.split(":")
    try:
        start, stop, step = (float(p) for p in parts)
    except ValueError:
        raise InputError("k_grid", f"{text!r} is not START:STOP:STEP (three numbers)") from None
    if not all(np.isfinite([start, stop, step])) or step <= 0 or stop < start:
        raise InputError("k_grid", f"{text!r} needs START <= STOP and STEP > 0")
    count = int(np.floor((stop - start) / step + 1e-9)) + 1
    if count > MAX_K_POINTS:
        raise InputError("k_grid", f"{text!r} has {count} points; at most {MAX_K_POINTS}")
    return np.asarray(start + step * np.arange(count), dtype=np.float64)


def build_surface_report(fit: SurfaceFit, k: Array) -> SurfaceReport:
    if fit.surface is None:
        raise InputError("chain", fit.reason)
    expiries: list[ExpirySurface] = []
    min_g, min_gap = np.inf, np.inf
    previous = np.zeros_like(k)  # total variance at T = 0
    for s in fit.slices:
        p = s.params
        w = s.total_variance(k)
        min_g = min(min_g, float(butterfly_g(BUTTERFLY_K, *s.variance_terms(BUTTERFLY_K, 2)).min()))
        min_gap = min(min_gap, float(np.min(w - previous)))
        previous = w
        expiries.append(ExpirySurface(
            expiry=s.expiry, forward=s.forward, status=s.status,
            params=ESSVIParams(theta=p.theta, rho=p.rho, psi=p.psi, correction=p.correction),
            rmse_vol_points=s.rmse_vol_points,
            k=k.tolist(), total_variance=w.tolist(),
            quotes=[QuoteComparison(instrument=q.instrument, strike=q.strike, market_iv=q.market_iv,
                                    model_iv=q.model_iv) for q in s.quotes],
        ))
    return SurfaceReport(
        asset=fit.asset, as_of=fit.as_of, method=METHOD, rmse_vol_points=fit.rmse_vol_points,
        min_butterfly_g=min_g, min_calendar_gap=min_gap,
        expiries=expiries,
    )


def render_surface_text(report: SurfaceReport) -> str:
    rmse = "n/a" if report.rmse_vol_points is None else f"{report.rmse_vol_points:.3f}"
    lines = [
        f"{report.asset} surface at {report.as_of.isoformat()}: {report.method}",
        f"  vega-weighted RMSE {rmse} vol points; min g(k), |k| <= 5: {report.min_butterfly_g:.4g}; "
        f"min calendar gap: {report.min_calendar_gap:.4g}",
        "",
        f"  {'expiry':<22}{'forward':>12}  {'status':<12}{'theta':>10}{'rho':>8}{'psi':>8}{'rmse':>7}{'quotes':>7}",
    ]
    for e in report.expiries:
        rmse_e = "" if e.rmse_vol_points is None else f"{e.rmse_vol_points:.2f}"
        lines.append(
            f"  {e.expiry.isoformat():<22}{e.forward:>12,.2f}  {e.status:<12}{e.params.theta:>10.5f}"
            f"{e.params.rho:>8.3f}{e.params.psi:>8.4f}{rmse_e:>7}{len(e.quotes):>7}"
        )
    return "\n".join(lines) + "\n"
