"""Derive PM2 benchmark: latency of one evaluation of a 100-leg, 4-expiry ETH account.

    .venv/bin/python benchmarks/bench_pm2.py [--runs 5000] [--seed 7]

The account is generated from a seed: 100 calls and puts on strike grids around four forwards (3, 10, 38 and 94
days), longs and shorts, smile-shaped mark vols, a short perp hedge and two collaterals (ETH risk-cancelling, USDC).
The parameters are those of Derive's published cases: 31 stress scenarios (22 spot x vol, 7 dampened tails, linear
and abs skew), so each evaluation revalues every leg 34 times: 31 scenarios, the 2 basis-contingency forwards and
the mark, in one Black-76 call.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from risk_core.venues.derive_pm2 import Pm2Case, evaluate_pm2

SPOT = 3_000.0
EXPIRY_DAYS = (3, 10, 38, 94)
LEG_COUNT = 100
RATE = 0.05

# Derive's published case parameters: (spot shock, vol shock direction, dampening factor).
STRESS_SCENARIOS = [
    (1.18, "Up", 1.0),
    *[(shock, direction, 1.0) for shock in (1.135, 1.09, 1.045, 1.0, 0.955, 0.91, 0.865)
      for direction in ("Down", "None", "Up")],
    (0.82, "Up", 1.0),
    (0.34, "Up", 0.054545454545454536), (0.67, "Up", 0.10909090909090907), (1.5, "Up", 0.072),
    (2.0, "Up", 0.036), (3.0, "Up", 0.018), (4.0, "Up", 0.012),
    (1.0, "LINEAR", 1.0), (1.0, "ABS", 1.0),
]
PARAMETERS: dict[str, Any] = {
    "Scenarios": [
        {"SpotShock": shock, "VolShockDirection": direction, "DampeningFactor": damping}
        for shock, direction, damping in STRESS_SCENARIOS
    ],
    "SkewShock": {"LINEAR_SCALE_CAP": 0.15, "LINEAR_CBASE": -0.05, "ABS_SCALE_CAP": 0.15, "ABS_CBASE": -0.05,
                  "MIN_K_STAR": 0.01, "MIN_WIDTH_SCALE": 4.0, "VOL_PARAM_STATIC": 0.6, "VOL_PARAM_SCALE": -0.1},
    "VolShock": {"VOLRANGEUP": 0.5, "MIN_VOL_EVAL_SHOCKED": 0.45, "VOLRANGEDOWN": 0.275, "SHORTTERMPOWER": 0.3,
                 "LONGTERMPOWER": 0.13, "DTE_FLOOR": 1.0},
    "Margin": {"MM_LOSS_FACTOR": 0.8, "IM_LOSS_FACTOR": 1.0, "SHORT_RATE_MULTSCALE": 0.5, "LONG_RATE_MULTSCALE": 1,
               "SHORT_RATE_ADDSCALE": 0.08, "LONG_RATE_ADDSCALE": 0.08, "BASE_STATIC_DISCOUNT": 0.95,
               "BASE_STATIC_DISCOUNT_NEG": 1.04},
    "BasisContingency": {"SCENARIO_SPOT_UP": 1.045, "SCENARIO_SPOT_DOWN": 0.955, "BASIS_CONT_ADD_FACTOR": 0.5,
                         "BASIS_CONT_MULT_FACTOR": 2.0},
    "OtherContingency": {"PEG_LOSS_THRESHOLD": 0.98, "PEG_LOSS_FACTOR": 2.0, "CONF_THRESHOLD": 0.55,
                         "CONF_MARGIN": 1.0, "MM_PERP_PERCENT": 0.015, "IM_PERP_PERCENT": 0.005,
                         "MM_OPTION_PERCENT": 0.003, "IM_OPTION_PERCENT": 0.002},
}


def build_case(seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    options, feeds = [], []
    legs_per_expiry = LEG_COUNT // len(EXPIRY_DAYS)
    for days in EXPIRY_DAYS:
        seconds = days * 86_400
        tau = days / 365.0
        forward = SPOT * math.exp(RATE * tau)
        feeds.append({"FeedExpiry": seconds, "Forward": forward, "ForwardConfidence": 1.0, "Rate": RATE,
                      "RateConfidence": 1.0, "OptionVolConfidences": 0.95})
        width = 2.5 * 0.65 * math.sqrt(tau)  # strikes within ~2.5 standard deviations
        strikes = forward * np.exp(rng.uniform(-width, width, legs_per_expiry))
        for strike in strikes:
            log_moneyness = math.log(strike / forward)
            options.append({
                "Expiry": seconds,
                "Strike": round(float(strike), -1),
                "IsCall": int(strike >= forward),
                "MarkVol": 0.65 + 0.4 * log_moneyness**2 - 0.1 * log_moneyness,
                "Amount": float(rng.choice([-1, 1]) * rng.integers(1, 20)),
            })
    scenario = {
        "Cash": 50_000.0, "SpotPrice": SPOT, "SpotConfidence": 1.0, "StablePrice": 1.0, "StableConfidence": 1.0,
        "NumPerps": -25.0, "PerpPrice": SPOT * 1.001, "PerpConfidence": 1.0, "UnrealisedPerpPNL": -120.0,
        "UnrealisedFunding": 4.0,
        "Collaterals": [
            {"Name": "ETH", "Amount": 40.0, "Price": SPOT, "Confidence": 1.0, "MMHaircut": 0.02, "IMHaircut": 0.01,
             "IsRiskCancelling": True},
            {"Name": "USDC", "Amount": 100_000.0, "Price": 1.0, "Confidence": 1.0, "MMHaircut": 0.0,
             "IMHaircut": 0.0, "IsRiskCancelling": False},
        ],
        "Options": options,
        "OptionFeeds": feeds,
    }
    return {"Scenario": scenario, "Parameters": PARAMETERS}


@dataclass(frozen=True)
class Samples:
    wall_us: list[float]
    cpu_us: list[float]  # this thread's CPU time: unaffected by other processes taking the core


def measure(actions: dict[str, Callable[[], object]], runs: int) -> dict[str, Samples]:
    """Time the actions in turn, run after run, so that drift in machine load falls on all of them alike."""
    for action in actions.values():
        for _ in range(min(runs, 200)):  # warm caches and numpy's dispatch
            action()
    samples = {name: Samples(wall_us=[], cpu_us=[]) for name in actions}
    gc.disable()
    try:
        for _ in range(runs):
            for name, action in actions.items():
                wall_start, cpu_start = time.perf_counter_ns(), time.thread_time_ns()
                action()
                samples[name].cpu_us.append((time.thread_time_ns() - cpu_start) / 1_000.0)
                samples[name].wall_us.append((time.perf_counter_ns() - wall_start) / 1_000.0)
    finally:
        gc.enable()
    return samples


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    raw = build_case(args.seed)
    text = json.dumps(raw)
    case = Pm2Case.model_validate(raw)
    result = evaluate_pm2(case)
    rows = measure(
        {
            "evaluate_pm2(case)": lambda: evaluate_pm2(case),
            "validate JSON -> Pm2Case": lambda: Pm2Case.model_validate_json(text),
            "validate + evaluate": lambda: evaluate_pm2(Pm2Case.model_validate_json(text)),
        },
        args.runs,
    )

    legs, expiries = len(case.scenario.options), len({o.expiry for o in case.scenario.options})
    print(f"Derive PM2, {legs} legs, {expiries} expiries, {len(case.parameters.scenarios)} stress scenarios "
          f"+ basis contingency; {args.runs} runs, seed {args.seed}")
    print(f"python {platform.python_version()}, numpy {np.__version__}, {platform.machine()}")
    print(f"MM {result.mm:,.2f}  IM {result.im:,.2f}  worst: scenario {result.worst_scenario.index} "
          f"({result.worst_scenario.description})")
    print()
    print(f"| {'step':<26} | {'median (us)':>11} | {'p99 (us)':>9} | {'CPU median (us)':>15} | {'CPU p99 (us)':>12} |")
    print(f"|{'-' * 28}|{'-' * 12}:|{'-' * 10}:|{'-' * 16}:|{'-' * 13}:|")
    for name, samples in rows.items():
        print(f"| {name:<26} | {statistics.median(samples.wall_us):>11.1f} | {percentile(samples.wall_us, 0.99):>9.1f} "
              f"| {statistics.median(samples.cpu_us):>15.1f} | {percentile(samples.cpu_us, 0.99):>12.1f} |")


if __name__ == "__main__":
    main()
