"""/openapi.json is a valid OpenAPI 3.1 document, and schemathesis fuzzing it against a live server finds no 500
and no response that breaks the document (status, content type, headers, body schema)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import hypothesis
import pytest
import requests
import schemathesis
from aiohttp import web
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from prometheus_client.parser import text_string_to_metric_families
from schemathesis import Case, GenerationMode
from support.graphql_fuzz_hooks import json_node, what_if_requests

from api.http import ApiSettings, RateLimit, RiskService, create_app
from api.http.settings import DEMO_API_KEY

KEY = {"X-API-Key": DEMO_API_KEY, "Content-Type": "application/json"}
UNLIMITED = ApiSettings(rate_limit=RateLimit(per_second=1e6, burst=1_000_000))
CHECKS = schemathesis.Config.from_dict(
    {"checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", "401", "404", "422", "429"]}}}
)
ANY_ARGUMENT_MAY_BE_REFUSED = schemathesis.Config.from_dict(
    {"checks": {"positive_data_acceptance": {"enabled": False}}}
)
EXAMPLES_PER_OPERATION = 30  # per generation mode; the whole file runs in well under a minute


@contextmanager
def serving(app: web.Application) -> Iterator[str]:
    """The app on a free local port, on its own event loop in a thread: schemathesis calls it synchronously."""
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = runner.addresses[0][1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


@pytest.fixture(scope="module", params=["what-if only", "with service"])
def base_url(request: pytest.FixtureRequest) -> Iterator[str]:
    service: RiskService | None = request.getfixturevalue("fake_service") if request.param == "with service" else None
    with serving(create_app(service=service, settings=UNLIMITED)) as url:
        yield url


def test_document_is_valid_openapi_3_1(base_url: str) -> None:
    document = requests.get(f"{base_url}/openapi.json", timeout=10).json()
    validate(document)  # raises on any violation of the OpenAPI 3.1 specification
    assert document["openapi"] == "3.1.0"
    request_schema = document["paths"]["/v1/margin"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert request_schema == {"$ref": "#/components/schemas/MarginRequest"}
    assert {"MarginRequest", "MarginReport", "ProblemDetails", "OptionPosition"} <= set(
        document["components"]["schemas"]
    )
    assert "$defs" not in str(document)  # every reference was moved into components


def test_service_routes_are_documented_from_the_service_annotations(base_url: str) -> None:
    document = requests.get(f"{base_url}/openapi.json", timeout=10).json()
    with_service = requests.get(f"{base_url}/health", timeout=10).json()["aggregator"]
    assert ("/v1/wallets/{address}/credit" in document["paths"]) is with_service
    if with_service:
        credit = document["paths"]["/v1/wallets/{address}/credit"]["get"]
        assert credit["security"] == [{"apiKey": []}]
        ok = credit["responses"]["200"]["content"]["application/json"]["schema"]
        assert ok == {"$ref": "#/components/schemas/CreditView"}
        (model,) = [p for p in credit["parameters"] if p["in"] == "query"]
        assert (model["name"], model["required"], model["schema"]["enum"]) == ("model", False, ["grid", "fhs"])
        stated = {
            parameter["name"]: parameter["schema"].get("pattern")
            for operations in document["paths"].values()
            for operation in operations.values()
            for parameter in operation.get("parameters", [])
            if parameter["in"] == "path"
        }
        assert stated == {
            "address": "^0x[0-9a-fA-F]{40}$", "account_id": "^[a-z0-9][a-z0-9_-]{0,63}$", "asset": None,
            "report_id": None,
        }
        for route in ("/v1/wallets/{address}/risk", "/v1/wallets/{address}/positions"):
            read = document["paths"][route]["get"]
            assert read["security"] == [{"apiKey": []}, {}]  # a key, or none and the per-address limit
            assert {"429", "503"} <= set(read["responses"])
    history = document["paths"].get("/v1/accounts/{account_id}/history", {}).get("get")
    report = document["paths"].get("/v1/accounts/{account_id}/reports/{report_id}", {}).get("get")
    assert (history is not None, report is not None) == (with_service, with_service)
    if with_service:
        assert {p["name"]: (p["in"], p["schema"]) for p in history["parameters"]} == {
            "account_id": ("path", {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,63}$"}),
            "since": ("query", {"type": "string", "format": "date-time"}),
            "until": ("query", {"type": "string", "format": "date-time"}),
            "limit": ("query", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}),
        }
        assert history["responses"]["200"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/AccountHistory"
        }
        assert report["parameters"][1]["schema"] == {
            "type": "integer", "format": "int64", "minimum": 1, "maximum": 2**63 - 1
        }
        assert report["responses"]["200"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/StoredReport"
        }
        assert {"404", "422", "503"} <= set(history["responses"]) & set(report["responses"])


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_fuzzing_finds_no_server_error_and_no_schema_violation(base_url: str, mode: GenerationMode) -> None:
    """Every documented operation, with data that fits the document and data that breaks it, under schemathesis's
    default checks: no 5xx; documented status, content type, headers and body schema; negative data rejected;
    positive data accepted, where 422 counts as accepted (JSON Schema cannot say that price_lower < price_upper
    or that an underlying has a price, so a schema-valid request may rightly be a 422). Driven through hypothesis
    directly: schemathesis's lazy pytest fixture loader does not run on this pytest."""
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json", config=CHECKS)
    operations = [result.ok() for result in schema.get_all_operations()]
    labels = {operation.label for operation in operations}
    assert "POST /v1/margin" in labels
    with_service = requests.get(f"{base_url}/health", timeout=10).json()["aggregator"]
    before = answered_counts(base_url)
    history_routes = {"GET /v1/accounts/{account_id}/history", "GET /v1/accounts/{account_id}/reports/{report_id}"}
    assert (history_routes <= labels) is with_service
    if mode is GenerationMode.NEGATIVE:
        # a body, a query or an integer path parameter can be invalid; a string path parameter is any string
        operations = [op for op in operations if len(op.body) or len(op.query) or "{report_id}" in op.path]
    for operation in operations:

        @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
        @hypothesis.settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(hypothesis.HealthCheck),
        )
        def check(case: Case) -> None:
            case.call_and_validate(headers=KEY)

        check()
    if with_service:  # this run called the history routes; in negative mode they refused the bad input
        after = answered_counts(base_url)
        expected = "422" if mode is GenerationMode.NEGATIVE else "404"
        for route in ("/v1/accounts/{account_id}/history", "/v1/accounts/{account_id}/reports/{report_id}"):
            assert after.get((route, expected), 0) > before.get((route, expected), 0)


