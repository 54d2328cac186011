"""GraphQL at /graphql: the what-if margin, the service's fields, and the depth, token and alias limits."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from api.graphql.schema import build_schema
from api.http import ApiSettings
from api.http.settings import DEMO_API_KEY

HEADERS = {"X-API-Key": DEMO_API_KEY, "Content-Type": "application/json"}
DEMO = json.loads((Path(__file__).resolve().parents[2] / "examples" / "demo_request.json").read_text())
MARGIN_QUERY = """
query WhatIf($request: JSON!) {
  margin(request: $request) {
    asOf status equityUsd maintenanceMarginUsd initialMarginUsd marginRatio complete warnings
    positions { id kind venue valueUsd delta standaloneMarginUsd }
    greeks { asset delta deltaUsd gamma vega theta liquidationDown liquidationUp }
    scenarios
  }
}
"""


async def graphql(client: Any, query: str, variables: dict[str, Any] | None = None) -> Any:
    response = await client.post("/graphql", data=json.dumps({"query": query, "variables": variables}), headers=HEADERS)
    assert response.status == 200
    assert response.content_type == "application/json"
    return await response.json()


async def test_what_if_margin_matches_rest(client: Any) -> None:
    result = await graphql(client, MARGIN_QUERY, {"request": DEMO})
    assert "errors" not in result
    margin = result["data"]["margin"]
    rest = await (await client.post("/v1/margin", data=json.dumps(DEMO), headers=HEADERS)).json()
    assert margin["maintenanceMarginUsd"] == rest["maintenance_margin_usd"]
    assert margin["asOf"] == rest["as_of"] and margin["asOf"].endswith("Z")  # one way to write a time
    assert margin["status"] == rest["status"]
    assert [p["id"] for p in margin["positions"]] == [p["id"] for p in rest["positions"]]
    assert {g["asset"]: g["delta"] for g in margin["greeks"]} == {a: u["delta"] for a, u in rest["underlyings"].items()}
    assert margin["scenarios"]["BTC"]["pnl"] == rest["underlyings"]["BTC"]["grid"]["pnl"]  # one JSON scalar


async def test_bad_request_is_an_error_naming_the_field(client: Any) -> None:
    request = json.loads(json.dumps(DEMO))
    request["positions"][3]["strike"] = -1
    result = await graphql(client, MARGIN_QUERY, {"request": request})
    assert result["data"] is None
    (error,) = result["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["extensions"]["errors"][0]["field"] == "positions[3].strike"


async def test_an_empty_book_is_an_error_naming_positions(client: Any) -> None:
    result = await graphql(client, MARGIN_QUERY, {"request": {**DEMO, "positions": []}})
    assert result["data"] is None
    (error,) = result["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert [e["field"] for e in error["extensions"]["errors"]] == ["positions"]


async def test_without_a_service_only_the_what_if_exists(client: Any) -> None:
    result = await graphql(client, '{ account(id: "demo") { status } }')
    assert "Cannot query field 'account'" in result["errors"][0]["message"]


async def test_service_fields(make_client: Any, fake_service: Any) -> None:
    client = await make_client(service=fake_service)
    query = """query($id: String!, $wallet: String!) {
      account(id: $id) { status maintenanceMarginUsd greeks { asset delta } scenarios }
      wallet(address: $wallet) { address positions risk { positions { id } } }
      market(asset: "BTC") { asset asOf spot forwards { expiry price } vol sources { name status asOf asset } }
    }"""
    result = await graphql(client, query, {"id": fake_service.account, "wallet": fake_service.wallet})
    assert "errors" not in result, result
    data = result["data"]
    assert data["account"]["status"] == "healthy"
    assert set(data["account"]["scenarios"]) == {"BTC", "ETH"}
    assert data["wallet"]["positions"]["positions"] == 8 and len(data["wallet"]["risk"]["positions"]) == 8
    # typed, camelCase like the report's fields, times with Z, as REST's /v1/markets/BTC answers in snake_case
    rest = await (await client.get("/v1/markets/BTC")).json()
    market = data["market"]
    assert (market["asset"], market["asOf"], market["spot"]) == ("BTC", rest["as_of"], 93_000.0)
    assert market["asOf"].endswith("Z") and rest["spot"] == 93_000.0
    assert market["forwards"] == [{"expiry": e, "price": p} for e, p in sorted(rest["forwards"].items())]
    assert market["vol"] == rest["vol"] and set(market["vol"]) == {"points"}  # the demo request's surface
    assert market["sources"] == [{"name": s["name"], "status": s["status"], "asOf": s["as_of"], "asset": s["asset"]}
                                 for s in rest["sources"]]
    missing = await graphql(client, '{ account(id: "nobody") { status } market(asset: "DOGE") { spot } }')
    assert missing == {"data": {"account": None, "market": None}}
    malformed = await graphql(client, '{ wallet(address: "not-hex") { positions } }')
    assert malformed["errors"][0]["extensions"]["errors"] == [{"field": "address", "reason": "not a hex address"}]


async def test_the_wallet_credit_takes_a_margin_model(
    make_client: Any, fake_service: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = await make_client(service=fake_service)
    query = "query($wallet: String!, $model: String) { wallet(address: $wallet) { credit(model: $model) } }"
    for model, named in ((None, "grid"), ("grid", "grid"), ("fhs", "fhs")):
        result = await graphql(client, query, {"wallet": fake_service.wallet, "model": model})
        assert "errors" not in result, result
        assert result["data"]["wallet"]["credit"]["model"] == named
    bad = await graphql(client, query, {"wallet": fake_service.wallet, "model": "span"})
    (error,) = bad["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT" and error["extensions"]["status"] == 422
    assert [e["field"] for e in error["extensions"]["errors"]] == ["model"]
    monkeypatch.setattr(fake_service, "fhs_history", False)
    refused = await graphql(client, query, {"wallet": fake_service.wallet, "model": "fhs"})
    assert refused["errors"][0]["extensions"]["errors"] == [{"field": "model", "reason": "fhs: no history for BTC"}]


async def test_unexpected_failures_are_masked(make_client: Any, broken_service: Any) -> None:
    client = await make_client(service=broken_service)
    result = await graphql(client, '{ market(asset: "BTC") { spot } }')
    assert result["errors"][0]["message"] == "internal error"
    assert "postgres" not in json.dumps(result)


async def test_depth_limit_rejects_a_deep_query(make_client: Any, fake_service: Any) -> None:
    client = await make_client(service=fake_service, settings=ApiSettings(graphql_max_depth=2))
    shallow = await graphql(client, '{ account(id: "demo") { status } }')
    assert "errors" not in shallow
    deep = await graphql(client, '{ wallet(address: "0xaa") { risk { positions { id } } } }')
    assert deep["data"] is None
    assert "exceeds the maximum depth of 2" in deep["errors"][0]["message"]


async def test_token_and_alias_limits(client: Any) -> None:
    many_tokens = "{ " + " ".join(["__typename"] * 3_000) + " }"
    assert "tokens" in (await graphql(client, many_tokens))["errors"][0]["message"]
    many_aliases = "{ " + " ".join(f"a{i}: __typename" for i in range(20)) + " }"
    assert "aliases" in (await graphql(client, many_aliases))["errors"][0]["message"]


def test_schema_shape() -> None:
    """The SDL clients see: typed summary fields and grids as JSON; service fields only with a service."""
    what_if = build_schema(service=None, settings=ApiSettings()).as_str()
    assert "margin(request: JSON!): Margin!" in what_if
    assert "scenarios: JSON!" in what_if and "maintenanceMarginUsd: Float!" in what_if
    assert "account(" not in what_if


async def test_get_serves_the_graphiql_page_not_queries(client: Any) -> None:
    page = await client.get("/graphql", headers={"Accept": "text/html"})
    assert page.status == 200 and page.content_type == "text/html"
    query = await client.get("/graphql", params={"query": "{ __typename }"}, headers={"Accept": "application/json"})
    assert query.status >= 400
    assert query.content_type == "application/problem+json"
