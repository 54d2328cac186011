"""The long schemathesis run over REST and GraphQL: the CI's fuzz test (tests/api/test_fuzz_api.py) with more
cases per operation and any seed. Prints schemathesis's summaries, the cases the server answered per route and
status, and its 5xx (the target is none).

    .venv/bin/python benchmarks/fuzz_api.py [--examples 5000] [--graphql-examples 3000] [--seed 12]

The app is served by a forked child process with the tests' stand-in aggregator (tests/api/conftest.py's
FakeService: one known wallet and account, the demo request's market), unlimited rate limits, the demo key;
schemathesis's runner generates the cases in a process of its own.
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

from support.api_fuzz import answered, run_schemathesis, serving_in_a_child  # noqa: E402

from api.http import ApiSettings, RateLimit, create_app  # noqa: E402
from api.http.settings import DEMO_API_KEY  # noqa: E402


def _fake_service() -> object:
    # the tests' stand-in, loaded from its file: `api.conftest` would name this project's `api` package
    spec = importlib.util.spec_from_file_location("api_test_fixtures", ROOT / "tests" / "api" / "conftest.py")
    assert spec is not None and spec.loader is not None
    fixtures = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fixtures)
    return fixtures.FakeService()


def _summary(output: str) -> str:
    """Schemathesis's errors and failures when there are any, then its count of cases."""
    starts = [output.find(f"= {section} =") for section in ("ERRORS", "FAILURES")]
    first = min((start for start in starts if start >= 0), default=output.rfind("Test cases:"))
    return output[output.rfind("\n", 0, first) + 1:].strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=5_000, help="per REST operation and generation mode")
    parser.add_argument("--graphql-examples", type=int, default=3_000, help="per GraphQL query field")
    parser.add_argument("--seed", type=int, default=12)
    args = parser.parse_args()
    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs; seed {args.seed}; "
          f"load average {os.getloadavg()[0]:.1f}")
    print("command: .venv/bin/python benchmarks/fuzz_api.py " + " ".join(sys.argv[1:]))
    settings = ApiSettings(
        rate_limit=RateLimit(per_second=1e6, burst=1_000_000),
        client_rate_limit=RateLimit(per_second=1e6, burst=1_000_000),
    )
    service = _fake_service()
    key = {"X-API-Key": DEMO_API_KEY}
    with serving_in_a_child(lambda: create_app(service=service, settings=settings)) as base_url:  # type: ignore[arg-type]
        rest = run_schemathesis(f"{base_url}/openapi.json", key, examples=args.examples, seed=args.seed)
        graphql = run_schemathesis(
            f"{base_url}/graphql", key, examples=args.graphql_examples, seed=args.seed,
            hooks="support.graphql_fuzz_hooks",
        )
        counts = answered(base_url)
    for name, run in (("REST", rest), ("GraphQL", graphql)):
        print(f"\n{name} ({run.seconds:.0f} s, exit {run.exit_code}):\n{_summary(run.output)}")
    print("\nanswered by the server (route, status: count):")
    for (route, status), count in sorted(counts.items()):
        print(f"  {route} {status}: {count:.0f}")
    server_errors = sum(count for (_, status), count in counts.items() if status >= 500)
    print(f"total answered {sum(counts.values()):.0f}; 5xx: {server_errors:.0f}")
    sys.exit(1 if server_errors or rest.exit_code or graphql.exit_code else 0)


if __name__ == "__main__":
    main()
