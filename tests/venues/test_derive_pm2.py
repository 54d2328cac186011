"""Derive PM2 against Derive's own published portfolio cases, plus hand-worked properties of the method."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

import reference_data
from risk_core.venues.derive_pm2 import Pm2Case, Pm2Result, evaluate_pm2

REPO_ROOT = Path(__file__).resolve().parents[2]
PM2_CASES_DIR = reference_data.path("derive-pm2")
PM2_CASE_FILES = sorted(PM2_CASES_DIR.glob("*.json"))


def load_case(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((PM2_CASES_DIR / f"{name}.json").read_text())
    return data


def evaluate(data: dict[str, Any]) -> Pm2Result:
    return evaluate_pm2(Pm2Case.model_validate(data))


@pytest.mark.parametrize(
    "case_file",
    PM2_CASE_FILES or [pytest.param(None, marks=pytest.mark.skip(reason=f"no cases in {PM2_CASES_DIR}"))],
    ids=lambda path: path.stem if isinstance(path, Path) else "none",
)
def test_matches_derive_published_case(case_file: Path) -> None:
    case = Pm2Case.model_validate_json(case_file.read_text())
    assert case.expected is not None
    result = evaluate_pm2(case)
    assert result.mm == pytest.approx(case.expected.mm, rel=1e-6)
    assert result.im == pytest.approx(case.expected.im, rel=1e-6)


def test_perp_scenario_pnl_is_shock_times_perp_price() -> None:
    # One long perp at 3100, spot 3000: each spot scenario loses (shock - 1) x 3100 x dampening, skews nothing.
    data = load_case("test_29_perps_basic_perp")
    result = evaluate(data)
    scenarios = data["Parameters"]["Scenarios"]
    expected = [
        0.0 if s["VolShockDirection"] in ("LINEAR", "ABS") else (s["SpotShock"] - 1) * 3100 * s["DampeningFactor"]
        for s in scenarios
    ]
    assert [s.pnl for s in result.scenarios[:-1]] == pytest.approx(expected, abs=1e-9)
    assert result.scenarios[-1].description == "basis contingency"
    assert result.scenarios[-1].pnl == 0.0
    assert result.worst_loss == pytest.approx(-0.18 * 3100)
    assert result.worst_scenario.index == 22
    assert result.worst_scenario.description == "spot -18.0%, vol Up"
    assert result.mtm == 10.0  # the unrealised funding
    assert result.mm_contingency == pytest.approx(3000 * 0.015)
    assert result.im_contingency == pytest.approx(3000 * 0.005)


def test_expiries_add_up_scenario_by_scenario() -> None:
    # The short call (11 days) and the short put (16 days) share spot 95663.5; the P&L of each scenario, and the
    # basis contingency, of the two together is the sum of each alone.
    call_case = load_case("test_12_risk_cancelling_naked_short_call")
    put_case = load_case("test_20_structures_basic_put")
    combined = json.loads(json.dumps(call_case))
    combined["Scenario"]["Options"] += put_case["Scenario"]["Options"]
    combined["Scenario"]["OptionFeeds"] += put_case["Scenario"]["OptionFeeds"]
    together = evaluate(combined)
    call_alone, put_alone = evaluate(call_case), evaluate(put_case)
    assert [s.pnl for s in together.scenarios] == pytest.approx(
        [c.pnl + p.pnl for c, p in zip(call_alone.scenarios, put_alone.scenarios, strict=True)], rel=1e-12
    )
    assert together.mtm == pytest.approx(call_alone.mtm + put_alone.mtm, rel=1e-12)


@pytest.mark.parametrize(
    ("long_put_strike", "naked_short_amount"),
    [(100_000.0, 0.0), (90_000.0, 1.0)],
    ids=["put-at-same-strike-covers", "put-at-other-strike-does-not"],
)
def test_naked_short_contingency_nets_a_call_and_put_at_one_strike(
    long_put_strike: float, naked_short_amount: float
) -> None:
    data = load_case("test_12_risk_cancelling_naked_short_call")
    short_call = data["Scenario"]["Options"][0]
    data["Scenario"]["Options"].append({**short_call, "Strike": long_put_strike, "IsCall": 0, "Amount": 1.0})
    result = evaluate(data)
    assert result.mm_contingency == pytest.approx(naked_short_amount * 95663.50604855 * 0.003, abs=1e-9)


def test_low_option_feed_confidence_adds_oracle_contingency_to_im() -> None:
    data = load_case("test_12_risk_cancelling_naked_short_call")
    base = evaluate(data)
    data["Scenario"]["OptionFeeds"][0]["OptionVolConfidences"] = 0.4
    low_confidence = evaluate(data)
    # (1 - 0.4) x CONF_MARGIN 1.0 x gross 1 option x spot, on IM only.
    assert low_confidence.im_contingency - base.im_contingency == pytest.approx(0.6 * 95663.50604855)
    assert low_confidence.mm == base.mm


@pytest.mark.parametrize(
    ("edit", "location", "message"),
    [
        (lambda d: d["Scenario"]["Options"][0].update(Strike=-1.0), ("Scenario", "Options", 0, "Strike"),
         "greater than 0"),
        (lambda d: d["Scenario"]["OptionFeeds"][0]["SVIparam"].__setitem__(0, "abc"),
         ("Scenario", "OptionFeeds", 0, "SVIparam", 0), "could not convert string to float"),
        (lambda d: d["Scenario"]["Options"][0].update(IsCall=2), ("Scenario", "Options", 0, "IsCall"), "0 or 1"),
        (lambda d: d["Scenario"].update(SpotPrice="95663"), ("Scenario", "SpotPrice"), "valid number"),
        (lambda d: d["Scenario"]["Options"][0].update(Strke=1.0), ("Scenario", "Options", 0, "Strke"),
         "Extra inputs"),
        (lambda d: d["Scenario"]["Options"][0].update(Expiry=5.0), ("Scenario",), "Options[0].Expiry = 5"),
        (lambda d: d["Parameters"]["Scenarios"][0].update(VolShockDirection="Sideways"),
         ("Parameters", "Scenarios", 0, "VolShockDirection"), "'Up'"),
    ],
    ids=["negative-strike", "svi-not-a-number", "is-call-2", "spot-as-text", "misspelt-field", "no-feed",
         "unknown-direction"],
)
def test_bad_input_names_the_field(edit: Any, location: tuple[object, ...], message: str) -> None:
    data = load_case("test_12_risk_cancelling_naked_short_call")
    edit(data)
    with pytest.raises(ValidationError) as raised:
        Pm2Case.model_validate(data)
    first = raised.value.errors()[0]
    assert first["loc"] == location
    assert message in first["msg"]


def test_svi_parameters_accept_text_and_numbers() -> None:
    case = Pm2Case.model_validate(load_case("test_60_settlement_near_expiry"))
    svi = case.scenario.option_feeds[0].svi_param
    assert svi is not None
    assert svi[0] == 0.007565004123347051
    assert svi[5] == 2682.9997436016715


def test_a_feed_without_options_changes_nothing() -> None:
    data = load_case("test_12_risk_cancelling_naked_short_call")
    base = evaluate(data)
    data["Scenario"]["OptionFeeds"].append({**data["Scenario"]["OptionFeeds"][0], "FeedExpiry": 1_399_652})
    with_extra_feed = evaluate(data)
    assert with_extra_feed.scenario_pnl == base.scenario_pnl
    assert (with_extra_feed.mm, with_extra_feed.im) == (base.mm, base.im)
