"""AggregatorService against the live devnet and the local venues: what the report holds (every position the adapters
read, once), what `complete` says, the cache, one refresh at a time, and the ways a refresh degrades (a chain
killed, a venue answering 500, the database gone) without an exception and without losing the stored snapshot."""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from support.devnet_fixtures import TEST_POLICY, load_abi
from web3 import Web3

from adapters import ONCHAIN_ADAPTERS
from adapters.base import AdapterResult
from adapters.deribit.adapter import fetch_deribit_positions
from adapters.derive.adapter import fetch_derive_positions
from adapters.hyperliquid.adapter import fetch_hyperliquid_positions
from adapters.onchain import DiscoveryCache, fetch_wallet_refresh
from aggregator import service as service_module
from aggregator.service import AggregatorService
from aggregator.store import PositionSnapshot, Store, WatchedAccount
from api.demo import demo_settings
from api.http.app import create_app
from chains.client import ChainClient, make_chain_clients
from chains.config import ChainsFile
from devnet.node import AnvilNode
from devnet.run import RunningDevnet
from risk_core.schema.positions import Position
from risk_core.schema.report import MarginReport
from venue_servers import derive as derive_venue
from venue_servers import hyperliquid as hyperliquid_venue
from venue_servers.runner import VenueServers

pytestmark = pytest.mark.asyncio(loop_scope="module")

ACCOUNT = "demo"
ONCHAIN_VENUES = {"wallet", "aave-v3", "uniswap-v3", "gmx-v2"}
RELATIVE = 1e-9


def identity(position: Position) -> dict[str, Any]:
    """A position without its provenance (read times differ between two reads of the same holdings)."""
    return position.model_dump(mode="json", exclude={"provenance"})


def by_id(positions: list[Position]) -> dict[str, dict[str, Any]]:
    assert all(p.id for p in positions)
    ids = [p.id for p in positions]
    assert len(ids) == len(set(ids)), Counter(ids).most_common(3)
    return {str(p.id): identity(p) for p in positions}


def position_sources(report: MarginReport) -> dict[str, str]:
    """Status of every position source in the report (market sources are named kind:ASSET...)."""
    return {s.name: s.status for s in report.sources if "@" in s.name or s.name in ("hyperliquid", "deribit", "derive")}


async def read_directly(
    devnet: RunningDevnet, clients: list[ChainClient], session: aiohttp.ClientSession, venues: VenueServers
) -> list[AdapterResult]:
    """Every source of the demo account, read by the adapters themselves, without the service."""
    onchain = await fetch_wallet_refresh(
        clients, ONCHAIN_ADAPTERS, account=devnet.manifest.demo_account, cache=DiscoveryCache(), timeout_seconds=10
    )
    now = venues.scenario.as_of
    offchain = await asyncio.gather(
        fetch_hyperliquid_positions(session, venues.urls["hyperliquid"], hyperliquid_venue.USER, now=now),
        fetch_deribit_positions(
            session, venues.urls["deribit"], client_id="metarisk-readonly", client_secret="fixture-secret",
            account="metarisk-readonly", now=now,
        ),
        fetch_derive_positions(
            session, venues.urls["derive"], wallet=derive_venue.WALLET, session_key=derive_venue.SESSION_KEY,
            subaccount_id=derive_venue.SUBACCOUNT_ID, now=now,
        ),
    )
    results = [*onchain.results, *offchain]
    assert all(r.complete for r in results), [(r.source, r.status.reason) for r in results if not r.complete]
    return results


async def stored_positions(store: Store, account_id: str, *, complete_only: bool = False) -> PositionSnapshot:
    stored = await asyncio.to_thread(store.latest_position_snapshot, account_id, complete_only=complete_only)
    assert stored is not None
    return stored.snapshot


def assert_stored_report_is(
    store: Store, account_id: str, served: MarginReport, *, complete_only: bool = False
) -> None:
    stored = store.latest_report(account_id, complete_only=complete_only)
    assert stored is not None
    assert stored.computed_at == served.computed_at
    assert stored.report.model_copy(update={"computed_at": served.computed_at, "age_seconds": served.age_seconds}) == (
        served
    )


