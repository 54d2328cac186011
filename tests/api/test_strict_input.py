"""Inputs as strict as the OpenAPI document says (issue 12, strictness): JSON numbers and booleans only, no key
twice in one object, and the body declared application/json."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from api.http.settings import DEMO_API_KEY

DEMO = json.loads((Path(__file__).resolve().parents[2] / "examples" / "demo_request.json").read_text())
JSON_HEADERS = {"X-API-Key": DEMO_API_KEY, "Content-Type": "application/json"}


def changed(path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    request = copy.deepcopy(DEMO)
    target: Any = request
    for part in path[:-1]:
        target = target.setdefault(part, {}) if isinstance(part, str) else target[part]
    target[path[-1]] = value
    return request


async def margin(client: Any, body: bytes | str, headers: dict[str, str] = JSON_HEADERS) -> tuple[int, Any]:
    response = await client.post("/v1/margin", data=body, headers=headers)
    return response.status, json.loads(await response.read())


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (("positions", 0, "quantity"), "10", "positions[0].quantity"),
        (("positions", 0, "quantity"), True, "positions[0].quantity"),
        (("positions", 3, "strike"), "100000", "positions[3].strike"),
        (("positions", 0, "provenance"), {"source": "cli", "complete": 1}, "positions[0].provenance.complete"),
        (("positions", 0, "provenance"), {"source": "cli", "block": "12"}, "positions[0].provenance.block"),
        (("market", "spot", "BTC"), "93000", "market.spot.BTC"),
        (("params", "im_factor"), "1.5", "params.im_factor"),
        (("params", "contingencies_enabled"), 0, "params.contingencies_enabled"),
    ],
)
async def test_numbers_and_booleans_are_never_coerced(client: Any, path: Any, value: Any, field: str) -> None:
    status, problem = await margin(client, json.dumps(changed(path, value)))
    assert status == 422
    assert field in [error["field"] for error in problem["errors"]], problem


async def test_an_integer_is_a_number(client: Any) -> None:
    as_integer = await margin(client, json.dumps(changed(("positions", 0, "quantity"), 10)))
    as_float = await margin(client, json.dumps(changed(("positions", 0, "quantity"), 10.0)))
    assert as_integer[0] == as_float[0] == 200
    assert as_integer[1]["maintenance_margin_usd"] == as_float[1]["maintenance_margin_usd"]


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ('{"positions": [], "positions": [], "market": null}', "positions"),
        (json.dumps(DEMO)[:-1] + ', "market": {}}', "market"),
        (json.dumps(DEMO).replace('"strike": 100000', '"strike": 100000, "strike": 1'), "strike"),
    ],
)
async def test_a_key_given_twice_is_a_422_naming_it(client: Any, body: str, key: str) -> None:
    status, problem = await margin(client, body)
    assert status == 422
    assert problem["errors"] == [{"field": key, "reason": "given more than once in one JSON object"}]


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded", "text/json"])
async def test_a_body_not_declared_json_is_a_415(client: Any, content_type: str | None) -> None:
    headers = {"X-API-Key": DEMO_API_KEY} | ({"Content-Type": content_type} if content_type else {})
    for path in ("/v1/margin", "/graphql"):
        response = await client.post(path, data=json.dumps({"query": "{ __typename }"}).encode(), headers=headers)
        assert response.status == 415, (path, content_type)
        assert response.content_type == "application/problem+json"
        assert response.headers["Accept-Post"] == "application/json"


async def test_a_charset_parameter_is_fine(client: Any) -> None:
    headers = {**JSON_HEADERS, "Content-Type": "application/json; charset=utf-8"}
    assert (await margin(client, json.dumps(DEMO), headers))[0] == 200


async def test_graphql_bodies_are_checked_alike(client: Any) -> None:
    body = '{"query": "{ __typename }", "query": "{ margin }"}'
    response = await client.post("/graphql", data=body, headers=JSON_HEADERS)
    assert response.status == 422
    assert (await response.json(content_type=None))["errors"][0]["field"] == "query"
