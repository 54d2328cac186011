"""Every refresh is bounded: a chain that never answers fails its Chainlink source within the source timeout, a
stalled market or account refresh is abandoned within the refresh timeout (no lock stays held, the next call
starts anew), the previous market is served meanwhile, /health names what is stale or down, and
/v1/markets/{asset} shows the failed chain beside the venues."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from support.devnet_fixtures import TEST_POLICY

from aggregator.scheduler import refresh_market
from aggregator.service import AggregatorService
from aggregator.settings import ServiceSettings, VenueEndpoints
from aggregator.store import WatchedAccount
from chains.client import make_chain_client
from devnet.run import RunningDevnet
from oracles.observations import PriceObservation
from oracles.snapshot import SnapshotBuild, SnapshotSources, fetch_market_snapshot
from venue_http import SourceError

NOW = datetime(2026, 1, 5, 12, tzinfo=UTC)


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


@pytest_asyncio.fixture
async def black_hole() -> AsyncIterator[str]:
    """A TCP server that accepts connections and never answers: a stalled chain node."""
    held: list[asyncio.StreamWriter] = []

    async def accept(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    for writer in held:
        writer.close()
    server.close()


def service_of(session: aiohttp.ClientSession, **settings: Any) -> AggregatorService:
    """A service with no venues (its market refresh is instant and empty) unless the test wires sources in."""
    return AggregatorService(
        settings=ServiceSettings(venues=VenueEndpoints(), assets=("ETH",), **settings), session=session, clients=[],
        clock=lambda: NOW,
    )


async def build_with(session: aiohttp.ClientSession, **extra: Any) -> SnapshotBuild:
    return await fetch_market_snapshot(session, SnapshotSources(), assets=["ETH"], now=NOW, extra=extra)


async def test_a_chain_that_never_answers_fails_its_chainlink_source_within_the_source_timeout(
    devnet: RunningDevnet, session: aiohttp.ClientSession, black_hole: str
) -> None:
    config = devnet.chains.chain("ethereum").model_copy(update={"rpc_urls": [black_hole]})
    stalled = await make_chain_client(config, policy=replace(TEST_POLICY, timeout_seconds=3600.0))
    try:
        service = AggregatorService(
            settings=ServiceSettings(venues=VenueEndpoints(), assets=("ETH",), chainlink_chains=("ethereum",),
                                     source_timeout_s=0.2),
            session=session, clients=[stalled], clock=lambda: NOW,
        )
        build = await service.refresh_market()
    finally:
        await stalled.close()
    [fetch] = [s for s in build.fetches if s.name == "fetch:chainlink@ethereum"]
    assert fetch.status == "failed"
    assert fetch.reason == "chain ethereum did not answer within 0.2 s"
    assert service.health_issues() == [
        "chain down: chainlink@ethereum failed: chain ethereum did not answer within 0.2 s"
    ]
    view = await service.market("ETH")
    assert "fetch:chainlink@ethereum" in [s.name for s in view.sources]  # not hidden from the asset's view


async def test_a_stalled_market_refresh_is_abandoned_the_previous_snapshot_served_and_the_next_call_retries(
    session: aiohttp.ClientSession,
) -> None:
    service = service_of(session, refresh_timeout_s=0.05, market_ttl_s=15.0, market_stale_after_s=60.0)
    previous = await service.refresh_market()
    service._market_monotonic = time.monotonic() - 100  # noqa: SLF001 - a snapshot 100 s old, past its TTL

    stall = asyncio.Event()
    working = service._refresh_market  # noqa: SLF001

    async def stalled() -> SnapshotBuild:
        await stall.wait()  # never set: the refresh hangs until abandoned
        raise AssertionError("unreachable")

    service._refresh_market = stalled  # type: ignore[method-assign]  # noqa: SLF001
    assert await service.market_snapshot() is previous.snapshot  # abandoned after 0.05 s: the old one is served
    await refresh_market(service)  # the scheduler's job returns too (logged), so it never piles up
    [issue] = service.health_issues()
    assert issue.startswith("market: snapshot 10") and issue.endswith(" s old (limit 60 s)")

    service._refresh_market = working  # type: ignore[method-assign]  # noqa: SLF001
    fresh = await service.market_snapshot()  # a new refresh, not the abandoned one
    assert fresh is not previous.snapshot and service.health_issues() == []


async def test_without_any_snapshot_a_stalled_market_refresh_is_a_connection_error(
    session: aiohttp.ClientSession,
) -> None:
    service = service_of(session, refresh_timeout_s=0.05)

    async def stalled() -> SnapshotBuild:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    service._refresh_market = stalled  # type: ignore[method-assign]  # noqa: SLF001
    with pytest.raises(ConnectionError, match="did not finish within 0.05 s"):
        await service.market_snapshot()


async def test_a_stalled_account_refresh_releases_its_lock_and_is_a_connection_error(
    session: aiohttp.ClientSession,
) -> None:
    service = service_of(session, refresh_timeout_s=0.05)
    service.watch(WatchedAccount(id="acct"))

    async def stalled(*_: Any) -> Any:
        await asyncio.Event().wait()

    service._refresh_now = stalled  # type: ignore[method-assign]  # noqa: SLF001
    with pytest.raises(ConnectionError, match="account:acct did not finish within 0.05 s"):
        await service.account_risk("acct")
    assert not service._locks["account:acct"].locked()  # noqa: SLF001


async def test_health_names_a_watched_account_without_a_fresh_report(session: aiohttp.ClientSession) -> None:
    service = service_of(session, account_stale_after_s=180.0)
    service.watching(["demo"])
    assert service.health_issues() == []  # just started: nothing is late yet
    service._started = time.monotonic() - 1_000  # noqa: SLF001
    market, account = service.health_issues()
    assert market.startswith("market: no snapshot in 100")
    assert account.startswith("account demo: no report in 100")


async def test_the_market_view_shows_a_failed_source_that_feeds_every_asset(session: aiohttp.ClientSession) -> None:
    async def down() -> list[PriceObservation]:
        raise SourceError("chainlink@base: connection refused")

    service = service_of(session)
    service._market = await build_with(session, **{"chainlink@base": down})  # noqa: SLF001
    service._market_monotonic = time.monotonic()  # noqa: SLF001
    view = await service.market("ETH")
    [failed] = [s for s in view.sources if s.name == "fetch:chainlink@base"]
    assert failed.status == "failed" and failed.reason == "chainlink@base: connection refused"