class CountingFetch:
    """Stands in for aggregator.service.fetch_account_positions: counts calls, optionally holding each one at a
    gate until the test opens it."""

    def __init__(self, real: Callable[..., Awaitable[PositionSnapshot]], *, gated: bool = False) -> None:
        self.real = real
        self.calls = 0
        self.entered = asyncio.Event()
        self.gate = asyncio.Event()
        if not gated:
            self.gate.set()

    async def __call__(self, **kwargs: Any) -> PositionSnapshot:
        self.calls += 1
        self.entered.set()
        await self.gate.wait()
        return await self.real(**kwargs)


@pytest.fixture
def counting_fetch(monkeypatch: pytest.MonkeyPatch) -> CountingFetch:
    fetch = CountingFetch(service_module.fetch_account_positions)
    monkeypatch.setattr(service_module, "fetch_account_positions", fetch)
    return fetch


# --- what the report holds -------------------------------------------------------------------------------------


async def test_account_report_holds_every_position_the_adapters_read(
    devnet: RunningDevnet, chain_clients: dict[str, ChainClient], session: aiohttp.ClientSession,
    venues: VenueServers, make_service: Any, recording_store: Any, sqlite_store: Store,
) -> None:
    service: AggregatorService = make_service(store=recording_store)
    report = await service.account_risk(ACCOUNT)
    direct = await read_directly(devnet, list(chain_clients.values()), session, venues)

    # the positions the service stored for this refresh are the adapters' own, every one, once
    snapshot = await stored_positions(sqlite_store, ACCOUNT)
    expected = by_id([p for r in direct for p in r.positions])
    assert by_id(snapshot.positions) == expected
    assert Counter(p.venue for p in snapshot.positions) == Counter(p.venue for r in direct for p in r.positions)
    assert {p.venue for p in snapshot.positions} >= ONCHAIN_VENUES | {"hyperliquid", "deribit", "derive"}
    # every seeded on-chain holding is there: the wallet's tokens, Aave's supplies and debts, the LP, the perps
    for chain in devnet.manifest.chains:
        name, seeds = chain.config.name, chain.seeds
        ids = {p.id for p in snapshot.positions if p.chain == name}
        assert {f"wallet:{name}:{s}" for s, amount in seeds.erc20.items() if amount} <= ids
        if seeds.aave is not None:
            assert {f"aave-v3:{name}:{s}:supply" for s in seeds.aave.supplied} <= ids
            assert {f"aave-v3:{name}:{s}:debt" for s in seeds.aave.borrowed} <= ids
        if seeds.lp is not None:
            assert f"uniswap-v3:{name}:{seeds.lp.token_id}" in ids
        assert {f"gmx-v2:{name}:{i}" for i in range(len(seeds.perps))} <= ids

    # the report values exactly those positions (none left out for want of a price), in the same order
    assert [p.id for p in report.positions] == [p.id for p in snapshot.positions]
    assert Counter(p.venue for p in report.positions) == Counter(p.venue for p in snapshot.positions)
    assert not [w for w in report.warnings if w.startswith("left out")]
    # complete: every position source answered, and the report says so source by source
    assert report.complete is True and snapshot.complete is True
    assert position_sources(report) == {r.source: "ok" for r in direct}
    assert math.isclose(report.equity_usd, sum(p.value_usd for p in report.positions), rel_tol=RELATIVE)
    assert report.equity_usd > 100_000  # the demo wallet: ~$156k across chains and venues at the recorded prices

    # the store received this refresh: its latest report is the one served
    assert recording_store.saves == 1
    assert_stored_report_is(sqlite_store, ACCOUNT, report)


