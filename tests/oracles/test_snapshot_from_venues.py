"""The snapshot builder against the local venues (real routes, fixtures from recorded data), and every way a venue
fails: each becomes that source's `failed` status with the reason, the rest of the snapshot stands."""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import AsyncIterator
from datetime import timedelta

import aiohttp
import pytest

from oracles.aggregation import AggregationPolicy
from oracles.observations import PriceObservation, observation_from_chainlink_round
from oracles.snapshot import SnapshotBuild, SnapshotSources, fetch_market_snapshot
from risk_core.margin.engine import compute_margin
from risk_core.schema.market import ESSVISurface
from risk_core.schema.params import default_params
from risk_core.schema.positions import PerpPosition, SpotPosition
from venue_http import SourceError
from venue_servers.pyth import FEED_IDS
from venue_servers.runner import VenueServers, run_venue_servers
from venue_servers.scenario import default_scenario as venue_scenario
from venue_servers.scenario import pyth_confidence_ratio

ASSETS = ("BTC", "ETH", "SOL")


@pytest.fixture
async def venues() -> AsyncIterator[VenueServers]:
    async with run_venue_servers() as servers:
        yield servers


def sources_of(v: VenueServers, timeouts: dict[str, float]) -> SnapshotSources:
    return SnapshotSources(pyth_url=v.urls["pyth"], deribit_url=v.urls["deribit"], derive_url=v.urls["derive"],
                           hyperliquid_url=v.urls["hyperliquid"], pyth_feeds=FEED_IDS, timeout_s=30.0,
                           timeouts=timeouts)


async def build(v: VenueServers, timeouts: dict[str, float] | None = None) -> SnapshotBuild:
    async with aiohttp.ClientSession() as session:
        return await fetch_market_snapshot(session, sources_of(v, timeouts or {}), assets=ASSETS,
                                           now=v.scenario.as_of + timedelta(seconds=2))


def statuses(b: SnapshotBuild) -> dict[str, tuple[str, str | None]]:
    return {s.name: (s.status, s.reason) for s in b.snapshot.sources}


async def test_full_snapshot_for_btc_eth_sol(venues: VenueServers) -> None:
    b = await build(venues)
    snap, scn = b.snapshot, venues.scenario
    for asset, venue_names in (("BTC", ("pyth", "deribit-index", "derive-index", "hyperliquid-oracle")),
                               ("ETH", ("pyth", "deribit-index", "derive-index", "hyperliquid-oracle")),
                               ("SOL", ("pyth", "derive-index", "hyperliquid-oracle"))):
        expected = [scn.price(n, asset) for n in venue_names]
        # Pyth quantises to 1e-8, Hyperliquid's and Derive's decimal strings to 4 places
        assert snap.spot[asset] == pytest.approx(statistics.median(expected), rel=1e-7)
        spread = (max(expected) - min(expected)) / snap.spot[asset]
        assert snap.dispersion[asset] == pytest.approx(max(spread, pyth_confidence_ratio()), rel=1e-3)
        assert b.prices[asset].status == "ok" and len(b.prices[asset].sources) == len(venue_names)
    for asset in ("BTC", "ETH"):
        surface = snap.vol[asset]
        assert isinstance(surface, ESSVISurface) and len(surface.essvi) >= 10
        assert b.surfaces[asset].venues == ("deribit", "derive")
        assert set(snap.forwards[asset]) == {s.expiry for s in surface.essvi} | set(snap.forwards[asset])
    assert "SOL" not in snap.vol
    assert statuses(b)["vol:SOL"][0] == "failed"
    assert all(s.status == "ok" for s in b.fetches if s.name.startswith("fetch:"))
    assert snap.as_of == scn.as_of + timedelta(seconds=2)
    with pytest.raises(Exception, match="frozen"):
        snap.spot = {}  # type: ignore[misc]


