"""Instruments valued once per pricing context and shared by its books (risk_core.margin.instruments): the
cached path must give the reports of resolving each book directly, name each book's own positions in its
issues, and belong to the caller's context only (the engine keeps nothing between calls)."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.golden import EXPIRY_30D, market, option, position

from risk_core.margin import instruments
from risk_core.margin.context import PricingContext, effective_params, pricing_context
from risk_core.margin.engine import compute_margin
from risk_core.schema.market import MarketSnapshot
from risk_core.schema.params import RiskParams, default_params
from risk_core.schema.positions import Position
from risk_core.schema.report import MarginReport
from risk_core.schema.request import MarginRequest

EXPIRY_60D = "2027-01-24T00:00:00Z"
EXPIRED = "2026-11-24T00:00:00Z"  # a day before AS_OF
LP_TWO_RISKY = "LP of two risky assets; each is shocked with the other held"


# ----------------------------------------------------------------------------------------------- helpers


def parse(positions: Sequence[dict[str, Any]], market_doc: dict[str, Any]) -> tuple[list[Position], MarketSnapshot]:
    request = MarginRequest.model_validate({"positions": list(positions), "market": market_doc})
    return request.positions, request.market


def snapshot(**extra: Any) -> MarketSnapshot:
    return MarketSnapshot.model_validate(market(**extra))


def books(*docs: Sequence[dict[str, Any]]) -> list[list[Position]]:
    return [MarginRequest.model_validate({"positions": list(d), "market": market()}).positions for d in docs]


def direct_margin(positions: Sequence[Position], m: MarketSnapshot, params: RiskParams) -> MarginReport:
    """The report on a table of the book's own instruments only, valued for it (the single path)."""
    return compute_margin(positions, m, params)


def kept(m: MarketSnapshot, params: RiskParams) -> tuple[PricingContext, Any]:
    """A context, and a function margining a book in it."""
    context = pricing_context(m, params)
    return context, lambda book: compute_margin(book, m, params, context=context)


