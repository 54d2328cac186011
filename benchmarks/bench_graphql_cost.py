"""The cost check of a GraphQL document against strawberry's own limiters, on the fragment fan-out of issue 12
(fragments that each spread the next one twice: 2^n spreads once expanded, from a text of ~40 bytes a level).

    .venv/bin/python benchmarks/bench_graphql_cost.py [--levels 8 12 16 18] [--repeat 5]

Both run as graphql-core validation would call them on the parsed document, in this process: the peer is
strawberry's QueryDepthLimiter and MaxAliasesLimiter rules (what the app used before), ours is
api.graphql.cost.cost_errors. Prints the median time of each and their ratio per depth.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from graphql import parse, validate  # noqa: E402
from strawberry.extensions import MaxAliasesLimiter, QueryDepthLimiter  # noqa: E402

import api.http  # noqa: E402, F401 - the package first: api.graphql.schema and api.http import each other
from api.graphql.cost import CostLimits, cost_errors  # noqa: E402
from api.graphql.schema import build_schema  # noqa: E402
from api.http.settings import ApiSettings  # noqa: E402


def fan_out(levels: int) -> str:
    fragments = [f"fragment F{i} on WhatIfQuery {{ ...F{i + 1} ...F{i + 1} }}" for i in range(levels)]
    return "query FanOut { ...F0 }\n" + "\n".join([*fragments, f"fragment F{levels} on WhatIfQuery {{ __typename }}"])


def median_seconds(run: object, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--levels", type=int, nargs="+", default=[8, 12, 16, 18])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    settings = ApiSettings()
    schema = build_schema(service=None, settings=settings)._schema
    peer_rules = [
        *QueryDepthLimiter(max_depth=settings.graphql_max_depth).validation_rules,
        *MaxAliasesLimiter(max_alias_count=settings.graphql_max_aliases).validation_rules,
    ]
    limits = CostLimits(settings.graphql_max_depth, settings.graphql_max_aliases, settings.graphql_max_fields)
    print("command: .venv/bin/python benchmarks/bench_graphql_cost.py " + " ".join(sys.argv[1:]))
    print(f"{'levels':>6} {'bytes':>6} {'strawberry ms':>14} {'ours ms':>8} {'ratio':>8}")
    for levels in args.levels:
        text = fan_out(levels)
        document = parse(text)
        peer = median_seconds(lambda d=document: validate(schema, d, peer_rules), args.repeat)
        ours = median_seconds(lambda d=document: cost_errors(d, limits), args.repeat)
        print(f"{levels:>6} {len(text):>6} {peer * 1e3:>14.2f} {ours * 1e3:>8.3f} {peer / ours:>8.0f}")


if __name__ == "__main__":
    main()
