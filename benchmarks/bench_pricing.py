"""Black-76 throughput: the vectorized numpy pricer against QuantLib pricing one option at a time.

    .venv/bin/python benchmarks/bench_pricing.py [--options 100000] [--ql-options 4000] [--seed 7]

Options are generated from a seed (forwards 1e3-1e5, strikes within 3 total vols of the forward, 1 day to 2 years,
vols 20%-150%, calls and puts, small discounting). numpy prices all of them in one call; QuantLib prices the first
few thousand in a Python loop, (1) with BlackCalculator (the closed form alone) and (2) as VanillaOption objects
on an AnalyticEuropeanEngine over a BlackProcess (the instrument route). Each timing is the best of --repeat runs.
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import QuantLib as ql

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from risk_core.pricing.black76 import black76_greeks, black76_price  # noqa: E402

Options = dict[str, np.ndarray]


def make_options(n: int, seed: int) -> Options:
    rng = np.random.default_rng(seed)
    forward = 10.0 ** rng.uniform(3.0, 5.0, n)
    years = rng.uniform(1.0 / 365.0, 2.0, n)
    sigma = rng.uniform(0.2, 1.5, n)
    strike = forward * np.exp(rng.uniform(-3.0, 3.0, n) * sigma * np.sqrt(years))
    discount = np.exp(-rng.uniform(0.0, 0.05, n) * years)
    return {"forward": forward, "strike": strike, "years": years, "sigma": sigma, "is_call": rng.random(n) < 0.5,
            "discount": discount}


def best_of(repeat: int, fn: Callable[[], object]) -> float:
    best = math.inf
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def numpy_price(o: Options) -> np.ndarray:
    return black76_price(o["forward"], o["strike"], o["years"], o["sigma"], o["is_call"], o["discount"])


def numpy_greeks(o: Options) -> np.ndarray:
    g = black76_greeks(o["forward"], o["strike"], o["years"], o["sigma"], o["is_call"], o["discount"])
    return np.stack(g)


def quantlib_calculator(o: Options, n: int) -> np.ndarray:
    """BlackCalculator per option: price, forward delta and gamma, vega, theta."""
    out = np.empty((5, n))
    call, put = ql.Option.Call, ql.Option.Put
    for i in range(n):
        f, t = float(o["forward"][i]), float(o["years"][i])
        calc = ql.BlackCalculator(
            ql.PlainVanillaPayoff(call if o["is_call"][i] else put, float(o["strike"][i])),
            f, float(o["sigma"][i]) * math.sqrt(t), float(o["discount"][i]),
        )
        out[:, i] = calc.value(), calc.deltaForward(), calc.gammaForward(), calc.vega(t), calc.theta(f, t)
    return out


def quantlib_engine(o: Options, n: int) -> np.ndarray:
    """A VanillaOption per option on an AnalyticEuropeanEngine (Black process: the underlying is the forward);
    quotes are updated in place, expiries rounded to whole days. NPV, delta, gamma, vega, theta."""
    today = ql.Date(5, ql.January, 2026)
    ql.Settings.instance().evaluationDate = today
    day_count = ql.Actual365Fixed()
    spot, vol, rate = ql.SimpleQuote(1.0), ql.SimpleQuote(0.5), ql.SimpleQuote(0.0)
    process = ql.BlackProcess(
        ql.QuoteHandle(spot),
        ql.YieldTermStructureHandle(ql.FlatForward(today, ql.QuoteHandle(rate), day_count)),
        ql.BlackVolTermStructureHandle(ql.BlackConstantVol(today, ql.NullCalendar(), ql.QuoteHandle(vol), day_count)),
    )
    engine = ql.AnalyticEuropeanEngine(process)
    call, put = ql.Option.Call, ql.Option.Put
    out = np.empty((5, n))
    for i in range(n):
        days = max(1, round(float(o["years"][i]) * 365.0))
        spot.setValue(float(o["forward"][i]))
        vol.setValue(float(o["sigma"][i]))
        rate.setValue(-math.log(float(o["discount"][i])) / float(o["years"][i]))
        option = ql.VanillaOption(
            ql.PlainVanillaPayoff(call if o["is_call"][i] else put, float(o["strike"][i])),
            ql.EuropeanExercise(today + days),
        )
        option.setPricingEngine(engine)
        out[:, i] = option.NPV(), option.delta(), option.gamma(), option.vega(), option.theta()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--options", type=int, default=100_000)
    parser.add_argument("--ql-options", type=int, default=4_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    n, m = args.options, min(args.ql_options, args.options)
    o = make_options(n, args.seed)

    numpy_price(o), numpy_greeks(o)  # warm-up
    rows: list[tuple[str, int, float]] = [
        ("numpy black76_price (one call)", n, best_of(args.repeat, lambda: numpy_price(o))),
        ("numpy black76_greeks: price+4 greeks (one call)", n, best_of(args.repeat, lambda: numpy_greeks(o))),
        ("QuantLib BlackCalculator, one at a time: price+4 greeks", m,
         best_of(max(1, args.repeat // 2), lambda: quantlib_calculator(o, m))),
        ("QuantLib AnalyticEuropeanEngine, one at a time: NPV+4 greeks", m,
         best_of(max(1, args.repeat // 2), lambda: quantlib_engine(o, m))),
    ]

    # the two agree (BlackCalculator is the same closed form): a sanity check, not a test
    ours = numpy_greeks({k: v[:m] for k, v in o.items()})
    theirs = quantlib_calculator(o, m)
    agree = float(np.max(np.abs(ours[:4] - theirs[:4]) / np.maximum(np.abs(theirs[:4]), 1e-300)))

    reference = rows[1][1] / rows[1][2]
    print(f"Black-76 pricing throughput  (python {platform.python_version()}, numpy {np.__version__}, "
          f"QuantLib {ql.__version__}, {platform.machine()})")
    print(f"{'method':<62} {'options':>8} {'seconds':>9} {'options/s':>12} {'numpy greeks speed-up':>22}")
    for name, count, seconds in rows:
        rate = count / seconds
        print(f"{name:<62} {count:>8} {seconds:>9.4f} {rate:>12,.0f} {reference / rate:>21.1f}x")
    print(f"max relative difference numpy vs BlackCalculator (price, delta, gamma, vega) on {m} options: {agree:.1e}")


if __name__ == "__main__":
    main()
