"""Acceptance: Black-76 reprices two real Deribit BTC+ETH option chains (mark price, delta, vega).

Conventions of the files (each one checked by a test below):

* Deribit options are inverse: the premium is in coin. ``mark_price = B76(F, K, T, sigma, r=0) / F`` with
  F = ``underlying`` (the future or synthetic forward of that expiry, in USD), sigma = ``implied_volatility``
  (decimal) and no discounting.
* T is ACT/365 in Deribit's pricing: (expiry - snapshot time) in days / 365. The file's ``time_to_maturity``
  column is the same interval over 365.25 days, so T = time_to_maturity * 365.25 / 365.
* ``delta`` is the undiscounted Black forward delta in coin per option: N(d1) for a call, N(d1) - 1 for a put.
  It is *not* premium-adjusted (N(d1) - mark_price would be the inverse option's coin delta net of its premium).
* ``vega`` is in USD per one vol point: dB76/dsigma / 100 = F phi(d1) sqrt(T) / 100.

How the files were recorded matters for the greeks. The rows are in fetch order (``index_price`` drifts smoothly
from row to row, by up to 1.1% within the sell-off file). ``mark_price``, ``underlying`` and
``implied_volatility`` come from one snapshot at the file's timestamp: they agree with each other, and agree
worse once the forward is moved with the index. ``delta`` and ``vega`` were computed by Deribit when the row was
fetched, minutes later: they agree with a forward that moved with the index since the first row of the same
currency, F_greeks = underlying * index_price / index_price(first row), and not with ``underlying``.
By then the implied vol had also moved (by several vol points in the sell-off), so vega is checked at the vol that
Deribit's own delta implies (d1 = N^-1(delta)), which tests the vega convention itself: USD per vol point at the
same d1 as the delta.

Tolerances:

* price: median relative error under 0.2%, and every row (mark >= 1e-4 coin) within 2% of its mark once the
  forward is allowed to sit within FORWARD_BAND (2 bp) of ``underlying``. At the recorded ``underlying`` itself,
  6 rows of ~3000, all expiring within two days, miss 2% (worst 2.6%): for those a forward 1-2 bp away (the
  recorded forwards of one expiry differ from row to row by up to 9 bp) moves the price by several percent.
  At most RAW_MISS_SHARE of the rows may need the band.
* delta: median relative error under 0.2% (rows with |delta| >= 0.05), every row within 0.02 of the file's delta
  (2% of the one-coin notional; a relative bound cannot hold for near-zero deltas, nor for the sell-off file's
  deltas computed after the vol moved).
* vega: median relative error under 0.2%, every row within 2% (rows with 0.05 <= |delta| <= 0.95, where the
  delta pins d1 down).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray
from scipy.special import ndtri

import reference_data
from risk_core.pricing.black76 import black76_greeks, black76_price

REPO = Path(__file__).resolve().parents[2]  # tests/pricing/<this file> -> the repository root
DATA = reference_data.path("market")
DERIBIT = DATA / "deribit"
FILES = sorted(DERIBIT.glob("deribit_options_snapshot_*.csv")) if DERIBIT.is_dir() else []

SECONDS_PER_DAY = 86400.0
DAYS_PER_YEAR = 365.0  # Deribit's pricing convention
COLUMN_DAYS_PER_YEAR = 365.25  # the file's time_to_maturity column
MIN_MARK = 1e-4  # coin; cheaper marks are excepted from the relative price check
MEDIAN_REL_TOL = 2e-3
MAX_REL_TOL = 2e-2
FORWARD_BAND = 2e-4
RAW_MISS_SHARE = 5e-3
DELTA_ABS_TOL = 2e-2
NO_VOL_SHARE = 1e-2  # rows whose delta no vol reproduces exactly (vega check)
MIN_DELTA = 0.05
COLUMN_RTOL = 1e-9


Array = NDArray[np.float64]


@dataclass(frozen=True)
class Chain:
    name: list[str]
    currency: NDArray[np.str_]
    forward: Array
    strike: Array
    is_call: NDArray[np.bool_]
    sigma: Array
    ttm_column: Array
    days: Array  # expiry - timestamp, in days
    mark: Array
    delta: Array
    vega: Array
    index: Array

    @property
    def years(self) -> Array:
        """Deribit's T, from the file's column: ACT/365.25 -> ACT/365."""
        return self.ttm_column * COLUMN_DAYS_PER_YEAR / DAYS_PER_YEAR

    @property
    def greeks_forward(self) -> Array:
        """The forward when the row's greeks were computed: the snapshot forward moved with the index."""
        first_index = {c: self.index[self.currency == c][0] for c in np.unique(self.currency)}
        reference = np.array([first_index[c] for c in self.currency])
        return self.forward * self.index / reference