def leaves(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from leaves(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from leaves(v, f"{path}[{i}]")
    else:
        yield path, value


def assert_same_report(cached: MarginReport, direct: MarginReport, positions: Sequence[Position] = ()) -> None:
    """Every number equal to 1e-9 relative (1e-7 absolute near zero); every string, bool, None and key identical.

    Two choices the engine makes by comparing floats are exempt where their candidates tie exactly, so that the
    last bit of rounding (which differs between the paths) picks one: the worst scenario of an underlying whose
    P&L is zero in every scenario, and which of a perp and a future on one underlying and venue (the same delta
    per dollar of close-out cost) the liquidation plan closes first, or of two positions in one instrument at one
    venue. There the choice may differ but not its
    worth: the plan's cost to 1e-3 and whether it restores initial margin."""
    a, b = dict(leaves(cached.model_dump(mode="json"))), dict(leaves(direct.model_dump(mode="json")))
    for asset, risk in direct.underlyings.items():
        if risk.risk_usd < 1e-6 and cached.underlyings[asset].risk_usd < 1e-6:  # every scenario is a worst one
            for report in (a, b):
                for key in [k for k in report if k.startswith(f".underlyings.{asset}.worst_scenario.")]:
                    del report[key]
    plans = cached.liquidation_plan, direct.liquidation_plan
    steps = [[] if plan is None else [(s.index, round(s.fraction, 6)) for s in plan.steps] for plan in plans]
    if plans[0] is not None and plans[1] is not None and steps[0] != steps[1]:
        tied = {i for i, _ in steps[0]} ^ {i for i, _ in steps[1]}
        tied |= {s[0] for s, t in zip(steps[0], steps[1], strict=False) if s != t}
        assert positions, "liquidation plans differ"
        held = [positions[i] for i in tied]
        assert len({p.venue for p in held}) == 1, tied  # one close-out cost rate
        same_instrument = len({instruments.unit_instrument(p) for p in held}) == 1
        underlyings = {getattr(p, "underlying", None) for p in held}
        linear = {p.kind for p in held} <= {"perp", "future"} and len(underlyings) == 1
        assert same_instrument or linear, tied
        assert plans[0].total_cost_usd == pytest.approx(plans[1].total_cost_usd, rel=1e-3)
        assert plans[0].restores_initial_margin == plans[1].restores_initial_margin
        for report in (a, b):
            for key in [k for k in report if k.startswith(".liquidation_plan.")]:
                del report[key]
    assert a.keys() == b.keys()
    for path, x in a.items():
        y = b[path]
        if isinstance(x, float) or isinstance(y, float):
            assert isinstance(x, int | float) and isinstance(y, int | float), path
            assert math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-7), (path, x, y)
        else:
            assert x == y, (path, x, y)
    assert cached.warnings == direct.warnings
    assert cached.issues == direct.issues
    assert cached.status == direct.status
    assert [p.underlying for p in cached.positions] == [p.underlying for p in direct.positions]
    assert [p.priced for p in cached.positions] == [p.priced for p in direct.positions]


# ------------------------------------------------------------------------------------- property: same figures

ACCOUNTS = [
    {"venue": "deribit", "chain": "offchain", "account": "sub-1"},
    {"venue": "hyperliquid", "chain": "hyperliquid", "account": "0xa"},
    {"venue": "aave-v3", "chain": "ethereum", "account": "0xa"},
]
SPOT = {"BTC": 100_000.0, "ETH": 3_000.0}
sizes = st.floats(min_value=-20, max_value=20, allow_nan=False).filter(lambda q: abs(q) > 1e-3)


@st.composite
def a_position(draw: st.DrawFn) -> dict[str, Any]:
    """Few distinct instruments (so books share them) on many places and sizes, entry prices included."""
    where = draw(st.sampled_from(ACCOUNTS))
    asset = draw(st.sampled_from(["BTC", "ETH"]))
    kind = draw(st.sampled_from(["spot", "lend", "borrow", "perp", "future", "option", "lp", "lp2", "stable",
                                 "staked"]))
    q = draw(sizes)
    entry = draw(st.none() | st.sampled_from([0.9, 1.0, 1.05]).map(lambda f: SPOT[asset] * f))
    if kind in ("spot", "lend", "borrow"):
        return {"kind": kind, "asset": asset, "quantity": abs(q) if kind != "spot" else q, **where}
    if kind == "staked":  # a token tracking ETH (RiskParams.tracking): ETH's rows and a depeg contingency
        held = draw(st.sampled_from(["spot", "lend", "borrow"]))
        return {"kind": held, "asset": "WSTETH", "quantity": abs(q) if held != "spot" else q, **where}
    if kind == "stable":
        return {"kind": "spot", "asset": "USDC", "quantity": q * 1000, **where}
    if kind == "perp":
        return {"kind": "perp", "underlying": asset, "quantity": q, "entry_price": entry, **where}
    if kind == "future":
        expiry = draw(st.sampled_from([EXPIRY_30D, EXPIRY_60D]))
        return {"kind": "future", "underlying": asset, "quantity": q, "expiry": expiry, "entry_price": entry, **where}
    if kind == "option":
        return {
            "kind": "option", "underlying": asset, "quantity": q,
            "strike": SPOT[asset] * draw(st.sampled_from([0.8, 1.0, 1.2])),
            "expiry": draw(st.sampled_from([EXPIRY_30D, EXPIRY_60D])),
            "option_type": draw(st.sampled_from(["call", "put"])),
            "settlement": draw(st.sampled_from(["linear", "inverse"])), **where,
        }
    if kind == "lp":
        return {
            "kind": "lp", "token0": "ETH", "token1": "USDC", "liquidity": q * 100,
            "price_lower": SPOT["ETH"] * draw(st.sampled_from([0.8, 0.95])),
            "price_upper": SPOT["ETH"] * draw(st.sampled_from([1.05, 1.2])), **where,
        }
    ratio = SPOT["ETH"] / SPOT["BTC"]  # ETH priced in BTC
    return {
        "kind": "lp", "token0": "ETH", "token1": "BTC", "liquidity": abs(q),
        "price_lower": ratio * 0.9, "price_upper": ratio * draw(st.sampled_from([1.1, 1.3])), **where,
    }


@st.composite
def a_market(draw: st.DrawFn) -> dict[str, Any]:
    btc = draw(st.sampled_from([80_000.0, 100_000.0, 115_000.0]))
    eth = draw(st.sampled_from([2_500.0, 3_000.0, 3_400.0]))
    extra: dict[str, Any] = {
        "spot": {"BTC": btc, "ETH": eth, "USDC": 1.0, "WSTETH": eth * 1.2},
        "forwards": {"BTC": {EXPIRY_30D: btc * 1.004, EXPIRY_60D: btc * 1.009}},
        "vol": {
            "BTC": {"points": [{"expiry": EXPIRY_30D, "strike": btc, "iv": draw(st.sampled_from([0.4, 0.6]))},
                               {"expiry": EXPIRY_60D, "strike": btc, "iv": 0.55}]},
            "ETH": {"points": [{"expiry": EXPIRY_30D, "strike": eth, "iv": 0.7}]},
        },
    }
    if draw(st.booleans()):
        extra["sources"] = [{"name": "pyth", "status": "stale", "reason": "late"}]
    return market(**extra)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(a_position(), min_size=1, max_size=10), min_size=1, max_size=3), a_market())
