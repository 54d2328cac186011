"""Chaos through the HTTP service: an anvil node killed from outside, a venue made unreachable after it was fresh.
Through both: no 500, the answer says `complete: false` and names the sources at fault, /health says degraded
naming the chain, and the killed node is reaped (no zombie)."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from aiohttp.web import Application
from support.devnet_fixtures import TEST_POLICY

from aggregator.service import AggregatorService
from aggregator.settings import VenueEndpoints
from api.http.app import create_app
from chains.client import ChainClient, make_chain_clients
from chains.config import ChainsFile
from devnet.node import AnvilNode
from devnet.run import RunningDevnet
from venue_servers.runner import VenueServers

pytestmark = pytest.mark.asyncio(loop_scope="module")
ACCOUNT = "demo"
UNREACHABLE = "http://127.0.0.1:9"  # the discard port: nothing listens


@pytest_asyncio.fixture(loop_scope="module")
async def served(make_service: Any, account: Any) -> AsyncIterator[Any]:
    async def serve(service: AggregatorService) -> TestClient[Any, Application]:
        service.watch(account)
        service.watching([ACCOUNT])
        client: TestClient[Any, Application] = TestClient(TestServer(create_app(service=service)))
        await client.start_server()
        clients.append(client)
        return client

    clients: list[TestClient[Any, Application]] = []
    yield serve
    for client in clients:
        await client.close()


def failed_sources(report: dict[str, Any]) -> set[str]:
    return {s["name"] for s in report["sources"] if s["status"] == "failed"}


async def test_an_anvil_node_killed_from_outside_is_reaped_and_named(
    devnet: RunningDevnet, chain_clients: dict[str, ChainClient], arbitrum_node: AnvilNode, make_service: Any,
    served: Any, clock: Any,
) -> None:
    config = devnet.chains.chain("arbitrum")
    own = ChainsFile(chains=[config.model_copy(update={"rpc_urls": [arbitrum_node.url]})])
    arbitrum = (await make_chain_clients(own, policy=TEST_POLICY))["arbitrum"]
    try:
        service = make_service(clients=[chain_clients["ethereum"], arbitrum, chain_clients["base"]])
        client = await served(service)
        before = await client.get(f"/v1/accounts/{ACCOUNT}/risk")
        assert before.status == 200 and (await before.json())["complete"] is True

        os.kill(arbitrum_node.pid, signal.SIGKILL)  # from outside: nobody calls wait() for it
        while os.path.exists(f"/proc/{arbitrum_node.pid}"):  # reaped by its watcher, not left a zombie
            await asyncio.sleep(0.01)
        service.settings = service.settings.model_copy(update={"report_ttl_s": 1e-9})
        clock.advance(30)
        after = await client.get(f"/v1/accounts/{ACCOUNT}/risk")
        report = await after.json()
        health = await (await client.get("/health")).json()
    finally:
        await arbitrum.close()
    assert after.status == 200
    assert report["complete"] is False
    assert {"wallet@arbitrum", "aave-v3@arbitrum", "gmx-v2@arbitrum"} <= failed_sources(report)
    assert health["status"] == "degraded"
    assert any(i.startswith("chain down: account demo's source wallet@arbitrum failed") for i in health["issues"])


async def test_a_venue_unreachable_after_it_was_fresh_goes_stale_and_is_named(
    venues: VenueServers, make_service: Any, served: Any, clock: Any,
) -> None:
    service = make_service()
    client = await served(service)
    fresh = await client.get("/v1/markets/ETH")
    assert fresh.status == 200
    assert "fetch:hyperliquid" not in failed_sources(await fresh.json())

    # the venue goes away: every read of it now fails to connect
    endpoints = service.settings.venues.model_copy(update={"hyperliquid": UNREACHABLE})
    service.settings = service.settings.model_copy(update={"venues": endpoints, "report_ttl_s": 1e-9,
                                                           "market_ttl_s": 1e-9})
    clock.advance(30)
    market = await client.get("/v1/markets/ETH")
    assert market.status == 200
    view = await market.json()
    assert "fetch:hyperliquid" in failed_sources(view)  # shown in the asset's view, not hidden
    account = await client.get(f"/v1/accounts/{ACCOUNT}/risk")
    assert account.status == 200
    report = await account.json()
    assert report["complete"] is False
    assert any(name.startswith("hyperliquid") for name in failed_sources(report)), failed_sources(report)


async def test_a_what_if_without_a_market_when_every_venue_is_down_is_a_503(
    make_service: Any, served: Any, clock: Any,
) -> None:
    service = make_service(clients=[])
    service.settings = service.settings.model_copy(update={
        "venues": VenueEndpoints(**dict.fromkeys(("deribit", "derive", "hyperliquid", "pyth"), UNREACHABLE)),
        "market_ttl_s": 1e-9,
    })
    client = await served(service)
    clock.advance(30)
    book = {"positions": [{"kind": "perp", "venue": "hyperliquid", "chain": "hyperliquid", "account": "0xa",
                           "underlying": "SOL", "quantity": 1.0}]}
    response = await client.post("/v1/margin", json=book, headers={"X-API-Key": "metarisk-demo-key"})
    problem = await response.json(content_type=None)
    assert response.status == 503, problem
    assert "the service's market cannot price this request" in problem["detail"]
    assert problem["errors"][0]["field"].startswith("positions[0]")


async def test_postgresql_connections_killed_in_a_loop_leave_nothing_half_written(
    make_service: Any, served: Any, account: Any, clock: Any,
) -> None:
    from sqlalchemy import create_engine, text  # noqa: PLC0415 - only this test talks to PostgreSQL itself
    from store.helpers import pg_base_url, pg_unreachable_reason, row_counts, scratch_schema  # noqa: PLC0415

    from aggregator.store import AsyncStore, Store  # noqa: PLC0415

    if reason := pg_unreachable_reason():
        pytest.skip(f"PostgreSQL unreachable: {reason}")
    admin = create_engine(pg_base_url(), isolation_level="AUTOCOMMIT")
    try:
        with scratch_schema(admin, "chaos") as url:
            store = Store.from_url(url, timeout_s=5)
            await asyncio.to_thread(store.migrate)
            await asyncio.to_thread(store.add_account, account)
            name = store.engine.url.query["application_name"]

            def terminate() -> int:
                with admin.connect() as connection:
                    return len(connection.execute(
                        text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = :n"),
                        {"n": name},
                    ).all())

            service = make_service(store=AsyncStore(store))
            service.settings = service.settings.model_copy(update={"report_ttl_s": 1e-9})
            client = await served(service)
            storm, parked, stop = asyncio.Event(), asyncio.Event(), asyncio.Event()
            killed = 0

            async def kill_in_a_loop() -> None:
                """Kills the store's connections over and over while `storm` is set; parks (and says so) otherwise."""
                nonlocal killed
                while not stop.is_set():
                    if not storm.is_set():
                        parked.set()
                        await storm.wait()
                        parked.clear()
                        continue
                    killed += await asyncio.to_thread(terminate)

            killer = asyncio.ensure_future(kill_in_a_loop())
            answers = []
            try:
                for i in range(8):  # refreshes in turn under the storm and in calm (the killer parked)
                    if i % 2:
                        storm.set()
                    else:
                        storm.clear()
                        await parked.wait()
                    clock.advance(11)
                    response = await client.get(f"/v1/accounts/{ACCOUNT}/risk")
                    assert response.status == 200, await response.text()  # never a 500 (nor a 503: the copy read)
                    answers.append(await response.json())
            finally:
                stop.set()
                storm.set()
                await killer
            unstored = [a for a in answers if any(w.startswith("history not stored") for w in a["warnings"])]
            assert killed > 0 and unstored and len(unstored) < len(answers)
            assert all(a["complete"] is False for a in unstored)  # named, and incomplete
            counts = await asyncio.to_thread(row_counts, store)
            # each stored refresh whole: its position snapshot and its report, nothing of the others
            assert counts["margin_reports"] == counts["position_snapshots"] == len(answers) - len(unstored)
            store.close()
    finally:
        admin.dispose()