def answered_counts(base_url: str) -> dict[tuple[str, str], float]:
    """(route template, status) -> answers the app counted in /metrics so far."""
    text = requests.get(f"{base_url}/metrics", timeout=10).text
    return {
        (sample.labels["route"], sample.labels["status"]): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.endswith("_total") and {"route", "status"} <= set(sample.labels)
    }


def test_a_computed_report_conforms_to_the_document(base_url: str) -> None:
    document = requests.get(f"{base_url}/openapi.json", timeout=10).json()
    demo = (Path(__file__).resolve().parents[2] / "examples" / "demo_request.json").read_bytes()
    response = requests.post(f"{base_url}/v1/margin", data=demo, headers=KEY, timeout=30)
    assert response.status_code == 200
    answered = document["paths"]["/v1/margin"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    Draft202012Validator({**answered, "components": document["components"]}).validate(response.json())


def test_history_and_a_stored_report_conform_to_the_document(fake_service: RiskService) -> None:
    """Fuzzing rarely hits the one known account, so its answers are checked here against their documented schemas."""
    with serving(create_app(service=fake_service, settings=UNLIMITED)) as base_url:
        document = requests.get(f"{base_url}/openapi.json", timeout=10).json()
        for path, route in [
            ("/v1/accounts/demo/history?limit=2", "/v1/accounts/{account_id}/history"),
            ("/v1/accounts/demo/reports/1", "/v1/accounts/{account_id}/reports/{report_id}"),
        ]:
            response = requests.get(f"{base_url}{path}", timeout=10)
            assert response.status_code == 200
            answered = document["paths"][route]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
            Draft202012Validator({**answered, "components": document["components"]}).validate(response.json())
            if route.endswith("/history"):
                assert [r["id"] for r in response.json()["reports"]] == [3, 2]
            else:
                assert response.json()["id"] == 1


def test_graphql_fuzzing_finds_no_server_error(base_url: str) -> None:
    """Every query field with generated arguments and selections. A rejected argument is no failure here: the
    `request: JSON` scalar admits anything, so most generated requests are rightly refused as BAD_USER_INPUT."""
    schemathesis.graphql.scalar("JSON", what_if_requests().map(json_node))
    schema = schemathesis.graphql.from_url(f"{base_url}/graphql", headers=KEY, config=ANY_ARGUMENT_MAY_BE_REFUSED)
    for result in schema.get_all_operations():
        operation = result.ok()

        @hypothesis.given(case=operation.as_strategy())
        @hypothesis.settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(hypothesis.HealthCheck),
        )
        def check(case: Case) -> None:
            case.call_and_validate(headers=KEY)

        check()
