"""The replayed market moves along the recorded price path: ratios read off the recorded Chainlink rounds here,
independently of the module, and the option chain moved with its currency at its recorded implied vols."""

from __future__ import annotations

import csv
import math
from dataclasses import replace
from datetime import datetime, timedelta

import pytest
from scipy.stats import norm

import reference_data
from venue_servers.price_path import CHAINLINK_FILES, DEFAULT_SPEED, recorded_price_path
from venue_servers.scenario import MarketScenario, default_scenario, load_deribit_file


def recorded_rounds(asset: str) -> list[tuple[int, float]]:
    """(updatedAt, USD price) of every valid round, oldest first, read with the csv module alone."""
    with reference_data.path("market", "chainlink", CHAINLINK_FILES[asset]).open(newline="") as f:
        rounds = [(int(r["update"]), int(r["answer"]) / 1e8) for r in csv.DictReader(f) if r["answer"] != "0"]
    return sorted(rounds)


def usd_black76(forward: float, strike: float, years: float, vol: float, is_call: bool) -> float:
    total = vol * math.sqrt(years)
    d1 = (math.log(forward / strike) + total * total / 2) / total
    call = forward * norm.cdf(d1) - strike * norm.cdf(d1 - total)
    return call if is_call else call - forward + strike  # put-call parity


def at(scenario: MarketScenario, moment: datetime) -> MarketScenario:
    return replace(scenario, clock=lambda: moment, path=recorded_price_path())


def test_the_path_starts_at_the_recorded_spot_and_follows_the_rounds() -> None:
    path = recorded_price_path()
    btc, eth = recorded_rounds("BTC"), recorded_rounds("ETH")
    assert path.start == max(btc[0][0], eth[0][0], path.series["SOL"].times[0])
    for asset, rounds in (("BTC", btc), ("ETH", eth)):
        first = next(i for i, (t, _) in enumerate(rounds) if t >= path.start)
        for later in (first + 1, first + 10, first + 200):
            t, price = rounds[later]
            start_price = rounds[first][1] if rounds[first][0] == path.start else None
            if start_price is None:  # this asset's recorded start falls between two rounds: interpolate it
                (t0, p0), (t1, p1) = rounds[first - 1], rounds[first]
                start_price = p0 + (p1 - p0) * (path.start - t0) / (t1 - t0)
            elapsed = (t - path.start) / DEFAULT_SPEED
            assert path.ratio(asset, elapsed) == pytest.approx(price / start_price, rel=1e-12)
    assert path.ratio("GOLD", 600.0) == 1.0  # no recorded path: held


def test_a_replayed_scenario_moves_its_prices_and_its_option_chain() -> None:
    recorded = default_scenario()
    assert at(recorded, recorded.as_of).deribit_data() is load_deribit_file(recorded.deribit_file)
    assert at(recorded, recorded.as_of).price("pyth", "BTC") == recorded.price("pyth", "BTC")

    later = at(recorded, recorded.as_of + timedelta(minutes=10))
    moves = {a: recorded_price_path().ratio(a, 600.0) for a in ("BTC", "ETH", "SOL")}
    assert all(abs(m - 1) > 1e-4 for m in moves.values())  # ten recorded hours: every price has moved
    for asset, m in moves.items():
        assert later.price("pyth", asset) == pytest.approx(recorded.price("pyth", asset) * m, rel=1e-12)

    chain, moved = load_deribit_file(recorded.deribit_file).rows, later.deribit_data().rows
    assert [r.instrument for r in moved] == [r.instrument for r in chain]
    for before, after in list(zip(chain, moved, strict=True))[::50]:
        m = moves[before.currency]
        assert after.underlying == pytest.approx(before.underlying * m, rel=1e-12)
        assert after.index == pytest.approx(before.index * m, rel=1e-12)
        assert after.iv == before.iv and after.strike == before.strike

        years = (before.expiry - recorded.as_of).total_seconds() / (365 * 86400)
        value, moved_value = (usd_black76(f, before.strike, years, before.iv, before.is_call)
                              for f in (before.underlying, before.underlying * m))
        if value > 1e-9 * before.underlying:
            # the coin mark moves as the option's USD value at its recorded vol, converted at the moved forward
            assert after.mark == pytest.approx(before.mark * moved_value / value / m, rel=1e-9)