_CACHE: dict[Path, Chain] = {}


def load(path: Path) -> Chain:
    if path not in _CACHE:
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f))

        def col(key: str) -> Array:
            return np.array([float(r[key]) for r in rows])

        days = np.array(
            [
                (datetime.fromisoformat(r["expiry_datetime"]) - datetime.fromisoformat(r["timestamp"])).total_seconds()
                / SECONDS_PER_DAY
                for r in rows
            ]
        )
        _CACHE[path] = Chain(
            name=[r["instrument_name"] for r in rows],
            currency=np.array([r["currency"] for r in rows]),
            forward=col("underlying"),
            strike=col("strike"),
            is_call=np.array([r["option_type"] == "call" for r in rows]),
            sigma=col("implied_volatility"),
            ttm_column=col("time_to_maturity"),
            days=days,
            mark=col("mark_price"),
            delta=col("delta"),
            vega=col("vega"),
            index=col("index_price"),
        )
    return _CACHE[path]


def coin_price(c: Chain, forward: Array, years: Array) -> Array:
    return black76_price(forward, c.strike, years, c.sigma, c.is_call) / forward


def rel_price_errors(c: Chain, years: Array) -> Array:
    priced = c.mark >= MIN_MARK
    return np.abs(coin_price(c, c.forward, years)[priced] / c.mark[priced] - 1.0)


ids = [p.stem.removeprefix("deribit_options_snapshot_") for p in FILES]


@pytest.fixture(params=FILES, ids=ids)
def chain(request: pytest.FixtureRequest) -> Chain:
    return load(request.param)


def test_the_files_are_what_sources_md_says(chain: Chain) -> None:
    assert set(chain.currency) == {"BTC", "ETH"}
    assert len(chain.name) > 1000
    assert np.all(chain.days > 0)
    assert np.all((chain.sigma > 0) & (chain.sigma < 5))  # decimals, not percent
    assert np.all(chain.delta[chain.is_call] >= 0) and np.all(chain.delta[~chain.is_call] <= 0)


def test_time_to_maturity_column_is_act_365_25(chain: Chain) -> None:
    np.testing.assert_allclose(chain.ttm_column * COLUMN_DAYS_PER_YEAR, chain.days, rtol=COLUMN_RTOL)


def test_marks_are_priced_on_act_365(chain: Chain) -> None:
    act_365 = np.median(rel_price_errors(chain, chain.days / DAYS_PER_YEAR))
    act_365_25 = np.median(rel_price_errors(chain, chain.ttm_column))
    assert act_365 < 0.8 * act_365_25


def test_mark_price(chain: Chain) -> None:
    years = chain.years
    errors = rel_price_errors(chain, years)
    assert np.median(errors) < MEDIAN_REL_TOL
    assert np.mean(errors > MAX_REL_TOL) <= RAW_MISS_SHARE

    # every row within MAX_REL_TOL of its mark for some forward within the band: the coin price is monotone in the
    # forward (d(C/F)/dF = K N(d2) / F^2 > 0, d(P/F)/dF = -K N(-d2) / F^2 < 0), so the band's ends bound it.
    priced = chain.mark >= MIN_MARK
    ends = [coin_price(chain, chain.forward * (1.0 + s * FORWARD_BAND), years)[priced] for s in (-1.0, 1.0)]
    low, high = np.minimum(*ends), np.maximum(*ends)
    mark = chain.mark[priced]
    gap = np.maximum(low - mark, 0.0) + np.maximum(mark - high, 0.0)
    worst = int(np.argmax(gap / mark))
    names = np.array(chain.name)[priced]
    assert gap[worst] / mark[worst] < MAX_REL_TOL, names[worst]


