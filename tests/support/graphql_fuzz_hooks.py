"""Schemathesis hooks (SCHEMATHESIS_HOOKS=support.graphql_fuzz_hooks) for the GraphQL fuzz run: the `JSON` scalar
of `margin(request: JSON!)` drawn from the demo request with parts removed, or any JSON, so the what-if is
reached with valid, partly valid and nonsense requests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import graphql
import schemathesis
from hypothesis import strategies as st
from schemathesis.graphql import nodes

DEMO_REQUEST = Path(__file__).resolve().parents[2] / "examples" / "demo_request.json"


def json_node(value: Any) -> graphql.ValueNode:
    """A JSON value as a GraphQL literal (object keys must then be GraphQL names)."""
    if isinstance(value, dict):
        fields = [graphql.ObjectFieldNode(name=graphql.NameNode(value=k), value=json_node(v)) for k, v in value.items()]
        return nodes.Object(fields)
    if isinstance(value, list):
        return nodes.List([json_node(v) for v in value])
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
    JSON."""
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


schemathesis.graphql.scalar("JSON", what_if_requests().map(json_node))
