"""A small market and an independent scalar re-statement of docs/margin-model.md's default scenarios, so golden
tests can work out expected margins without the engine's code."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

AS_OF = "2026-11-25T00:00:00Z"
EXPIRY_30D = "2026-12-25T00:00:00Z"  # exactly 30 days: the tenor scaling of vol shocks is 1
BTC, ETH = 100_000.0, 3_000.0
BTC_VOL = 0.5


def market(**extra: Any) -> dict[str, Any]:
    m: dict[str, Any] = {
        "as_of": AS_OF,
        "spot": {"BTC": BTC, "ETH": ETH, "USDC": 1.0},
        "vol": {
            "BTC": {"points": [{"expiry": EXPIRY_30D, "strike": BTC, "iv": BTC_VOL}]},
            "ETH": {"points": [{"expiry": EXPIRY_30D, "strike": ETH, "iv": 0.6}]},
        },
    }
    m.update(extra)
    return m


def position(kind: str, **fields: Any) -> dict[str, Any]:
    base = {"kind": kind, "venue": "deribit", "chain": "offchain", "account": "acct-1"}
    base.update(fields)
    return base


def option(q: float, option_type: str, strike: float, underlying: str = "BTC", **kw: Any) -> dict[str, Any]:
    return position(
        "option", underlying=underlying, quantity=q, option_type=option_type, strike=strike, expiry=EXPIRY_30D,
        settlement=kw.pop("settlement", "linear"), **kw,
    )


def bs(forward: float, strike: float, years: float, vol: float, call: bool) -> float:
    """Black-76 at zero rates, scalar, from math.erf: independent of risk_core's vectorized pricer."""
    if vol * math.sqrt(years) <= 0:
        return max(forward - strike, 0.0) if call else max(strike - forward, 0.0)
    sd = vol * math.sqrt(years)
    d1 = (math.log(forward / strike) + 0.5 * sd * sd) / sd
    d2 = d1 - sd

    def n(x: float) -> float:
        return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))

    if call:
        return forward * n(d1) - strike * n(d2)
    return strike * n(-d2) - forward * n(-d1)


# The defaults of docs/margin-model.md for a major coin, re-stated by hand.
SPOT_SHOCKS = [-0.16 + 0.32 * i / 14 for i in range(15)]
TAILS = [-0.66, -0.33, 0.5, 1.0, 2.0, 3.0]
COVER = 0.1386
MIN_VOL_UP = 0.30
YEARS_30D = 30 / 365


def scenario_losses(pnl: Callable[[float, Callable[[float, float], float]], float]) -> list[float]:
    """Counted P&L of every default scenario. `pnl(spot_move, vol_of)` revalues the book; `vol_of(sigma, k)`
    gives an option's scenario vol from its base vol and log-moneyness."""
    out = []
    vol_rules: list[Callable[[float, float], float]] = [
        lambda s, k: s,
        lambda s, k: max(s * 1.5, MIN_VOL_UP),
        lambda s, k: s * 0.75,
    ]
    for move in SPOT_SHOCKS:
        for rule in vol_rules:
            out.append(pnl(move, rule))
    for move in TAILS:
        out.append(pnl(move, vol_rules[1]) * min(1.0, COVER / abs(move)))
    skews: list[Callable[[float, float], float]] = [
        lambda s, k: s * (1 + min(max(0.5 * k, -0.25), 0.25)),
        lambda s, k: s * (1 - min(max(0.5 * k, -0.25), 0.25)),
        lambda s, k: s * (1 + min(0.5 * abs(k), 0.25)),
    ]
    for rule in skews:
        out.append(pnl(0.0, rule))
    return out


def worst_loss(pnl: Callable[[float, Callable[[float, float], float]], float]) -> float:
    return max(0.0, -min(scenario_losses(pnl)))