def test_cached_reports_equal_the_direct_path(
    book_docs: list[list[dict[str, Any]]], market_doc: dict[str, Any]
) -> None:
    m = MarketSnapshot.model_validate(market_doc)
    params = default_params()
    parsed = [MarginRequest.model_validate({"positions": d, "market": market_doc}).positions for d in book_docs]
    _, margin = kept(m, params)
    cached = [margin(b) for b in parsed]  # later books reuse the earlier ones' instruments
    cached_again = [margin(b) for b in parsed]  # every instrument now found
    for b, first, again in zip(parsed, cached, cached_again, strict=True):
        direct = direct_margin(b, m, params)
        assert_same_report(first, direct, b)
        assert_same_report(again, direct, b)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(a_position(), min_size=1, max_size=12), a_market())
def test_a_books_rows_gathered_from_unit_instruments_equal_its_positions_revalued_at_their_sizes(
    book_doc: list[dict[str, Any]], market_doc: dict[str, Any]
) -> None:
    """Linearity, the table's premise: resolving and revaluing the positions themselves (sizes and entry prices
    folded into the rows, as a table does for units) gives each position's value and haircut, and each
    underlying's scenario P&L and greeks summed over the book, as the table's unit rows scaled by size."""
    m, params = MarketSnapshot.model_validate(market_doc), default_params()
    (positions,) = books_on(market_doc, book_doc)
    book = pricing_context(m, params).instruments.book(positions)
    direct = instruments._resolve_units(positions, m, params, instruments.ScenarioSets(params))
    stacked = instruments.RowParams.stack([f.params for f in direct.frozen])
    value, haircut = direct.fixed_value.copy(), direct.fixed_haircut.copy()
    valued = instruments._valued(direct.frozen, stacked) if direct.frozen else []
    greeks = instruments._greeks(direct.frozen, stacked) if direct.frozen else []
    assert [f.asset for f in direct.frozen] == book.assets
    for f, (base_value, base_cut, values), g in zip(direct.frozen, valued, greeks, strict=True):
        own = np.array([direct.primary[i] == f.asset for i in f.members.tolist()], dtype=bool).reshape(-1)
        value[f.members[own]], haircut[f.members[own]] = base_value[own], base_cut[own]
        raw = (values - base_value[:, None]).sum(axis=0)
        np.testing.assert_allclose(book.scaled(f.asset, "raw").sum(axis=0), raw, rtol=1e-9, atol=1e-7)
        np.testing.assert_allclose(book.scaled(f.asset, "greeks").sum(axis=0), g.sum(axis=0), rtol=1e-9,
                                   atol=1e-9)
    got_value, got_haircut = book.values()
    np.testing.assert_allclose(got_value, value, rtol=1e-9, atol=1e-7)
    np.testing.assert_allclose(got_haircut, haircut, rtol=1e-9, atol=1e-7)
    assert book.priced.tolist() == direct.priced.tolist()
    np.testing.assert_allclose(book.notional, direct.notional, rtol=1e-9, atol=1e-7)


