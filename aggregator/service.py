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
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import aiohttp
from pydantic import BaseModel, ConfigDict, Field

from adapters.onchain import DiscoveryCache
from aggregator.credit import MARGIN_MODELS, CreditView, compute_credit_view
from aggregator.engine_pool import BudgetExceeded, EnginePool, WorkerFailed
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
from oracles.surface import SurfaceFit
from risk_core.errors import InputError
from risk_core.margin.context import PricingContext, content_hash, pricing_context
from risk_core.margin.engine import compute_margin
from risk_core.schema.market import MarketSnapshot, SourceStatus, VolSurface
from risk_core.schema.params import RiskParams, default_params
from risk_core.schema.positions import Position
from risk_core.schema.report import MarginReport
from risk_core.schema.request import MarginRequest
from venue_http import SourceError

Clock = Callable[[], datetime]
ADDRESS_PATTERN = r"^0x[0-9a-fA-F]{40}$"
_ADDRESS = re.compile(ADDRESS_PATTERN)


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
        engine: EnginePool | None = None,
        with_history: Callable[[MarginRequest], MarginRequest] | None = None,
    ) -> None:
        """`engine` computes the reports off the event loop (else a thread does, as the engine releases no lock
        the loop needs but would hold it for the whole computation). `with_history` gives a request asking for the
        fhs model the daily history its market lacks (the API passes api.fhs_history's recorded one)."""
        self.with_history = with_history
        self.settings = settings
        self.engine = engine
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
        self._account_read_at: dict[str, float] = {}  # account id -> when its definition was read from the store
        self._market: SnapshotBuild | None = None
        self._market_monotonic = 0.0
        self._market_task: asyncio.Task[SnapshotBuild] | None = None
        self._started = time.monotonic()
        self._watched: tuple[str, ...] = ()  # the accounts the scheduler refreshes: /health watches their age

    # --- market ---------------------------------------------------------------------------------------------

    async def refresh_market(self) -> SnapshotBuild:
        """A new snapshot, within `refresh_timeout_s` as a whole (each source has its own timeout within it).

        Raises:
            TimeoutError: the refresh ran out its time; the previous snapshot stays.
        """
        async with asyncio.timeout(self.settings.refresh_timeout_s):
            return await self._refresh_market()

    async def _refresh_market(self) -> SnapshotBuild:
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
            offload=self._fit_off_loop,
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

        timeout = self.settings.source_timeout_s

        def source(client: ChainClient) -> ExtraSource:
            async def fetch() -> list[PriceObservation]:
                try:
                    async with asyncio.timeout(timeout):
                        return await fetch_chainlink_observations(client, age_at_block_onto=onto)
                except TimeoutError as e:
                    raise SourceError(f"chain {client.config.name} did not answer within {timeout:g} s") from e
            return fetch

        wanted = self.settings.chainlink_chains
        return {f"chainlink@{c.config.name}": source(c) for c in self.clients if c.config.name in wanted}

    async def refresh_market_shared(self) -> SnapshotBuild:
        """The market refresh under way, or a new one: callers and the scheduler share one, and none holds a lock
        while it runs. A refresh past its time is abandoned (it raises TimeoutError) and the next call starts anew."""
        task = self._market_task
        if task is None or task.done():
            task = self._market_task = asyncio.get_running_loop().create_task(self.refresh_market())
        return await asyncio.shield(task)  # a caller that gives up does not cancel the others' refresh

    async def market_snapshot(self) -> MarketSnapshot:
        """The current snapshot, refreshed when older than `market_ttl_s`. When a refresh fails or runs out its
        time, the previous snapshot is served (its age and sources say how stale it is; /health says degraded).

        Raises:
            ConnectionError: there is no snapshot at all.
        """
        stale = time.monotonic() - self._market_monotonic > self.settings.market_ttl_s
        if self._market is None or stale:
            try:
                await self.refresh_market_shared()
            except TimeoutError as e:
                if self._market is None:
                    raise ConnectionError(
                        f"the market refresh did not finish within {self.settings.refresh_timeout_s:g} s"
                    ) from e
        assert self._market is not None
        return self._market.snapshot

    # --- health ---------------------------------------------------------------------------------------------

    def watching(self, account_ids: Collection[str]) -> None:
        """The accounts the scheduler refreshes, whose age /health watches."""
        self._watched = tuple(account_ids)

    def health_issues(self) -> list[str]:
        """What is wrong now, one line each, naming it: the market or a watched account older than its freshness
        limit, and every chain read that failed (`SOURCE@CHAIN`: the market's Chainlink feeds, a watched account's
        on-chain positions) in the latest refreshes. A venue's failure alone is not one: the market and reports say
        so, and their age tells when it matters. Read from memory only: /health never waits on anything."""
        now, settings = time.monotonic(), self.settings
        issues: list[str] = []
        if self._market is None:
            if now - self._started > settings.market_stale_after_s:
                issues.append(f"market: no snapshot in {now - self._started:.0f} s")
        else:
            age = now - self._market_monotonic
            if age > settings.market_stale_after_s:
                issues.append(f"market: snapshot {age:.0f} s old (limit {settings.market_stale_after_s:g} s)")
            issues += [f"chain down: {s.name.removeprefix('fetch:')} failed: {s.reason}"
                       for s in self._market.fetches if s.status == "failed" and "@" in s.name]
        for account_id in self._watched:
            refreshed = self._refreshed.get(f"account:{account_id}")
            if refreshed is None:
                if now - self._started > settings.account_stale_after_s:
                    issues.append(f"account {account_id}: no report in {now - self._started:.0f} s")
                continue
            age = now - refreshed.monotonic
            if age > settings.account_stale_after_s:
                issues.append(f"account {account_id}: report {age:.0f} s old "
                              f"(limit {settings.account_stale_after_s:g} s)")
            issues += [f"chain down: account {account_id}'s source {s.name} failed: {s.reason}"
                       for s in refreshed.positions.sources if s.status == "failed" and "@" in s.name]
        return issues

    # --- accounts -------------------------------------------------------------------------------------------

    async def watched_account(self, account_id: str) -> WatchedAccount:
        """Raises LookupError for an account the service does not watch. A definition read from the store is reused
        for `account_reread_s`: every account request read it again, a database round trip in a thread beside the
        event loop."""
        if self.store is not None:
            read_at = self._account_read_at.get(account_id)
            if read_at is not None and time.monotonic() - read_at < self.settings.account_reread_s:
                return self._accounts[account_id]
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
                self._account_read_at[account_id] = time.monotonic()
                return found
            self._account_read_at.pop(account_id, None)
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

    async def wallet_refresh(self, address: str) -> Refreshed:
        """The wallet's refresh (cached while fresh) with its positions and market, its report aged as served."""
        refreshed = await self._wallet(address)
        return Refreshed(self._aged(refreshed), refreshed.positions, refreshed.market, refreshed.computed_at,
                         refreshed.monotonic)

    def forget_wallet(self, address: str) -> None:
        """Drop the wallet's cached refresh: the next answer reads the chains again (after a transaction of its own)."""
        self._refreshed.pop(f"wallet:{address.lower()}", None)

    def chain_ids(self) -> dict[str, int]:
        """chain name -> chain id of every chain the service reads."""
        return {client.config.name: client.config.chain_id for client in self.clients}

    async def wallet_credit(self, address: str, model: str | None = None) -> CreditView:
        """The wallet's signed credit view under `model` (params.model: "grid" or "fhs"; None: the service's own).
        Raises InputError naming `model` for another, or when the fhs model has no history for the wallet's
        underlyings."""
        if model is not None and model not in MARGIN_MODELS:
            raise InputError("model", f"{model!r} is not a margin model: one of {', '.join(MARGIN_MODELS)}")
        refreshed = await self._wallet(address)
        report = refreshed.report
        if model is not None and model != report.model:
            report = await self._report_under(refreshed, model)
        return compute_credit_view(
            address, report, computed_at=refreshed.computed_at, age_seconds=self._age(refreshed),
            signer_key=self.settings.signer_key,
        )

    async def _report_under(self, refreshed: Refreshed, model: str) -> MarginReport:
        """The refresh's positions margined under another model, on its market (with the fhs model's history from
        `with_history` when the market has none)."""
        params = self.params.with_overrides({"model": model})
        market = refreshed.market
        if model == "fhs" and market.history is None and self.with_history is not None:
            request = MarginRequest(positions=list(refreshed.positions.positions), market=market,
                                    params={"model": model})
            market = self.with_history(request).market or market
        if model == "fhs" and market.history is None:
            raise InputError("model", "fhs: this service has no price history to draw the model's scenarios from")
        try:
            return await self._compute_off_loop(refreshed.positions, market, params)
        except InputError as e:
            if e.field.startswith("market.history"):
                raise InputError("model", f"fhs: {e.reason}") from e
            raise

    async def market(self, asset: str) -> MarketView:
        if asset not in self.settings.assets:
            raise LookupError(f"asset {asset!r} is not in the service's market ({', '.join(self.settings.assets)})")
        snapshot = await self.market_snapshot()
        return MarketView(
            asset=asset, as_of=snapshot.as_of, age_seconds=max(0.0, (self.clock() - snapshot.as_of).total_seconds()),
            spot=snapshot.spot.get(asset), dispersion=snapshot.dispersion.get(asset),
            forwards=snapshot.forwards.get(asset, {}), vol=snapshot.vol.get(asset),
            # a fetch about no one asset (pyth, hyperliquid, chainlink@CHAIN) feeds every asset: its failure concerns
            # this one too
            sources=[s for s in snapshot.sources if s.asset in (asset, None)],
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
            try:
                # bounded: the lock is never held longer, and a stalled refresh is abandoned for the next caller
                async with asyncio.timeout(self.settings.refresh_timeout_s):
                    refreshed = await self._refresh_now(addresses, venue_accounts, finish)
            except TimeoutError as e:
                raise ConnectionError(
                    f"the refresh of {key} did not finish within {self.settings.refresh_timeout_s:g} s"
                ) from e
            self._remember(key, refreshed)
            return refreshed

    async def _refresh_now(
        self,
        addresses: Mapping[str, Collection[str] | None],
        venue_accounts: dict[str, list[str]],
        finish: Callable[[Refreshed], Awaitable[Refreshed]] | None,
    ) -> Refreshed:
        market, positions = await asyncio.gather(
            self.market_snapshot(),
            fetch_account_positions(
                evm_addresses=addresses, venue_accounts=venue_accounts, clients=self.clients,
                session=self.session, settings=self.settings, discovery=self.discovery, now=self.clock(),
            ),
        )
        report = await self._compute_off_loop(positions, market)
        refreshed = Refreshed(report=report, positions=positions, market=market, computed_at=self.clock(),
                              monotonic=time.monotonic())
        if finish is not None:
            refreshed = await finish(refreshed)
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

    async def _fit_off_loop(self, fit: Callable[[], SurfaceFit]) -> SurfaceFit:
        """A surface fit in the engine pool, or in a thread when the pool cannot take it (saturated by what-ifs, or a
        worker lost): the market refresh neither waits on nor fails for the what-ifs' load."""
        if self.engine is not None:
            with contextlib.suppress(BudgetExceeded, WorkerFailed):
                return await self.engine.run(fit)
        return await asyncio.to_thread(fit)

    async def _compute_off_loop(
        self, snapshot: PositionSnapshot, market: MarketSnapshot, params: RiskParams | None = None
    ) -> MarginReport:
        """The report, computed in the engine pool (or a thread without one): never on the event loop.

        Raises:
            ConnectionError: the engine could not compute it within its budget (the route answers 503).
        """
        params = params or self.params
        if self.engine is None:
            return await asyncio.to_thread(compute_refresh_report, snapshot, market, params)
        try:
            return await self.engine.run(compute_refresh_report, snapshot, market, params)
        except (BudgetExceeded, WorkerFailed) as e:
            raise ConnectionError(f"the margin engine could not compute the report: {e}") from e

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
            self._account_read_at.pop(account.id, None)
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


def compute_refresh_report(snapshot: PositionSnapshot, market: MarketSnapshot, params: RiskParams) -> MarginReport:
    """The report of a refresh (run in an engine worker), priced in this worker's context of the snapshot: the
    accounts margined on one snapshot share the instruments valued on it. A position the market cannot price (no
    price, no surface, expired) is left out by the engine, named in the report's issues, and makes the report
    incomplete."""
    context = _worker_context(market, params)
    return compute_margin(
        snapshot.positions, context.market, context.params, sources=snapshot.sources,
        venue_states=snapshot.venue_states, context=context,
    )


_WORKER_CONTEXTS: OrderedDict[tuple[str, str], PricingContext] = OrderedDict()
_WORKER_CONTEXTS_KEPT = 2  # the current snapshot and the one before it (accounts refreshed across a new one)
_WORKER_CONTEXTS_LOCK = threading.Lock()


def _worker_context(market: MarketSnapshot, params: RiskParams) -> PricingContext:
    """This process's pricing context of (market, params), by content: each call receives a fresh copy of the
    snapshot, so identity cannot tell it is the same one."""
    key = (content_hash(market), content_hash(params))
    with _WORKER_CONTEXTS_LOCK:  # without an engine pool, refreshes compute in threads
        context = _WORKER_CONTEXTS.get(key)
        if context is None:
            context = _WORKER_CONTEXTS[key] = pricing_context(market, params)
            while len(_WORKER_CONTEXTS) > _WORKER_CONTEXTS_KEPT:
                _WORKER_CONTEXTS.popitem(last=False)
    return context
