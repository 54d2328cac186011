"""API keys on the computing and signing routes, and the per-key token bucket (time moved by hand)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from api.http import ApiSettings, RateLimit
from api.http.access import RateLimiter
from api.http.settings import DEMO_API_KEY

BODY = (Path(__file__).resolve().parents[2] / "examples" / "demo_request.json").read_bytes()
GRAPHQL = json.dumps({"query": "{ __typename }"})


def settings(per_second: float = 2.0, burst: int = 3) -> ApiSettings:
    return ApiSettings(api_keys=frozenset({"alpha", "beta"}), rate_limit=RateLimit(per_second=per_second, burst=burst))


@pytest.mark.parametrize("headers", [{}, {"X-API-Key": "wrong"}, {"X-API-Key": ""}])
async def test_keyed_routes_refuse_a_missing_or_unknown_key(make_client: Any, headers: dict[str, str]) -> None:
    client = await make_client(settings=settings())
    for path, body in (("/v1/margin", BODY), ("/graphql", GRAPHQL)):
        response = await client.post(path, data=body, headers={**headers, "Content-Type": "application/json"})
        assert response.status == 401
        assert response.content_type == "application/problem+json"
        assert response.headers["WWW-Authenticate"] == "X-API-Key"
        assert (await response.json(content_type=None))["title"] == "Unauthorized"


async def test_open_routes_need_no_key(make_client: Any) -> None:
    client = await make_client(settings=settings())
    for path in ("/health", "/metrics", "/openapi.json"):
        assert (await client.get(path)).status == 200


async def test_the_demo_key_is_not_accepted_once_keys_are_configured(make_client: Any) -> None:
    client = await make_client(settings=settings())
    json_body = {"Content-Type": "application/json"}
    assert (await client.post("/v1/margin", data=BODY, headers={"X-API-Key": DEMO_API_KEY, **json_body})).status == 401
    assert (await client.post("/v1/margin", data=BODY, headers={"X-API-Key": "alpha", **json_body})).status == 200


async def test_rate_limit_is_per_key_with_retry_after(make_client: Any, clock: Any) -> None:
    client = await make_client(settings=settings(per_second=2.0, burst=3))
    alpha = {"X-API-Key": "alpha", "Content-Type": "application/json"}
    beta = {"X-API-Key": "beta", "Content-Type": "application/json"}
    statuses = [(await client.post("/graphql", data=GRAPHQL, headers=alpha)).status for _ in range(3)]
    assert statuses == [200, 200, 200]  # the burst
    limited = await client.post("/v1/margin", data=BODY, headers=alpha)
    assert limited.status == 429
    assert limited.content_type == "application/problem+json"
    assert limited.headers["Retry-After"] == "1"  # half a second at 2/s, rounded up to whole seconds
    problem = await limited.json(content_type=None)
    assert problem["status"] == 429 and problem["title"] == "Too many requests"
    assert (await client.post("/graphql", data=GRAPHQL, headers=beta)).status == 200  # another key's own bucket
    clock.now += 0.5  # one token back
    assert (await client.post("/graphql", data=GRAPHQL, headers=alpha)).status == 200
    assert (await client.post("/graphql", data=GRAPHQL, headers=alpha)).status == 429


def test_bucket_refills_continuously_up_to_the_burst() -> None:
    now = [0.0]
    limiter = RateLimiter(RateLimit(per_second=10.0, burst=5), clock=lambda: now[0])
    assert [limiter.retry_after("k") for _ in range(5)] == [0.0] * 5
    assert limiter.retry_after("k") == pytest.approx(0.1)
    now[0] += 60.0  # a long pause refills only up to the burst
    assert [limiter.retry_after("k") for _ in range(5)] == [0.0] * 5
    assert limiter.retry_after("k") > 0


def test_settings_from_the_environment() -> None:
    configured = ApiSettings.from_env(
        {"METARISK_API_KEYS": " k1, k2 ,,", "METARISK_RATE_PER_SECOND": "50", "METARISK_RATE_BURST": "7"}
    )
    assert configured.api_keys == frozenset({"k1", "k2"})
    assert configured.rate_limit == RateLimit(per_second=50.0, burst=7)
    assert ApiSettings.from_env({}).api_keys == frozenset({DEMO_API_KEY})
    with pytest.raises(ValueError, match="names no key"):
        ApiSettings.from_env({"METARISK_API_KEYS": " , "})
    with pytest.raises(ValueError, match="RATE"):
        ApiSettings.from_env({"METARISK_RATE_PER_SECOND": "0"})