@pytest.mark.parametrize(
    ("venue", "route", "fault", "source", "words"),
    [
        ("deribit", "/public/get_book_summary_by_currency", "http-500", "fetch:deribit:BTC", "HTTP 500"),
        ("pyth", "/v2/updates/price/latest", "malformed-json", "fetch:pyth", "malformed JSON"),
        ("hyperliquid", "metaAndAssetCtxs", "http-500", "fetch:hyperliquid", "HTTP 500"),
        ("derive", "public/get_tickers", "rename-field", "fetch:derive:BTC",
         "unexpected derive perp tickers response: tickers.BTC-PERP.M: Field required"),
        ("deribit", "/public/get_book_summary_by_currency", "rename-field", "fetch:deribit:BTC",
         "unexpected deribit option book summary response: mark_price: Field required"),
        ("pyth", "/v2/updates/price/latest", "rename-field", "fetch:pyth",
         "unexpected Hermes price/latest response: parsed.0.price.publish_time: Field required"),
    ],
)
async def test_a_failing_venue_is_a_failed_source_not_a_crash(
    venues: VenueServers, venue: str, route: str, fault: str, source: str, words: str | None
) -> None:
    venues.faults[venue].set(route, fault)  # type: ignore[arg-type]
    b = await build(venues)
    status, reason = statuses(b)[source]
    assert status == "failed" and reason
    if words:
        assert words in reason
    # the other venues still price every asset
    assert set(b.snapshot.spot) == set(ASSETS)
    assert venues.faults[venue].hits[route] >= 1


async def test_a_venue_that_hangs_times_out_as_a_failed_source(venues: VenueServers) -> None:
    venues.faults["hyperliquid"].set("metaAndAssetCtxs", "hang")
    b = await build(venues, timeouts={"hyperliquid": 0.3})
    venues.faults["hyperliquid"].release()
    status, reason = statuses(b)["fetch:hyperliquid"]
    assert status == "failed" and reason is not None and reason.startswith("timeout after 0.3 s")
    assert b.prices["SOL"].status == "ok" and len(b.prices["SOL"].sources) == 2  # pyth and derive


async def test_the_renamed_derive_field_fails_the_derive_chain_but_deribit_still_fits(venues: VenueServers) -> None:
    venues.faults["derive"].set("public/get_tickers", "rename-field")
    b = await build(venues)
    assert b.surfaces["BTC"].venues == ("deribit",)
    assert isinstance(b.snapshot.vol["BTC"], ESSVISurface)


async def test_all_price_venues_down_leaves_no_spot(venues: VenueServers) -> None:
    for venue, route in (("pyth", "/v2/updates/price/latest"), ("hyperliquid", "metaAndAssetCtxs"),
                         ("derive", "public/get_tickers"), ("deribit", "/public/get_index")):
        venues.faults[venue].set(route, "http-500")
    b = await build(venues)
    assert b.snapshot.spot == {}
    for asset in ASSETS:
        assert statuses(b)[f"price:{asset}/USD"][0] == "failed"


async def test_extra_sources_plug_in_and_fail_alone(venues: VenueServers) -> None:
    """Chainlink readings (or any normalised observations) join through `extra`; a bad round is dropped with its
    reason, a reader that fails is a failed fetch."""
    now = venues.scenario.as_of + timedelta(seconds=2)

    async def chainlink_zero_round() -> list[PriceObservation]:
        return [observation_from_chainlink_round(
            source="chainlink", asset="BTC", quote="USD", round_id=110680464442257309696, answer=0, started_at=0,
            updated_at=0, answered_in_round=110680464442257309696, decimals=8, heartbeat_s=3600)]

    async def broken() -> list[PriceObservation]:
        raise SourceError("rpc: connection refused")

    async with aiohttp.ClientSession() as session:
        b = await fetch_market_snapshot(session, sources_of(venues, {}), assets=ASSETS, now=now,
                                        extra={"chainlink@ethereum": chainlink_zero_round, "chainlink@base": broken})
    s = statuses(b)
    assert s["chainlink:BTC/USD"] == ("failed", "non-positive price 0")
    assert s["fetch:chainlink@base"] == ("failed", "rpc: connection refused")
    assert b.prices["BTC"].status == "degraded" and b.snapshot.spot["BTC"] > 0


