"""A what-if request naming no market is priced against the aggregator's current snapshot, on REST and GraphQL;
without an aggregator, or from the CLI, the market is a required field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from api.cli import main as cli_main
from api.http.settings import DEMO_API_KEY
from risk_core.margin.engine import compute_margin
from risk_core.schema.market import MarketSnapshot
from risk_core.schema.params import default_params
from risk_core.schema.request import MarginRequest

HEADERS = {"X-API-Key": DEMO_API_KEY, "Content-Type": "application/json"}
DEMO_REQUEST = Path(__file__).resolve().parents[2] / "examples" / "demo_request.json"


def without_market() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(DEMO_REQUEST.read_text())
    del document["market"]
    return document


def priced_at(market: MarketSnapshot) -> dict[str, Any]:
    positions = MarginRequest.model_validate({**without_market(), "market": market}).positions
    report = compute_margin(positions, market, default_params())
    return json.loads(report.model_dump_json())


async def test_rest_prices_a_request_without_market_at_the_service_snapshot(
    make_client: Any, fake_service: Any
) -> None:
    client = await make_client(service=fake_service)
    response = await client.post("/v1/margin", data=json.dumps(without_market()), headers=HEADERS)
    assert response.status == 200
    body = await response.json()
    want = priced_at(await fake_service.market_snapshot())
    assert body["as_of"] == want["as_of"]
    assert body["maintenance_margin_usd"] == pytest.approx(want["maintenance_margin_usd"], abs=0.005)
    assert body["equity_usd"] == pytest.approx(want["equity_usd"], abs=0.005)
    assert [p["value_usd"] for p in body["positions"]] == pytest.approx(
        [p["value_usd"] for p in want["positions"]], abs=0.005
    )


async def test_graphql_prices_a_request_without_market_at_the_service_snapshot(
    make_client: Any, fake_service: Any
) -> None:
    client = await make_client(service=fake_service)
    query = "query($request: JSON!) { margin(request: $request) { maintenanceMarginUsd equityUsd } }"
    response = await client.post(
        "/graphql", data=json.dumps({"query": query, "variables": {"request": without_market()}}), headers=HEADERS
    )
    result = (await response.json())["data"]["margin"]
    want = priced_at(await fake_service.market_snapshot())
    assert result["maintenanceMarginUsd"] == pytest.approx(want["maintenance_margin_usd"], abs=0.005)
    assert result["equityUsd"] == pytest.approx(want["equity_usd"], abs=0.005)


async def test_a_service_without_market_sources_answers_503(make_client: Any, fake_service: Any) -> None:
    class NoMarket(type(fake_service)):  # type: ignore[misc]
        async def market_snapshot(self) -> Any:
            raise ConnectionError("every price source is down")

    client = await make_client(service=NoMarket())
    response = await client.post("/v1/margin", data=json.dumps(without_market()), headers=HEADERS)
    assert response.status == 503
    assert response.content_type == "application/problem+json"
    assert "every price source is down" in (await response.json())["detail"]


async def test_without_a_service_the_market_is_a_field_the_request_lacks(client: Any) -> None:
    response = await client.post("/v1/margin", data=json.dumps(without_market()), headers=HEADERS)
    assert response.status == 422
    problem = await response.json()
    assert [e["field"] for e in problem["errors"]] == ["market"]


def test_the_cli_needs_a_market(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    request = tmp_path / "request.json"
    request.write_text(json.dumps(without_market()))
    assert cli_main(["margin", str(request)]) == 2
    assert "market: required" in capsys.readouterr().err