def books_on(market_doc: dict[str, Any], *docs: Sequence[dict[str, Any]]) -> list[list[Position]]:
    return [MarginRequest.model_validate({"positions": list(d), "market": market_doc}).positions for d in docs]


# ---------------------------------------------------------------------------------- books with messages

ETH_BTC = 3_000.0 / 100_000.0


def lp_eth_btc(liquidity: float = 2.0, **kw: Any) -> dict[str, Any]:
    return position("lp", token0="ETH", token1="BTC", liquidity=liquidity, price_lower=ETH_BTC * 0.9,
                    price_upper=ETH_BTC * 1.1, **kw)


def test_lp_of_two_risky_assets_is_named_by_each_books_own_index() -> None:
    m, params = snapshot(), default_params()
    first, second, twice = books(
        [position("spot", asset="BTC", quantity=1), lp_eth_btc()],
        [position("perp", underlying="ETH", quantity=-3), option(1, "put", 90_000),
         position("spot", asset="USDC", quantity=500), lp_eth_btc(3.0, account="acct-2")],
        [lp_eth_btc(1.0), position("spot", asset="ETH", quantity=1), lp_eth_btc(-1.0, venue="uniswap-v3")],
    )
    _, margin = kept(m, params)
    reports = [margin(b) for b in (first, second, twice)]
    assert reports[0].warnings == [f"positions[1].token1: {LP_TWO_RISKY}"]
    # the same instrument, first valued with the first book at index 1, is index 3 here
    assert reports[1].warnings == [f"positions[3].token1: {LP_TWO_RISKY}"]
    assert reports[2].warnings == [f"positions[0].token1: {LP_TWO_RISKY}", f"positions[2].token1: {LP_TWO_RISKY}"]
    assert [(i.index, i.code, i.severity) for i in reports[2].issues] == [
        (0, "lp_two_risky_assets", "warning"), (2, "lp_two_risky_assets", "warning")
    ]
    for b, report in zip((first, second, twice), reports, strict=True):
        assert report.complete  # a warning counts the position
        assert_same_report(report, direct_margin(b, m, params))
    lp_row = reports[1].positions[3]
    assert lp_row.underlying == "ETH" and lp_row.priced
    assert set(reports[1].underlyings) == {"BTC", "ETH"}


def test_unpriced_spot_asset_is_left_out_and_makes_the_report_incomplete_in_both_paths() -> None:
    m, params = snapshot(), default_params()
    warm, unpriced, again = books(
        [position("perp", underlying="BTC", quantity=1), option(-1, "call", 110_000)],
        [position("perp", underlying="BTC", quantity=2), position("spot", asset="DOGE", quantity=1_000)],
        [option(1, "call", 110_000), position("spot", asset="ETH", quantity=1), position("perp", underlying="ETH",
         quantity=1), position("spot", asset="DOGE", quantity=5)],
    )
    context, margin = kept(m, params)
    margin(warm)
    assert context.instruments.size == 2
    for b, at in ((unpriced, 1), (again, 3)):
        report = margin(b)
        assert report.warnings == [
            f"positions[{at}].asset: no price for DOGE in market.spot; the position counts 0 value and 0 collateral"
        ]
        assert [(i.index, i.field, i.code, i.severity) for i in report.issues] == [
            (at, f"positions[{at}].asset", "unpriced_token", "warning")
        ]
        assert report.complete is False
        assert [p.priced for p in report.positions] == [i != at for i in range(len(b))]
        assert report.positions[at].value_usd == 0.0
        assert report.positions[at].underlying is None
        assert_same_report(report, direct_margin(b, m, params))
    # with the DOGE position out, the figures are those of the book without it
    without = compute_margin([p for i, p in enumerate(again) if i != 3], m, params)
    assert margin(again).maintenance_margin_usd == pytest.approx(without.maintenance_margin_usd, rel=1e-12)