async def test_a_market_wide_jump_is_frozen_against_the_previous_snapshot(venues: VenueServers) -> None:
    first = await build(venues)
    jumped = dataclasses.replace(venues.scenario, spot={**venues.scenario.spot, "SOL": venues.scenario.spot["SOL"]
                                                        * 1.4})
    async with run_venue_servers(jumped) as other, aiohttp.ClientSession() as session:
        second = await fetch_market_snapshot(session, sources_of(other, {}), assets=ASSETS,
                                             now=jumped.as_of + timedelta(seconds=5), previous=first)
    assert second.snapshot.spot["SOL"] == first.snapshot.spot["SOL"]  # held
    assert second.prices["SOL"].status == "frozen"
    assert second.snapshot.dispersion["SOL"] == pytest.approx(0.4, rel=1e-3)
    assert statuses(second)["price:SOL/USD"][0] == "stale"
    assert second.prices["BTC"].status == "ok" and second.snapshot.spot["BTC"] == first.snapshot.spot["BTC"]


async def test_a_hip3_asset_priced_from_its_dex_with_a_single_source_policy(venues: VenueServers) -> None:
    sources = dataclasses.replace(sources_of(venues, {}), hyperliquid_dexes=("xyz",))
    async with aiohttp.ClientSession() as session:
        b = await fetch_market_snapshot(session, sources, assets=(*ASSETS, "GOLD"),
                                        now=venues.scenario.as_of + timedelta(seconds=2),
                                        policies={"GOLD": AggregationPolicy(quorum=1)})
    assert b.snapshot.spot["GOLD"] == pytest.approx(venues.hyperliquid.oracle("xyz:GOLD"), rel=1e-6)
    assert [v.source for v in b.prices["GOLD"].sources] == ["hyperliquid-xyz-oracle"]


async def test_a_replayed_market_stays_fresh_on_the_replay_clock() -> None:
    """The demo's venues stamp quotes on the replay clock it shares with the service: ten minutes into the replay
    every price source is still ok, where a venue stuck at the recording's moment would be stale for all of them."""
    recorded = venue_scenario()
    later = recorded.as_of + timedelta(minutes=10)
    async with run_venue_servers(dataclasses.replace(recorded, clock=lambda: later)) as replayed, \
            aiohttp.ClientSession() as session:
        snapshot = (await fetch_market_snapshot(session, sources_of(replayed, {}), assets=ASSETS, now=later)).snapshot
    async with run_venue_servers(recorded) as frozen, aiohttp.ClientSession() as session:
        stale = (await fetch_market_snapshot(session, sources_of(frozen, {}), assets=ASSETS, now=later)).snapshot
    prices = {s.name: s.status for s in snapshot.sources if s.name.startswith(("pyth:", "deribit-index:"))}
    assert prices and set(prices.values()) == {"ok"}
    assert {s.status for s in stale.sources if s.name in prices} == {"stale"}
    assert set(snapshot.spot) >= set(ASSETS)


async def test_a_report_carries_the_market_warnings_of_its_own_assets(venues: VenueServers) -> None:
    """The recorded market has no SOL options (vol:SOL fails): a BTC book is not warned about it, a SOL book is."""
    snap = (await build(venues)).snapshot
    failed = {s.name: s for s in snap.sources if s.status != "ok"}
    assert set(failed) == {"vol:SOL"} and failed["vol:SOL"].asset == "SOL"
    assert {s.asset for s in snap.sources if s.name.startswith(("price:", "vol:"))} == set(ASSETS)
    assert next(s for s in snap.sources if s.name == "fetch:deribit:BTC").asset == "BTC"
    assert next(s for s in snap.sources if s.name == "fetch:pyth").asset is None  # about every asset
    where = {"venue": "wallet", "chain": "ethereum", "account": "0xdemo"}
    btc_book = [SpotPosition(kind="spot", asset="BTC", quantity=1, **where),
                SpotPosition(kind="spot", asset="USDC", quantity=1_000, **where)]
    sol_book = [*btc_book, PerpPosition(kind="perp", underlying="SOL", quantity=-10, venue="hyperliquid",
                                        chain="hyperliquid", account="0xdemo")]
    sol_warning = "market source vol:SOL failed: no option quotes from any venue: no surface"
    assert sol_warning not in compute_margin(btc_book, snap, default_params()).warnings
    assert sol_warning in compute_margin(sol_book, snap, default_params()).warnings
