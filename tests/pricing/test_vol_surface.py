"""The total-variance vol surface (risk_core/pricing/vol_surface.py), against hand computations and a real chain.

w = iv^2 T; within an expiry w is linear in k = ln(K / F(T)) between quoted strikes (flat beyond them) or raw SVI;
across expiries w is linear in T at fixed k; the vol is flat before the first expiry and after the last.
An eSSVI surface interpolates its parameters; an interval that touches a slice with a B-spline correction is linear
in total variance instead, and the market schema refuses corrections that bring arbitrage.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError
from scipy.interpolate import BSpline

import reference_data
from risk_core.pricing.vol_surface import ResolvedSurface, year_fraction
from risk_core.schema.market import (
    ESSVICorrection,
    ESSVISlice,
    ESSVISurface,
    PointsSurface,
    SVISlice,
    SVISurface,
    VolPoint,
)

REPO = Path(__file__).resolve().parents[2]  # tests/pricing/<this file> -> the repository root
DATA = reference_data.path("market")
CALM_CHAIN = DATA / "deribit" / "deribit_options_snapshot_20260105T153329Z.csv"

EXACT_RTOL = 1e-12
HAND_RTOL = 1e-12

AS_OF = datetime(2026, 1, 5, tzinfo=UTC)
E1 = AS_OF + timedelta(days=36.5)  # T = 0.1 (ACT/365)
E2 = AS_OF + timedelta(days=146.0)  # T = 0.4
T1, T2 = 0.1, 0.4
FORWARDS = {E1: 100.0, E2: 102.0}
QUOTES = {E1: [(90.0, 0.60), (100.0, 0.50), (110.0, 0.55)], E2: [(85.0, 0.58), (100.0, 0.52), (120.0, 0.50)]}


def forward(expiry: datetime) -> float:
    return FORWARDS[expiry]


def points_surface(quotes: dict[datetime, list[tuple[float, float]]] = QUOTES, as_of: datetime = AS_OF
                   ) -> ResolvedSurface:
    points = [VolPoint(expiry=e, strike=k, iv=iv) for e, q in quotes.items() for k, iv in q]
    return ResolvedSurface(PointsSurface(points=points), as_of, lambda e: FORWARDS.get(e, 100.0))


def vol(surface: ResolvedSurface, years: float, k: float) -> float:
    return float(surface.implied_vol(np.array([years]), np.array([k]))[0])


def test_slice_times_are_act_365() -> None:
    np.testing.assert_allclose(points_surface().expiry_years, [T1, T2], rtol=1e-15)
    assert year_fraction(AS_OF, E1) == pytest.approx(T1, rel=1e-15)


def test_quoted_points_come_back_exactly() -> None:
    s = points_surface()
    for expiry, t in ((E1, T1), (E2, T2)):
        for strike, iv in QUOTES[expiry]:
            assert vol(s, t, math.log(strike / FORWARDS[expiry])) == pytest.approx(iv, rel=EXACT_RTOL)


def test_linear_in_total_variance_over_log_moneyness_within_an_expiry() -> None:
    s = points_surface()
    (k90, iv90), (k100, iv100) = ((math.log(k / 100.0), iv) for k, iv in QUOTES[E1][:2])
    w90, w100 = iv90**2 * T1, iv100**2 * T1
    for frac in (0.5, 0.25, 0.9):
        k = k90 + frac * (k100 - k90)
        expected = math.sqrt((w90 + frac * (w100 - w90)) / T1)
        assert vol(s, T1, k) == pytest.approx(expected, rel=HAND_RTOL)
    # midpoint by hand: w = (0.6^2 + 0.5^2) / 2 * 0.1 = 0.0305 -> iv = sqrt(0.305)
    assert vol(s, T1, 0.5 * (k90 + k100)) == pytest.approx(math.sqrt(0.305), rel=HAND_RTOL)
    # not linear in vol: the midpoint vol is above the average vol 0.55
    assert vol(s, T1, 0.5 * (k90 + k100)) > 0.55


def test_flat_beyond_the_outermost_strikes() -> None:
    s = points_surface()
    for k in (math.log(50.0 / 100.0), math.log(89.0 / 100.0)):
        assert vol(s, T1, k) == pytest.approx(0.60, rel=EXACT_RTOL)
    for k in (math.log(111.0 / 100.0), 2.0):
        assert vol(s, T1, k) == pytest.approx(0.55, rel=EXACT_RTOL)


def test_linear_in_total_variance_over_time_at_fixed_log_moneyness() -> None:
    s = points_surface()
    k = 0.0  # at the money: a quote on the first slice, between quotes on the second (F = 102)
    w1 = 0.50**2 * T1
    ka, kb = math.log(100.0 / 102.0), math.log(120.0 / 102.0)
    w2 = 0.52**2 * T2 + (0.50**2 * T2 - 0.52**2 * T2) * (k - ka) / (kb - ka)
    for t in (0.25, 0.13, 0.37):
        expected = math.sqrt((w1 + (w2 - w1) * (t - T1) / (T2 - T1)) / t)
        assert vol(s, t, k) == pytest.approx(expected, rel=HAND_RTOL)
    # the midpoint in time by hand: w(0.25) = (w1 + w2) / 2
    assert vol(s, 0.25, k) == pytest.approx(math.sqrt(0.5 * (w1 + w2) / 0.25), rel=HAND_RTOL)


def test_flat_vol_before_the_first_and_after_the_last_expiry() -> None:
    s = points_surface()
    for k in (-0.2, math.log(0.95), 0.0, 0.05, 0.3):
        first, last = vol(s, T1, k), vol(s, T2, k)
        for t in (1e-4, 0.01, 0.05, T1):
            assert vol(s, t, k) == pytest.approx(first, rel=HAND_RTOL)
        for t in (T2, 0.5, 2.0, 10.0):
            assert vol(s, t, k) == pytest.approx(last, rel=HAND_RTOL)


def test_vectorized_and_broadcast_queries_agree_with_single_queries() -> None:
    s = points_surface()
    years = np.array([0.05, 0.1, 0.2, 0.3, 0.4, 0.9])
    ks = np.array([-0.3, -0.05, 0.0, 0.02, 0.1, 0.4])
    singles = np.array([[vol(s, t, k) for k in ks] for t in years])
    np.testing.assert_allclose(s.implied_vol(years, ks), np.diag(singles), rtol=1e-15)
    np.testing.assert_allclose(s.implied_vol(years[:, None], ks[None, :]), singles, rtol=1e-15)
    np.testing.assert_allclose(s.implied_vol(0.2, ks), singles[2], rtol=1e-15)  # scalar T, a strip of k
    np.testing.assert_allclose(s.implied_vol(years, 0.0), singles[:, 2], rtol=1e-15)
    assert float(s.implied_vol(0.2, 0.02)) == pytest.approx(singles[2, 3], rel=1e-15)


def raw_svi(k: float, a: float, b: float, rho: float, m: float, sigma: float) -> float:
    return a + b * (rho * (k - m) + math.sqrt((k - m) ** 2 + sigma**2))


SVI_PARAMS = {E1: (0.004, 0.08, -0.4, 0.02, 0.12), E2: (0.02, 0.12, -0.3, 0.05, 0.2)}


def test_svi_slice_evaluates_to_the_raw_svi_formula() -> None:
    surface = SVISurface(svi=[SVISlice(expiry=e, a=a, b=b, rho=r, m=m, sigma=sg)
                              for e, (a, b, r, m, sg) in SVI_PARAMS.items()])
    s = ResolvedSurface(surface, AS_OF, forward)
    for expiry, t in ((E1, T1), (E2, T2)):
        for k in (-1.0, -0.3, -0.05, 0.0, 0.02, 0.2, 0.8):
            assert vol(s, t, k) ** 2 * t == pytest.approx(raw_svi(k, *SVI_PARAMS[expiry]), rel=HAND_RTOL)
    # and between the slices, linear in total variance over time
    k, t = 0.1, 0.3
    w1, w2 = raw_svi(k, *SVI_PARAMS[E1]), raw_svi(k, *SVI_PARAMS[E2])
    assert vol(s, t, k) ** 2 * t == pytest.approx(w1 + (w2 - w1) * (t - T1) / (T2 - T1), rel=HAND_RTOL)


def test_expired_slices_are_dropped() -> None:
    past = AS_OF - timedelta(days=3)
    s = points_surface({**QUOTES, past: [(100.0, 3.0)]})
    np.testing.assert_allclose(s.expiry_years, [T1, T2], rtol=1e-15)
    assert vol(s, 0.05, 0.0) == pytest.approx(0.5, rel=EXACT_RTOL)


@pytest.mark.parametrize("as_of", [E2, E2 + timedelta(seconds=1), E2 + timedelta(days=400)])
def test_a_surface_whose_expiries_are_all_past_raises(as_of: datetime) -> None:
    with pytest.raises(ValueError, match="at or before the snapshot"):
        points_surface(as_of=as_of)
    surface = SVISurface(svi=[SVISlice(expiry=E1, a=0.01, b=0.1, rho=0.0, m=0.0, sigma=0.1)])
    with pytest.raises(ValueError, match="at or before the snapshot"):
        ResolvedSurface(surface, as_of, forward)


# --- the real calm-day chain ---------------------------------------------------------------------------------


def test_real_btc_chain_points_come_back_exactly() -> None:
    with CALM_CHAIN.open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["currency"] == "BTC"]
    as_of = datetime.fromisoformat(rows[0]["timestamp"])
    by_expiry: dict[datetime, list[float]] = defaultdict(list)
    for r in rows:
        by_expiry[datetime.fromisoformat(r["expiry_datetime"])].append(float(r["underlying"]))
    forwards = {e: float(np.median(f)) for e, f in by_expiry.items()}
    # every row is a point, calls and puts alike (they share the mark IV of their strike)
    points = [
        VolPoint(expiry=datetime.fromisoformat(r["expiry_datetime"]), strike=float(r["strike"]),
                 iv=float(r["implied_volatility"]))
        for r in rows
    ]
    s = ResolvedSurface(PointsSurface(points=points), as_of, forwards.__getitem__)
    assert len(s.expiry_years) == len(forwards) >= 10

    years = np.array([year_fraction(as_of, p.expiry) for p in points])
    k = np.array([math.log(p.strike / forwards[p.expiry]) for p in points])
    iv = np.array([p.iv for p in points])
    np.testing.assert_allclose(s.implied_vol(years, k), iv, rtol=EXACT_RTOL)

    # between two neighbouring strikes of a slice the vol lies between their vols (w is linear in k at fixed T)
    for expiry in forwards:
        quotes = sorted({(p.strike, p.iv) for p in points if p.expiry == expiry})
        strikes = np.array([q[0] for q in quotes])
        vols = np.array([q[1] for q in quotes])
        mid = np.log(0.5 * (strikes[:-1] + strikes[1:]) / forwards[expiry])
        got = s.implied_vol(np.full(mid.size, year_fraction(as_of, expiry)), mid)
        assert np.all(got >= np.minimum(vols[:-1], vols[1:]) * (1 - EXACT_RTOL))
        assert np.all(got <= np.maximum(vols[:-1], vols[1:]) * (1 + EXACT_RTOL))


def _ssvi_by_hand(k: float, theta: float, up: float, down: float) -> float:
    """w from theta and the wing slopes: psi = up + down, rho = (up - down) / psi, phi = psi / theta."""
    psi = up + down
    rho, phi = (up - down) / psi, psi / theta
    return theta / 2 * (1 + rho * phi * k + math.sqrt((phi * k + rho) ** 2 + 1 - rho * rho))


def test_essvi_surface_interpolates_its_parameters_and_extrapolates_in_total_variance() -> None:
    # slice i: theta, up = psi (1 + rho) / 2, down = psi (1 - rho) / 2
    theta, up, down = (0.02, 0.08), (0.06, 0.10), (0.09, 0.16)
    slices = [
        ESSVISlice(expiry=e, theta=th, rho=(u - d) / (u + d), psi=u + d)
        for e, th, u, d in zip((E1, E2), theta, up, down, strict=True)
    ]
    s = ResolvedSurface(ESSVISurface(essvi=slices), AS_OF, forward)
    cases = {
        T1: (theta[0], up[0], down[0]),
        T2: (theta[1], up[1], down[1]),
        0.25: (0.05, 0.08, 0.125),  # halfway: every parameter halfway
        0.025: (0.005, 0.06 * 0.5, 0.09 * 0.5),  # a quarter of T1: theta x 1/4, wings x sqrt(1/4)
        1.0: (0.08 + 0.06 / 0.3 * 0.6, 0.10, 0.16),  # past T2: the last interval's forward variance, wings held
    }
    for t, (th, u, d) in cases.items():
        for k in (-2.0, -0.3, 0.0, 0.4, 3.0):
            expected = math.sqrt(_ssvi_by_hand(k, th, u, d) / t)
            assert s.implied_vol(np.array([t]), np.array([k]))[0] == pytest.approx(expected, rel=HAND_RTOL), (t, k)


def _bspline(k: float, start: float, step: float, coefficients: list[float]) -> float:
    """Cubic B-spline on uniform knots by scipy's de Boor recursion, zero outside its knots."""
    knots = start + step * np.arange(-3, len(coefficients) + 7)
    padded = np.concatenate([np.zeros(3), coefficients, np.zeros(3)])
    return float(np.nan_to_num(BSpline(knots, padded, 3, extrapolate=False)(np.array([k]))[0]))


