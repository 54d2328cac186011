"""Every route and method of the app against the access table (HEAD and OPTIONS included), and the limits of the
wallet reads open without a key: a bucket per client address and bounded live reads (issue 12, attacks 3 and 4)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from api.http import ApiSettings, RateLimit, create_app
from api.http.access import KEYED, KeyRule, LiveReadSlots, RateLimiter, access_of
from api.http.app import APP_ROUTE_ACCESS as ROUTE_ACCESS
from api.http.problems import Problem
from api.http.settings import DEMO_API_KEY

from .conftest import WALLET, FakeService

KEY = {"X-API-Key": DEMO_API_KEY}
PATH_VALUES = {"address": WALLET, "account_id": "demo", "report_id": "1", "asset": "BTC"}


def concrete(template: str) -> str:
    path = template
    for name, value in PATH_VALUES.items():
        path = path.replace("{" + name + "}", value)
    assert "{" not in path, f"no sample value for a parameter of {template}"
    return path


def registered_routes() -> set[tuple[str, str]]:
    app = create_app(service=FakeService())
    return {(route.method, route.resource.canonical) for route in app.router.routes() if route.resource is not None}


def test_every_registered_route_is_classed_and_head_is_classed_as_get() -> None:
    """A route added without a line in ROUTE_ACCESS fails here (and would need a key meanwhile)."""
    registered = registered_routes()
    assert {(method, path) for method, path in registered if method != "HEAD"} == set(ROUTE_ACCESS)
    assert {("GET", path) for method, path in registered if method == "HEAD"} <= set(ROUTE_ACCESS)
    assert access_of(ROUTE_ACCESS, "HEAD", "/v1/wallets/{address}/credit") == ROUTE_ACCESS[
        ("GET", "/v1/wallets/{address}/credit")
    ]
    assert access_of(ROUTE_ACCESS, "OPTIONS", "/health") == KEYED  # a method nobody classed


async def test_every_route_and_method_answers_as_the_table_says_without_a_key(make_client: Any) -> None:
    client = await make_client(service=FakeService())
    paths = {path for _, path in registered_routes()}
    checked = 0
    for path in sorted(paths):
        methods = {method for method, route in registered_routes() if route == path} | {"OPTIONS", "DELETE"}
        for method in sorted(methods):
            response = await client.request(method, concrete(path))
            needs_key = access_of(ROUTE_ACCESS, method, path).key is KeyRule.REQUIRED
            assert (response.status == 401) is needs_key, (method, path, response.status)
            if needs_key:
                keyed = await client.request(method, concrete(path), headers=KEY)
                assert keyed.status != 401, (method, path)
            checked += 1
    assert checked >= 3 * len(paths)  # GET, HEAD and the unregistered methods of each


async def test_head_of_the_signed_credit_view_needs_a_key(make_client: Any) -> None:
    """Issue 12, attack 4: aiohttp registers HEAD beside GET, and the key list named only GET."""
    client = await make_client(service=FakeService())
    refused = await client.head(f"/v1/wallets/{WALLET}/credit")
    assert refused.status == 401 and refused.headers["WWW-Authenticate"] == "X-API-Key"
    answered = await client.head(f"/v1/wallets/{WALLET}/credit", headers=KEY)
    assert answered.status == 200 and await answered.read() == b""
    assert (await client.options(f"/v1/wallets/{WALLET}/credit")).status == 401
    assert (await client.options(f"/v1/wallets/{WALLET}/credit", headers=KEY)).status == 405


async def test_a_burst_of_unkeyed_wallet_reads_is_limited_and_other_routes_still_answer(
    make_client: Any, clock: Any
) -> None:
    """Issue 12, attack 3: 2,000 unkeyed wallet reads starved the service. Here the address gets its burst, then
    429 with Retry-After, while every other route, and a keyed caller of the same route, answers."""
    settings = ApiSettings(client_rate_limit=RateLimit(per_second=0.5, burst=10))
    client = await make_client(service=FakeService(), settings=settings)
    statuses = [(await client.get(f"/v1/wallets/{WALLET}/{route}")).status for route in ["risk", "positions"] * 50]
    assert statuses == [200] * 10 + [429] * 90
    limited = await client.get(f"/v1/wallets/{WALLET}/risk")
    assert limited.headers["Retry-After"] == "2"  # one token at 0.5 per second
    assert (await limited.json(content_type=None))["title"] == "Too many requests"
    assert (await client.get(f"/v1/wallets/{WALLET}/risk", headers=KEY)).status == 200
    for path in ("/health", "/v1/markets/BTC", "/v1/accounts/demo/risk", "/v1/accounts/demo/history"):
        assert (await client.get(path)).status == 200, path
    clock.now += 2.0
    assert (await client.get(f"/v1/wallets/{WALLET}/risk")).status == 200
    assert (await client.get(f"/v1/wallets/{WALLET}/risk", headers={"X-API-Key": "wrong"})).status == 401


class HeldService(FakeService):
    """Wallet reads that wait until the test releases them, so reads in flight can be counted without sleeping."""

    def __init__(self) -> None:
        self.entered = 0
        self.changed = asyncio.Event()
        self.release = asyncio.Event()

    async def wallet_risk(self, address: str) -> Any:
        self.entered += 1
        self.changed.set()
        await self.release.wait()
        return await super().wallet_risk(address)

    async def until_entered(self, count: int) -> None:
        while self.entered < count:
            self.changed.clear()
            await self.changed.wait()


async def test_live_reads_in_flight_are_bounded_per_client_and_in_total(make_client: Any) -> None:
    service = HeldService()
    settings = ApiSettings(
        api_keys=frozenset({"alpha", "beta"}), live_reads_per_client=2, live_reads_total=3,
        rate_limit=RateLimit(per_second=100, burst=100),
    )
    client = await make_client(service=service, settings=settings)
    url = f"/v1/wallets/{WALLET}/risk"
    held = [asyncio.ensure_future(client.get(url, headers={"X-API-Key": "alpha"})) for _ in range(2)]
    await service.until_entered(2)
    own_excess = await client.get(url, headers={"X-API-Key": "alpha"})
    assert own_excess.status == 429 and own_excess.headers["Retry-After"] == "1"
    held.append(asyncio.ensure_future(client.get(url, headers={"X-API-Key": "beta"})))
    await service.until_entered(3)
    full = await client.get(url)  # another client (this address, no key): the server as a whole is full
    assert full.status == 503 and full.headers["Retry-After"] == "1"
    assert "maximum of 3 live wallet reads" in (await full.json(content_type=None))["detail"]
    assert (await client.get("/v1/markets/BTC")).status == 200
    service.release.set()
    assert [(await response).status for response in held] == [200, 200, 200]
    assert (await client.get(url)).status == 200  # the slots are given back


def test_slots_are_given_back_when_the_read_fails() -> None:
    slots = LiveReadSlots(per_client=1, total=1)
    with pytest.raises(RuntimeError), slots.hold("a"):
        raise RuntimeError("the chain read failed")
    assert slots.in_flight() == 0
    with slots.hold("a"), pytest.raises(Problem) as refused, slots.hold("a"):
        pass
    assert refused.value.status == 429


def test_the_client_table_is_bounded() -> None:
    now = [0.0]
    limiter = RateLimiter(RateLimit(per_second=1.0, burst=1), clock=lambda: now[0], capacity=2)
    assert [limiter.retry_after(c) for c in ("a", "b", "a")] == [0.0, 0.0, 1.0]
    assert limiter.retry_after("c") == 0.0  # b, the least recently seen, is dropped
    assert limiter.retry_after("a") == 1.0  # a kept its empty bucket
    assert limiter.retry_after("b") == 0.0  # b starts afresh


async def test_graphql_wallet_reads_share_the_bound(make_client: Any) -> None:
    """Aliases let one query read several wallets: they take the same slots as the REST route."""
    service = HeldService()
    settings = ApiSettings(live_reads_per_client=2, live_reads_total=2)
    client = await make_client(service=service, settings=settings)
    headers = {**KEY, "Content-Type": "application/json"}
    held = asyncio.ensure_future(client.get(f"/v1/wallets/{WALLET}/risk", headers=KEY))
    await service.until_entered(1)
    read = f'wallet(address: "{WALLET}") {{ risk {{ status }} }}'
    query = f"{{ a: {read} b: {read} }}"
    answer = asyncio.ensure_future(client.post("/graphql", data=json.dumps({"query": query}), headers=headers))
    await service.until_entered(2)  # one alias took the last slot; the other was refused at once
    service.release.set()
    result = await (await answer).json()
    assert (await held).status == 200
    assert result["data"]["a"]["risk"]["status"] == "healthy" or result["data"]["b"]["risk"]["status"] == "healthy"
    (error,) = result["errors"]
    assert error["extensions"] == {"code": "RATE_LIMITED", "status": 429}
    assert "at most 2 live wallet reads at once per client" in error["message"]
