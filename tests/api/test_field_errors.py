"""A check on a whole model (pydantic's model validators) names the field it is about as data: its InputError's
field joins the model's location, so a nested check is named at its full path and no message is parsed."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from api.errors import field_errors
from risk_core.schema.params import RiskParams, default_params
from risk_core.schema.request import MarginRequest


def errors_of(
    model: type[MarginRequest] | type[RiskParams], document: object, prefix: str = ""
) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as raised:
        model.model_validate(document)
    return [(e.field, e.reason) for e in field_errors(raised.value, prefix=prefix)]


def test_a_root_check_names_its_field() -> None:
    assert errors_of(MarginRequest, {"positions": []}) == [
        ("positions", "at least one position is needed (nothing to margin in an empty book)")]


def test_a_nested_check_is_named_at_its_full_path() -> None:
    params = default_params().model_dump(mode="json")
    params["tracking"] = {"AAA": {"underlying": "BBB", "depeg": 0.01}, "BBB": {"underlying": "ETH", "depeg": 0.01}}
    assert errors_of(RiskParams, params, prefix="params") == [
        ("params.tracking.AAA", "tracks BBB, which is itself tracked")]
