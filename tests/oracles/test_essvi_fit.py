"""The eSSVI fitter and the surface builder on synthetic chains whose answers are known independently:

* a chain priced with Black-76 from a known arbitrage-free eSSVI surface gives that surface back;
* a quote far off the smile loses weight but stays in the slice's quotes, and the fit stays on the true smile;
* an expiry with a single usable quote still gets a fitted slice; one with none gets the slice the surface
  interpolates at its time (checked against the linear interpolation of theta and the wing slopes done here);
* market data that would break the calendar condition still gives a surface that meets it (the fit is constrained,
  not rejected), and the market schema refuses an eSSVI surface that breaks it;
* forwards: a future's mark when listed, else put-call parity recovers the forward the prices were made with;
* with no usable quote there is no surface;
* a short smile eSSVI cannot follow gets a correction that follows it, and the surface stays arbitrage-free.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from pydantic import ValidationError

from oracles import essvi
from oracles.implied_vol import compute_implied_vol
from oracles.surface import OptionQuote, VenueChain, compute_forward, compute_surface
from oracles.svi import SVIParams
from risk_core.pricing.black76 import black76_price
from risk_core.pricing.vol_surface import SECONDS_PER_YEAR, ResolvedSurface
from risk_core.schema.market import ESSVISlice, ESSVISurface

AS_OF = datetime(2026, 1, 5, 12, tzinfo=UTC)
E1, E2, E3 = (AS_OF + timedelta(days=d) for d in (14, 45, 120))
# theta, rho, psi: wing slopes psi (1 +- rho) / 2 and theta rise, psi / theta falls (checked below)
TRUE = {E1: (0.012, -0.25, 0.10), E2: (0.035, -0.30, 0.17), E3: (0.09, -0.32, 0.26)}
FORWARDS = {E1: 100.6, E2: 101.9, E3: 104.0}


def ssvi_w(k: np.ndarray, theta: float, rho: float, psi: float) -> np.ndarray:
    phi = psi / theta
    return theta / 2 * (1 + rho * phi * k + np.sqrt((phi * k + rho) ** 2 + 1 - rho**2))


def years(expiry: datetime) -> float:
    return (expiry - AS_OF).total_seconds() / SECONDS_PER_YEAR


def chain_from(params: dict[datetime, tuple[float, float, float]], *, inverse: bool, strikes: np.ndarray,
               futures: bool = False) -> VenueChain:
    quotes = []
    for expiry, p in params.items():
        t, f = years(expiry), FORWARDS[expiry]
        iv = np.sqrt(ssvi_w(np.log(strikes / f), *p) / t)
        for is_call in (True, False):
            for strike, price in zip(strikes, black76_price(f, strikes, t, iv, is_call), strict=True):
                px = price / f if inverse else price
                quotes.append(OptionQuote(venue="v", instrument=f"{expiry:%d%b}-{strike:.0f}-{'C' if is_call else 'P'}",
                                          expiry=expiry, strike=float(strike), is_call=is_call, bid=px * 0.999,
                                          ask=px * 1.001, mark=px, underlying_price=f * 1.001, inverse=inverse))
    futures_marks = dict(FORWARDS) if futures else {}
    return VenueChain(venue="v", asset="BTC", as_of=AS_OF, quotes=tuple(quotes), futures=futures_marks)


def test_the_true_surface_meets_the_calendar_and_butterfly_conditions() -> None:
    ESSVISurface(essvi=[ESSVISlice(expiry=e, theta=p[0], rho=p[1], psi=p[2]) for e, p in TRUE.items()])


@pytest.mark.parametrize("inverse", [True, False])
def test_a_chain_made_from_essvi_gives_the_essvi_back(inverse: bool) -> None:
    strikes = np.linspace(60.0, 170.0, 45)
    fit = compute_surface([chain_from(TRUE, inverse=inverse, strikes=strikes)], asset="BTC", as_of=AS_OF)
    assert fit.status == "ok" and isinstance(fit.surface, ESSVISurface) and not fit.flags
    k = np.linspace(-0.5, 0.5, 101)
    for s in fit.slices:
        assert s.status == "fitted" and s.forward_method == "parity"
        assert s.forward == pytest.approx(FORWARDS[s.expiry], rel=1e-9)
        assert s.rmse_vol_points is not None and s.rmse_vol_points < 0.05
        np.testing.assert_allclose(np.sqrt(s.total_variance(k) / s.years),
                                   np.sqrt(ssvi_w(k, *TRUE[s.expiry]) / s.years), atol=1e-3)
        for q in s.quotes:
            assert q.market_iv == pytest.approx(q.model_iv, abs=2e-3)


def test_a_stray_quote_loses_weight_but_stays() -> None:
    strikes = np.linspace(60.0, 170.0, 45)
    chain = chain_from(TRUE, inverse=False, strikes=strikes)
    stray = next(q for q in chain.quotes if q.expiry == E2 and q.strike == pytest.approx(120.0, abs=1.3) and q.is_call)
    t, f = years(E2), FORWARDS[E2]
    iv = np.sqrt(ssvi_w(np.array([np.log(stray.strike / f)]), *TRUE[E2]) / t)[0] + 0.20  # 20 vol points rich
    px = float(black76_price(f, np.array([stray.strike]), t, np.array([iv]), True)[0])
    bent = dataclasses.replace(stray, bid=px * 0.999, ask=px * 1.001, mark=px)
    chain = dataclasses.replace(chain, quotes=tuple(bent if q is stray else q for q in chain.quotes))
    fit = compute_surface([chain], asset="BTC", as_of=AS_OF)
    slice2 = next(s for s in fit.slices if s.expiry == E2)
    kept = next(q for q in slice2.quotes if q.instrument == stray.instrument)
    assert kept.market_iv == pytest.approx(iv, abs=1e-6)
    assert kept.model_iv == pytest.approx(iv - 0.20, abs=0.01)  # the fit stays on the true smile


def test_single_quote_and_unusable_expiries_still_get_slices() -> None:
    strikes = np.linspace(60.0, 170.0, 45)
    chain = chain_from(TRUE, inverse=False, strikes=strikes)
    single = next(q for q in chain.quotes if q.expiry == E2 and q.is_call and q.strike >= 105)
    quotes = tuple(
        q if q.expiry != E2 else (q if q is single else dataclasses.replace(q, bid=None, mark=None))
        for q in chain.quotes
    )
    fit = compute_surface([dataclasses.replace(chain, quotes=quotes)], asset="BTC", as_of=AS_OF)
    assert [s.status for s in fit.slices] == ["fitted"] * 3 and fit.slices[1].n_quotes == 1

    no_price = tuple(q if q.expiry != E2 else dataclasses.replace(q, bid=None, mark=None) for q in chain.quotes)
    fit = compute_surface([dataclasses.replace(chain, quotes=no_price)], asset="BTC", as_of=AS_OF)
    assert [s.status for s in fit.slices] == ["fitted", "interpolated", "fitted"]
    assert any("no usable quote" in f for f in fit.flags)
    p1, p2, p3 = (s.params for s in fit.slices)
    share = (years(E2) - years(E1)) / (years(E3) - years(E1))
    for f in ("theta",):
        assert getattr(p2, f) == pytest.approx((1 - share) * getattr(p1, f) + share * getattr(p3, f), rel=1e-9)
    for sign in (1, -1):  # the wing slopes psi (1 +- rho) / 2, linear in time
        up = [p.psi * (1 + sign * p.rho) / 2 for p in (p1, p2, p3)]
        assert up[1] == pytest.approx((1 - share) * up[0] + share * up[2], rel=1e-9)


def test_calendar_is_constrained_not_rejected() -> None:
    # the later expiry quoted at a much lower vol and a steeper skew: raw fits would cross
    crossing = {E1: (0.03, -0.1, 0.25), E2: (0.035, -0.6, 0.12)}
    strikes = np.linspace(60.0, 170.0, 45)
    fit = compute_surface([chain_from(crossing, inverse=False, strikes=strikes)], asset="BTC", as_of=AS_OF)
    assert [s.status for s in fit.slices] == ["fitted", "fitted"]
    a, b = (s.params for s in fit.slices)
    k = np.linspace(-8, 8, 16001)
    assert np.min(ssvi_w(k, b.theta, b.rho, b.psi) - ssvi_w(k, a.theta, a.rho, a.psi)) >= -1e-12
    with pytest.raises(ValidationError, match="calendar arbitrage"):
        ESSVISurface(essvi=[ESSVISlice(expiry=e, theta=p[0], rho=p[1], psi=p[2]) for e, p in crossing.items()])


def test_schema_refuses_a_butterfly_arbitrage() -> None:
    with pytest.raises(ValidationError, match="butterfly"):
        ESSVISlice(expiry=E1, theta=0.01, rho=0.0, psi=0.3)  # psi^2 = 0.09 > 4 theta


def test_essvi_as_raw_svi_is_the_same_smile() -> None:
    theta, rho, psi = TRUE[E2]
    k = np.linspace(-3, 3, 61)
    np.testing.assert_allclose(SVIParams.from_essvi(theta, rho, psi).total_variance(k), ssvi_w(k, theta, rho, psi),
                               rtol=1e-12)


def test_futures_marks_take_precedence_over_parity() -> None:
    chain = chain_from(TRUE, inverse=True, strikes=np.linspace(70.0, 140.0, 15), futures=True)
    fit = compute_surface([chain], asset="BTC", as_of=AS_OF)
    assert {s.forward_method for s in fit.slices} == {"future"}
    assert fit.forwards == FORWARDS


def test_parity_ignores_one_sided_markets_and_falls_back_to_the_venue_underlying() -> None:
    chain = chain_from({E1: TRUE[E1]}, inverse=False, strikes=np.linspace(80.0, 120.0, 9))
    no_asks = [dataclasses.replace(q, ask=None) if not q.is_call else q for q in chain.quotes]
    fwd = compute_forward(no_asks, expiry=E1, future=None, venue="v")
    assert fwd is not None and fwd.method == "venue-underlying" and fwd.forward == pytest.approx(100.6 * 1.001)


def test_no_usable_quote_no_surface() -> None:
    chain = chain_from(TRUE, inverse=False, strikes=np.linspace(60.0, 160.0, 11))
    unpriced = tuple(dataclasses.replace(q, bid=None, mark=None) for q in chain.quotes)
    fit = compute_surface([VenueChain("v", "BTC", AS_OF, unpriced)], asset="BTC", as_of=AS_OF)
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


def _chain_with_a_short_smile() -> tuple[VenueChain, datetime, dict[datetime, float], np.ndarray, np.ndarray]:
    """TRUE's chain and a one-day expiry whose smile is a steep parabola in vol, 0.8 + 20 k^2, below TRUE's."""
    e0 = AS_OF + timedelta(days=1)
    forwards = {**FORWARDS, e0: 100.2}
    chain = chain_from(TRUE, inverse=False, strikes=np.linspace(60.0, 170.0, 45))
    strikes = np.arange(86.0, 117.0, 1.0)
    iv0 = 0.8 + 20.0 * np.log(strikes / forwards[e0]) ** 2
    extra = [
        OptionQuote(venue="v", instrument=f"1d-{strike:.0f}-{'C' if is_call else 'P'}", expiry=e0, strike=float(strike),
                    is_call=is_call, bid=price * 0.999, ask=price * 1.001, mark=price, underlying_price=forwards[e0],
                    inverse=False)
        for is_call in (True, False)
        for strike, price in zip(strikes, black76_price(forwards[e0], strikes, years(e0), iv0, is_call), strict=True)
    ]
    return dataclasses.replace(chain, quotes=chain.quotes + tuple(extra)), e0, forwards, strikes, iv0


def test_corrections_that_fail_the_checks_are_dropped_and_no_expiry_with_them(monkeypatch: pytest.MonkeyPatch) -> None:
    chain, e0, _, _, _ = _chain_with_a_short_smile()
    # a solver gone wrong: coefficients of -5 theta make the corrected slice's total variance negative
    monkeypatch.setattr(essvi._CorrectionProblem, "solve", lambda self, z: np.full(z.size, -5.0))
    fit = compute_surface([chain], asset="BTC", as_of=AS_OF)
    assert isinstance(fit.surface, ESSVISurface)
    assert [s.expiry for s in fit.slices] == [e0, E1, E2, E3] and all(s.status == "fitted" for s in fit.slices)
    assert all(s.params.correction is None for s in fit.slices)
    assert any("dropped" in flag for flag in fit.flags)


def test_a_short_smile_essvi_cannot_follow_gets_a_correction_and_stays_arbitrage_free() -> None:
    """A one-day expiry whose smile is a steep parabola in vol (0.8 + 20 k^2), below the eSSVI expiries: eSSVI
    alone misses it by more than the correction threshold; corrected, the slice follows it, and the surface, read by
    risk_core, keeps g(k) >= 0 for |k| <= 5 (finite differences) and total variance non-decreasing in T."""
    chain, e0, forwards, strikes, iv0 = _chain_with_a_short_smile()
    t0 = years(e0)
    fit = compute_surface([chain], asset="BTC", as_of=AS_OF)
    assert isinstance(fit.surface, ESSVISurface) and not fit.flags
    short = fit.slices[0]
    assert short.expiry == e0 and short.params.correction is not None
    assert all(s.params.correction is None for s in fit.slices[1:])  # the eSSVI expiries need none
    k = np.log(strikes / forwards[e0])
    backbone = ssvi_w(k, short.params.theta, short.params.rho, short.params.psi)
    missed_by_essvi = 100 * np.sqrt(np.mean((np.sqrt(backbone / t0) - iv0) ** 2))
    assert missed_by_essvi > 1.5
    assert short.rmse_vol_points is not None and short.rmse_vol_points < 0.5
    surface = ResolvedSurface(fit.surface, AS_OF, lambda e: forwards[e])
    k5 = np.linspace(-5.0, 5.0, 4001)
    dk = k5[1] - k5[0]
    times = [t0 / 10, t0 / 2, t0, *np.linspace(t0, years(E1), 9)[1:], years(E2)]
    for t in times:
        w = surface.implied_vol(np.full_like(k5, t), k5) ** 2 * t
        w1 = np.gradient(w, dk, edge_order=2)
        w2 = np.gradient(w1, dk, edge_order=2)
        g = (1 - k5 * w1 / (2 * w)) ** 2 - w1**2 / 4 * (1 / w + 0.25) + w2 / 2
        assert g.min() >= -1e-6, f"T = {t:.5f}: g = {g.min():.3g} at k = {k5[np.argmin(g)]:.2f}"
    k3 = np.linspace(-3.0, 3.0, 601)
    grid = np.sort(np.concatenate([np.geomspace(t0 / 20, years(E3) + 1, 300), times]))
    w = surface.implied_vol(grid[:, None] + 0 * k3, k3[None, :] + 0 * grid[:, None]) ** 2 * grid[:, None]
    assert np.diff(w, axis=0).min() >= -1e-12
