"""The aggregator: live risk of accounts and wallets, as the API's RiskService.

A request for an account's risk is served from a short-lived cache, else refreshed: the market snapshot (shared,
with its own TTL) and every position source of the account run concurrently, risk_core computes the report,
and the refresh is stored in one transaction. Whatever is missing (a chain down, a venue failing, the database
gone) makes the answer `complete: false` with the reason, never an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import aiohttp
from pydantic import BaseModel, ConfigDict, Field

from adapters.onchain import DiscoveryCache
from aggregator.credit import CreditView, compute_credit_view
from aggregator.history import AccountHistory, page_of_history
from aggregator.refresh import fetch_account_positions
from aggregator.settings import ServiceSettings
from aggregator.store import (
    AccountNotFound,
    AsyncStore,
    PositionSnapshot,
    StoredReport,
    StoreInputRefused,
    StoreUnavailable,
    WatchedAccount,
)
from chains.client import ChainClient
from oracles.aggregation import AggregationPolicy
from oracles.chainlink import fetch_chainlink_observations
from oracles.observations import PriceObservation
from oracles.snapshot import ExtraSource, SnapshotBuild, SnapshotSources, fetch_market_snapshot
from risk_core.errors import InputError
from risk_core.margin.engine import compute_margin
from risk_core.schema.market import MarketSnapshot, SourceStatus, VolSurface
from risk_core.schema.params import RiskParams, default_params
from risk_core.schema.positions import Position
from risk_core.schema.report import MarginReport

Clock = Callable[[], datetime]
ADDRESS_PATTERN = r"^0x[0-9a-fA-F]{40}$"
_ADDRESS = re.compile(ADDRESS_PATTERN)
_POSITION_FIELD = re.compile(r"^positions\[(\d+)\]")


def utc_now() -> datetime:
    return datetime.now(UTC)


def compute_address_chains(addresses: Mapping[str, Sequence[str]]) -> dict[str, set[str]]:
    """chain -> addresses turned into address -> the chains it is listed on. One entry per address whatever its
    letter case (0xab.. and 0xAB.. are one wallet: reading both would count every position twice)."""
    spelling: dict[str, str] = {}
    chains: dict[str, set[str]] = {}
    for chain, listed in addresses.items():
        for address in listed:
            chains.setdefault(spelling.setdefault(address.lower(), address), set()).add(chain)
    return chains


class PositionsView(BaseModel):
    model_config = ConfigDict(frozen=True)

    address: str
    taken_at: datetime
    age_seconds: float
    complete: bool
    sources: list[SourceStatus]
    blocks: dict[str, int] = Field(description="chain -> block every read of that chain was pinned to")
    positions: list[Position]


class MarketView(BaseModel):
    model_config = ConfigDict(frozen=True)

    asset: str
    as_of: datetime
    age_seconds: float
    spot: float | None = Field(description="null when no price passed the aggregation policy")
    dispersion: float | None
    forwards: dict[datetime, float]
    vol: VolSurface | None
    sources: list[SourceStatus] = Field(description="every source status that concerns this asset")


@dataclass(frozen=True)
class Refreshed:
    report: MarginReport
    positions: PositionSnapshot
    market: MarketSnapshot
    computed_at: datetime
    monotonic: float


class AggregatorService:
    def __init__(
        self,
        *,
        settings: ServiceSettings,
        session: aiohttp.ClientSession,
        clients: Sequence[ChainClient],
        store: AsyncStore | None = None,
        clock: Clock = utc_now,
        params: RiskParams | None = None,
    ) -> None:
        self.settings = settings
        self.session = session
        self.clients = list(clients)
        self.store = store
        self.clock = clock
        self.params = params or default_params()
        self.discovery = DiscoveryCache()
        self.on_report: list[Callable[[WatchedAccount, MarginReport], object]] = []
        self._refreshed: OrderedDict[str, Refreshed] = OrderedDict()  # least recently refreshed first
        self._locks: dict[str, asyncio.Lock] = {}
        self._accounts: dict[str, WatchedAccount] = {}
        self._market: SnapshotBuild | None = None
        self._market_monotonic = 0.0
        self._market_lock = asyncio.Lock()

    # --- market ---------------------------------------------------------------------------------------------

    async def refresh_market(self) -> SnapshotBuild:
        urls = self.settings.venues
        sources = SnapshotSources(
            pyth_url=urls.pyth, deribit_url=urls.deribit, derive_url=urls.derive, hyperliquid_url=urls.hyperliquid,
            pyth_feeds=self.settings.pyth_feeds, hyperliquid_dexes=self.settings.hyperliquid_dexes,
            timeout_s=self.settings.market_timeout_s,
        )
        now = self.clock()
        build = await fetch_market_snapshot(
            self.session, sources, assets=self.settings.assets, now=now, previous=self._market,
            policies=self.aggregation_policies(), extra=self.chainlink_sources(now),
            spot_only=self.settings.spot_only_assets, notes=self.settings.price_notes,
        )
        self._market, self._market_monotonic = build, time.monotonic()
        if self.store is not None:
            with contextlib.suppress(StoreUnavailable):  # the snapshot still serves; its history resumes later
                await self.store.save_market_snapshot(build.snapshot)
        return build

    def aggregation_policies(self) -> dict[str, AggregationPolicy]:
        """The default policy, with a quorum of one for single-source assets and the peg of pegged ones."""
        single, pegs = self.settings.single_source_assets, self.settings.pegs
        return {
            asset: AggregationPolicy(quorum=1 if asset in single else AggregationPolicy.quorum, peg=pegs.get(asset))
            for asset in {*single, *pegs}
        }

    def chainlink_sources(self, now: datetime) -> dict[str, ExtraSource]:
        """`chainlink@CHAIN` for each chain of `chainlink_chains` the service has a client for: its feeds read in one
        batch pinned to one block, handed to the aggregation policy beside the venues' prices."""
        onto = now if self.settings.chainlink_age_at_block else None

        def source(client: ChainClient) -> ExtraSource:
            async def fetch() -> list[PriceObservation]:
                return await fetch_chainlink_observations(client, age_at_block_onto=onto)
            return fetch

        wanted = self.settings.chainlink_chains
        return {f"chainlink@{c.config.name}": source(c) for c in self.clients if c.config.name in wanted}

    async def market_snapshot(self) -> MarketSnapshot:
        async with self._market_lock:
            stale = time.monotonic() - self._market_monotonic > self.settings.market_ttl_s
            if self._market is None or stale:
                await self.refresh_market()
            assert self._market is not None
            return self._market.snapshot

    # --- accounts -------------------------------------------------------------------------------------------

    async def watched_account(self, account_id: str) -> WatchedAccount:
        """Raises LookupError for an account the service does not watch."""
        if self.store is not None:
            try:
                found = await self.store.get_account(account_id)
            except StoreUnavailable as e:
                found = self._accounts.get(account_id)  # the last copy read, while the database is away
                if found is None:
                    raise ConnectionError(f"account {account_id!r} cannot be looked up: database unavailable") from e
            except StoreInputRefused as e:
                raise InputError("account_id", str(e)) from e
            if found is not None:
                self._accounts[account_id] = found
                return found
        elif account_id in self._accounts:
            return self._accounts[account_id]
        raise LookupError(f"no watched account {account_id!r}")

    def watch(self, account: WatchedAccount) -> None:
        """Serve an account without a database (tests, and a service run with no store)."""
        self._accounts[account.id] = account

    async def refresh_account(self, account: WatchedAccount) -> Refreshed:
        """The account's cached refresh while fresh, else a new one: stored and passed to the `on_report` hooks once,
        however many requests (or scheduler runs) asked for it meanwhile."""

        async def store_and_announce(refreshed: Refreshed) -> Refreshed:
            stored = await self._store_refresh(account, refreshed)
            for hook in self.on_report:
                hook(account, stored.report)
            return stored

        addresses = compute_address_chains(account.addresses)
        return await self._refresh(f"account:{account.id}", addresses, account.venue_accounts, store_and_announce)

    async def account_risk(self, account_id: str) -> MarginReport:
        account = await self.watched_account(account_id)
        cached = self._fresh(f"account:{account.id}")
        return self._aged(cached or await self.refresh_account(account))

    async def account_history(
        self, account_id: str, *, since: datetime | None, until: datetime | None, limit: int
    ) -> AccountHistory:
        """A page of the account's stored reports, newest first. Raises LookupError for an unknown account,
        ConnectionError when there is no database or it is down."""
        store = await self._history_store(account_id)
        try:
            rows = await store.report_history(account_id, since=since, until=until, limit=limit + 1)
        except StoreUnavailable as e:
            raise ConnectionError(f"the history of account {account_id!r} cannot be read: {e}") from e
        except StoreInputRefused as e:
            raise InputError("account_id", str(e)) from e
        return page_of_history(account_id, rows, since=since, until=until, limit=limit)

    async def stored_report(self, account_id: str, report_id: int) -> StoredReport | None:
        """One stored report of the account; None when it has none with this id (another account's is none of
        its). Raises LookupError for an unknown account, ConnectionError when there is no database or it is down."""
        store = await self._history_store(account_id)
        try:
            stored = await store.report(report_id)
        except StoreUnavailable as e:
            raise ConnectionError(f"report {report_id} cannot be read: {e}") from e
        except StoreInputRefused as e:
            raise InputError("report_id", str(e)) from e
        return stored if stored is not None and stored.account_id == account_id else None

    async def _history_store(self, account_id: str) -> AsyncStore:
        await self.watched_account(account_id)  # an unknown account is a 404 whether or not history is kept
        if self.store is None:
            raise ConnectionError("report history needs the database: this service runs without one")
        return self.store

    # --- wallets --------------------------------------------------------------------------------------------

    async def wallet_risk(self, address: str) -> MarginReport:
        return self._aged(await self._wallet(address))

    async def wallet_positions(self, address: str) -> PositionsView:
        refreshed = await self._wallet(address)
        snap = refreshed.positions
        return PositionsView(
            address=address, taken_at=snap.taken_at, age_seconds=self._age(refreshed), complete=snap.complete,
            sources=snap.sources, blocks=snap.blocks, positions=snap.positions,
        )

    async def wallet_credit(self, address: str) -> CreditView:
        refreshed = await self._wallet(address)
        return compute_credit_view(
            address, refreshed.report, computed_at=refreshed.computed_at, age_seconds=self._age(refreshed),
            signer_key=self.settings.signer_key,
        )

    async def market(self, asset: str) -> MarketView:
        if asset not in self.settings.assets:
            raise LookupError(f"asset {asset!r} is not in the service's market ({', '.join(self.settings.assets)})")
        snapshot = await self.market_snapshot()
        tag = re.compile(rf"(^|[:/]){re.escape(asset)}($|[/:])")
        return MarketView(
            asset=asset, as_of=snapshot.as_of, age_seconds=max(0.0, (self.clock() - snapshot.as_of).total_seconds()),
            spot=snapshot.spot.get(asset), dispersion=snapshot.dispersion.get(asset),
            forwards=snapshot.forwards.get(asset, {}), vol=snapshot.vol.get(asset),
            sources=[s for s in snapshot.sources if tag.search(s.name)],
        )

    # --- the refresh ----------------------------------------------------------------------------------------

    async def _wallet(self, address: str) -> Refreshed:
        if not _ADDRESS.fullmatch(address):  # `$` alone would let a trailing newline through
            raise InputError("address", "not a 0x-prefixed 20-byte hex address")
        key = f"wallet:{address.lower()}"
        cached = self._fresh(key)
        if cached is not None:
            return cached
        venues = {"hyperliquid": [address]} if self.settings.venues.hyperliquid else {}
        return await self._refresh(key, {address: None}, venues)

    def _fresh(self, key: str) -> Refreshed | None:
        cached = self._refreshed.get(key)
        if cached is not None and time.monotonic() - cached.monotonic <= self.settings.report_ttl_s:
            return cached
        return None

    async def _refresh(
        self,
        key: str,
        addresses: Mapping[str, Collection[str] | None],
        venue_accounts: dict[str, list[str]],
        finish: Callable[[Refreshed], Awaitable[Refreshed]] | None = None,
    ) -> Refreshed:
        """A new refresh under `key` (cached), unless a fresh one is there; `finish` (storing it) runs on a new one
        only, inside the lock, so waiters take the finished result."""
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:  # one refresh per account at a time; waiters take its result
            cached = self._fresh(key)
            if cached is not None:
                return cached
            market, positions = await asyncio.gather(
                self.market_snapshot(),
                fetch_account_positions(
                    evm_addresses=addresses, venue_accounts=venue_accounts, clients=self.clients,
                    session=self.session, settings=self.settings, discovery=self.discovery, now=self.clock(),
                ),
            )
            report = self._compute(positions, market)
            refreshed = Refreshed(report=report, positions=positions, market=market, computed_at=self.clock(),
                                  monotonic=time.monotonic())
            if finish is not None:
                refreshed = await finish(refreshed)
            self._remember(key, refreshed)
            return refreshed

    def wallet_cache_size(self) -> int:
        return len(self._refreshed)

    def _remember(self, key: str, refreshed: Refreshed) -> None:
        """Cache a refresh; the wallet routes take any address, so the cache is bounded (oldest dropped first)."""
        self._refreshed[key] = refreshed
        self._refreshed.move_to_end(key)
        while len(self._refreshed) > self.settings.max_cached_reports:
            evicted, _ = self._refreshed.popitem(last=False)
            lock = self._locks.get(evicted)
            if lock is not None and not lock.locked():
                del self._locks[evicted]

    def _compute(self, snapshot: PositionSnapshot, market: MarketSnapshot) -> MarginReport:
        """The report; a position the market cannot price (no price, no surface, expired) is left out with a
        warning and makes the report incomplete, rather than sinking the whole account."""
        positions = list(snapshot.positions)
        left_out: list[str] = []
        while True:
            try:
                report = compute_margin(
                    positions, market, self.params, sources=snapshot.sources, venue_states=snapshot.venue_states
                )
                break
            except InputError as e:
                match = _POSITION_FIELD.match(e.field)
                if match is None:
                    raise
                dropped = positions.pop(int(match.group(1)))
                left_out.append(f"left out {dropped.kind} {dropped.id or ''} on {dropped.venue}: {e.reason}")
        if not left_out:
            return report
        return report.model_copy(update={"complete": False, "warnings": [*report.warnings, *left_out]})

    async def _store_refresh(self, account: WatchedAccount, refreshed: Refreshed) -> Refreshed:
        if self.store is None:
            return refreshed
        try:
            await self.store.save_refresh(
                account.id, refreshed.positions, refreshed.market, refreshed.report, computed_at=refreshed.computed_at
            )
            return refreshed
        except StoreUnavailable as e:
            return self._unstored(refreshed, f"history not stored: database unavailable ({e})", complete=False)
        except StoreInputRefused as e:  # a position read from a chain or venue that the database cannot hold
            return self._unstored(refreshed, f"history not stored: {e}", complete=False)
        except AccountNotFound:
            self._accounts.pop(account.id, None)
            return self._unstored(refreshed, "history not stored: the account was removed during the refresh",
                                  complete=refreshed.report.complete)

    @staticmethod
    def _unstored(refreshed: Refreshed, warning: str, *, complete: bool) -> Refreshed:
        warned = refreshed.report.model_copy(
            update={"complete": complete, "warnings": [*refreshed.report.warnings, warning]}
        )
        return Refreshed(warned, refreshed.positions, refreshed.market, refreshed.computed_at, refreshed.monotonic)

    def _age(self, refreshed: Refreshed) -> float:
        return max(0.0, (self.clock() - refreshed.computed_at).total_seconds())

    def _aged(self, refreshed: Refreshed) -> MarginReport:
        return refreshed.report.model_copy(
            update={"computed_at": refreshed.computed_at, "age_seconds": self._age(refreshed)}
        )