def test_greeks_were_taken_after_the_marks(chain: Chain) -> None:
    """The snapshot forward explains the marks; the forward moved with the index explains the deltas."""
    years = chain.years
    at_snapshot = black76_greeks(chain.forward, chain.strike, years, chain.sigma, chain.is_call)
    at_fetch = black76_greeks(chain.greeks_forward, chain.strike, years, chain.sigma, chain.is_call)
    assert np.median(np.abs(at_fetch.delta - chain.delta)) < np.median(np.abs(at_snapshot.delta - chain.delta))
    priced = chain.mark >= MIN_MARK
    fetch_price = at_fetch.price[priced] / chain.greeks_forward[priced]
    assert np.median(rel_price_errors(chain, years)) < np.median(np.abs(fetch_price / chain.mark[priced] - 1.0))


def test_delta_is_the_black_forward_delta(chain: Chain) -> None:
    g = black76_greeks(chain.greeks_forward, chain.strike, chain.years, chain.sigma, chain.is_call)
    error = np.abs(g.delta - chain.delta)
    sized = np.abs(chain.delta) >= MIN_DELTA
    assert np.median(error[sized] / np.abs(chain.delta[sized])) < MEDIAN_REL_TOL
    worst = int(np.argmax(error))
    assert error[worst] < DELTA_ABS_TOL, chain.name[worst]
    # not premium-adjusted: N(d1) - mark is far off
    premium_adjusted = g.delta - chain.mark
    assert np.median(np.abs(premium_adjusted - chain.delta)[sized]) > 10 * np.median(error[sized])


def test_vega_is_usd_per_vol_point(chain: Chain) -> None:
    years = chain.years
    forward = chain.greeks_forward
    use = (np.abs(chain.delta) >= MIN_DELTA) & (np.abs(chain.delta) <= 1.0 - MIN_DELTA)
    # Deribit's d1 from its delta; then the vol that gives that d1 at this forward, strike and T:
    # s = sigma sqrt(T) solves s^2 / 2 - d1 s + ln(F/K) = 0; take the root nearest the snapshot's total vol.
    # Near the money a few rows (7 of ~2000) ask for a d1 just below the least one that ln(F/K) > 0 allows,
    # sqrt(2 ln(F/K)), their forward being a few bp off: they get the vol of that least d1 (s = d1, disc = 0).
    d1 = ndtri(np.where(chain.is_call, chain.delta, chain.delta + 1.0))[use]
    log_fk = np.log(forward / chain.strike)[use]
    disc = d1 * d1 - 2.0 * log_fk
    exact = disc >= 0
    assert np.mean(~exact) < NO_VOL_SHARE
    disc = np.maximum(disc, 0.0)
    roots = np.stack([d1 - np.sqrt(disc), d1 + np.sqrt(disc)])
    snapshot_total = chain.sigma[use] * np.sqrt(years[use])
    total = roots[np.argmin(np.abs(roots - snapshot_total), axis=0), np.arange(d1.size)]
    sigma = total / np.sqrt(years[use])
    assert np.all(sigma > 0)

    g = black76_greeks(forward[use], chain.strike[use], years[use], sigma, chain.is_call[use])
    np.testing.assert_allclose(g.delta[exact], chain.delta[use][exact], atol=1e-9)  # the inversion is exact
    errors = np.abs(g.vega / 100.0 / chain.vega[use] - 1.0)
    assert np.median(errors) < MEDIAN_REL_TOL
    worst = int(np.argmax(errors))
    assert errors[worst] < MAX_REL_TOL, np.array(chain.name)[use][worst]
