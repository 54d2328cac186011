"""The SVI fitter and the surface builder on synthetic chains whose answers are known independently:

* the inner least squares is the exact constrained optimum (checked against scipy's SLSQP on the same problem);
* a chain priced with Black-76 from a known arbitrage-free SVI gives that SVI back;
* forwards: a future's mark when listed, else put-call parity recovers the forward the prices were made with;
* thin data: an expiry with too few quotes is skipped and flagged; with no fittable expiry the surface falls back,
  flagged, to the quoted points; with no usable quote there is no surface.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from scipy.optimize import minimize

from oracles.implied_vol import compute_implied_vol
from oracles.surface import OptionQuote, SurfacePolicy, VenueChain, compute_forward, compute_surface
from oracles.svi import _C, _E_AMAX, _E_SIGMA, SVIParams, _solve_inner, butterfly_free, compute_svi_fit
from risk_core.pricing.black76 import black76_price
from risk_core.pricing.vol_surface import SECONDS_PER_YEAR
from risk_core.schema.market import PointsSurface, SVISurface

AS_OF = datetime(2026, 1, 5, 12, tzinfo=UTC)


def test_inner_solve_is_the_constrained_optimum() -> None:
    rng = np.random.default_rng(11)
    k = np.sort(rng.uniform(-0.6, 0.5, 25))
    w = 0.04 + 0.1 * np.abs(k) + 0.02 * k + rng.normal(0, 0.003, k.size)
    wt = rng.uniform(0.2, 1.0, k.size)
    wt /= wt.sum()
    amax = float(w.max())
    for m, sigma in ((0.0, 0.1), (0.3, 0.02), (-0.4, 0.5), (0.1, 0.005)):
        got = _solve_inner(k, w, wt, np.array([m]), np.array([sigma]), amax)
        y = (k - m) / sigma
        basis = np.stack([np.ones_like(y), y, np.sqrt(y * y + 1)], axis=1)
        e = _E_SIGMA * sigma + _E_AMAX * amax

        def f(x: np.ndarray, basis: np.ndarray = basis) -> float:
            return float(np.sum(wt * (basis @ x - w) ** 2))

        cons = [{"type": "ineq", "fun": lambda x, e=e: e - _C @ x}]
        ref = min((minimize(f, x0, constraints=cons, method="SLSQP", options={"ftol": 1e-15, "maxiter": 500})
                   for x0 in (np.array([0.0, 0.0, 0.0]), np.array([amax / 2, 0.0, sigma]))), key=lambda r: r.fun)
        x = np.array([got.a[0], got.d[0], got.c[0]])
        assert np.all(_C @ x <= e + 1e-9)
        assert f(x) <= ref.fun + 1e-12
        assert float(got.objective[0]) == pytest.approx(f(x), rel=1e-6)  # up to the tiny ridge on the Gram matrix


def chain_from_svi(params: dict[datetime, SVIParams], forwards: dict[datetime, float], *, inverse: bool,
                   strikes: np.ndarray, spread: float = 0.0, futures: bool = False) -> VenueChain:
    quotes = []
    for expiry, p in params.items():
        t = (expiry - AS_OF).total_seconds() / SECONDS_PER_YEAR
        f = forwards[expiry]
        iv = np.sqrt(p.total_variance(np.log(strikes / f)) / t)
        for is_call in (True, False):
            usd = black76_price(f, strikes, t, iv, is_call)
            for strike, price in zip(strikes, usd, strict=True):
                px = price / f if inverse else price
                quotes.append(OptionQuote(venue="v", instrument=f"{expiry:%d%b}-{strike:.0f}-{'C' if is_call else 'P'}",
                                          expiry=expiry, strike=float(strike), is_call=is_call,
                                          bid=px * (1 - spread), ask=px * (1 + spread), mark=px,
                                          underlying_price=f * 1.001, inverse=inverse))
    return VenueChain(venue="v", asset="BTC", as_of=AS_OF, quotes=tuple(quotes),
                      futures=dict(forwards) if futures else {})


TRUE = {
    AS_OF + timedelta(days=30): SVIParams(a=0.004, b=0.05, rho=-0.35, m=0.02, sigma=0.12),
    AS_OF + timedelta(days=90): SVIParams(a=0.012, b=0.09, rho=-0.30, m=0.03, sigma=0.2),
}
FORWARDS = {AS_OF + timedelta(days=30): 100.6, AS_OF + timedelta(days=90): 101.9}


@pytest.mark.parametrize("inverse", [True, False])
def test_a_chain_made_from_svi_gives_the_svi_back(inverse: bool) -> None:
    strikes = np.linspace(60.0, 160.0, 41)
    fit = compute_surface([chain_from_svi(TRUE, FORWARDS, inverse=inverse, strikes=strikes)], asset="BTC",
                          as_of=AS_OF)
    assert fit.status == "ok" and isinstance(fit.surface, SVISurface) and not fit.flags
    for s in fit.slices:
        assert s.forward_method == "parity" and s.forward == pytest.approx(FORWARDS[s.expiry], rel=1e-9)
        assert s.params is not None and s.rmse_vol_points is not None and s.rmse_vol_points < 0.02
        k = np.linspace(-0.4, 0.4, 81)
        t = s.years
        np.testing.assert_allclose(np.sqrt(s.params.total_variance(k) / t),
                                   np.sqrt(TRUE[s.expiry].total_variance(k) / t), atol=5e-4)


def test_futures_marks_take_precedence_over_parity() -> None:
    strikes = np.linspace(70.0, 140.0, 15)
    chain = chain_from_svi(TRUE, FORWARDS, inverse=True, strikes=strikes, futures=True)
    fit = compute_surface([chain], asset="BTC", as_of=AS_OF)
    assert {s.forward_method for s in fit.slices} == {"future"}
    assert fit.forwards == FORWARDS


def test_parity_ignores_one_sided_markets_and_falls_back_to_the_venue_underlying() -> None:
    expiry = AS_OF + timedelta(days=30)
    strikes = np.linspace(80.0, 120.0, 9)
    chain = chain_from_svi({expiry: TRUE[expiry]}, FORWARDS, inverse=False, strikes=strikes)
    no_asks = [dataclasses.replace(q, ask=None) if not q.is_call else q for q in chain.quotes]
    fwd = compute_forward(no_asks, expiry=expiry, future=None, venue="v")
    assert fwd is not None and fwd.method == "venue-underlying" and fwd.forward == pytest.approx(100.6 * 1.001)


def test_butterfly_free_predicate_agrees_with_g() -> None:
    bad = SVIParams(a=-0.05, b=0.9, rho=0.0, m=0.0, sigma=0.06)  # a steep, pinched smile: g < 0 near the money
    good = TRUE[AS_OF + timedelta(days=30)]
    grid = np.linspace(-1, 1, 401)
    assert bad.butterfly_g(grid).min() < 0 and good.butterfly_g(grid).min() > 0
    k = np.linspace(-0.3, 0.3, 25)
    fit = compute_svi_fit(k, bad.total_variance(k), np.ones_like(k), admissible=[butterfly_free(grid)])
    assert fit is None or fit.params.butterfly_g(grid).min() >= -1e-9


def test_thin_expiry_skipped_and_flagged_and_points_fallback() -> None:
    strikes = np.linspace(60.0, 160.0, 41)
    chain = chain_from_svi(TRUE, FORWARDS, inverse=False, strikes=strikes)
    short = AS_OF + timedelta(days=30)
    keep = {100.0 - 2.5, 102.5, 105.0}
    thinned = tuple(q for q in chain.quotes if q.expiry != short or q.strike in keep)
    fit = compute_surface([VenueChain("v", "BTC", AS_OF, thinned)], asset="BTC", as_of=AS_OF)
    assert fit.status == "ok" and isinstance(fit.surface, SVISurface) and len(fit.surface.svi) == 1
    thin = next(s for s in fit.slices if s.expiry == short)
    assert thin.status == "thin" and thin.reason is not None and "usable quotes" in thin.reason
    assert any(f.startswith("thin expiries not fitted: 2026-02-04") for f in fit.flags)

    only_thin = tuple(q for q in thinned if q.expiry == short)
    fit = compute_surface([VenueChain("v", "BTC", AS_OF, only_thin)], asset="BTC", as_of=AS_OF)
    assert fit.status == "fallback" and isinstance(fit.surface, PointsSurface)
    assert any(f.startswith("fallback: no expiry had enough quotes for SVI") for f in fit.flags)
    t = (short - AS_OF).total_seconds() / SECONDS_PER_YEAR
    for point in fit.surface.points:
        assert point.expiry == short
        expected = np.sqrt(TRUE[short].total_variance(np.array([np.log(point.strike / FORWARDS[short])]))[0] / t)
        assert point.iv == pytest.approx(expected, abs=1e-6)


def test_no_bids_no_surface() -> None:
    strikes = np.linspace(60.0, 160.0, 11)
    chain = chain_from_svi(TRUE, FORWARDS, inverse=False, strikes=strikes)
    no_bids = tuple(dataclasses.replace(q, bid=None) for q in chain.quotes)
    fit = compute_surface([VenueChain("v", "BTC", AS_OF, no_bids)], asset="BTC", as_of=AS_OF,
                          policy=SurfacePolicy())
    assert fit.status == "failed" and fit.surface is None
    assert "no usable option quote" in fit.reason


def test_implied_vol_inverts_black76_and_refuses_impossible_prices() -> None:
    f, t = 100.0, 0.25
    k = np.array([60.0, 90.0, 100.0, 110.0, 150.0])
    sigma = np.array([0.9, 0.55, 0.5, 0.48, 0.6])
    calls = black76_price(f, k, t, sigma, True)
    np.testing.assert_allclose(compute_implied_vol(calls, f, k, t, True), sigma, rtol=1e-9)
    bad = compute_implied_vol(np.array([39.0, 101.0, 1e-12]), f, np.array([60.0, 60.0, 300.0]), t, True)
    assert np.isnan(bad).all()  # below intrinsic, above the forward, no time value
