"""Derive PM2 at the edges of its parameter space: every value Derive's contract setters accept (PMRMLib_2.sol's
`set...Params`, derivexyz/v2-core @ 7736900) is accepted, the next value out is refused naming the field, and the
two zeros on which the contract divides by zero are refused. The published edge cases (negative rate, DTE_FLOOR 0,
MIN_K_STAR 0; reference_data/derive-pm2, from v2-core's portfolio_cases) are matched to 1e-6 by
test_derive_pm2.py's test over every case file; here, properties that do not rely on Derive's figures."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from pydantic import ValidationError

import reference_data
from risk_core.venues.derive_pm2 import Pm2Case, evaluate_pm2

# (group, key, lowest accepted, highest accepted), from the require() of each setter; None: no bound that side
CONTRACT_RANGES = [
    ("VolShock", "VOLRANGEUP", 0.0, 10.0),
    ("VolShock", "VOLRANGEDOWN", 0.0, 10.0),
    ("VolShock", "SHORTTERMPOWER", None, 10.0),
    ("VolShock", "LONGTERMPOWER", None, 10.0),
    ("VolShock", "DTE_FLOOR", 0.0, 400.0),
    ("VolShock", "MIN_VOL_EVAL_SHOCKED", 0.0, 20.0),
    ("Margin", "MM_LOSS_FACTOR", 0.1, 10.0),
    ("Margin", "IM_LOSS_FACTOR", 0.5, 10.0),
    ("Margin", "BASE_STATIC_DISCOUNT", 0.0, 4.0),
    ("Margin", "BASE_STATIC_DISCOUNT_NEG", 0.0, 4.0),
    ("Margin", "LONG_RATE_MULTSCALE", 0.0, 10.0),
    ("Margin", "SHORT_RATE_ADDSCALE", 0.0, 10.0),
    ("BasisContingency", "BASIS_CONT_ADD_FACTOR", 0.0, 20.0),
    ("BasisContingency", "BASIS_CONT_MULT_FACTOR", 0.0, 20.0),
    ("OtherContingency", "PEG_LOSS_THRESHOLD", 0.0, 100.0),
    ("OtherContingency", "PEG_LOSS_FACTOR", 0.0, 10.0),
    ("OtherContingency", "CONF_MARGIN", 0.0, 20.0),
    ("OtherContingency", "MM_PERP_PERCENT", 0.0, 3.0),
    ("OtherContingency", "MM_OPTION_PERCENT", 0.0, 2.0),
    ("SkewShock", "LINEAR_SCALE_CAP", 0.0, 10.0),
    ("SkewShock", "ABS_CBASE", -10.0, 10.0),
    ("SkewShock", "MIN_K_STAR", 0.0, 10.0),
    ("SkewShock", "MIN_WIDTH_SCALE", 0.0, 10.0),
    ("SkewShock", "VOL_PARAM_STATIC", 0.0, 10.0),
    ("SkewShock", "VOL_PARAM_SCALE", -20.0, 20.0),
]
OUTSIDE = 1e-6


def base_case() -> dict[str, Any]:
    path = reference_data.path("derive-pm2", "test_20_structures_basic_put.json")
    data: dict[str, Any] = json.loads(path.read_text())
    data.pop("Expected")
    return data


def with_parameter(group: str, key: str, value: float) -> dict[str, Any]:
    data = base_case()
    data["Parameters"][group][key] = value
    return data


@pytest.mark.parametrize(("group", "key", "low", "high"), CONTRACT_RANGES, ids=[r[1] for r in CONTRACT_RANGES])
def test_the_contract_range_is_accepted_and_nothing_beyond(group: str, key: str, low: float | None,
                                                           high: float) -> None:
    for value in (low, high):
        if value is not None:
            result = evaluate_pm2(Pm2Case.model_validate(with_parameter(group, key, value)))
            assert abs(result.mm) < float("inf") and abs(result.im) < float("inf")
    for value in ((low - OUTSIDE) if low is not None else None, high + OUTSIDE):
        if value is not None:
            with pytest.raises(ValidationError) as refused:
                Pm2Case.model_validate(with_parameter(group, key, value))
            assert any(e["loc"][-1] == key for e in refused.value.errors())


def test_a_negative_rate_counts_as_zero() -> None:
    data = json.loads(reference_data.path("derive-pm2", "test_55_discounting_negative_rate.json").read_text())
    assert all(feed["Rate"] < 0 for feed in data["Scenario"]["OptionFeeds"])
    at_zero = copy.deepcopy(data)
    for feed in at_zero["Scenario"]["OptionFeeds"]:
        feed["Rate"] = 0.0
    negative, zero = (evaluate_pm2(Pm2Case.model_validate(d)) for d in (data, at_zero))
    assert negative.mm == zero.mm and negative.im == zero.im
    # and a positive rate does discount: the same book at +5% is not the same figure
    at_five = copy.deepcopy(at_zero)
    for feed in at_five["Scenario"]["OptionFeeds"]:
        feed["Rate"] = 0.05
    assert evaluate_pm2(Pm2Case.model_validate(at_five)).mm != zero.mm


def test_a_zero_dte_floor_changes_nothing_for_options_beyond_a_day() -> None:
    # the floor only lifts expiries nearer than itself: at 0 and at 1 day the basic put (16 days out) is the same
    zero, one_day = (evaluate_pm2(Pm2Case.model_validate(with_parameter("VolShock", "DTE_FLOOR", v)))
                     for v in (0.0, 1.0))
    assert zero.mm == one_day.mm and zero.im == one_day.im


def test_the_zeros_the_contract_divides_by_are_refused() -> None:
    data = with_parameter("VolShock", "DTE_FLOOR", 0.0)
    for option in data["Scenario"]["Options"]:
        option["Expiry"] = 0
    for feed in data["Scenario"]["OptionFeeds"]:
        feed["FeedExpiry"] = 0
    with pytest.raises(ValidationError, match="DTE_FLOOR = 0 with an option at Expiry 0"):
        Pm2Case.model_validate(data)

    data = with_parameter("SkewShock", "MIN_K_STAR", 0.0)
    data["Parameters"]["SkewShock"]["VOL_PARAM_STATIC"] = 0.0
    data["Parameters"]["SkewShock"]["VOL_PARAM_SCALE"] = -1.0  # k* = sqrt(tau) width (0 - sqrt(tau)) < 0
    with pytest.raises(ValidationError, match="MIN_K_STAR = 0 and an expiry whose k"):
        Pm2Case.model_validate(data)
