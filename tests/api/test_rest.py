"""POST /v1/margin, /health, /metrics, and problem+json for every kind of bad input."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from aiohttp.test_utils import TestClient, make_mocked_request
from aiohttp.web import Application
from support.golden import market, option, position

from api.cli import main
from api.http import ApiSettings
from api.http.problems import Problem
from api.http.routes import what_if_handler
from api.http.settings import DEMO_API_KEY

ROOT = Path(__file__).resolve().parents[2]
DEMO_REQUEST = ROOT / "examples" / "demo_request.json"
KEY = {"X-API-Key": DEMO_API_KEY, "Content-Type": "application/json"}
Client = TestClient[Any, Application]


def good_request() -> dict[str, Any]:
    return {
        "positions": [option(-1, "call", 110_000), position("spot", asset="USDC", quantity=20_000)],
        "market": market(),
    }


def with_value(request: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    request = copy.deepcopy(request)
    target: Any = request
    keys = path.split(".")
    for key in keys[:-1]:
        target = target[int(key)] if key.isdigit() else target[key]
    target[keys[-1]] = value
    return request


async def post_margin(client: Client, body: bytes | str) -> tuple[int, str, Any]:
    response = await client.post("/v1/margin", data=body, headers=KEY)
    return response.status, response.content_type, json.loads(await response.read())


def assert_problem(status: int, content_type: str, body: Any, expected_status: int) -> None:
    assert status == expected_status
    assert content_type == "application/problem+json"
    assert body["status"] == expected_status
    assert body["type"].startswith("https://metarisk.dev/problems/")
    assert body["title"] and body["detail"]
    assert isinstance(body["errors"], list)
    assert "Traceback" not in json.dumps(body)


def cli_report(path: Path, capsys: pytest.CaptureFixture[str]) -> Any:
    assert main(["margin", str(path)]) == 0
    return json.loads(capsys.readouterr().out)


def money_fields(report: Any, prefix: str = "") -> dict[str, float]:
    """Every number of the report by its path, rounded to the cent (ratios and greeks are compared the same way)."""
    out: dict[str, float] = {}
    items = report.items() if isinstance(report, dict) else enumerate(report) if isinstance(report, list) else ()
    for key, value in items:
        path = f"{prefix}.{key}"
        if isinstance(value, bool) or value is None or isinstance(value, str):
            continue
        if isinstance(value, int | float):
            out[path] = round(value, 2)
        else:
            out.update(money_fields(value, path))
    return out


@pytest.mark.parametrize("overrides", [None, {"im_factor": 1.5, "offset_credit": {"cross_chain": 0}}])
async def test_margin_agrees_with_the_cli_to_the_cent(
    client: Client, capsys: pytest.CaptureFixture[str], tmp_path: Path, overrides: Any
) -> None:
    request = json.loads(DEMO_REQUEST.read_text())
    if overrides:
        request["params"] = overrides
    path = tmp_path / "request.json"
    path.write_text(json.dumps(request))
    status, content_type, served = await post_margin(client, path.read_bytes())
    assert (status, content_type) == (200, "application/json")
    expected = cli_report(path, capsys)
    assert money_fields(served) == money_fields(expected)
    assert served == expected  # the same computation: not only the cents, every digit and every string


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        (with_value(good_request(), "positions.0.strike", float("nan")), "positions[0].strike", "finite number"),
        (with_value(good_request(), "positions.0.strike", -5), "positions[0].strike", "greater than 0"),
        (with_value(good_request(), "positions.0.expiry", "2020-01-01T00:00:00Z"), "positions[0].expiry", "2020"),
        (with_value(good_request(), "positions.0.kind", "swaption"), "positions[0]", "swaption"),
        (with_value(good_request(), "positions.0.underlying", "DOGE"), "positions[0].underlying", "no price"),
        (with_value(good_request(), "market.spot.BTC", 0), "market.spot.BTC", "greater than 0"),
        (with_value(good_request(), "params", {"im_factr": 2}), "params.im_factr", "Extra inputs"),
        (with_value(good_request(), "positions", [{"kind": "spot"}] * 10_001), "positions", "exceed the limit"),
        ([1, 2, 3], "(request)", "valid dictionary"),
        ({"positions": good_request()["positions"]}, "market", "required: the market snapshot"),
        (with_value(good_request(), "positions", []), "positions", "at least one position"),
    ],
    ids=[
        "nan",
        "negative-strike",
        "expired-option",
        "unknown-kind",
        "unpriced-underlying",
        "zero-spot",
        "unknown-param",
        "too-many-positions",
        "not-an-object",
        "missing-market",
        "no-positions",
    ],
)
async def test_bad_input_is_a_422_problem_naming_the_field(client: Client, body: Any, field: str, reason: str) -> None:
    status, content_type, problem = await post_margin(client, json.dumps(body))
    assert_problem(status, content_type, problem, 422)
    assert problem["title"] == "Invalid request"
    assert any(e["field"] == field and reason in e["reason"] for e in problem["errors"]), problem["errors"]


async def test_errors_are_capped_but_counted(client: Client) -> None:
    request = good_request()
    request["positions"] = [{"kind": "spot"}] * 100  # each misses venue, chain, account, asset, quantity
    status, content_type, problem = await post_margin(client, json.dumps(request))
    assert_problem(status, content_type, problem, 422)
    assert len(problem["errors"]) == 20
    assert problem["detail"].startswith("500 problems with the request")


@pytest.mark.parametrize("body", [b"{not json", b"", b"\xff\xfe\xfa", b"[" * 100_000 + b"]" * 100_000])
async def test_a_body_that_is_not_json_is_a_400_problem(client: Client, body: bytes) -> None:
    status, content_type, problem = await post_margin(client, body)
    assert_problem(status, content_type, problem, 400)
    assert problem["title"] == "Invalid JSON"
    assert problem["errors"][0]["field"] == "(request)"


async def test_oversized_body_is_a_413_problem(make_client: Any) -> None:
    client = await make_client(settings=ApiSettings(client_max_size=10_000))
    body = json.dumps(with_value(good_request(), "positions", [good_request()["positions"][1]] * 200))
    assert len(body) > 10_000
    status, content_type, problem = await post_margin(client, body)
    assert_problem(status, content_type, problem, 413)


async def test_unknown_route_is_a_404_problem(client: Client) -> None:
    response = await client.get("/v1/nothing-here")
    assert_problem(response.status, response.content_type, await response.json(content_type=None), 404)


async def test_wrong_method_is_a_405_problem_with_allow(client: Client) -> None:
    response = await client.get("/v1/margin", headers=KEY)  # without a key: 401, as every method of a keyed route
    assert_problem(response.status, response.content_type, await response.json(content_type=None), 405)
    assert response.headers["Allow"] == "POST"


async def test_health(client: Client) -> None:
    response = await client.get("/health")
    assert response.status == 200
    body = await response.json()
    assert body["status"] == "ok" and body["aggregator"] is False
    assert body["params_version"] and body["schema_version"]


async def test_aggregator_routes_answer_503_without_a_service(client: Client) -> None:
    for path in ("/v1/accounts/a1/risk", "/v1/wallets/0xabc/risk", "/v1/wallets/0xabc/positions", "/v1/markets/ETH"):
        response = await client.get(path)
        assert_problem(response.status, response.content_type, await response.json(content_type=None), 503)
    response = await client.get("/v1/wallets/0xabc/credit", headers=KEY)
    assert response.status == 503


async def test_metrics_count_requests_latency_and_computations(client: Client) -> None:
    await post_margin(client, DEMO_REQUEST.read_bytes())
    await post_margin(client, json.dumps(with_value(good_request(), "positions.0.strike", -5)))
    await client.get("/nowhere")
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    text = await response.text()
    assert 'metarisk_http_requests_total{method="POST",route="/v1/margin",status="200"} 1.0' in text
    assert 'metarisk_http_requests_total{method="POST",route="/v1/margin",status="422"} 1.0' in text
    assert 'metarisk_http_requests_total{method="GET",route="(unmatched)",status="404"} 1.0' in text
    assert 'metarisk_http_request_duration_seconds_count{method="POST",route="/v1/margin"} 2.0' in text
    assert 'metarisk_margin_computations_total{outcome="ok"} 1.0' in text
    assert 'metarisk_margin_computations_total{outcome="invalid"} 1.0' in text
    assert "metarisk_margin_compute_seconds_bucket" in text


async def test_deeply_nested_json_inside_the_request_is_a_422_problem(client: Client) -> None:
    deep = b'{"a":' * 1000 + b"1" + b"}" * 1000  # orjson reads up to 1,024 levels
    body = json.dumps(good_request())[:-1].encode() + b', "params": ' + deep + b"}"
    status, content_type, problem = await post_margin(client, body)
    assert_problem(status, content_type, problem, 422)
    assert problem["errors"][0]["field"] == "params.a"


async def test_a_request_whose_client_left_is_not_computed() -> None:
    """An overloaded server skips the requests whose clients timed out while they queued."""
    gone = mock.Mock()
    gone.is_closing.return_value = True
    request = make_mocked_request(
        "POST", "/v1/margin", headers={"Content-Type": "application/json"}, transport=gone
    )
    with pytest.raises(Problem) as answered:
        await what_if_handler(None)(request)
    assert answered.value.status == 499
