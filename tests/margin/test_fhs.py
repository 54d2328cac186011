"""The filtered-historical-simulation model against an independent re-statement of its definition."""

from __future__ import annotations

import math
from datetime import date, timedelta
from typing import Any

import numpy as np
import pytest
from support.golden import AS_OF, market, position
from support.history import history

from risk_core.errors import InputError
from risk_core.margin.engine import compute_margin_request
from risk_core.margin.fhs import ewma_variance, expected_shortfall, historical_scenario_sets
from risk_core.schema.market import MarketSnapshot
from risk_core.schema.params import default_params
from risk_core.schema.request import MarginRequest

LAST_CLOSE = date(2026, 11, 25)  # the as_of day: its close (00:00 UTC) is known
DAYS = 700
FHS = default_params().fhs


def test_expected_shortfall_is_the_mean_of_the_worst_tail() -> None:
    losses = np.arange(1.0, 201.0)[::-1].copy()
    assert expected_shortfall(losses, 0.99) == 199.5  # the worst 2 of 200
    assert expected_shortfall(np.arange(1.0, 251.0), 0.99) == 249.0  # the worst ceil(2.5) = 3 of 250
    assert expected_shortfall(np.arange(1.0, 101.0), 0.95) == 98.0  # the worst 5 of 100


def test_ewma_variance_follows_the_riskmetrics_recursion() -> None:
    r = np.random.default_rng(1).normal(0, 0.03, 300)
    before, tomorrow = ewma_variance(r, 0.94, 30)
    s2 = sum(x * x for x in r[:30]) / 30
    for t, x in enumerate(r):
        assert before[t] == pytest.approx(s2, rel=1e-10)
        s2 = 0.94 * s2 + 0.06 * x * x
    assert tomorrow == pytest.approx(s2, rel=1e-10)


def independent_shocks(closes: list[float]) -> tuple[list[float], list[float], list[float]]:
    """(filtered 2-day moves, stressed window's raw 2-day moves, squared returns) by plain loops."""
    r = [math.log(b / a) for a, b in zip(closes, closes[1:], strict=False)]
    lam, seed, m = FHS.ewma_lambda, FHS.seed_days, FHS.margin_period_days
    s2 = sum(x * x for x in r[:seed]) / seed
    sigma = []
    for x in r:
        sigma.append(math.sqrt(s2))
        s2 = lam * s2 + (1 - lam) * x * x
    today = math.sqrt(s2)
    z = [x / s for x, s in zip(r, sigma, strict=True)]
    filtered = [math.expm1(today * sum(z[t : t + m])) for t in range(seed, len(r) - m + 1)]
    filtered = filtered[-FHS.lookback_days :]
    raw = [math.expm1(sum(r[t : t + m])) for t in range(len(r) - m + 1)]
    return filtered, raw, [x * x for x in r]


def test_scenarios_are_the_filtered_and_stressed_moves() -> None:
    doc = history(DAYS, LAST_CLOSE)
    snapshot = MarketSnapshot.model_validate(market(history=doc))
    sets = historical_scenario_sets(snapshot, ["BTC", "ETH"], default_params())
    layout = sets["BTC"].history
    assert layout is not None
    n_vol = layout.n_vol
    squares = None
    for asset in ("BTC", "ETH"):
        filtered, raw, sq = independent_shocks(doc["close"][asset])
        squares = sq if squares is None else [a + b for a, b in zip(squares, sq, strict=True)]
        got = sets[asset].spot_shock[::n_vol]
        assert got[: layout.n_filtered] == pytest.approx(filtered, rel=1e-9)
        stressed = got[layout.n_filtered :]
        assert len(stressed) == FHS.stress_window_days - FHS.margin_period_days + 1
    assert squares is not None
    # the stressed window: the stretch of the lookback with the largest summed squared returns
    span = FHS.stress_window_days
    load = [sum(squares[t : t + span]) for t in range(len(squares) - span + 1)]
    first = int(np.argmax(load))
    for asset in ("BTC", "ETH"):
        _, raw, _ = independent_shocks(doc["close"][asset])
        window = raw[first : first + span - FHS.margin_period_days + 1]
        assert sets[asset].spot_shock[::n_vol][layout.n_filtered :] == pytest.approx(window, rel=1e-9)
    # every scenario's date is its window's last close
    last = date.fromisoformat(doc["dates"][-1])
    assert layout.date_of((layout.n_filtered - 1) * n_vol) == last


def book_request(positions: list[dict[str, Any]], **market_extra: Any) -> MarginRequest:
    return MarginRequest.model_validate({
        "positions": positions, "market": market(**market_extra),
        "params": {"model": "fhs", "contingencies_enabled": False},
    })


