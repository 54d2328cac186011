"""Hypothesis on the request parser (issue 12): whatever the body, the answer is a report or a problem the
client caused (4xx), never an exception that the app would answer 500."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.http.problems import Problem
from api.http.what_if import compute_what_if, parse_json_body
from risk_core.schema.report import MarginReport

DEMO = json.loads((Path(__file__).resolve().parents[2] / "examples" / "demo_request.json").read_text())
FUZZ = settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))

# moderate magnitudes: what an extreme figure does to the engine (1e308 and the like) is the finiteness suite's
numbers = st.integers(-(10**9), 10**9) | st.floats(min_value=-1e9, max_value=1e9, allow_nan=False)
scalars = st.none() | st.booleans() | numbers | st.text(max_size=12)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


def leaf_paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in leaf_paths(v, (*path, k))] + [path]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in leaf_paths(v, (*path, i))] + [path]
    return [path]


DEMO_PATHS = [p for p in leaf_paths(DEMO) if p]


def replaced(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    document = copy.deepcopy(DEMO)
    target: Any = document
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return document


def answer_of(body: bytes) -> MarginReport | Problem:
    try:
        document, strict = parse_json_body(body)
        return compute_what_if(document, None, strict=strict)
    except Problem as problem:
        return problem


def assert_a_report_or_the_clients_problem(answer: MarginReport | Problem) -> None:
    if isinstance(answer, Problem):
        assert 400 <= answer.status < 500, answer.detail
        assert answer.errors and all(error.field for error in answer.errors)
    else:
        assert isinstance(answer, MarginReport)


@FUZZ
@given(st.binary(max_size=200))
def test_any_bytes(body: bytes) -> None:
    assert_a_report_or_the_clients_problem(answer_of(body))


@FUZZ
@given(json_values)
def test_any_json_document(document: Any) -> None:
    assert_a_report_or_the_clients_problem(answer_of(json.dumps(document).encode()))


@FUZZ
@given(st.sampled_from(DEMO_PATHS), json_values)
def test_the_demo_request_with_any_one_value_replaced(path: tuple[Any, ...], value: Any) -> None:
    assert_a_report_or_the_clients_problem(answer_of(json.dumps(replaced(path, value)).encode()))


@FUZZ
@given(st.sampled_from(DEMO_PATHS), st.sampled_from(['"1"', "true", "0", "NaN", "-Infinity", "1e400", "[]", "{}"]))
def test_the_demo_request_with_a_loose_or_non_standard_literal(path: tuple[Any, ...], literal: str) -> None:
    marker = "__replaced__"
    body = json.dumps(replaced(path, marker)).replace(f'"{marker}"', literal).encode()
    assert_a_report_or_the_clients_problem(answer_of(body))
