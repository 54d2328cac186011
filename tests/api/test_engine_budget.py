"""Regression tests of the attacks on the what-if route: a book of the maximum documented size, overflowing
inputs, and a heavy what-if beside /health. The engine runs in worker processes under a budget of time and
memory; past it the request is refused naming the limit and the worker is replaced (and reaped)."""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

from aiohttp.test_utils import TestClient
from aiohttp.web import Application
from support.golden import BTC, market, option, position

from aggregator.engine_pool import EngineBudget, EnginePool
from api.http import ApiSettings, RateLimit
from api.http.loop_lag import TICK_S
from api.http.settings import DEMO_API_KEY
from api.http.what_if import ENGINE
from risk_core.schema.params import default_params

KEY = {"X-API-Key": DEMO_API_KEY}
Client = TestClient[Any, Application]
MARGIN_QUERY = "query M($request: JSON!) { margin(request: $request) { status equityUsd } }"


def short_options(n: int, *, accounts: int = 7) -> list[dict[str, Any]]:
    return [
        option(-1.0, "call" if i % 2 else "put", BTC * (0.6 + (i % 97) / 100), id=f"o{i}", account=f"a{i % accounts}")
        for i in range(n)
    ]


def settings(**engine: Any) -> ApiSettings:
    return ApiSettings(rate_limit=RateLimit(per_second=1_000, burst=1_000), engine=EngineBudget(**engine))


async def post(client: Client, document: dict[str, Any]) -> tuple[int, Any]:
    headers = {**KEY, "Content-Type": "application/json"}
    response = await client.post("/v1/margin", data=json.dumps(document), headers=headers)
    return response.status, await response.json(content_type=None)


def engine_of(client: Client) -> EnginePool:
    assert client.app is not None
    return client.app[ENGINE]


def is_reaped(pid: int) -> bool:
    """No process holds the pid any more, not even a zombie (killed but not waited for)."""
    return not os.path.exists(f"/proc/{pid}")


async def test_a_book_of_the_maximum_documented_size_completes_within_its_budget(make_client: Any) -> None:
    n = default_params().max_positions
    assert n == 10_000
    client = await make_client(settings=settings())
    status, report = await post(client, {"positions": short_options(n), "market": market()})
    assert status == 200, report
    assert len(report["positions"]) == n
    assert report["status"] == "liquidatable"
    assert report["liquidation_plan"]["steps"]  # a plan, cut short by its budget of trials, and saying so
    assert any(w.startswith("liquidation plan: ") for w in report["warnings"])
    assert report["maintenance_margin_usd"] > 0


async def test_past_its_time_budget_a_what_if_is_a_503_naming_it_and_the_worker_is_replaced(
    make_client: Any,
) -> None:
    client = await make_client(settings=settings(time_s=0.05, workers=1))
    engine = engine_of(client)
    await engine.start()
    [before] = engine.worker_pids()
    status, problem = await post(client, {"positions": short_options(3_000), "market": market()})
    assert status == 503
    assert "time budget of 0.05 s" in problem["detail"]
    [after] = engine.worker_pids()
    assert after != before and is_reaped(before)
    assert engine.replaced == 1


async def test_past_its_memory_budget_a_what_if_is_a_422_naming_it_and_the_worker_is_replaced(
    make_client: Any,
) -> None:
    client = await make_client(settings=settings(memory_bytes=64 << 20, workers=1))
    engine = engine_of(client)
    await engine.start()
    [before] = engine.worker_pids()
    # every option in its own account: the engine's margin groups grow as positions x accounts
    status, problem = await post(client, {"positions": short_options(4_000, accounts=4_000), "market": market()})
    assert status == 422
    assert "memory budget of 64 MiB" in problem["detail"]
    assert problem["errors"][0]["field"] == "positions"
    assert is_reaped(before) and engine.worker_pids() != [before]
    # the replacement answers the next request
    status, report = await post(client, {"positions": short_options(3), "market": market()})
    assert status == 200 and len(report["positions"]) == 3


async def test_health_answers_while_a_heavy_what_if_runs(make_client: Any) -> None:
    client = await make_client(settings=settings(workers=1))
    engine = engine_of(client)
    await engine.start()
    heavy = asyncio.ensure_future(post(client, {"positions": short_options(3_000), "market": market()}))
    while engine.busy_workers() == 0:  # the heavy request has its worker: the engine is computing it
        await asyncio.sleep(0)
    answered = 0
    while not heavy.done() and answered < 20:
        response = await client.get("/health")
        assert response.status == 200
        answered += 1
    assert answered >= 1 and engine.busy_workers() == 1  # /health answered during the computation
    status, report = await heavy
    assert status == 200 and len(report["positions"]) == 3_000


async def test_overflowing_inputs_are_422_naming_the_field_on_rest_and_graphql(make_client: Any) -> None:
    client = await make_client(settings=settings())
    book = [position("spot", asset="USDC", quantity=1_000.0), option(1.0, "put", BTC, settlement="inverse")]
    cases = {
        "positions[1].quantity": {"positions": [book[0], {**book[1], "quantity": 1e308}], "market": market()},
        "market.spot.BTC": {"positions": book, "market": market(spot={"BTC": 1e308, "USDC": 1.0})},
    }
    for field, document in cases.items():
        status, problem = await post(client, document)
        assert status == 422, problem
        assert problem["errors"][0]["field"] == field
        response = await client.post(
            "/graphql", data=json.dumps({"query": MARGIN_QUERY, "variables": {"request": document}}),
            headers={**KEY, "Content-Type": "application/json"},
        )
        [error] = (await response.json())["errors"]
        assert error["extensions"]["status"] == 422 and error["extensions"]["errors"][0]["field"] == field


def lag_samples(exposition: str) -> float:
    return float(exposition.split("metarisk_event_loop_lag_seconds_count ", 1)[1].split()[0])


async def test_the_event_loop_lag_is_a_metric(client: Client) -> None:
    body = await (await client.get("/metrics")).text()
    assert "# TYPE metarisk_event_loop_lag_seconds histogram" in body
    while lag_samples(body) == 0:  # waits for the sampler's first tick, however long the loop takes to get there
        await asyncio.sleep(TICK_S)
        body = await (await client.get("/metrics")).text()
    assert lag_samples(body) >= 1
