"""The GraphQL cost limits: fragments measured once (the fan-out attack of issue 12), figures of the expanded
query, and introspection on in the demo, off in production."""

from __future__ import annotations

import json
from typing import Any

import pytest
from graphql import get_introspection_query, parse

from api.graphql import cost
from api.graphql.cost import Cost, CostLimits, measure_operations
from api.http import ApiSettings
from api.http.settings import DEMO_API_KEY
from api.production import production_api_settings

HEADERS = {"X-API-Key": DEMO_API_KEY, "Content-Type": "application/json"}
GENEROUS = CostLimits(max_depth=100, max_aliases=10**6, max_fields=10**12)


def fan_out(levels: int, leaf: str = "__typename") -> str:
    """Fragments that each spread the next one twice: 2^levels leaves once expanded, from a ~40-byte-per-level text."""
    fragments = [f"fragment F{i} on WhatIfQuery {{ ...F{i + 1} ...F{i + 1} }}" for i in range(levels)]
    return "query FanOut { ...F0 }\n" + "\n".join([*fragments, f"fragment F{levels} on WhatIfQuery {{ {leaf} }}"])


async def post(client: Any, query: str) -> Any:
    response = await client.post("/graphql", data=json.dumps({"query": query}), headers=HEADERS)
    assert response.status == 200
    return await response.json()


@pytest.mark.parametrize("levels", [1, 5, 12])
def test_expanded_figures_of_a_fan_out(levels: int) -> None:
    measured = measure_operations(parse(fan_out(levels, leaf="a: __typename b: __typename")), GENEROUS)
    assert measured == {"FanOut": Cost(depth=0, aliases=2 * 2**levels, fields=2 * 2**levels)}


def test_depth_counts_nested_fields_through_fragments_and_not_introspection() -> None:
    query = """
      query Deep { wallet(address: "0x1") { ...Risky } }
      fragment Risky on Wallet { risk { positions { id } } }
      query Schema { __schema { types { fields { name } } } }
    """
    measured = measure_operations(parse(query), GENEROUS)
    assert measured["Deep"] == Cost(depth=3, aliases=0, fields=4)  # as strawberry's limiter counted it
    assert measured["Schema"] == Cost(depth=0, aliases=0, fields=4)


def test_each_fragment_is_measured_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Linear in the document: 30 levels of doubling (2^30 spreads once expanded) walk 31 fragment bodies and the
    operation (and the one leaf field's empty selection), not a billion."""
    walked: list[object] = []
    original = cost._Measure.selections

    def counting(self: Any, selection_set: Any) -> Cost:
        walked.append(selection_set)
        return original(self, selection_set)

    monkeypatch.setattr(cost._Measure, "selections", counting)
    limits = CostLimits(max_depth=8, max_aliases=15, max_fields=1_000)
    assert measure_operations(parse(fan_out(30)), limits)["FanOut"].fields == limits.max_fields + 1  # capped
    assert len(walked) == 1 + 31 + 1


def test_a_cycle_is_left_to_validation() -> None:
    query = "query Q { ...A } fragment A on WhatIfQuery { __typename ...B } fragment B on WhatIfQuery { ...A }"
    assert measure_operations(parse(query), GENEROUS)["Q"] == Cost(depth=0, aliases=0, fields=1)


async def test_the_nested_fragment_attack_is_refused_naming_the_limit(client: Any) -> None:
    """Issue 12, attack 1: a 1 KB query of 30 doubling levels froze the server for minutes."""
    answer = await post(client, fan_out(30))
    assert answer["data"] is None
    (error,) = answer["errors"]
    assert error["message"] == "operation 'FanOut' exceeds the maximum of 1000 fields once its fragments are expanded"
    assert (await post(client, fan_out(5)))["data"] == {"__typename": "WhatIfQuery"}  # 32 fields: answered


async def test_aliases_are_counted_through_fragments(make_client: Any) -> None:
    client = await make_client(settings=ApiSettings(graphql_max_aliases=15))
    answer = await post(client, fan_out(3, leaf="a: __typename b: __typename"))  # 16 aliases once expanded
    assert answer["errors"][0]["message"] == "operation 'FanOut' exceeds the maximum of 15 aliases (fragments expanded)"
    assert "errors" not in await post(client, fan_out(2, leaf="a: __typename b: __typename"))  # 8


async def test_introspection_is_on_in_the_demo_and_off_in_production(make_client: Any) -> None:
    introspection = get_introspection_query()
    demo = await make_client()
    assert (await post(demo, introspection))["data"]["__schema"]["queryType"]["name"] == "WhatIfQuery"
    production = await make_client(settings=production_api_settings({"METARISK_API_KEYS": DEMO_API_KEY}))
    refused = await post(production, introspection)
    assert refused["data"] is None
    assert "introspection" in refused["errors"][0]["message"].lower()
    assert (await post(production, "{ __typename }"))["data"] == {"__typename": "WhatIfQuery"}
    reopened = production_api_settings({"METARISK_API_KEYS": "k", "METARISK_GRAPHQL_INTROSPECTION": "true"})
    assert reopened.graphql_introspection is True
    with pytest.raises(ValueError, match="METARISK_GRAPHQL_INTROSPECTION"):
        ApiSettings.from_env({"METARISK_GRAPHQL_INTROSPECTION": "maybe"})