async def test_no_double_counting_of_aave_tokens(
    devnet: RunningDevnet, web3s: dict[str, Web3], venues: VenueServers, make_service: Any
) -> None:
    """aTokens and debt tokens are Aave's positions only: never also a wallet spot position; each supply and each
    debt appears once, at its seeded size (the wallet's WETH is the wallet's, not wallet + aWETH)."""
    # on-chain only: the local Hyperliquid knows one user, and answers others with an invalid empty account
    # (see tests/e2e/test_demo.py::test_the_demo_wallet_route_is_complete)
    on_chain_only = demo_settings(venues).venues.model_copy(update={"hyperliquid": None})
    service: AggregatorService = make_service(venues=on_chain_only)
    wallet = devnet.manifest.demo_account
    view = await service.wallet_positions(wallet)
    assert view.complete is True
    provider_abi = load_abi("aave-v3/AaveProtocolDataProvider.abi.json")
    erc20_abi = [{"name": "balanceOf", "type": "function", "stateMutability": "view",
                  "inputs": [{"name": "a", "type": "address"}], "outputs": [{"name": "", "type": "uint256"}]}]
    for chain in devnet.manifest.chains:
        config, seeds, name = chain.config, chain.seeds, chain.config.name
        on_chain = [p for p in view.positions if p.chain == name]
        wallet_spots = {str(p.id): p for p in on_chain if p.venue == "wallet"}
        decimals = {t.symbol: t.decimals for t in config.tokens}
        asset_of = {t.symbol: t.asset for t in config.tokens}
        # the wallet reads the chains file's tokens and the native coin, nothing else
        assert {i.rsplit(":", 1)[1] for i in wallet_spots} <= {config.native.symbol} | set(decimals)
        for symbol, amount in seeds.erc20.items():
            if amount:
                assert wallet_spots[f"wallet:{name}:{symbol}"].quantity == amount / 10 ** decimals[symbol]  # type: ignore[union-attr]
        if seeds.aave is None:
            assert not [p for p in on_chain if p.venue == "aave-v3"]
            continue
        assert config.aave_v3 is not None
        provider = web3s[name].eth.contract(address=config.aave_v3.data_provider, abi=provider_abi)
        token_addresses = {t.address.lower() for t in config.tokens}
        for token in config.tokens:
            a_token, stable_debt, variable_debt = provider.functions.getReserveTokensAddresses(token.address).call()
            assert not {a_token.lower(), stable_debt.lower(), variable_debt.lower()} & token_addresses
            if token.symbol in seeds.aave.supplied:  # the wallet does hold the aToken: the trap is real
                held = web3s[name].eth.contract(address=a_token, abi=erc20_abi).functions.balanceOf(wallet).call()
                assert held >= seeds.aave.supplied[token.symbol]
        lends = [p for p in on_chain if p.kind == "lend"]
        borrows = [p for p in on_chain if p.kind == "borrow"]
        assert sorted((p.asset, p.quantity) for p in lends) == sorted(  # type: ignore[union-attr]
            (asset_of[s], v / 10 ** decimals[s]) for s, v in seeds.aave.supplied.items()
        )
        assert sorted((p.asset, p.quantity) for p in borrows) == sorted(  # type: ignore[union-attr]
            (asset_of[s], v / 10 ** decimals[s]) for s, v in seeds.aave.borrowed.items()
        )
        assert all(p.venue == "aave-v3" for p in lends + borrows)
    # and the account's report: the wallet listed on three chains is read once per chain
    report = await service.wallet_risk(wallet)
    ids = [p.id for p in report.positions]
    assert len(ids) == len(set(ids))
    supplies = sum(len(c.seeds.aave.supplied) for c in devnet.manifest.chains if c.seeds.aave)
    assert sum(1 for p in report.positions if p.kind == "lend") == supplies


# --- the cache ---------------------------------------------------------------------------------------------------


async def test_cache_serves_within_the_ttl_and_refreshes_after(
    make_service: Any, account: WatchedAccount, clock: Any, counting_fetch: CountingFetch
) -> None:
    service: AggregatorService = make_service(report_ttl_s=3600.0)
    service.watch(account)
    first = await service.account_risk(ACCOUNT)
    assert (first.computed_at, first.age_seconds) == (clock.now, 0.0)
    clock.advance(7.5)
    again = await service.account_risk(ACCOUNT)
    assert counting_fetch.calls == 1
    assert again.computed_at == first.computed_at and again.age_seconds == 7.5
    assert again.model_copy(update={"age_seconds": 0.0}) == first

    service.settings = service.settings.model_copy(update={"report_ttl_s": 1e-9})  # every cached report is stale
    clock.advance(2.5)
    refreshed = await service.account_risk(ACCOUNT)
    assert counting_fetch.calls == 2
    assert refreshed.computed_at == clock.now and refreshed.age_seconds == 0.0
    assert refreshed.computed_at != first.computed_at
    assert [p.id for p in refreshed.positions] == [p.id for p in first.positions]
    assert refreshed.equity_usd == first.equity_usd  # same chains, same venues, same market


