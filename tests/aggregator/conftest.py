"""The aggregator against the live devnet and the local venue servers, shared by the module's tests.

Venue servers, chain clients and one market snapshot live for the module (one event loop for the module, see
`pytestmark` in the test files); each test builds its own AggregatorService on them with its own clock, store and
settings. The shared market keeps the module fast: a fresh snapshot costs seconds (the local Deribit validates
every query against its OpenAPI file), and what is under test here is the positions' side of a refresh.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from support.devnet_fixtures import TEST_POLICY
from web3 import Web3

from aggregator.service import AggregatorService
from aggregator.settings import ServiceSettings
from aggregator.store import AsyncStore, Store, StoreUnavailable, WatchedAccount
from api.demo import WSTETH_PER_ETH, demo_account, demo_settings
from chains.client import ChainClient, make_chain_clients
from devnet.deploy import refresh_feeds
from devnet.node import AnvilNode, start_anvil
from devnet.run import RunningDevnet, compute_cache_key, default_cache_root
from oracles.snapshot import SnapshotBuild
from venue_servers.runner import VenueServers, run_venue_servers


class ManualClock:
    """The service's clock, moved by hand; starts at the recorded market's time so nothing reads as stale."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class RecordingStore(AsyncStore):
    """The real store (SQLite), counting accounts read and refreshes saved; `down` makes both fail as a lost
    database."""

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.saves = 0
        self.account_reads = 0
        self.down = False

    async def get_account(self, account_id: str) -> Any:
        self.account_reads += 1
        if self.down:
            raise StoreUnavailable("database unavailable: connection refused (test)")
        return await super().get_account(account_id)

    async def save_refresh(self, *args: Any, **kwargs: Any) -> Any:
        if self.down:
            raise StoreUnavailable("database unavailable: connection refused (test)")
        self.saves += 1
        return await super().save_refresh(*args, **kwargs)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def venues() -> AsyncIterator[VenueServers]:
    async with run_venue_servers() as servers:
        yield servers


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def chain_clients(devnet: RunningDevnet) -> AsyncIterator[dict[str, ChainClient]]:
    made = await make_chain_clients(devnet.chains, policy=TEST_POLICY)
    yield made
    for client in made.values():
        await client.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def market(venues: VenueServers, session: aiohttp.ClientSession) -> SnapshotBuild:
    """One market snapshot of the local venues, built by the service's own code path."""
    service = AggregatorService(
        settings=demo_settings(venues), session=session, clients=[], clock=ManualClock(venues.scenario.as_of)
    )
    build = await service.refresh_market()
    # wstETH is priced by the devnet's Chainlink feed, which a snapshot without chain clients does not read: the
    # price the demo's keeper publishes there, so that the seeded wstETH is valued (an unpriced token would make
    # every report incomplete)
    spot = {**build.snapshot.spot, "WSTETH": build.snapshot.spot["ETH"] * WSTETH_PER_ETH}
    return dataclasses.replace(build, snapshot=build.snapshot.model_copy(update={"spot": spot}))


@pytest.fixture
def arbitrum_node(devnet: RunningDevnet) -> Iterator[AnvilNode]:
    """A node of its own for arbitrum (the session devnet's cached state), so that killing it spares the others."""
    chain = devnet.manifest.chain("arbitrum")
    state = default_cache_root() / compute_cache_key() / "arbitrum.state.json"
    node = start_anvil(chain_id=chain.config.chain_id, state_file=state)
    refresh_feeds(Web3(Web3.HTTPProvider(node.url)), chain)
    yield node
    node.stop()


@pytest.fixture
def account(devnet: RunningDevnet) -> WatchedAccount:
    """The demo account: the seeded wallet on the three chains and the venues' sub-accounts."""
    return demo_account(devnet)


@pytest.fixture
def clock(venues: VenueServers) -> ManualClock:
    return ManualClock(venues.scenario.as_of)


@pytest.fixture
def sqlite_store(tmp_path: Path, account: WatchedAccount) -> Store:
    store = Store.from_url(f"sqlite:///{tmp_path / 'metarisk.db'}")
    store.migrate()
    store.add_account(account)
    return store


@pytest.fixture
def recording_store(sqlite_store: Store) -> RecordingStore:
    return RecordingStore(sqlite_store)


ServiceFactory = Callable[..., AggregatorService]


@pytest.fixture
def make_service(
    venues: VenueServers,
    session: aiohttp.ClientSession,
    chain_clients: dict[str, ChainClient],
    market: SnapshotBuild,
    clock: ManualClock,
) -> ServiceFactory:
    """make_service(clients=..., store=..., **settings): a service on the local venues and the session devnet (unless
    `clients` says otherwise) with the module's market snapshot already in hand, kept for an hour."""

    def make(
        *, clients: Sequence[ChainClient] | None = None, store: AsyncStore | None = None, **settings: Any
    ) -> AggregatorService:
        base: ServiceSettings = demo_settings(venues)
        service = AggregatorService(
            settings=base.model_copy(update={"market_ttl_s": 3600.0, **settings}),
            session=session,
            clients=list(chain_clients.values()) if clients is None else list(clients),
            store=store,
            clock=clock,
        )
        # the service's own cache of its last snapshot: what refresh_market would have left there
        service._market, service._market_monotonic = market, time.monotonic()  # noqa: SLF001
        return service

    return make
