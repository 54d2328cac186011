"""Schemathesis, 10,000 cases with a fixed seed over REST and GraphQL (issue 12's target): no answer is a 5xx.

The app (with the stand-in aggregator) is served by a child process; the cases are counted twice, as sent here
and as answered there (its /metrics), so a case the server never saw cannot count. The longer run is
benchmarks/fuzz_api.py, its figures in docs/benchmarks.md.
"""

from __future__ import annotations

import requests
from prometheus_client.parser import text_string_to_metric_families
from support.api_fuzz import FuzzRun, fuzz_graphql, fuzz_rest, serving_in_a_child

from api.http import ApiSettings, RateLimit, create_app
from api.http.settings import DEMO_API_KEY

from .conftest import FakeService

SEED = 12
KEY = {"X-API-Key": DEMO_API_KEY}
UNLIMITED = ApiSettings(
    rate_limit=RateLimit(per_second=1e6, burst=1_000_000),
    client_rate_limit=RateLimit(per_second=1e6, burst=1_000_000),
)
WHAT_IF_EXAMPLES = 100  # per generation mode: a what-if body is the costliest case to generate and to answer
EXAMPLES = 500  # per generation mode, every other operation (small spaces, such as GET /health, run out early)
GRAPHQL_EXAMPLES = 600  # per query field
MIN_CASES = 10_000


def examples(label: str) -> int:
    return WHAT_IF_EXAMPLES if label == "POST /v1/margin" else EXAMPLES


def answered(base_url: str) -> dict[int, float]:
    """Status -> requests the server answered, from its own counters."""
    text = requests.get(f"{base_url}/metrics", timeout=30).text
    counts: dict[int, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "metarisk_http_requests_total":
                status = int(sample.labels["status"])
                counts[status] = counts.get(status, 0.0) + sample.value
    return counts


def test_ten_thousand_fuzzed_cases_find_no_server_error() -> None:
    run = FuzzRun()
    with serving_in_a_child(lambda: create_app(service=FakeService(), settings=UNLIMITED)) as base_url:
        fuzz_rest(base_url, KEY, examples=examples, seed=SEED, run=run)
        fuzz_graphql(base_url, KEY, examples=GRAPHQL_EXAMPLES, seed=SEED, run=run)
        by_status = answered(base_url)
    print(f"fuzzed {run.total} cases in {run.seconds:.0f} s: {dict(sorted(run.statuses.items()))}")
    assert run.server_errors == []
    assert run.total >= MIN_CASES
    assert sum(by_status.values()) >= run.total  # the schema fetches and the cases, every one answered
    assert [status for status in by_status if status >= 500] == []
    assert sum(n for label, n in run.cases.items() if label.startswith("GraphQL")) >= 3_000
    assert {200, 404, 422} <= set(run.statuses)  # answered, unknown and refused inputs were all reached