@pytest.mark.parametrize("kind", ["option", "future"])
def test_expired_instrument_is_left_out_naming_the_books_own_expiry_field(kind: str) -> None:
    m, params = snapshot(), default_params()
    expired = ({**option(1, "call", 100_000), "expiry": EXPIRED} if kind == "option"
               else position("future", underlying="BTC", quantity=1, expiry=EXPIRED))
    warm, first, second = books(
        [position("spot", asset="BTC", quantity=1), option(-1, "call", 110_000)],
        [position("perp", underlying="ETH", quantity=2), option(-1, "call", 110_000), expired],
        [expired, position("spot", asset="BTC", quantity=2)],
    )
    context, margin = kept(m, params)
    margin(warm)
    before = context.instruments.size
    assert before == 2
    for b, at in ((first, 2), (second, 0)):
        report, direct = margin(b), direct_margin(b, m, params)
        assert [(i.index, i.field, i.code, i.severity, i.message) for i in report.issues] == [
            (at, f"positions[{at}].expiry", "expired", "error",
             "expiry 2026-11-24T00:00:00+00:00 is not after market.as_of")
        ]
        assert report.complete is False and not report.positions[at].priced
        assert report.positions[at].value_usd == 0.0 and report.positions[at].standalone_margin_usd == 0.0
        assert_same_report(report, direct, b)
        # the figures are those of the book without the expired position
        rest = compute_margin([p for i, p in enumerate(b) if i != at], m, params)
        assert report.maintenance_margin_usd == pytest.approx(rest.maintenance_margin_usd, rel=1e-12)
    # the ETH perp and the expired instrument (as unpriced) are kept: a later book finds both
    assert context.instruments.size == before + 2
    assert_same_report(margin(warm), direct_margin(warm, m, params))


# ---------------------------------------------------------------------------------------------- sharing


def test_books_in_one_context_share_instruments_and_a_new_context_has_its_own() -> None:
    params = default_params()
    m = snapshot()
    a, b = books(
        [position("spot", asset="BTC", quantity=1), position("perp", underlying="ETH", quantity=-2),
         option(-1, "call", 110_000)],
        [position("perp", underlying="ETH", quantity=5, venue="hyperliquid", entry_price=2_900.0),
         option(3, "call", 110_000, account="acct-9"), option(1, "put", 90_000),
         position("future", underlying="BTC", quantity=1, expiry=EXPIRY_30D), position("spot", asset="BTC",
         quantity=-0.5)],
    )
    context, margin = kept(m, params)
    margin(a)
    assert context.instruments.size == 3
    margin(b)
    assert context.instruments.size == 5  # only the put and the future are new
    margin(a)
    assert context.instruments.size == 5

    twin = snapshot()  # equal content, another object: another context, the same hashes
    other, margin_twin = kept(twin, params)
    assert other.instruments.size == 0
    assert_same_report(margin_twin(b), margin(b), b)
    assert other.instruments.size == 5 and context.instruments.size == 5
    assert (other.market_hash, other.params_hash) == (context.market_hash, context.params_hash)
    with pytest.raises(ValueError):  # a context serves its own snapshot only
        compute_margin(a, twin, params, context=context)


