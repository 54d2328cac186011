"""Black-76 identities, finite-difference greeks, property tests and a cross-check against QuantLib.

Conventions under test (risk_core/pricing/black76.py): prices and greeks carry the `discount` factor; delta and gamma
are with respect to the forward; vega is per 1.00 of vol; theta is -dV/dT per year at a fixed discount factor and
forward (QuantLib's BlackCalculator.theta also lets the discount factor decay, see test_theta_against_quantlib).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import QuantLib as ql
from hypothesis import given, settings
from hypothesis import strategies as st

from risk_core.pricing.black76 import black76_greeks, black76_price

PARITY_RTOL = 1e-12  # of the forward
QL_RTOL = 1e-10
# central differences with steps scaled to each option's total vol; the worst errors seen over 40 random draws of
# 1000 options were delta 4e-8, gamma 3e-5, vega 2e-7, theta 4e-7 (relative)
FD_DELTA_RTOL = 1e-6
FD_GAMMA_RTOL = 3e-4
FD_VEGA_RTOL = 5e-6
FD_THETA_RTOL = 1e-5
BOUND_RTOL = 1e-12  # of the forward/strike, for no-arbitrage bounds
HOMOGENEITY_RTOL = 1e-11
MAX_STD_DEVS = 3.0  # |ln(F/K)| in total-vol units: beyond it C = F N(d1) - K N(d2) cancels away precision
N_QL = 400

rng_seed = 20260105


def random_options(n: int, seed: int, *, rates: bool = True) -> dict[str, np.ndarray]:
    """Forwards from 1 to 1e5, strikes within MAX_STD_DEVS total vols of the forward, T from 1 day to 3 years,
    vols from 5% to 250%, discount factors exp(-rT) with r up to 10% (or 1 when rates=False)."""
    rng = np.random.default_rng(seed)
    forward = 10.0 ** rng.uniform(0.0, 5.0, n)
    years = rng.uniform(1.0 / 365.0, 3.0, n)
    sigma = rng.uniform(0.05, 2.5, n)
    strike = forward * np.exp(rng.uniform(-MAX_STD_DEVS, MAX_STD_DEVS, n) * sigma * np.sqrt(years))
    discount = np.exp(-rng.uniform(0.0, 0.1, n) * years) if rates else np.ones(n)
    is_call = rng.random(n) < 0.5
    return {"forward": forward, "strike": strike, "years": years, "sigma": sigma, "is_call": is_call,
            "discount": discount}


def assert_close(actual: np.ndarray, expected: np.ndarray, *, rtol: float, atol: float | np.ndarray) -> None:
    """|actual - expected| <= rtol |expected| + atol, element-wise (atol may be an array)."""
    actual, expected = np.broadcast_arrays(np.asarray(actual, dtype=float), np.asarray(expected, dtype=float))
    excess = np.abs(actual - expected) - (rtol * np.abs(expected) + atol)
    worst = int(np.argmax(excess))
    assert excess.flat[worst] <= 0.0, f"index {worst}: {actual.flat[worst]!r} vs {expected.flat[worst]!r}"


# --- identities ---------------------------------------------------------------------------------------------------


def test_put_call_parity() -> None:
    o = random_options(2000, rng_seed)
    args = (o["forward"], o["strike"], o["years"], o["sigma"])
    call = black76_price(*args, True, o["discount"])
    put = black76_price(*args, False, o["discount"])
    expected = o["discount"] * (o["forward"] - o["strike"])
    assert_close(call - put, expected, rtol=0.0, atol=PARITY_RTOL * (o["forward"] + o["strike"]))


def test_greeks_put_call_relations() -> None:
    """Call delta - put delta = discount; gamma, vega and theta do not depend on the option's type."""
    o = random_options(2000, rng_seed + 1)
    args = (o["forward"], o["strike"], o["years"], o["sigma"])
    c = black76_greeks(*args, True, o["discount"])
    p = black76_greeks(*args, False, o["discount"])
    np.testing.assert_allclose(c.delta - p.delta, o["discount"], rtol=1e-14, atol=1e-15)
    np.testing.assert_array_equal(c.gamma, p.gamma)
    np.testing.assert_array_equal(c.vega, p.vega)
    np.testing.assert_array_equal(c.theta, p.theta)


@pytest.mark.parametrize("years", [0.0, -0.5])
def test_price_at_expiry_is_intrinsic(years: float) -> None:
    forward = np.array([90.0, 100.0, 110.0, 90.0, 100.0, 110.0])
    is_call = np.array([True, True, True, False, False, False])
    discount = 0.97
    price = black76_price(forward, 100.0, years, 0.8, is_call, discount)
    np.testing.assert_array_equal(price, discount * np.array([0.0, 0.0, 10.0, 10.0, 0.0, 0.0]))
    g = black76_greeks(forward, 100.0, years, 0.8, is_call, discount)
    np.testing.assert_array_equal(g.price, price)
    np.testing.assert_array_equal(g.delta, discount * np.array([0.0, 0.0, 1.0, -1.0, 0.0, 0.0]))
    for zero in (g.gamma, g.vega, g.theta):
        np.testing.assert_array_equal(zero, 0.0)