def test_margin_is_the_expected_shortfall_with_the_stressed_floor() -> None:
    doc = history(DAYS, LAST_CLOSE)
    spot = {"BTC": 100_000.0, "ETH": 3_000.0}
    q = {"BTC": 2.0, "ETH": -50.0}  # long BTC, short ETH: a spread
    positions = [position("spot", asset="BTC", quantity=2.0), position("perp", underlying="ETH", quantity=-50.0)]
    report = compute_margin_request(book_request(positions, history=doc))
    shocks = {a: independent_shocks(doc["close"][a]) for a in q}
    n_filtered = len(shocks["BTC"][0])
    pnl_f = [sum(q[a] * spot[a] * shocks[a][0][j] for a in q) for j in range(n_filtered)]
    squares = [a + b for a, b in zip(shocks["BTC"][2], shocks["ETH"][2], strict=True)]
    span = FHS.stress_window_days
    first = int(np.argmax([sum(squares[t : t + span]) for t in range(len(squares) - span + 1)]))
    count = span - FHS.margin_period_days + 1
    pnl_s = [sum(q[a] * spot[a] * shocks[a][1][first + j] for a in q) for j in range(count)]

    def es(pnl: list[float]) -> float:
        worst = sorted(-x for x in pnl)[::-1][: math.ceil(round(0.01 * len(pnl), 9))]
        return sum(worst) / len(worst)

    expected = max(es(pnl_f), 0.75 * es(pnl_f) + 0.25 * es(pnl_s))
    assert report.model == "fhs"
    assert report.risk_usd == pytest.approx(expected, rel=1e-9)
    assert report.maintenance_margin_usd == pytest.approx(expected, rel=1e-9)
    worst = report.worst_scenarios
    assert len(worst) == 5 and [w.pnl_usd for w in worst] == sorted(w.pnl_usd for w in worst)
    assert worst[0].pnl_usd == pytest.approx(min(pnl_f + pnl_s), rel=1e-9)
    assert report.underlyings["BTC"].worst_scenario.kind == "historical"


def test_options_move_with_the_vol_history_where_recorded_else_the_grid_shocks() -> None:
    doc = history(DAYS, LAST_CLOSE)
    iv = [None] * (DAYS - 100) + [0.5 + 0.001 * i for i in range(100)]  # recorded for the last 100 days only
    doc["atm_iv"] = {"BTC": iv}
    snapshot = MarketSnapshot.model_validate(market(history=doc))
    sets = historical_scenario_sets(snapshot, ["BTC"], default_params())
    s = sets["BTC"]
    layout = s.history
    assert layout is not None
    vols = s.vol_shock.reshape(-1, layout.n_vol)
    assert vols[layout.n_filtered - 1].tolist() == pytest.approx([iv[-1] / iv[-3] - 1] * layout.n_vol)
    assert vols[0].tolist() == [-0.25, 0.0, 0.5]  # the major class's grid vol shocks, ascending


def test_the_model_refuses_what_it_cannot_margin() -> None:
    spot = [position("spot", asset="BTC", quantity=1.0)]
    with pytest.raises(InputError, match="market.history: required"):
        compute_margin_request(book_request(spot))
    short = history(200, LAST_CLOSE)
    with pytest.raises(InputError) as e:
        compute_margin_request(book_request(spot, history=short))
    assert e.value.field == "market.history"
    no_sol = history(DAYS, LAST_CLOSE)
    with pytest.raises(InputError) as e:
        compute_margin_request(book_request(
            [position("spot", asset="SOL", quantity=1.0)], history=no_sol, spot={"SOL": 200.0}
        ))
    assert e.value.field == "market.history.close.SOL"


def test_closes_after_as_of_are_never_read() -> None:
    doc = history(DAYS, LAST_CLOSE)
    later = dict(doc)
    extra_dates = [(LAST_CLOSE + timedelta(days=i)).isoformat() for i in range(1, 30)]
    later = {"dates": doc["dates"] + extra_dates,
             "close": {a: v + [v[-1] * (0.5 if i % 2 else 2.0) for i in range(29)] for a, v in doc["close"].items()}}
    spot = [position("spot", asset="BTC", quantity=1.0), position("perp", underlying="ETH", quantity=-30.0)]
    a = compute_margin_request(book_request(spot, history=doc))
    b = compute_margin_request(book_request(spot, history=later))
    assert a.maintenance_margin_usd == b.maintenance_margin_usd
    assert AS_OF.startswith(LAST_CLOSE.isoformat())