async def test_concurrent_requests_share_one_refresh(
    make_service: Any, recording_store: Any, sqlite_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    fetch = CountingFetch(service_module.fetch_account_positions, gated=True)
    monkeypatch.setattr(service_module, "fetch_account_positions", fetch)
    service: AggregatorService = make_service(store=recording_store)
    observed: list[MarginReport] = []
    service.on_report.append(lambda _account, report: observed.append(report))

    requests = [asyncio.create_task(service.account_risk(ACCOUNT)) for _ in range(6)]
    await fetch.entered.wait()  # the first holds the refresh; the others have queued behind it
    assert fetch.calls == 1
    fetch.gate.set()
    reports = await asyncio.gather(*requests)

    assert fetch.calls == 1
    assert len({r.computed_at for r in reports}) == 1
    assert all(r == reports[0] for r in reports)
    # stored once and announced once (the alert watcher must not see one refresh six times)
    assert recording_store.saves == 1
    assert len(observed) == 1
    assert len(sqlite_store.report_history(ACCOUNT)) == 1
    # a refresh asked for while the cached one is fresh (the scheduler's job) neither re-reads nor re-stores it
    again = await service.refresh_account(await service.watched_account(ACCOUNT))
    assert again.computed_at == reports[0].computed_at
    assert (fetch.calls, recording_store.saves, len(observed)) == (1, 1, 1)


async def test_concurrent_wallet_requests_share_one_refresh(
    devnet: RunningDevnet, make_service: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    fetch = CountingFetch(service_module.fetch_account_positions, gated=True)
    monkeypatch.setattr(service_module, "fetch_account_positions", fetch)
    service: AggregatorService = make_service()
    wallet = devnet.manifest.demo_account
    requests = [
        asyncio.create_task(service.wallet_risk(wallet)),
        asyncio.create_task(service.wallet_risk(wallet.lower())),
        asyncio.create_task(service.wallet_positions(wallet)),
    ]
    await fetch.entered.wait()
    fetch.gate.set()
    risk, risk_lower, positions = await asyncio.gather(*requests)
    assert fetch.calls == 1
    assert risk.computed_at == risk_lower.computed_at == positions.taken_at
    assert [p.id for p in risk.positions] == [p.id for p in positions.positions]


# --- degraded refreshes --------------------------------------------------------------------------------------------


async def test_a_killed_chain_makes_the_report_incomplete_and_keeps_the_stored_snapshot(
    devnet: RunningDevnet, chain_clients: dict[str, ChainClient], arbitrum_node: AnvilNode, make_service: Any,
    recording_store: Any, sqlite_store: Store, clock: Any,
) -> None:
    config = next(c for c in devnet.chains.chains if c.name == "arbitrum")
    own = ChainsFile(chains=[config.model_copy(update={"rpc_urls": [arbitrum_node.url]})])
    arbitrum = (await make_chain_clients(own, policy=TEST_POLICY))["arbitrum"]
    try:
        clients = [chain_clients["ethereum"], arbitrum, chain_clients["base"]]
        service: AggregatorService = make_service(clients=clients, store=recording_store)
        before = await service.account_risk(ACCOUNT)
        assert before.complete is True
        assert {p.venue for p in before.positions if p.chain == "arbitrum"} == {"wallet", "aave-v3", "gmx-v2"}

        arbitrum_node.kill()
        service.settings = service.settings.model_copy(update={"report_ttl_s": 1e-9})
        clock.advance(30)
        after = await service.account_risk(ACCOUNT)
    finally:
        await arbitrum.close()

    assert after.complete is False
    assert after.computed_at == clock.now
    failed = {name: status for name, status in position_sources(after).items() if status != "ok"}
    assert failed == {"wallet@arbitrum": "failed", "aave-v3@arbitrum": "failed", "gmx-v2@arbitrum": "failed"}
    assert not [p for p in after.positions if p.chain == "arbitrum"]
    kept = [p.id for p in before.positions if p.chain != "arbitrum"]
    assert [p.id for p in after.positions] == kept
    # one human sentence per failed source, the node's address once (not aiohttp's text)
    address = arbitrum_node.url.removeprefix("http://").rstrip("/")
    assert [w for w in after.warnings if "@arbitrum" in w] == [
        f"position source {source}@arbitrum failed: arbitrum node: cannot connect to {address} (connection refused)"
        for source in ("wallet", "aave-v3", "gmx-v2")
    ]
    # the incomplete refresh is stored as such; the complete one before it is still there, whole
    assert_stored_report_is(sqlite_store, ACCOUNT, after)
    assert_stored_report_is(sqlite_store, ACCOUNT, before, complete_only=True)
    last_complete = await stored_positions(sqlite_store, ACCOUNT, complete_only=True)
    assert {p.venue for p in last_complete.positions if p.chain == "arbitrum"} == {"wallet", "aave-v3", "gmx-v2"}


@pytest.mark.parametrize(
    ("venue", "route"),
    [
        ("hyperliquid", "clearinghouseState"),
        ("deribit", "/private/get_positions"),
        ("derive", "private/get_subaccount"),
    ],
)
async def test_a_venue_answering_500_makes_the_report_incomplete(
    venues: VenueServers, make_service: Any, account: WatchedAccount, venue: str, route: str
) -> None:
    service: AggregatorService = make_service()
    service.watch(account)
    faults = venues.faults[venue]
    faults.set(route, "http-500")
    try:
        report = await service.account_risk(ACCOUNT)
    finally:
        faults.clear()
    assert faults.hits.get(route, 0) >= 1
    assert report.complete is False
    sources = position_sources(report)
    assert sources.pop(venue) == "failed"
    assert set(sources.values()) == {"ok"}
    reason = next(s.reason for s in report.sources if s.name == venue)
    assert reason is not None and "500" in reason
    assert not [p for p in report.positions if p.venue == venue]
    # everything else is still there: the three chains and the other venues
    assert {p.chain for p in report.positions} >= {"ethereum", "arbitrum", "base"}
    assert {p.venue for p in report.positions} >= ONCHAIN_VENUES | ({"hyperliquid", "deribit", "derive"} - {venue})


async def test_a_lost_database_answers_incomplete_and_keeps_the_previous_snapshot(
    make_service: Any, recording_store: Any, sqlite_store: Store, clock: Any
) -> None:
    service: AggregatorService = make_service(store=recording_store)
    stored = await service.account_risk(ACCOUNT)
    assert stored.complete is True

    recording_store.down = True
    service.settings = service.settings.model_copy(update={"report_ttl_s": 1e-9})
    clock.advance(60)
    degraded = await service.account_risk(ACCOUNT)

    assert degraded.complete is False
    assert degraded.computed_at == clock.now
    assert [w for w in degraded.warnings if w.startswith("history not stored")] == [
        "history not stored: database unavailable (database unavailable: connection refused (test))"
    ]
    # the positions and figures themselves were read and computed as before
    assert [p.id for p in degraded.positions] == [p.id for p in stored.positions]
    assert degraded.equity_usd == stored.equity_usd
    # nothing of the failed refresh reached the store; the previous snapshot is the latest, whole
    assert recording_store.saves == 1
    assert_stored_report_is(sqlite_store, ACCOUNT, stored)
    assert len(sqlite_store.report_history(ACCOUNT)) == 1
    # while the degraded report is cached it is served as it is: never complete
    service.settings = service.settings.model_copy(update={"report_ttl_s": 3600.0})
    assert (await service.account_risk(ACCOUNT)).complete is False


# --- which addresses are read where ----------------------------------------------------------------------------


async def test_an_address_is_read_only_on_the_chains_it_is_listed_for(
    devnet: RunningDevnet, make_service: Any
) -> None:
    wallet = devnet.manifest.demo_account
    service: AggregatorService = make_service()
    service.watch(WatchedAccount(id="eth-only", addresses={"ethereum": [wallet]}))
    report = await service.account_risk("eth-only")
    assert report.complete is True
    assert {p.chain for p in report.positions} == {"ethereum"}
    assert set(position_sources(report)) == {"wallet@ethereum", "aave-v3@ethereum", "uniswap-v3@ethereum"}


async def test_an_address_listed_for_a_chain_the_service_lacks_is_a_failed_source(
    devnet: RunningDevnet, make_service: Any
) -> None:
    wallet = devnet.manifest.demo_account
    service: AggregatorService = make_service()
    service.watch(WatchedAccount(id="with-polygon", addresses={"ethereum": [wallet], "polygon": [wallet]}))
    report = await service.account_risk("with-polygon")
    assert report.complete is False
    assert {p.chain for p in report.positions} == {"ethereum"}
    assert position_sources(report)["wallet@polygon"] == "failed"
    reason = next(s.reason for s in report.sources if s.name == "wallet@polygon")
    assert reason == "chain polygon is not configured in this service"


async def test_one_address_spelled_two_ways_is_read_once_per_chain(
    devnet: RunningDevnet, make_service: Any
) -> None:
    wallet = devnet.manifest.demo_account
    service: AggregatorService = make_service()
    service.watch(WatchedAccount(id="two-spellings", addresses={"ethereum": [wallet.lower()], "base": [wallet]}))
    report = await service.account_risk("two-spellings")
    ids = [p.id for p in report.positions]
    assert len(ids) == len(set(ids)), Counter(ids).most_common(3)
    assert {p.chain for p in report.positions} == {"ethereum", "base"}
    expected = await service.wallet_risk(wallet)
    on_two_chains = [p for p in expected.positions if p.chain in ("ethereum", "base")]
    assert math.isclose(report.equity_usd, sum(p.value_usd for p in on_two_chains), rel_tol=RELATIVE)


async def test_the_report_cache_is_bounded_oldest_first(make_service: Any, counting_fetch: CountingFetch) -> None:
    service: AggregatorService = make_service(max_cached_reports=2)
    wallets = ["0x" + f"{i:040x}" for i in range(1, 4)]
    for wallet in wallets:
        await service.wallet_risk(wallet)
    assert counting_fetch.calls == 3 and service.wallet_cache_size() == 2
    await service.wallet_risk(wallets[2])  # among the two kept: served from the cache
    assert counting_fetch.calls == 3
    await service.wallet_risk(wallets[0])  # the oldest was dropped: read again
    assert counting_fetch.calls == 4 and service.wallet_cache_size() == 2


async def test_an_account_never_read_while_the_database_is_down_is_unavailable_not_unknown(
    make_service: Any, recording_store: Any
) -> None:
    service: AggregatorService = make_service(store=recording_store)
    recording_store.down = True
    with pytest.raises(ConnectionError, match="database unavailable"):
        await service.account_risk(ACCOUNT)
    app = create_app(service=service)
    async with TestClient(TestServer(app)) as client:
        response = await client.get(f"/v1/accounts/{ACCOUNT}/risk")
        assert response.status == 503
        assert (await response.json())["title"] == "Service unavailable"


async def test_an_account_definition_is_read_from_the_store_once_per_reread_interval(
    make_service: Any, recording_store: Any, sqlite_store: Store, account: WatchedAccount
) -> None:
    kept: AggregatorService = make_service(store=recording_store, account_reread_s=3600.0)
    assert [await kept.watched_account(account.id) for _ in range(3)] == [account] * 3
    assert recording_store.account_reads == 1
    every_time: AggregatorService = make_service(store=recording_store, account_reread_s=0.0)
    assert await every_time.watched_account(account.id) == account
    sqlite_store.delete_account(account.id)
    with pytest.raises(LookupError):
        await every_time.watched_account(account.id)
    assert recording_store.account_reads == 3


async def test_an_account_removed_during_its_refresh_is_answered_unstored(
    make_service: Any, recording_store: Any, sqlite_store: Store, account: WatchedAccount
) -> None:
    service: AggregatorService = make_service(store=recording_store)
    sqlite_store.delete_account(account.id)  # after the caller looked it up, before the refresh is saved
    refreshed = await service.refresh_account(account)
    assert "history not stored: the account was removed during the refresh" in refreshed.report.warnings
    assert refreshed.report.complete is True  # every position was read: only the history is missing
    assert sqlite_store.report_history(account.id) == []


async def test_onchain_reads_are_stamped_with_the_service_clock(
    make_service: Any, recording_store: Any, sqlite_store: Store, clock: Any
) -> None:
    """The demo's replayed market beside live anvil chains (whose blocks carry the host's time): the report's
    on-chain sources and positions are on the service's clock, like everything else in it, and keep their block."""
    service: AggregatorService = make_service(store=recording_store)
    report = await service.account_risk(ACCOUNT)
    assert report.computed_at == clock.now
    onchain = [s for s in report.sources if s.name.split("@")[0] in ONCHAIN_VENUES]
    assert {s.name.split("@")[1] for s in onchain} == {"ethereum", "arbitrum", "base"}
    assert {s.as_of for s in onchain} == {clock.now}
    stored = await stored_positions(sqlite_store, ACCOUNT)
    read = [p.provenance for p in stored.positions if p.venue in ONCHAIN_VENUES]
    assert read and all(p is not None and p.timestamp == clock.now and p.block is not None for p in read)