def test_zero_vol_is_discounted_intrinsic() -> None:
    price = black76_price([90.0, 110.0], 100.0, 1.0, 0.0, [True, False], 0.9)
    np.testing.assert_array_equal(price, [0.0, 0.0])
    price = black76_price([110.0, 90.0], 100.0, 1.0, 0.0, [True, False], 0.9)
    np.testing.assert_allclose(price, [9.0, 9.0], rtol=1e-15)


def test_hand_computed_at_the_money() -> None:
    """ATM: C = P = F (2 N(s/2) - 1), s = sigma sqrt(T); delta = N(s/2); vega = F phi(s/2) sqrt(T)."""
    f, t, sigma = 50_000.0, 0.25, 0.6
    s = sigma * math.sqrt(t)
    n = 0.5 * (1.0 + math.erf(s / 2.0 / math.sqrt(2.0)))
    phi = math.exp(-s * s / 8.0) / math.sqrt(2.0 * math.pi)
    g = black76_greeks(f, f, t, sigma, True)
    assert g.price == pytest.approx(f * (2.0 * n - 1.0), rel=1e-13)
    assert g.delta == pytest.approx(n, rel=1e-14)
    assert g.gamma == pytest.approx(phi / (f * s), rel=1e-13)
    assert g.vega == pytest.approx(f * phi * math.sqrt(t), rel=1e-13)
    assert g.theta == pytest.approx(-f * phi * sigma / (2.0 * math.sqrt(t)), rel=1e-13)
    assert black76_price(f, f, t, sigma, False) == pytest.approx(f * (2.0 * n - 1.0), rel=1e-13)


def test_broadcasting() -> None:
    """Any broadcastable shapes: a strip of strikes against a column of vols."""
    strikes = np.array([80.0, 100.0, 120.0])
    sigmas = np.array([[0.2], [0.5]])
    price = black76_price(100.0, strikes, 1.0, sigmas, True)
    assert price.shape == (2, 3)
    for i, s in enumerate(sigmas[:, 0]):
        for j, k in enumerate(strikes):
            assert price[i, j] == black76_price(100.0, k, 1.0, s, True)


# --- finite differences -----------------------------------------------------------------------------------------


def test_greeks_match_central_differences_of_the_price() -> None:
    o = random_options(1000, rng_seed + 2)
    f, k, t, s, c, df = (o[x] for x in ("forward", "strike", "years", "sigma", "is_call", "discount"))
    g = black76_greeks(f, k, t, s, c, df)

    def price(ff: np.ndarray = f, tt: np.ndarray = t, ss: np.ndarray = s) -> np.ndarray:
        return black76_price(ff, k, tt, ss, c, df)

    # steps scaled to each option's own curvature: F sigma sqrt(T) for the forward
    total = s * np.sqrt(t)
    h = 1e-4 * f * total
    delta = (price(ff=f + h) - price(ff=f - h)) / (2.0 * h)
    assert_close(g.delta, delta, rtol=FD_DELTA_RTOL, atol=1e-9 * df)

    h = 1e-3 * f * total
    gamma = (price(ff=f + h) - 2.0 * g.price + price(ff=f - h)) / (h * h)
    assert_close(g.gamma, gamma, rtol=FD_GAMMA_RTOL, atol=1e-7 / f)

    h = 1e-4 * s
    vega = (price(ss=s + h) - price(ss=s - h)) / (2.0 * h)
    assert_close(g.vega, vega, rtol=FD_VEGA_RTOL, atol=1e-9 * f)

    h = 1e-4 * t
    theta = -(price(tt=t + h) - price(tt=t - h)) / (2.0 * h)  # -dV/dT: time passing shortens T
    assert_close(g.theta, theta, rtol=FD_THETA_RTOL, atol=1e-9 * f)


# --- properties -----------------------------------------------------------------------------------------------------

forwards = st.floats(1e-2, 1e6)
log_moneyness = st.floats(-3.0, 3.0)
years_st = st.floats(1e-3, 5.0)
vols = st.floats(1e-2, 3.0)
discounts = st.floats(0.5, 1.0)


@settings(max_examples=300, deadline=None)
@given(forwards, log_moneyness, years_st, vols, discounts)
def test_parity_and_no_arbitrage_bounds(f: float, x: float, t: float, s: float, df: float) -> None:
    k = f * math.exp(x)
    c = float(black76_price(f, k, t, s, True, df))
    p = float(black76_price(f, k, t, s, False, df))
    tol = BOUND_RTOL * (f + k)
    assert c - p == pytest.approx(df * (f - k), abs=tol)
    assert df * max(f - k, 0.0) - tol <= c <= df * f + tol
    assert df * max(k - f, 0.0) - tol <= p <= df * k + tol


