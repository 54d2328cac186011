"""The aggregator's routes, served from an injected RiskService; and the catch-all 500."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from api.http import RiskService
from api.http.settings import DEMO_API_KEY
from risk_core.schema.report import MarginReport

KEY = {"X-API-Key": DEMO_API_KEY}


def test_the_fake_is_a_risk_service(fake_service: Any) -> None:
    assert isinstance(fake_service, RiskService)


async def test_routes_answer_the_service_models(make_client: Any, fake_service: Any, demo: MarginReport) -> None:
    client = await make_client(service=fake_service)
    wallet = fake_service.wallet
    report = await (await client.get(f"/v1/accounts/{fake_service.account}/risk")).json()
    assert report["maintenance_margin_usd"] == demo.maintenance_margin_usd
    assert (await (await client.get(f"/v1/wallets/{wallet}/risk")).json())["status"] == demo.status
    assert (await (await client.get(f"/v1/wallets/{wallet}/positions")).json())["positions"] == 8
    market = await (await client.get("/v1/markets/BTC")).json()
    assert (market["asset"], market["spot"]) == ("BTC", 93_000.0)
    credit = await client.get(f"/v1/wallets/{wallet}/credit", headers=KEY)
    assert (await credit.json())["signature"] == "0x01"
    assert (await (await client.get("/health")).json())["aggregator"] is True


async def test_credit_needs_a_key(make_client: Any, fake_service: Any) -> None:
    client = await make_client(service=fake_service)
    assert (await client.get(f"/v1/wallets/{fake_service.wallet}/credit")).status == 401


async def test_credit_takes_a_margin_model(make_client: Any, fake_service: Any) -> None:
    client = await make_client(service=fake_service)
    path = f"/v1/wallets/{fake_service.wallet}/credit"
    for query, model in (("", "grid"), ("?model=grid", "grid"), ("?model=fhs", "fhs")):
        response = await client.get(path + query, headers=KEY)
        assert response.status == 200
        assert (await response.json())["model"] == model


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("?model=span", "Input should be 'grid' or 'fhs'"),
        ("?model=fhs&model=grid", "given more than once"),
        ("?modle=fhs", "Extra inputs are not permitted"),
    ],
)
async def test_a_bad_model_is_a_problem_naming_its_field(
    make_client: Any, fake_service: Any, query: str, reason: str
) -> None:
    client = await make_client(service=fake_service)
    response = await client.get(f"/v1/wallets/{fake_service.wallet}/credit{query}", headers=KEY)
    assert response.status == 422
    assert response.content_type == "application/problem+json"
    errors = (await response.json())["errors"]
    assert [e["field"] for e in errors] == [query[1:].split("=")[0]]
    assert reason in errors[0]["reason"]


async def test_a_model_the_service_cannot_apply_is_a_problem_naming_model(
    make_client: Any, fake_service: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fake_service, "fhs_history", False)
    client = await make_client(service=fake_service)
    response = await client.get(f"/v1/wallets/{fake_service.wallet}/credit?model=fhs", headers=KEY)
    assert response.status == 422
    assert (await response.json())["errors"] == [{"field": "model", "reason": "fhs: no history for BTC"}]


@pytest.mark.parametrize(
    ("path", "status", "field"),
    [
        ("/v1/accounts/nobody/risk", 404, "account_id"),
        ("/v1/wallets/0x" + "0" * 39 + "1/risk", 404, "address"),
        ("/v1/markets/DOGE", 404, "asset"),
        ("/v1/wallets/not-hex/positions", 422, "address"),
        ("/v1/wallets/0x01/risk", 422, "address"),
        # issue 12: `$` matched before a trailing newline, and the address went on to fail as a 500
        ("/v1/wallets/0x" + "a" * 40 + "%0A/risk", 422, "address"),
        # issue 12: a NUL in an account id reached PostgreSQL, which refused it as a 500
        ("/v1/accounts/demo%00/risk", 422, "account_id"),
        ("/v1/accounts/demo%00/history", 422, "account_id"),
        ("/v1/accounts/Demo/reports/1", 422, "account_id"),
    ],
)
async def test_unknown_or_malformed_identifiers_are_problems(
    make_client: Any, fake_service: Any, path: str, status: int, field: str
) -> None:
    client = await make_client(service=fake_service)
    response = await client.get(path)
    assert response.status == status
    assert response.content_type == "application/problem+json"
    assert (await response.json(content_type=None))["errors"][0]["field"] == field


async def test_an_unexpected_failure_is_a_500_problem_without_internals(
    make_client: Any, broken_service: Any, caplog: pytest.LogCaptureFixture
) -> None:
    client = await make_client(service=broken_service)
    with caplog.at_level(logging.ERROR):
        response = await client.get("/v1/markets/BTC")
    assert response.status == 500
    assert response.content_type == "application/problem+json"
    text = await response.text()
    assert "postgres" not in text and "Traceback" not in text and "RuntimeError" not in text
    assert "secret connection string" in caplog.text  # logged for the operator, with its traceback
