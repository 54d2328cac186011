"""The backtest runner: rows against independent arithmetic, statistics recomputed from the rows by independent
code, and no look-ahead."""

from __future__ import annotations

import json
import math
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from support.history import START, tape

from api.cli import main
from research.backtest import MarketTape, margin_and_value, run_backtest
from research.books import BooksFile
from research.report import backtest_document, write_files
from research.series import DAY, SeriesTable, write_series_csv
from risk_core.margin.engine import compute_margin
from risk_core.schema.params import default_params

DAYS = 420
BOOKS = BooksFile.model_validate({"books": [
    {"name": "long BTC", "rebalance": "daily", "legs": [{"kind": "spot", "asset": "BTC", "notional_usd": 1e6}]},
    {"name": "spread", "rebalance": "daily", "legs": [
        {"kind": "perp", "asset": "BTC", "notional_usd": 1e6}, {"kind": "perp", "asset": "ETH", "notional_usd": -1e6}]},
    {"name": "short straddle", "rebalance": "daily", "legs": [
        {"kind": "option", "asset": "BTC", "notional_usd": -1e6, "tenor_days": 30, "option_type": "call",
         "moneyness": 1.0},
        {"kind": "option", "asset": "BTC", "notional_usd": -1e6, "tenor_days": 30, "option_type": "put",
         "delta": -0.5}]},
]})


def flat_vols(prices: SeriesTable, iv: float) -> SeriesTable:
    rows = [(int(t), a, iv) for a, s in prices.series.items() for t in s.times]
    return SeriesTable.from_rows(rows, "atm_iv")


def run(model: str, prices: SeriesTable, **kw: Any) -> dict[str, Any]:
    params = default_params().model_copy(update={"model": model})
    results = run_backtest(BOOKS, MarketTape(prices, flat_vols(prices, 0.6)), params, horizon_days=1, **kw)
    return {r.name: r for r in results}


@pytest.fixture(scope="module")
def prices() -> SeriesTable:
    return tape(DAYS)


@pytest.fixture(scope="module")
def grid(prices: SeriesTable) -> dict[str, Any]:
    return run("grid", prices, first=START + timedelta(days=300))


@pytest.fixture(scope="module")
def fhs(prices: SeriesTable) -> dict[str, Any]:
    return run("fhs", prices)