@settings(max_examples=300, deadline=None)
@given(forwards, log_moneyness, years_st, vols, vols, st.booleans())
def test_price_increases_with_vol(f: float, x: float, t: float, s1: float, s2: float, is_call: bool) -> None:
    k = f * math.exp(x)
    lo, hi = sorted((s1, s2))
    p_lo, p_hi = black76_price(f, k, t, [lo, hi], is_call)
    assert p_hi >= p_lo - BOUND_RTOL * (f + k)


@settings(max_examples=300, deadline=None)
@given(forwards, log_moneyness, years_st, vols, discounts, st.booleans(), st.floats(1e-3, 1e3))
def test_homogeneous_in_forward_and_strike(
    f: float, x: float, t: float, s: float, df: float, is_call: bool, scale: float
) -> None:
    k = f * math.exp(x)
    g = black76_greeks(f, k, t, s, is_call, df)
    gs = black76_greeks(scale * f, scale * k, t, s, is_call, df)
    atol = HOMOGENEITY_RTOL * scale * (f + k)
    assert float(gs.price) == pytest.approx(scale * float(g.price), rel=HOMOGENEITY_RTOL, abs=atol)
    assert float(gs.delta) == pytest.approx(float(g.delta), rel=HOMOGENEITY_RTOL, abs=HOMOGENEITY_RTOL)
    assert float(gs.vega) == pytest.approx(scale * float(g.vega), rel=HOMOGENEITY_RTOL, abs=atol)


@settings(max_examples=300, deadline=None)
@given(forwards, log_moneyness, years_st, vols, discounts, st.booleans())
def test_greek_signs_and_ranges(f: float, x: float, t: float, s: float, df: float, is_call: bool) -> None:
    g = black76_greeks(f, f * math.exp(x), t, s, is_call, df)
    if is_call:
        assert 0.0 <= g.delta <= df
    else:
        assert -df <= g.delta <= 0.0
    assert g.gamma >= 0.0
    assert g.vega >= 0.0
    assert g.theta <= 0.0  # at a fixed discount factor, time only takes optionality away
    assert g.price >= 0.0


# --- QuantLib -----------------------------------------------------------------------------------------------------


def _ql_calculators(o: dict[str, np.ndarray]) -> list[ql.BlackCalculator]:
    return [
        ql.BlackCalculator(
            ql.PlainVanillaPayoff(ql.Option.Call if o["is_call"][i] else ql.Option.Put, float(o["strike"][i])),
            float(o["forward"][i]),
            float(o["sigma"][i] * math.sqrt(o["years"][i])),
            float(o["discount"][i]),
        )
        for i in range(len(o["forward"]))
    ]


def test_prices_and_greeks_against_quantlib() -> None:
    o = random_options(N_QL, rng_seed + 3)
    g = black76_greeks(o["forward"], o["strike"], o["years"], o["sigma"], o["is_call"], o["discount"])
    price = black76_price(o["forward"], o["strike"], o["years"], o["sigma"], o["is_call"], o["discount"])
    calcs = _ql_calculators(o)
    ql_price = np.array([c.value() for c in calcs])
    ql_formula = np.array(
        [
            ql.blackFormula(
                ql.Option.Call if o["is_call"][i] else ql.Option.Put,
                float(o["strike"][i]),
                float(o["forward"][i]),
                float(o["sigma"][i] * math.sqrt(o["years"][i])),
                float(o["discount"][i]),
            )
            for i in range(N_QL)
        ]
    )
    np.testing.assert_allclose(price, ql_price, rtol=QL_RTOL)
    np.testing.assert_allclose(g.price, ql_price, rtol=QL_RTOL)
    np.testing.assert_allclose(price, ql_formula, rtol=QL_RTOL)
    np.testing.assert_allclose(g.delta, [c.deltaForward() for c in calcs], rtol=QL_RTOL)
    np.testing.assert_allclose(g.gamma, [c.gammaForward() for c in calcs], rtol=QL_RTOL)
    np.testing.assert_allclose(g.vega, [c.vega(float(t)) for c, t in zip(calcs, o["years"], strict=True)],
                               rtol=QL_RTOL)


def test_theta_against_quantlib() -> None:
    """QuantLib's theta(spot, T) = -(ln(df) V + 0.5 sigma^2 T spot^2 gamma(spot) + ...) / T lets the discount
    factor decay with T as well; with spot = forward the carry term vanishes, so
    ours = QuantLib's + ln(df) V / T, and the two agree outright at zero rates."""
    for rates in (False, True):
        o = random_options(N_QL, rng_seed + 4 + rates, rates=rates)
        g = black76_greeks(o["forward"], o["strike"], o["years"], o["sigma"], o["is_call"], o["discount"])
        calcs = _ql_calculators(o)
        ql_theta = np.array([c.theta(float(f), float(t)) for c, f, t in zip(calcs, o["forward"], o["years"],
                                                                               strict=True)])
        decay = np.log(o["discount"]) * g.price / o["years"]
        scale = np.abs(ql_theta) + np.abs(decay)
        np.testing.assert_array_less(np.abs(g.theta - (ql_theta + decay)), QL_RTOL * scale + 1e-300)
        if not rates:
            np.testing.assert_allclose(g.theta, ql_theta, rtol=QL_RTOL)
