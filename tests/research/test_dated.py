"""The backtest's date axis (risk_core.margin.dated) against the engine's own path, date by date: every book kind
the axis takes, both models, the same rows to 1e-9."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import numpy as np
import pytest
from support.history import START, tape

from research.backtest import MarketTape, _run_dated, run_book, run_book_by_date
from research.books import BooksFile
from research.series import SeriesTable, daily_history
from risk_core.margin.dated import repeated_vol_columns
from risk_core.margin.fhs import FilteredHistory
from risk_core.schema.params import default_params

DAYS = 400
EPOCH = date(1970, 1, 1)
PLACE = {"venue": "deribit", "chain": "offchain", "account": "main"}

BOOKS = BooksFile.model_validate({"books": [
    {"name": "long BTC", "rebalance": "daily", "legs": [{"kind": "spot", "asset": "BTC", "notional_usd": 1e6}]},
    {"name": "large BTC, past the depth", "rebalance": "daily",
     "legs": [{"kind": "spot", "asset": "BTC", "notional_usd": 4e8}]},
    {"name": "spread", "rebalance": "daily", "legs": [
        {"kind": "perp", "asset": "BTC", "notional_usd": 1e6}, {"kind": "perp", "asset": "ETH", "notional_usd": -1e6}]},
    {"name": "straddle and calendar", "rebalance": "daily", "legs": [
        {"kind": "option", "asset": "BTC", "notional_usd": -1e6, "tenor_days": 30, "option_type": "call",
         "moneyness": 1.0},
        {"kind": "option", "asset": "BTC", "notional_usd": -1e6, "tenor_days": 30, "option_type": "put",
         "moneyness": 1.0},
        {"kind": "option", "asset": "BTC", "notional_usd": 5e5, "tenor_days": 90, "option_type": "call",
         "moneyness": 1.0, "settlement": "inverse"},
        {"kind": "option", "asset": "ETH", "notional_usd": -1e6, "tenor_days": 30, "option_type": "put",
         "delta": -0.25},
        {"kind": "spot", "asset": "ETH", "notional_usd": 3e5}]},
    {"name": "staked loop with cash", "rebalance": "daily", "positions": [
        {**PLACE, "kind": "spot", "asset": "USDC", "quantity": 2e5}], "legs": [
        {"kind": "lend", "asset": "WSTETH", "notional_usd": 2e6, "venue": "aave-v3", "chain": "ethereum",
         "account": "loop"},
        {"kind": "borrow", "asset": "ETH", "notional_usd": 1.5e6, "venue": "aave-v3", "chain": "ethereum",
         "account": "loop"},
        {"kind": "perp", "asset": "ETH", "notional_usd": -2e5, "venue": "hyperliquid", "chain": "hyperliquid"}]},
    {"name": "static future and options", "rebalance": "static", "positions": [
        {**PLACE, "kind": "future", "underlying": "BTC", "quantity": 3.0, "expiry": "2026-06-26T08:00:00Z",
         "entry_price": 90_000.0},
        {**PLACE, "kind": "option", "underlying": "ETH", "quantity": -40.0, "expiry": "2026-06-26T08:00:00Z",
         "option_type": "call", "strike": 3_500.0}], "legs": [
        {"kind": "option", "asset": "BTC", "notional_usd": -1e6, "tenor_days": 200, "option_type": "put",
         "moneyness": 0.9}]},
]})


def vols(prices: SeriesTable, first: int = 5) -> SeriesTable:
    """ATM vols that move day by day, recorded from day `first` (options books start there)."""
    rng = np.random.default_rng(11)
    rows = []
    for asset, s in prices.series.items():
        level = 0.6 * np.exp(np.cumsum(rng.normal(0.0, 0.05, s.times.size)))
        rows += [(int(t), asset, float(v)) for t, v in zip(s.times[first:], level[first:], strict=True)]
    return SeriesTable.from_rows(rows, "atm_iv")


@pytest.fixture(scope="module")
def market_tape() -> MarketTape:
    prices = tape(DAYS, assets={"BTC": 100_000.0, "ETH": 3_000.0, "WSTETH": 3_500.0})
    return MarketTape(prices, vols(prices))


def both(model: str, market_tape: MarketTape, index: int, **kw: Any) -> tuple[Any, Any]:
    params = default_params().model_copy(update={"model": model})
    book = BOOKS.books[index]
    args: dict[str, Any] = {"horizon_days": 1, "first": None, "last": None, **kw}
    return (_run_dated(book, market_tape, params, where=book.name, **args),
            run_book_by_date(book, market_tape, params, **args))


def assert_same(dated: Any, by_date: Any) -> None:
    assert dated.days > 20
    assert dated.dates == by_date.dates
    for name in ("mm_usd", "pnl_usd", "liquidity_addon_usd"):
        assert getattr(dated, name) == pytest.approx(getattr(by_date, name), rel=1e-9, abs=1e-6), name


@pytest.mark.parametrize("index", range(len(BOOKS.books)))
def test_the_grid_on_the_date_axis_is_the_engine_date_by_date(market_tape: MarketTape, index: int) -> None:
    dated, by_date = both("grid", market_tape, index, first=START + timedelta(days=200))
    assert_same(dated, by_date)
    if index == 1:
        assert np.all(dated.liquidity_addon_usd > 0)  # $400M of BTC is past its depth


@pytest.mark.parametrize("index", [0, 2, 3, 4])
def test_fhs_on_the_date_axis_is_the_engine_date_by_date(market_tape: MarketTape, index: int) -> None:
    # from before its history is long enough (the rows start when it is) to the end
    first, last = START + timedelta(days=270), START + timedelta(days=330)
    dated, by_date = both("fhs", market_tape, index, first=first, last=last)
    assert_same(dated, by_date)


def test_a_static_book_ends_before_its_option_expires(market_tape: MarketTape) -> None:
    dated, by_date = both("grid", market_tape, 5, first=START + timedelta(days=160))
    assert_same(dated, by_date)
    # its 200-day put is built on the first date and held: the last row is the last before it expires
    assert dated.dates[-1] == dated.dates[0] + timedelta(days=198)


def test_an_lp_book_is_margined_date_by_date(market_tape: MarketTape) -> None:
    book = BooksFile.model_validate({"books": [{"name": "lp", "rebalance": "static", "positions": [
        {"venue": "uniswap-v3", "chain": "ethereum", "account": "lp", "kind": "lp", "token0": "ETH",
         "token1": "USDC", "liquidity": 1e4, "price_lower": 1_000.0, "price_upper": 9_000.0}]}]}).books[0]
    params = default_params()
    first, last = START + timedelta(days=300), START + timedelta(days=330)
    result = run_book(book, market_tape, params, horizon_days=1, first=first, last=last)
    reference = run_book_by_date(book, market_tape, params, horizon_days=1, first=first, last=last)
    assert result.mm_usd.tolist() == reference.mm_usd.tolist()
    assert result.days == (last - first).days + 1


def test_fhs_revalues_a_scenario_once_when_its_vol_move_is_recorded(market_tape: MarketTape) -> None:
    """Vols recorded from the first day: every scenario has one vol move for all its vol columns, and the date axis
    revalues it once; the rows are still the engine's."""
    recorded = MarketTape(market_tape.prices, vols(market_tape.prices, first=0))
    history = daily_history(recorded.prices, recorded.vols, ["BTC", "ETH"], (START - EPOCH).days + 330)
    sets = FilteredHistory(history, ["BTC", "ETH"], default_params(), last_day=(START - EPOCH).days + 330)
    assert repeated_vol_columns([sets.scenario_sets((START - EPOCH).days + 300)]) == 3
    first, last = START + timedelta(days=290), START + timedelta(days=330)
    dated, by_date = both("fhs", recorded, 3, first=first, last=last)
    assert_same(dated, by_date)