def test_a_report_names_the_effective_parameters_and_the_snapshot_by_hash() -> None:
    m = snapshot()
    (book,) = books([option(-1, "call", 110_000), position("spot", asset="BTC", quantity=1)])
    shipped = compute_margin(book, m, default_params())
    overridden = compute_margin(book, m, effective_params({"im_factor": 1.5, "contingencies_enabled": False}))
    alike = compute_margin(book, snapshot(), effective_params({"contingencies_enabled": False, "im_factor": 1.5}))
    # the version names the file overridden; the hash tells the parameters apart
    assert shipped.params_version == overridden.params_version == default_params().version
    assert overridden.params_hash != shipped.params_hash
    assert alike.params_hash == overridden.params_hash  # other key order, same overrides
    assert alike.market_hash == overridden.market_hash == shipped.market_hash
    moved = compute_margin(book, snapshot(spot={"BTC": 100_001.0, "ETH": 3_000.0, "USDC": 1.0}), default_params())
    assert moved.market_hash != shipped.market_hash
    assert overridden.initial_margin_usd == pytest.approx(1.5 * overridden.maintenance_margin_usd, rel=1e-12)
    assert effective_params(None) is default_params() and effective_params({}) is default_params()


# -------------------------------------------------------------------------------------------- entry prices


def test_entry_prices_give_each_position_its_own_value_on_a_shared_instrument() -> None:
    params = default_params()
    fwd = 3_030.0
    m = snapshot(forwards={"ETH": {EXPIRY_30D: fwd}})
    one, other = books(
        [position("perp", underlying="ETH", quantity=2, entry_price=2_900.0),
         position("perp", underlying="ETH", quantity=-3, entry_price=3_100.0, account="acct-2"),
         position("perp", underlying="ETH", quantity=1.5),
         position("future", underlying="ETH", quantity=2, expiry=EXPIRY_30D, entry_price=3_000.0),
         position("future", underlying="ETH", quantity=-1, expiry=EXPIRY_30D, entry_price=3_100.0)],
        [position("perp", underlying="ETH", quantity=5, entry_price=3_050.0),
         position("future", underlying="ETH", quantity=4, expiry=EXPIRY_30D, entry_price=2_950.0)],
    )
    context, margin = kept(m, params)
    first = margin(one)
    assert context.instruments.size == 2  # one perp, one future
    assert [p.value_usd for p in first.positions] == pytest.approx(
        [2 * (3_000 - 2_900), -3 * (3_000 - 3_100), 0.0, 2 * (fwd - 3_000), -1 * (fwd - 3_100)], rel=1e-12, abs=1e-9
    )
    second = margin(other)
    assert context.instruments.size == 2
    assert [p.value_usd for p in second.positions] == pytest.approx(
        [5 * (3_000 - 3_050), 4 * (fwd - 2_950)], rel=1e-12, abs=1e-9
    )
    assert second.equity_usd == pytest.approx(5 * (3_000 - 3_050) + 4 * (fwd - 2_950), rel=1e-12)
    # the entry price moves the value, never the risk: delta is the size (x forward / spot), whatever the entry
    assert [p.delta for p in second.positions] == pytest.approx([5.0, 4.0 * fwd / 3_000], rel=1e-9)
    for b, report in ((one, first), (other, second)):
        assert_same_report(report, direct_margin(b, m, params))


def test_a_full_table_keeps_no_new_instrument_and_the_book_is_still_margined(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(instruments, "_MAX_INSTRUMENTS", 2)
    m = snapshot()
    first, second = books(
        [option(-1, "call", 110_000), position("spot", asset="BTC", quantity=1)],
        [option(-1, "call", 110_000), option(2, "put", 90_000), position("perp", underlying="BTC", quantity=-1)],
    )
    context, margin = kept(m, default_params())
    margin(first)
    assert context.instruments.size == 2
    report = margin(second)
    assert context.instruments.size == 2  # the put and the perp were not kept ...
    assert_same_report(report, direct_margin(second, m, default_params()), second)  # ... yet the book is margined