CORRECTION = ESSVICorrection(k_start=-0.3, k_step=0.1, coefficients=[0.0005, 0.001, 0.0005])


def _corrected_surface(correction: ESSVICorrection | None = CORRECTION, last: ESSVICorrection | None = None
                       ) -> ESSVISurface:
    theta, up, down = (0.02, 0.08), (0.06, 0.10), (0.09, 0.16)
    return ESSVISurface(essvi=[
        ESSVISlice(expiry=e, theta=th, rho=(u - d) / (u + d), psi=u + d, correction=c)
        for e, th, u, d, c in zip((E1, E2), theta, up, down, (correction, last), strict=True)
    ])


def test_a_corrected_slice_is_linear_in_total_variance_to_its_neighbours() -> None:
    s = ResolvedSurface(_corrected_surface(), AS_OF, forward)

    def w1(k: float) -> float:  # the corrected first slice, by hand
        return _ssvi_by_hand(k, 0.02, 0.06, 0.09) + _bspline(k, -0.3, 0.1, [0.0005, 0.001, 0.0005])

    def w2(k: float) -> float:
        return _ssvi_by_hand(k, 0.08, 0.10, 0.16)

    for k in (-2.0, -0.25, -0.05, 0.0, 0.12, 0.29, 3.0):
        cases = {
            T1: w1(k),
            0.025: w1(k) * 0.25,  # before a corrected first slice: its total variance times T / T1
            0.25: w1(k) + (w2(k) - w1(k)) * 0.5,  # halfway to the next slice, linear in total variance
            T2: w2(k),
            # past the last: theta grows at the forward ATM variance of the corrected slices, the wings held
            1.0: _ssvi_by_hand(k, 0.08 + (0.08 - w1(0.0)) / 0.3 * 0.6, 0.10, 0.16),
        }
        for t, expected in cases.items():
            assert vol(s, t, k) == pytest.approx(math.sqrt(expected / t), rel=1e-9), (t, k)
    assert w1(0.0) > 0.02  # the correction moved the ATM variance


@pytest.mark.parametrize(
    ("correction", "last", "message"),
    [
        (ESSVICorrection(k_start=-3.0, k_step=1.0, coefficients=[0.1] * 4), None, "calendar arbitrage"),
        (ESSVICorrection(k_start=-0.06, k_step=0.02, coefficients=[0.0, -0.015, 0.0]), None, "butterfly arbitrage"),
        (None, CORRECTION, "last expiry"),
    ],
    ids=["calendar", "butterfly", "last-slice"],
)
def test_the_schema_refuses_a_correction_that_brings_arbitrage(
    correction: ESSVICorrection | None, last: ESSVICorrection | None, message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        _corrected_surface(correction, last)
