"""Schemathesis over a live app, case by case through hypothesis with a fixed seed: the CI's fuzz test and the
longer run of benchmarks/fuzz_api.py share it.

REST: every operation of /openapi.json, with data that fits the document (positive) and data that breaks it
(negative); GraphQL: every query field with generated arguments and selections, the `request: JSON` argument
drawn from the demo request with parts removed, or any JSON. The property is that no answer is a 5xx.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import graphql
import hypothesis
import requests
import schemathesis
from aiohttp import web
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.graphql import nodes

DEMO_REQUEST = Path(__file__).resolve().parents[2] / "examples" / "demo_request.json"


def _serve_forever(make_app: Callable[[], web.Application], ports: Any) -> None:
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(make_app())
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    ports.put(runner.addresses[0][1])
    loop.run_forever()


@contextmanager
def serving_in_a_child(make_app: Callable[[], web.Application]) -> Iterator[str]:
    """The app served by a forked child process, so that generating cases and answering them use two cores."""
    context = multiprocessing.get_context("fork")
    ports = context.Queue()
    child = context.Process(target=_serve_forever, args=(make_app, ports), daemon=True)
    child.start()
    try:
        yield f"http://127.0.0.1:{ports.get(timeout=60)}"
    finally:
        child.terminate()
        child.join(timeout=10)


@dataclass
class FuzzRun:
    """What a run sent and got: cases per operation label, answers per status, the 5xx cases, its duration."""

    cases: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.cases.values())


def _settings(examples: int, seed: int) -> Any:
    def apply(test: Any) -> Any:
        configured = hypothesis.settings(
            max_examples=examples,
            deadline=None,
            database=None,
            phases=[hypothesis.Phase.generate],  # no shrinking: a failure is recorded, not minimised
            suppress_health_check=list(hypothesis.HealthCheck),
        )(test)
        return hypothesis.seed(seed)(configured)

    return apply


def _call(case: Case, run: FuzzRun, session: requests.Session, headers: dict[str, str], label: str) -> None:
    response = case.call(session=session, headers=headers)
    run.cases[label] += 1
    run.statuses[response.status_code] += 1
    try:
        case.validate_response(response, checks=[not_a_server_error], headers=headers)
    except AssertionError as failure:  # schemathesis raises a subclass naming the case
        run.server_errors.append(f"{label}: {response.status_code} {str(failure)[:300]}")


def _run(
    strategy: Any, label: str, *, examples: int, seed: int, run: FuzzRun, session: requests.Session,
    headers: dict[str, str],
) -> None:
    @_settings(examples, seed)
    @hypothesis.given(case=strategy)
    def check(case: Case) -> None:
        _call(case, run, session, headers, label)

    with contextlib.suppress(hypothesis.errors.Unsatisfiable):  # nothing the document allows can be broken
        check()


def fuzz_rest(
    base_url: str, headers: dict[str, str], *, examples: Callable[[str], int], seed: int, run: FuzzRun
) -> None:
    """`examples(label)`: the cases to draw per generation mode for the operation of that label."""
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    start = time.perf_counter()
    with requests.Session() as session:
        for result in schema.get_all_operations():
            operation = result.ok()
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                _run(
                    operation.as_strategy(generation_mode=mode), operation.label, examples=examples(operation.label),
                    seed=seed, run=run, session=session, headers=headers,
                )
    run.seconds += time.perf_counter() - start


def _json_node(value: Any) -> graphql.ValueNode:
    """A JSON value as a GraphQL literal (object keys must then be GraphQL names)."""
    if isinstance(value, dict):
        fields = [
            graphql.ObjectFieldNode(name=graphql.NameNode(value=k), value=_json_node(v)) for k, v in value.items()
        ]
        return nodes.Object(fields)
    if isinstance(value, list):
        return nodes.List([_json_node(v) for v in value])
    if isinstance(value, bool):
        return nodes.Boolean(value)
    if isinstance(value, int):
        return nodes.Int(value)
    if isinstance(value, float):
        return nodes.Float(value)
    if isinstance(value, str):
        return nodes.String(value)
    return nodes.Null


def what_if_requests() -> st.SearchStrategy[Any]:
    """The demo request (its forwards dropped: their dates cannot be GraphQL names) with parts removed, or any
    JSON: the `margin(request: JSON)` argument is then valid, partly valid or nonsense."""
    demo = json.loads(DEMO_REQUEST.read_text())
    del demo["market"]["forwards"]
    names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True)
    scalars = st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.floats(allow_nan=False) | st.text()
    anything = st.recursive(
        scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(names, inner, max_size=3)
    )
    partial_demo = st.sets(st.sampled_from(sorted(demo)), max_size=2).map(
        lambda dropped: {k: v for k, v in demo.items() if k not in dropped}
    )
    return st.one_of(partial_demo, anything)


def fuzz_graphql(base_url: str, headers: dict[str, str], *, examples: int, seed: int, run: FuzzRun) -> None:
    schemathesis.graphql.scalar("JSON", what_if_requests().map(_json_node))
    schema = schemathesis.graphql.from_url(f"{base_url}/graphql", headers=headers)
    start = time.perf_counter()
    with requests.Session() as session:
        for result in schema.get_all_operations():
            operation = result.ok()
            _run(
                operation.as_strategy(), f"GraphQL {operation.label}", examples=examples, seed=seed, run=run,
                session=session, headers=headers,
            )
    run.seconds += time.perf_counter() - start
