"""The market snapshot: every price and surface source fetched concurrently, judged, and frozen into one immutable,
timestamped `MarketSnapshot` (the model risk_core reads), with the evidence behind each figure.

`compute_market_snapshot` is the pure assembly; `fetch_market_snapshot` runs the clients (each failure becomes that
source's `failed` status, never an exception) and then assembles. Scheduling belongs to the aggregator.

What lands in the snapshot:
- `spot[asset]`: the aggregated price, only when the policy produced one (a failed price is absent, never a
  guess; a frozen price is the held previous price, its status `stale`).
- `dispersion[asset]`: the aggregate's dispersion (widened to the unconfirmed move while frozen).
- `forwards[asset]` and `vol[asset]`: from the fitted eSSVI surface (`oracles.surface`), one slice per expiry.
- `sources`: one status per fetch (`fetch:SOURCE`), per price (`price:ASSET/USD`, its reason naming the sources
  used, the dispersion and every flag), per observation (`SOURCE:ASSET/USD`), and per surface (`vol:ASSET`).
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

import aiohttp

from oracles.aggregation import AggregatedPrice, AggregationPolicy, compute_aggregate
from oracles.deribit import fetch_deribit_market
from oracles.derive import fetch_derive_index, fetch_derive_market
from oracles.hyperliquid import fetch_hyperliquid_observations
from oracles.observations import PriceObservation
from oracles.pyth import fetch_pyth_observations
from oracles.surface import SurfaceFit, SurfacePolicy, VenueChain, compute_surface
from risk_core.schema.market import MarketSnapshot, SourceStatus
from venue_http import SourceError


@dataclass(frozen=True)
class SnapshotBuild:
    """A snapshot and the evidence behind it."""

    snapshot: MarketSnapshot
    prices: Mapping[str, AggregatedPrice]
    surfaces: Mapping[str, SurfaceFit]
    fetches: tuple[SourceStatus, ...]
    timings_s: Mapping[str, float] = field(default_factory=dict)


def surface_status(fit: SurfaceFit) -> SourceStatus:
    fitted = sum(1 for s in fit.slices if s.status == "fitted")
    head = f"{fit.status}: {fitted}/{len(fit.slices)} expiries fitted (eSSVI) from {', '.join(fit.venues)}"
    return SourceStatus(
        name=f"vol:{fit.asset}",
        status=fit.status,
        reason="; ".join([head, *fit.flags]),
        as_of=fit.as_of,
        asset=fit.asset,
    )


def compute_market_snapshot(
    *,
    as_of: datetime,
    prices: Mapping[str, AggregatedPrice],
    surfaces: Mapping[str, SurfaceFit],
    fetches: Sequence[SourceStatus] = (),
) -> MarketSnapshot:
    spot: dict[str, float] = {}
    dispersion: dict[str, float] = {}
    sources: list[SourceStatus] = list(fetches)
    for asset, agg in sorted(prices.items()):
        if agg.quote != "USD":
            raise ValueError(f"spot of {asset} must be in USD, not {agg.quote}")
        sources.extend(agg.source_statuses())
        if agg.price is not None:
            spot[asset] = agg.price
            dispersion[asset] = agg.dispersion
    forwards = {}
    vol = {}
    for asset, fit in sorted(surfaces.items()):
        sources.append(surface_status(fit))
        if fit.surface is not None:
            vol[asset] = fit.surface
            forwards[asset] = dict(sorted(fit.forwards.items()))
    return MarketSnapshot(
        as_of=as_of, spot=spot, forwards=forwards, vol=vol, dispersion=dispersion, sources=sources,
    )


@dataclass(frozen=True)
class SnapshotSources:
    """Where each venue is (None: not used) and what to ask it for."""

    pyth_url: str | None = None
    deribit_url: str | None = None
    derive_url: str | None = None
    hyperliquid_url: str | None = None
    pyth_feeds: Mapping[str, str] = field(default_factory=dict)  # asset -> Pyth feed id
    deribit_currencies: tuple[str, ...] = ("BTC", "ETH")
    derive_option_currencies: tuple[str, ...] = ("BTC", "ETH")
    derive_index_currencies: tuple[str, ...] = ("SOL",)
    hyperliquid_dexes: tuple[str, ...] = ()  # HIP-3 dexes whose oracle prices to read too (e.g. "xyz")
    timeout_s: float = 5.0
    timeouts: Mapping[str, float] = field(default_factory=dict)  # per venue ("pyth", "deribit", ...), overrides

    def timeout(self, venue: str) -> float:
        return self.timeouts.get(venue, self.timeout_s)


ExtraSource = Callable[[], Awaitable[list[PriceObservation]]]
Offload = Callable[[Callable[[], SurfaceFit]], Awaitable[SurfaceFit]]  # runs a CPU-bound call off the event loop


@dataclass
class _Gathered:
    observations: list[PriceObservation] = field(default_factory=list)
    chains: list[VenueChain] = field(default_factory=list)
    fetches: list[SourceStatus] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


async def fetch_market_snapshot(
    session: aiohttp.ClientSession,
    sources: SnapshotSources,
    *,
    assets: Sequence[str],
    now: datetime,
    previous: SnapshotBuild | None = None,
    policies: Mapping[str, AggregationPolicy] | None = None,
    surface_policy: SurfacePolicy | None = None,
    extra: Mapping[str, ExtraSource] | None = None,
    spot_only: Collection[str] = (),
    notes: Mapping[str, str] | None = None,
    offload: Offload = asyncio.to_thread,
) -> SnapshotBuild:
    """Fetch every source concurrently, aggregate each asset's price, fit each asset's surface, and assemble.

    `now` is the snapshot's time (the clock is the caller's); `previous` gives the jump check its reference;
    `extra` adds observation sources by name (e.g. the on-chain Chainlink reader). A source that fails becomes
    a `fetch:NAME` status `failed` with the reason; nothing here raises for a venue's fault. `spot_only` assets
    are priced but have no options anywhere (tokens such as USDC or wstETH): no `vol:ASSET` failure for them.
    `notes` adds a flag to an asset's price (what its reason must say, e.g. that a source only approximates it).
    `offload(fn, *args)` runs the surface fits off the event loop: a thread by default, the caller's process pool
    in a service (a fit is a tenth of a second of CPU that, in a thread, would hold the interpreter the loop needs).
    """
    wanted = set(assets)
    jobs: dict[str, Callable[[], Awaitable[tuple[list[PriceObservation], list[VenueChain]]]]] = {}
    job_asset: dict[str, str] = {}  # the one asset a per-currency fetch is about

    def observations_only(fetch: ExtraSource) -> Callable[[], Awaitable[tuple[list[PriceObservation],
                                                                                list[VenueChain]]]]:
        async def run() -> tuple[list[PriceObservation], list[VenueChain]]:
            return await fetch(), []
        return run

    if sources.pyth_url and sources.pyth_feeds:
        feeds = {a: f for a, f in sources.pyth_feeds.items() if a in wanted}
        jobs["pyth"] = observations_only(functools.partial(
            fetch_pyth_observations, session, sources.pyth_url, feeds, timeout_s=sources.timeout("pyth")))
    if sources.hyperliquid_url:
        jobs["hyperliquid"] = observations_only(functools.partial(
            fetch_hyperliquid_observations, session, sources.hyperliquid_url, list(assets), now=now,
            timeout_s=sources.timeout("hyperliquid")))
        for dex in sources.hyperliquid_dexes:
            jobs[f"hyperliquid-{dex}"] = observations_only(functools.partial(
                fetch_hyperliquid_observations, session, sources.hyperliquid_url, list(assets), now=now, dex=dex,
                timeout_s=sources.timeout("hyperliquid")))
    for cur in sources.deribit_currencies:
        if sources.deribit_url and cur in wanted:
            jobs[f"deribit:{cur}"] = _with_chain(fetch_deribit_market, session, sources.deribit_url, cur,
                                                 sources.timeout("deribit"))
            job_asset[f"deribit:{cur}"] = cur
    for cur in sources.derive_option_currencies:
        if sources.derive_url and cur in wanted:
            jobs[f"derive:{cur}"] = _with_chain(fetch_derive_market, session, sources.derive_url, cur,
                                                sources.timeout("derive"))
            job_asset[f"derive:{cur}"] = cur
    for cur in sources.derive_index_currencies:
        if sources.derive_url and cur in wanted:
            jobs[f"derive:{cur}"] = observations_only(functools.partial(
                fetch_derive_index, session, sources.derive_url, cur, timeout_s=sources.timeout("derive")))
            job_asset[f"derive:{cur}"] = cur
    for name, fetch in (extra or {}).items():
        jobs[name] = observations_only(fetch)

    gathered = _Gathered()
    started = time.perf_counter()

    async def run(name: str) -> None:
        t0 = time.perf_counter()
        asset = job_asset.get(name)
        try:
            obs, chains = await jobs[name]()
        except SourceError as e:
            gathered.fetches.append(SourceStatus(name=f"fetch:{name}", status="failed", reason=str(e), as_of=now,
                                                 asset=asset))
        except Exception as e:  # noqa: BLE001 - a source's bug must not sink the snapshot: it fails alone
            gathered.fetches.append(SourceStatus(name=f"fetch:{name}", status="failed",
                                                 reason=f"unexpected error: {type(e).__name__}: {e}", as_of=now,
                                                 asset=asset))
        else:
            gathered.observations.extend(o for o in obs if o.asset in wanted)
            gathered.chains.extend(chains)
            gathered.fetches.append(SourceStatus(name=f"fetch:{name}", status="ok",
                                                 reason=f"{len(obs)} prices, {sum(len(c.quotes) for c in chains)} "
                                                        "option quotes", as_of=now, asset=asset))
        gathered.timings[f"fetch:{name}"] = time.perf_counter() - t0

    await asyncio.gather(*(run(name) for name in sorted(jobs)))
    gathered.timings["fetch"] = time.perf_counter() - started

    pol = policies or {}
    prices = {}
    for asset in assets:
        obs = [o for o in gathered.observations if o.asset == asset and o.quote == "USD"]
        prev = previous.prices.get(asset) if previous is not None else None
        prices[asset] = compute_aggregate(obs, asset=asset, now=now, policy=pol.get(asset), previous=prev)
        note = (notes or {}).get(asset)
        if note is not None:
            prices[asset] = replace(prices[asset], flags=(*prices[asset].flags, note))

    t0 = time.perf_counter()
    by_asset: dict[str, list[VenueChain]] = {}
    for chain in gathered.chains:
        by_asset.setdefault(chain.asset, []).append(chain)
    fits = await asyncio.gather(*(
        offload(functools.partial(compute_surface, chains, asset=asset, as_of=now, policy=surface_policy))
        for asset, chains in sorted(by_asset.items())
    ))
    surfaces = {fit.asset: fit for fit in fits}
    gathered.timings["surfaces"] = time.perf_counter() - t0
    for asset in assets:
        if asset not in surfaces and asset not in spot_only:
            gathered.fetches.append(SourceStatus(name=f"vol:{asset}", status="failed", as_of=now, asset=asset,
                                                 reason="no option quotes from any venue: no surface"))
    snapshot = compute_market_snapshot(as_of=now, prices=prices, surfaces=surfaces, fetches=gathered.fetches)
    return SnapshotBuild(snapshot=snapshot, prices=prices, surfaces=surfaces, fetches=tuple(gathered.fetches),
                         timings_s=dict(gathered.timings))


def _with_chain(
    fetch: Callable[..., Awaitable[tuple[VenueChain, list[PriceObservation]]]],
    session: aiohttp.ClientSession, url: str, currency: str, timeout_s: float,
) -> Callable[[], Awaitable[tuple[list[PriceObservation], list[VenueChain]]]]:
    async def run() -> tuple[list[PriceObservation], list[VenueChain]]:
        chain, obs = await fetch(session, url, currency, timeout_s=timeout_s)
        return obs, [chain]
    return run
