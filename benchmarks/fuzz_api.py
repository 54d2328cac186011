"""The long schemathesis run over REST and GraphQL: the CI's fuzz test (tests/api/test_fuzz_api.py) with more
cases per operation and any seed. Prints the cases sent per operation, the answers per status, the 5xx found
(the target is none) and the rate.

    .venv/bin/python benchmarks/fuzz_api.py [--examples 2500] [--what-if-examples 500] [--graphql-examples 3000]
                                            [--seed 12]

The app is served by a forked child process with the tests' stand-in aggregator (tests/api/conftest.py's
FakeService: one known wallet and account, the demo request's market), unlimited rate limits, the demo key.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # the project first: tests/ holds folders named like its packages

from support.api_fuzz import FuzzRun, fuzz_graphql, fuzz_rest, serving_in_a_child  # noqa: E402

from api.http import ApiSettings, RateLimit, create_app  # noqa: E402
from api.http.settings import DEMO_API_KEY  # noqa: E402


def _fake_service() -> object:
    # the tests' stand-in, loaded from its file: `api.conftest` would name this project's `api` package
    spec = importlib.util.spec_from_file_location("api_test_fixtures", ROOT / "tests" / "api" / "conftest.py")
    assert spec is not None and spec.loader is not None
    fixtures = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fixtures)
    return fixtures.FakeService()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=2_500, help="per REST operation and generation mode")
    parser.add_argument("--what-if-examples", type=int, default=500, help="POST /v1/margin, per generation mode")
    parser.add_argument("--graphql-examples", type=int, default=3_000, help="per GraphQL query field")
    parser.add_argument("--seed", type=int, default=12)
    args = parser.parse_args()
    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs; seed {args.seed}")
    print("command: .venv/bin/python benchmarks/fuzz_api.py " + " ".join(sys.argv[1:]))
    settings = ApiSettings(
        rate_limit=RateLimit(per_second=1e6, burst=1_000_000),
        client_rate_limit=RateLimit(per_second=1e6, burst=1_000_000),
    )
    service = _fake_service()
    rest, graphql = FuzzRun(), FuzzRun()
    key = {"X-API-Key": DEMO_API_KEY}
    with serving_in_a_child(lambda: create_app(service=service, settings=settings)) as base_url:  # type: ignore[arg-type]
        fuzz_rest(
            base_url, key, seed=args.seed, run=rest,
            examples=lambda label: args.what_if_examples if label == "POST /v1/margin" else args.examples,
        )
        fuzz_graphql(base_url, key, examples=args.graphql_examples, seed=args.seed, run=graphql)
    for name, run in (("REST", rest), ("GraphQL", graphql)):
        print(f"\n{name}: {run.total} cases in {run.seconds:.0f} s ({run.total / run.seconds:.0f} cases/s)")
        for label, count in sorted(run.cases.items()):
            print(f"  {count:7d}  {label}")
        print("  answers by status: " + ", ".join(f"{s}: {n}" for s, n in sorted(run.statuses.items())))
        print(f"  5xx: {len(run.server_errors)}")
        for failure in run.server_errors[:20]:
            print(f"    {failure}")
    sys.exit(1 if rest.server_errors or graphql.server_errors else 0)


if __name__ == "__main__":
    main()
