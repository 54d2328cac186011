"""The report's venue_margins: each venue's own method reproduced from the venue's inputs beside its figure."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from support.golden import market, position

import reference_data
from risk_core.errors import InputError
from risk_core.margin.engine import compute_margin_request
from risk_core.schema.report import MarginReport
from risk_core.schema.request import MarginRequest

PM2_CASES = reference_data.path("derive-pm2")
AAVE = {"venue": "aave-v3", "chain": "ethereum", "account": "0xa"}
HL = {"venue": "hyperliquid", "chain": "hyperliquid", "account": "0xb"}


def run(positions: list[dict[str, Any]], states: list[dict[str, Any]]) -> MarginReport:
    request = {"positions": positions, "market": market(), "venue_states": states}
    return compute_margin_request(MarginRequest.model_validate(request))


def test_aave_health_factor_from_positions_and_the_venue_thresholds() -> None:
    positions = [
        position("lend", asset="ETH", quantity=10, **AAVE),
        position("lend", asset="BTC", quantity=0.5, **AAVE),
        position("borrow", asset="USDC", quantity=30_000, **AAVE),
    ]
    state = {**AAVE, "method": "aave-v3-health-factor",
             "parameters": {"liquidation_thresholds_bps": {"ETH": 8250, "BTC": 7800, "USDC": 8700},
                            "prices_usd": {"ETH": 2_990.0, "BTC": 100_100.0, "USDC": 1.0001}},
             "reported": {"health_factor": 1.7}}
    (margin,) = run(positions, [state]).venue_margins
    # the venue's own prices, not the snapshot's: (10 x 2,990 x 0.825 + 0.5 x 100,100 x 0.78) / (30,000 x 1.0001)
    expected = (10 * 2_990 * 0.825 + 0.5 * 100_100 * 0.78) / (30_000 * 1.0001)
    assert margin.reproduced["health_factor"] == pytest.approx(expected, rel=1e-12)
    assert margin.difference == {"health_factor": pytest.approx(expected - 1.7, rel=1e-12)}
    assert margin.method == "aave-v3-health-factor" and margin.account == "0xa"


def test_aave_without_debt_is_infinite_with_a_note() -> None:
    state = {**AAVE, "method": "aave-v3-health-factor", "parameters": {"liquidation_thresholds_bps": {"ETH": 8250}}}
    (margin,) = run([position("lend", asset="ETH", quantity=1, **AAVE)], [state]).venue_margins
    assert math.isinf(margin.reproduced["health_factor"]) and margin.note is not None


def test_hyperliquid_cross_margin_from_perps_and_leverage() -> None:
    positions = [position("perp", underlying="BTC", quantity=0.5, entry_price=98_000, **HL),
                 position("perp", underlying="ETH", quantity=-4, entry_price=3_100, **HL),
                 position("spot", asset="USDC", quantity=10_000, **HL)]
    state = {**HL, "method": "hyperliquid-cross-margin", "parameters": {"max_leverage": {"BTC": 40, "ETH": 25}},
             "reported": {"maintenance_margin_usd": 865.0}}
    (margin,) = run(positions, [state]).venue_margins
    mm = 0.5 * 100_000 / 80 + 4 * 3_000 / 50  # notional / (2 x max leverage), at the snapshot's marks
    value = 10_000 + 0.5 * (100_000 - 98_000) - 4 * (3_000 - 3_100)
    assert margin.reproduced["maintenance_margin_usd"] == pytest.approx(mm, rel=1e-12)
    assert margin.reproduced["account_value_usd"] == pytest.approx(value, rel=1e-12)
    assert margin.difference == {"maintenance_margin_usd": pytest.approx(mm - 865.0, rel=1e-12)}


def test_derive_pm2_from_the_venue_case_matches_the_venue() -> None:
    case = json.loads((PM2_CASES / "test_13_risk_cancelling_btc_covered_call.json").read_text())
    state = {"venue": "derive", "chain": "derive", "account": "0xd/1", "method": "derive-pm2",
             "parameters": {"case": case}, "reported": {"mm": case["Expected"]["MM"], "im": case["Expected"]["IM"]}}
    (margin,) = run([], [state]).venue_margins
    assert margin.reproduced["mm"] == pytest.approx(case["Expected"]["MM"], rel=1e-9)
    assert margin.difference is not None and abs(margin.difference["im"]) < 1e-6 * abs(case["Expected"]["IM"])


def test_missing_inputs_show_the_venue_figure_alone() -> None:
    state = {"venue": "derive", "chain": "derive", "account": "0xd/1", "method": "derive-pm2",
             "reported": {"maintenance_margin": -1450.0}}
    (margin,) = run([], [state]).venue_margins
    assert margin.reproduced == {} and margin.reported == {"maintenance_margin": -1450.0}
    assert margin.note is not None and "case" in margin.note


def test_invalid_inputs_name_the_field() -> None:
    state = {**AAVE, "method": "aave-v3-health-factor",
             "parameters": {"liquidation_thresholds_bps": {"ETH": 20_000}}}
    with pytest.raises(InputError) as e:
        run([position("lend", asset="ETH", quantity=1, **AAVE)], [state])
    assert e.value.field.startswith("venue_states[0].parameters")


def test_the_universal_figure_stands_beside_the_venue_figure() -> None:
    hyperliquid = [position("perp", underlying="BTC", quantity=0.5, entry_price=98_000, **HL),
                   position("spot", asset="USDC", quantity=10_000, **HL)]
    elsewhere = [position("perp", underlying="BTC", quantity=-0.5, **AAVE)]
    state = {**HL, "method": "hyperliquid-cross-margin", "parameters": {"max_leverage": {"BTC": 40}}}
    (margin,) = run(hyperliquid + elsewhere, [state]).venue_margins
    alone = run(hyperliquid, [])
    # the venue-account margined alone by the universal model, whatever else the wallet holds
    assert margin.universal_maintenance_margin_usd == pytest.approx(alone.maintenance_margin_usd, rel=1e-12)
    assert margin.universal_maintenance_margin_usd > margin.reproduced["maintenance_margin_usd"]
