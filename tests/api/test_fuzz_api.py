"""Schemathesis, at least 10,000 cases with a fixed seed over REST and GraphQL (issue 12's target): no answer is a
5xx. The app (with the stand-in aggregator) is served by a forked child; schemathesis's runner generates the
cases in a process of its own; the server's /metrics counts what it answered. The longer run is
benchmarks/fuzz_api.py, its figures in docs/benchmarks.md.
"""

from __future__ import annotations

import re

from support.api_fuzz import answered, run_schemathesis, serving_in_a_child

from api.http import ApiSettings, RateLimit, create_app
from api.http.settings import DEMO_API_KEY

from .conftest import FakeService

SEED = 12
KEY = {"X-API-Key": DEMO_API_KEY}
UNLIMITED = ApiSettings(
    rate_limit=RateLimit(per_second=1e6, burst=1_000_000),
    client_rate_limit=RateLimit(per_second=1e6, burst=1_000_000),
)
REST_EXAMPLES = 800  # per operation (small spaces, such as GET /health, run out early)
GRAPHQL_EXAMPLES = 650  # per query field
MIN_CASES = 10_000


def generated(output: str) -> int:
    found = re.search(r"(\d+) generated", output)
    assert found is not None, output[-2000:]
    return int(found.group(1))


def test_ten_thousand_fuzzed_cases_find_no_server_error() -> None:
    with serving_in_a_child(lambda: create_app(service=FakeService(), settings=UNLIMITED)) as base_url:
        rest = run_schemathesis(f"{base_url}/openapi.json", KEY, examples=REST_EXAMPLES, seed=SEED)
        graphql = run_schemathesis(
            f"{base_url}/graphql", KEY, examples=GRAPHQL_EXAMPLES, seed=SEED, hooks="support.graphql_fuzz_hooks"
        )
        by_route_and_status = answered(base_url)
    cases = {"REST": generated(rest.output), "GraphQL": generated(graphql.output)}
    print(f"fuzzed {cases} in {rest.seconds:.0f} s + {graphql.seconds:.0f} s")
    assert (rest.exit_code, graphql.exit_code) == (0, 0), rest.output[-3000:] + graphql.output[-3000:]
    assert sum(cases.values()) >= MIN_CASES and cases["GraphQL"] >= 3_000
    assert sum(by_route_and_status.values()) >= sum(cases.values())  # every case reached the server
    assert [key for key in by_route_and_status if key[1] >= 500] == []
    statuses = {status for _, status in by_route_and_status}
    assert {200, 404, 422} <= statuses  # answered, unknown and refused inputs were all reached