def test_long_spot_rows_are_its_price_moves_and_the_grid_range(grid: dict[str, Any], prices: SeriesTable) -> None:
    r = grid["long BTC"]
    btc = prices.series["BTC"]
    by_day = dict(zip((btc.times // DAY).tolist(), btc.values.tolist(), strict=True))
    assert r.days == DAYS - 300 - 1  # every day from `first` to the last with a next day
    for d, mm, pnl in zip(r.dates, r.mm_usd.tolist(), r.pnl_usd.tolist(), strict=True):
        day = (d - date(1970, 1, 1)).days
        # $1M of BTC bought at the day's price, valued at the next day's
        assert pnl == pytest.approx(1e6 * (by_day[day + 1] / by_day[day] - 1.0), rel=1e-9)
        # the grid: the worst of the +/-16% range and the dampened tails (-66% x 0.1386 / 0.66 = -13.86%)
        assert mm == pytest.approx(160_000.0, rel=1e-12)


def recompute(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The statistics of a book from its rows, by formula, without research.stats or scipy."""
    hits = [(-row["pnl_usd"]) > row["mm_usd"] for row in rows]
    n, x, p = len(hits), sum(hits), 0.01

    def xlog(a: float, b: float) -> float:
        return 0.0 if a == 0 else a * math.log(b)

    lr_pof = -2 * (xlog(n - x, 1 - p) + xlog(x, p) - xlog(n - x, 1 - x / n) - xlog(x, x / n))
    pof_p = math.erfc(math.sqrt(max(lr_pof, 0.0) / 2))  # chi2(1) survival function
    pairs = list(zip(hits, hits[1:], strict=False))
    n00, n01 = pairs.count((False, False)), pairs.count((False, True))
    n10, n11 = pairs.count((True, False)), pairs.count((True, True))
    pi01 = n01 / (n00 + n01) if n00 + n01 else 0.0
    pi11 = n11 / (n10 + n11) if n10 + n11 else 0.0
    pi = (n01 + n11) / len(pairs)
    lr_ind = -2 * (xlog(n00 + n10, 1 - pi) + xlog(n01 + n11, pi)
                   - xlog(n00, 1 - pi01) - xlog(n01, pi01) - xlog(n10, 1 - pi11) - xlog(n11, pi11))
    ind_p = math.erfc(math.sqrt(max(lr_ind, 0.0) / 2))
    cc_p = math.exp(-(lr_pof + lr_ind) / 2)  # chi2(2) survival function
    cumulative = sum(math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(x + 1))
    zone = "green" if cumulative < 0.95 else "red" if cumulative >= 0.9999 else "yellow"
    shortfalls = [-row["pnl_usd"] - row["mm_usd"] for row, hit in zip(rows, hits, strict=True) if hit]
    return {"exceptions": x, "coverage": 1 - x / n, "kupiec_pof_p": pof_p, "christoffersen_independence_p": ind_p,
            "christoffersen_cc_p": cc_p, "traffic_light": zone, "largest_exception_usd": max(shortfalls, default=0.0),
            "mean_mm_usd": sum(row["mm_usd"] for row in rows) / n, "days": n}


@pytest.mark.parametrize("model", ["grid", "fhs"])
def test_statistics_recomputed_from_the_rows(model: str, grid: dict[str, Any], fhs: dict[str, Any]) -> None:
    results = list((grid if model == "grid" else fhs).values())
    document = backtest_document(results, model=model, horizon_days=1)
    for book in document["books"]:
        assert book["days"] > 50
        expected = recompute(book["rows"])
        for key, value in expected.items():
            expected_value = value if isinstance(value, str) else pytest.approx(value, rel=1e-7, abs=1e-12)
            assert book[key] == expected_value, (book["name"], key)


def test_the_fhs_model_starts_once_its_history_is_long_enough(fhs: dict[str, Any]) -> None:
    params = default_params().fhs
    # the first day with seed + margin period + min_scenarios closes (the first close is START's)
    first = START + timedelta(days=params.seed_days + params.margin_period_days + params.min_scenarios - 1)
    assert fhs["long BTC"].dates[0] == first


@pytest.mark.parametrize("model", ["grid", "fhs"])
def test_no_look_ahead_changing_the_future_leaves_past_margins_alone(model: str, prices: SeriesTable) -> None:
    cut = START + timedelta(days=360)
    shaken = {}
    rng = np.random.default_rng(3)
    for asset, s in prices.series.items():
        later = s.times >= (cut - date(1970, 1, 1)).days * DAY
        values = s.values.copy()
        values[later] *= np.exp(rng.normal(0.0, 0.3, later.sum()))  # a different future, violent
        shaken[asset] = type(s)(s.times, values)
    first = START + timedelta(days=320)
    a = run(model, prices, first=first)
    b = run(model, SeriesTable(shaken, "price"), first=first)
    for name in a:
        before = [j for j, d in enumerate(a[name].dates) if d < cut]
        assert len(before) == (cut - first).days
        assert a[name].mm_usd[before].tolist() == b[name].mm_usd[before].tolist()
        # the row of the day before the cut revalues at the cut's (changed) prices: P&L moves, margin does not
        settled = before[:-1]
        assert a[name].pnl_usd[settled].tolist() == b[name].pnl_usd[settled].tolist()
        assert a[name].pnl_usd[before[-1]] != b[name].pnl_usd[before[-1]]
        if model == "fhs":  # the changed future reaches the model: later margins move (the grid's scale with notional)
            assert a[name].mm_usd[len(before):].tolist() != b[name].mm_usd[len(before):].tolist()


def test_the_lean_margin_equals_the_report(prices: SeriesTable) -> None:
    params = default_params().model_copy(update={"model": "fhs"})
    from research.series import daily_history

    history = daily_history(prices, None, ["BTC", "ETH"], (START - date(1970, 1, 1)).days + DAYS - 1)
    market_tape = MarketTape(prices, flat_vols(prices, 0.6))
    day = (START - date(1970, 1, 1)).days + 400
    market = market_tape.snapshot(day, ["BTC", "ETH"], history)
    assert market is not None
    positions = [leg.position(market.as_of, market.spot[leg.asset], 0.6) for b in BOOKS.books for leg in b.legs]
    report = compute_margin(positions, market, params)
    mm, value, addon = margin_and_value(positions, market, params)
    assert mm == pytest.approx(report.maintenance_margin_usd, rel=1e-9)
    assert value == pytest.approx(report.equity_usd, rel=1e-9, abs=1e-6)
    assert addon == report.liquidity_addon_usd


def test_files_hold_the_rows(grid: dict[str, Any], tmp_path: Path) -> None:
    results = list(grid.values())
    document = backtest_document(results, model="grid", horizon_days=1)
    write_files(document, results, tmp_path)
    table = pq.read_table(tmp_path / "rows.parquet").to_pylist()
    assert len(table) == sum(r.days for r in results)
    first = next(row for row in table if row["book"] == "spread")
    spread = document["books"][1]["rows"][0]
    assert (first["date"].isoformat(), first["mm_usd"], first["pnl_usd"]) == (
        spread["date"], spread["mm_usd"], spread["pnl_usd"])
    assert (tmp_path / "long-btc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((tmp_path / "backtest.json").read_text()) == json.loads(json.dumps(document))


def test_cli_writes_the_issue_keys_and_refuses_bad_input(
    prices: SeriesTable, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_series_csv(tmp_path / "prices.csv", prices)
    (tmp_path / "books.json").write_text(json.dumps({"books": [BOOKS.books[0].model_dump(mode="json")]}))
    argv = ["backtest", str(tmp_path / "books.json"), "--prices", str(tmp_path / "prices.csv"), "--from",
            "2024-12-01"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) >= {"model", "horizon_days", "books"}
    assert set(out["books"][0]) >= {
        "name", "days", "exceptions", "coverage", "kupiec_pof_p", "christoffersen_independence_p",
        "christoffersen_cc_p", "traffic_light", "largest_exception_usd", "mean_mm_usd", "rows"}
    assert set(out["books"][0]["rows"][0]) == {"date", "mm_usd", "pnl_usd", "exception"}
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,asset,price\n2024-01-01,BTC,100\n2024-01-02,BTC,-3\n")
    assert main(["backtest", str(tmp_path / "books.json"), "--prices", str(bad)]) == 2
    assert capsys.readouterr().err.strip() == f"error: {bad}: line 3: price: -3.0 is not in (0, inf]"
    (tmp_path / "books.json").write_text(json.dumps({"books": [{"name": "x", "rebalance": "weekly", "legs": []}]}))
    assert main(argv) == 2
    assert "books[0].rebalance" in capsys.readouterr().err
