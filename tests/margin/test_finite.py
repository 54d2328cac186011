"""Finite or refused: every figure of a report is finite, or the request is an InputError naming the input that
overflowed it; and the liquidation plan of a book too large for a full greedy search is bounded, and says so."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.golden import BTC, EXPIRY_30D, market, option, position

from risk_core.errors import InputError
from risk_core.margin.engine import compute_margin_request
from risk_core.margin.finite import all_finite, non_finite_figures
from risk_core.schema.request import MarginRequest

BOOK = [
    position("spot", asset="USDC", quantity=50_000.0),
    option(-1.0, "call", BTC * 1.1),
    position("perp", underlying="ETH", quantity=2.0),
    position("lp", token0="ETH", token1="USDC", liquidity=100.0, price_lower=2_400.0, price_upper=3_600.0),
]


def margin_of(positions: list[dict[str, Any]], **market_fields: Any) -> Any:
    request = {"positions": positions, "market": market(**market_fields)}
    return compute_margin_request(MarginRequest.model_validate(request))


def with_field(i: int, **fields: Any) -> list[dict[str, Any]]:
    return [{**p, **fields} if j == i else p for j, p in enumerate(BOOK)]


INVERSE_PUT = with_field(1, option_type="put", settlement="inverse")  # worth (K - F) x S / F coins: F tiny overflows


def test_the_book_itself_is_finite() -> None:
    assert non_finite_figures(margin_of(BOOK)) == []


@pytest.mark.parametrize(
    ("positions", "market_fields", "field"),
    [
        (with_field(1, quantity=1e308), {}, "positions[1].quantity"),
        (with_field(0, asset="ETH", quantity=1e308), {}, "positions[0].quantity"),
        (with_field(3, liquidity=-1e308), {}, "positions[3].liquidity"),
        (INVERSE_PUT, {"forwards": {"BTC": {EXPIRY_30D: 1e-300}}}, f"market.forwards.BTC.{EXPIRY_30D}"),
        (BOOK, {"spot": {"BTC": 1e308, "ETH": 3_000.0, "USDC": 1.0}}, "market.spot.BTC"),
    ],
    ids=["option-quantity", "token-quantity", "lp-liquidity", "tiny-forward", "huge-spot"],
)
def test_an_overflowing_input_is_refused_naming_it(
    positions: list[dict[str, Any]], market_fields: dict[str, Any], field: str
) -> None:
    with pytest.raises(InputError) as raised:
        margin_of(positions, **market_fields)
    # the forward's expiry is named as the model holds it (ISO 8601, +00:00 for Z)
    assert raised.value.field == field.replace("Z", "+00:00")
    assert "would not be finite" in raised.value.reason


def test_svi_parameters_of_1e308_are_refused_naming_one() -> None:
    svi = {"svi": [{"expiry": EXPIRY_30D, "a": 1e308, "b": 1e308, "rho": 0.0, "m": 0.0, "sigma": 1e308}]}
    with pytest.raises(InputError) as raised:
        margin_of(BOOK, vol={"BTC": svi, "ETH": market()["vol"]["ETH"]})
    assert raised.value.field in {f"market.vol.BTC.svi[0].{p}" for p in ("a", "b", "sigma")}


def test_an_aave_health_factor_without_debt_is_the_one_infinity_allowed() -> None:
    aave = {"venue": "aave-v3", "chain": "ethereum", "account": "0xa"}
    report = margin_of([{"kind": "lend", "asset": "ETH", "quantity": 1.0, **aave}])
    assert non_finite_figures(report) == []


magnitude = st.sampled_from([1e-300, 1e-30, 1e-3, 1.0, 1e3, 1e30, 1e150, 1e300, 1e308])
sign = st.sampled_from([-1.0, 1.0])


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    quantities=st.lists(st.tuples(magnitude, sign), min_size=len(BOOK), max_size=len(BOOK)),
    spot=magnitude,
    forward=magnitude,
    iv=st.floats(min_value=1e-6, max_value=20.0),
)
def test_every_report_is_finite_or_refused(
    quantities: list[tuple[float, float]], spot: float, forward: float, iv: float
) -> None:
    positions = []
    for p, (size, s) in zip(BOOK, quantities, strict=True):
        field = "liquidity" if p["kind"] == "lp" else "quantity"
        positions.append({**p, field: size * (s if p["kind"] in ("option", "perp", "lp") else 1.0)})
    fields = {
        "spot": {"BTC": spot, "ETH": 3_000.0, "USDC": 1.0},
        "forwards": {"BTC": {EXPIRY_30D: forward}},
        "vol": {**market()["vol"], "BTC": {"points": [{"expiry": EXPIRY_30D, "strike": BTC, "iv": iv}]}},
    }
    try:
        report = margin_of(positions, **fields)
    except InputError as e:
        assert e.field.startswith(("positions[", "market.")), e.field
        return
    assert non_finite_figures(report) == []
    assert math.isfinite(report.maintenance_margin_usd) and report.maintenance_margin_usd >= 0


def short_options(n: int) -> list[dict[str, Any]]:
    return [
        option(-1.0, "call" if i % 2 else "put", BTC * (0.6 + (i % 97) / 100), id=f"o{i}", account=f"a{i % 7}")
        for i in range(n)
    ]


def test_a_book_too_large_for_the_full_greedy_plan_gets_a_bounded_plan_that_says_so() -> None:
    report = margin_of(short_options(2_000))
    assert report.status == "liquidatable"
    plan = report.liquidation_plan
    assert plan is not None and plan.steps and not plan.restores_initial_margin
    assert any(w.startswith("liquidation plan: ") and "budget" in w for w in report.warnings)
    assert non_finite_figures(report) == []


def test_a_small_book_gets_the_full_plan_without_a_warning() -> None:
    report = margin_of(short_options(40))
    assert report.liquidation_plan is not None
    assert not any(w.startswith("liquidation plan: ") for w in report.warnings)


_LEAVES = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(min_value=-1e308, max_value=1e308),
                    st.integers(), st.booleans(), st.none(), st.text(max_size=3))
_DUMPS = st.recursive(_LEAVES, lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=3), inner,
                                                                                            max_size=4), max_leaves=40)


def _floats_in(node: Any) -> list[float]:
    if isinstance(node, float):
        return [node]
    children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else []
    return [value for child in children for value in _floats_in(child)]


@given(_DUMPS)
def test_the_quick_finiteness_check_agrees_with_looking_at_every_float(dumped: Any) -> None:
    # lists of huge finite floats whose sum overflows, infinities that cancel, NaN beside None: all drawn here
    assert all_finite(dumped) == all(math.isfinite(value) for value in _floats_in(dumped))
