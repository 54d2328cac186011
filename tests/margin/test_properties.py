"""Properties of the portfolio margin that any correct implementation must have (hypothesis), for both models:
the grid and filtered historical simulation (on a synthetic two-year history). The liquidity add-on is off here:
it is deliberately not homogeneous in size (tests/margin/test_liquidity.py)."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from support.golden import EXPIRY_30D, market
from support.history import history

from risk_core.margin.engine import compute_margin_request
from risk_core.schema.report import MarginReport
from risk_core.schema.request import MarginRequest

ACCOUNTS = [
    {"venue": "deribit", "chain": "offchain", "account": "sub-1"},
    {"venue": "hyperliquid", "chain": "hyperliquid", "account": "0xa"},
    {"venue": "aave-v3", "chain": "ethereum", "account": "0xa"},
    {"venue": "uniswap-v3", "chain": "arbitrum", "account": "0xa"},
]
SPOT = {"BTC": 100_000.0, "ETH": 3_000.0}
quantity = st.floats(min_value=-20, max_value=20, allow_nan=False).filter(lambda q: abs(q) > 1e-3)


@st.composite
def a_position(draw: st.DrawFn, accounts: list[dict[str, str]] = ACCOUNTS) -> dict[str, Any]:
    where = draw(st.sampled_from(accounts))
    asset = draw(st.sampled_from(["BTC", "ETH"]))
    kind = draw(st.sampled_from(["spot", "lend", "borrow", "perp", "future", "option", "lp"]))
    q = draw(quantity)
    if kind in ("spot", "lend", "borrow"):
        return {"kind": kind, "asset": asset, "quantity": abs(q) if kind != "spot" else q, **where}
    if kind == "perp":
        return {"kind": "perp", "underlying": asset, "quantity": q, **where}
    if kind == "future":
        return {"kind": "future", "underlying": asset, "quantity": q, "expiry": EXPIRY_30D, **where}
    if kind == "option":
        strike = SPOT[asset] * draw(st.sampled_from([0.7, 0.9, 1.0, 1.1, 1.3]))
        return {
            "kind": "option", "underlying": asset, "quantity": q, "strike": strike, "expiry": EXPIRY_30D,
            "option_type": draw(st.sampled_from(["call", "put"])),
            "settlement": draw(st.sampled_from(["linear", "inverse"])), **where,
        }
    lower = SPOT["ETH"] * draw(st.sampled_from([0.6, 0.8, 0.95]))
    upper = SPOT["ETH"] * draw(st.sampled_from([1.05, 1.2, 1.5]))
    return {
        "kind": "lp", "token0": "ETH", "token1": "USDC", "liquidity": q * 100, "price_lower": lower,
        "price_upper": upper, **where,
    }


MODELS = ("grid", "fhs")
HISTORY = history(600, date(2026, 11, 24))


def margin(positions: list[dict[str, Any]], model: str) -> MarginReport:
    m = market(forwards={"BTC": {EXPIRY_30D: 100_400.0}}, history=HISTORY)
    params = {"model": model, "liquidity": {"enabled": False}}
    request = {"positions": positions, "market": m, "params": params}
    return compute_margin_request(MarginRequest.model_validate(request))


books = st.lists(a_position(), min_size=1, max_size=12)
one_account_books = st.lists(a_position(accounts=ACCOUNTS[:1]), min_size=1, max_size=12)
FIGURES = ("maintenance_margin_usd", "initial_margin_usd", "isolated_margin_usd", "equity_usd", "collateral_usd")
common = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def close(a: float, b: float) -> bool:
    return a == pytest.approx(b, rel=1e-9, abs=1e-6)


@pytest.mark.parametrize("model", MODELS)
@common
@given(books, st.randoms(use_true_random=False))
def test_order_of_positions_does_not_matter(model: str, book: list[dict[str, Any]], rng: Any) -> None:
    shuffled = book[:]
    rng.shuffle(shuffled)
    a, b = margin(book, model), margin(shuffled, model)
    for name in FIGURES:
        assert close(getattr(a, name), getattr(b, name)), name


@pytest.mark.parametrize("model", MODELS)
@common
@given(books, st.sampled_from([0.5, 2.0, 3.0, 10.0]))
def test_scaling_sizes_scales_every_margin_figure(model: str, book: list[dict[str, Any]], k: float) -> None:
    scaled = [{**p, **({"liquidity": p["liquidity"] * k} if p["kind"] == "lp" else {"quantity": p["quantity"] * k})}
              for p in book]
    a, b = margin(book, model), margin(scaled, model)
    for name in FIGURES:
        assert close(getattr(b, name), k * getattr(a, name)), name


@pytest.mark.parametrize("model", MODELS)
@common
@given(books, st.floats(min_value=0.1, max_value=0.9))
def test_splitting_a_position_in_two_changes_nothing(model: str, book: list[dict[str, Any]], share: float) -> None:
    first = book[0]
    size = "liquidity" if first["kind"] == "lp" else "quantity"
    split = [{**first, size: first[size] * share}, {**first, size: first[size] * (1 - share)}, *book[1:]]
    a, b = margin(book, model), margin(split, model)
    for name in FIGURES:
        assert close(getattr(a, name), getattr(b, name)), name


@pytest.mark.parametrize("model", MODELS)
@common
@given(books, a_position())
def test_a_position_beside_its_exact_opposite_adds_no_risk(
    model: str, book: list[dict[str, Any]], extra: dict[str, Any]
) -> None:
    if extra["kind"] in ("lend", "borrow"):
        extra = {**extra, "kind": "spot"}
    size = "liquidity" if extra["kind"] == "lp" else "quantity"
    opposite = {**extra, size: -extra[size]}
    a, b = margin(book, model), margin([*book, extra, opposite], model)
    assert close(b.maintenance_margin_usd, a.maintenance_margin_usd)
    assert close(b.equity_usd, a.equity_usd)


@pytest.mark.parametrize("model", MODELS)
@common
@given(st.lists(a_position(), min_size=1, max_size=12))
def test_a_book_of_long_options_never_risks_more_than_its_mark(model: str, book: list[dict[str, Any]]) -> None:
    longs = [{**p, "quantity": abs(p["quantity"])} for p in book if p["kind"] == "option"]
    assume(longs)
    report = margin(longs, model)
    assert report.maintenance_margin_usd <= report.equity_usd * (1 + 1e-12)


@pytest.mark.parametrize("model", MODELS)
@common
@given(one_account_books)
def test_portfolio_margin_never_exceeds_isolated_in_one_venue_account(model: str, book: list[dict[str, Any]]) -> None:
    report = margin(book, model)
    assert report.maintenance_margin_usd <= report.isolated_margin_usd * (1 + 1e-12) + 1e-9
    assert report.portfolio_saving_usd >= -1e-9


@pytest.mark.parametrize("model", MODELS)
@common
@given(books)
def test_hedging_across_venues_never_beats_hedging_inside_one(model: str, book: list[dict[str, Any]]) -> None:
    one_account = [{**p, **ACCOUNTS[0]} for p in book]
    assert margin(one_account, model).risk_usd <= margin(book, model).risk_usd + 1e-6
