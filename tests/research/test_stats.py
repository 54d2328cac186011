"""The backtest statistics against worked examples published in the literature."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import chi2

from research.stats import christoffersen_independence_lr, coverage_tests, kupiec_lr, traffic_light


@pytest.mark.parametrize(
    ("days", "lowest", "highest"),
    [
        # Kupiec (1995), reproduced in Jorion, "Value at Risk" (3rd ed., 2007), table 6-2: the non-rejection
        # regions of the proportion-of-failures test at 95% confidence for a 99% VaR: T = 510: 1 < N < 11;
        # T = 1000: 4 < N < 17
        (510, 2, 10),
        (1000, 5, 16),
    ],
)
def test_kupiec_non_rejection_regions_match_the_published_table(days: int, lowest: int, highest: int) -> None:
    accepted = [x for x in range(40) if chi2.sf(kupiec_lr(days, x, 0.01), 1) > 0.05]
    assert accepted == list(range(lowest, highest + 1))


def test_kupiec_upper_bound_for_a_year_matches_the_published_table() -> None:
    # same table, T = 255: N < 7
    assert chi2.sf(kupiec_lr(255, 6, 0.01), 1) > 0.05
    assert chi2.sf(kupiec_lr(255, 7, 0.01), 1) < 0.05


# Basel Committee (1996), "Supervisory framework for the use of backtesting ...", table 1 (250 observations, 99%
# coverage): cumulative probability of at most x exceptions, in percent, and the zone
BASEL_TABLE = [
    (0, 8.11, "green"), (1, 28.58, "green"), (2, 54.32, "green"), (3, 75.81, "green"), (4, 89.22, "green"),
    (5, 95.88, "yellow"), (6, 98.63, "yellow"), (7, 99.60, "yellow"), (8, 99.89, "yellow"), (9, 99.97, "yellow"),
    (10, 99.99, "red"), (11, 100.00, "red"),
]


@pytest.mark.parametrize(("exceptions", "cumulative_percent", "zone"), BASEL_TABLE)
def test_traffic_light_reproduces_the_basel_table(exceptions: int, cumulative_percent: float, zone: str) -> None:
    # the cumulative probability, summed here from the binomial terms by hand
    cumulative = sum(math.comb(250, k) * 0.01**k * 0.99 ** (250 - k) for k in range(exceptions + 1))
    assert round(100 * cumulative, 2) == cumulative_percent
    assert traffic_light(250, exceptions, 0.01) == zone


def test_christoffersen_independence_against_a_hand_count() -> None:
    # Christoffersen (1998), "Evaluating interval forecasts", IER 39(4), eq. for LR_ind: transition counts of
    # 0 0 1 1 0 0 0 1 0 0 are n00 = 4, n01 = 2, n10 = 2, n11 = 1
    hits = np.array([0, 0, 1, 1, 0, 0, 0, 1, 0, 0], dtype=bool)
    n00, n01, n10, n11 = 4, 2, 2, 1
    pi01, pi11, pi = n01 / (n00 + n01), n11 / (n10 + n11), (n01 + n11) / 9
    restricted = (n00 + n10) * math.log(1 - pi) + (n01 + n11) * math.log(pi)
    unrestricted = (
        n00 * math.log(1 - pi01) + n01 * math.log(pi01) + n10 * math.log(1 - pi11) + n11 * math.log(pi11)
    )
    assert christoffersen_independence_lr(hits) == pytest.approx(-2 * (restricted - unrestricted), rel=1e-12)


def test_clustered_exceptions_fail_independence_and_conditional_coverage() -> None:
    scattered = np.zeros(1000, dtype=bool)
    scattered[[50, 250, 450, 650, 850, 950]] = True
    clustered = np.zeros(1000, dtype=bool)
    clustered[500:506] = True  # the same count (6, near 1%), all in one week
    a, b = coverage_tests(scattered, 0.99), coverage_tests(clustered, 0.99)
    assert a.kupiec_pof_p == pytest.approx(b.kupiec_pof_p)  # POF sees only the count
    assert a.christoffersen_independence_p > 0.5
    assert b.christoffersen_independence_p < 1e-6
    assert b.christoffersen_cc_p < 0.01 < a.christoffersen_cc_p
    # LR_cc = LR_pof + LR_ind (Christoffersen 1998), read back from the p-values
    lr_cc = chi2.isf(b.christoffersen_cc_p, 2)
    assert lr_cc == pytest.approx(kupiec_lr(1000, 6, 0.01) + christoffersen_independence_lr(clustered), rel=1e-6)
