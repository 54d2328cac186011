"""Backtest statistics of a margin's exceptions (scipy): Kupiec's proportion of failures, Christoffersen's
independence and conditional coverage, and the Basel traffic light.

- Kupiec, P. (1995), "Techniques for verifying the accuracy of risk measurement models", Journal of Derivatives
  3(2): LR_pof = -2 ln[(1 - p)^(n - x) p^x] + 2 ln[(1 - x/n)^(n - x) (x/n)^x] ~ chi2(1).
- Christoffersen, P. (1998), "Evaluating interval forecasts", International Economic Review 39(4): LR_ind from the
  first-order Markov transition counts ~ chi2(1); LR_cc = LR_pof + LR_ind ~ chi2(2).
- Basel Committee (1996), "Supervisory framework for the use of backtesting in conjunction with the internal
  models approach to market risk capital requirements": green while the binomial probability of at most x
  exceptions is below 95%, red from 99.99%, yellow between.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from scipy.special import xlogy
from scipy.stats import binom, chi2

Zone = Literal["green", "yellow", "red"]
GREEN_BELOW, RED_FROM = 0.95, 0.9999


@dataclass(frozen=True)
class CoverageTests:
    kupiec_pof_p: float
    christoffersen_independence_p: float
    christoffersen_cc_p: float
    traffic_light: Zone


def kupiec_lr(days: int, exceptions: int, p: float) -> float:
    x, n = exceptions, days
    rate = x / n
    null = xlogy(n - x, 1.0 - p) + xlogy(x, p)
    fitted = xlogy(n - x, 1.0 - rate) + xlogy(x, rate)
    return float(max(-2.0 * (null - fitted), 0.0))


def christoffersen_independence_lr(hits: NDArray[np.bool_]) -> float:
    prev, nxt = hits[:-1], hits[1:]
    n00 = int(np.sum(~prev & ~nxt))
    n01 = int(np.sum(~prev & nxt))
    n10 = int(np.sum(prev & ~nxt))
    n11 = int(np.sum(prev & nxt))
    pi01 = n01 / (n00 + n01) if n00 + n01 else 0.0
    pi11 = n11 / (n10 + n11) if n10 + n11 else 0.0
    pi = (n01 + n11) / (n00 + n01 + n10 + n11)
    null = xlogy(n00 + n10, 1.0 - pi) + xlogy(n01 + n11, pi)
    markov = xlogy(n00, 1.0 - pi01) + xlogy(n01, pi01) + xlogy(n10, 1.0 - pi11) + xlogy(n11, pi11)
    return float(max(-2.0 * (null - markov), 0.0))


def traffic_light(days: int, exceptions: int, p: float) -> Zone:
    cumulative = float(binom.cdf(exceptions, days, p))
    return "green" if cumulative < GREEN_BELOW else "red" if cumulative >= RED_FROM else "yellow"


def coverage_tests(hits: NDArray[np.bool_], coverage: float) -> CoverageTests:
    """The tests of an exception series (True: the loss exceeded the margin) against a coverage level."""
    p = 1.0 - coverage
    days, exceptions = int(hits.size), int(hits.sum())
    pof = kupiec_lr(days, exceptions, p)
    independence = christoffersen_independence_lr(hits)
    return CoverageTests(
        kupiec_pof_p=float(chi2.sf(pof, 1)),
        christoffersen_independence_p=float(chi2.sf(independence, 1)),
        christoffersen_cc_p=float(chi2.sf(pof + independence, 2)),
        traffic_light=traffic_light(days, exceptions, p),
    )
