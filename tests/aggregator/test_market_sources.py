"""The devnet's Chainlink feeds as a market source of the service: `chainlink@CHAIN` read in one pinned batch per
refresh, judged by the same aggregation policy as the venues (quorum, outliers, dispersion), with each round shown
in the snapshot's sources. Against the session devnet (its feeds moved by the demo's keeper, rolled back after each
test) and the local Pyth and Hyperliquid venues (fast: no option chains)."""

from __future__ import annotations

import statistics
from typing import Any

import aiohttp
import pytest
from support.devnet_fixtures import TEST_POLICY
from web3 import Web3

from aggregator.service import AggregatorService
from aggregator.settings import ServiceSettings, VenueEndpoints
from api.demo import PRICE_NOTES, compute_feed_prices, demo_settings, publish_feed_prices, resolve_feeds
from chains.client import ChainClient, make_chain_client
from devnet.deploy import compile_abi
from devnet.run import RunningDevnet
from oracles.aggregation import AggregatedPrice
from oracles.snapshot import SnapshotBuild
from venue_servers.runner import VenueServers
from venue_servers.scenario import pyth_confidence_ratio

pytestmark = pytest.mark.asyncio(loop_scope="module")


def market_settings(venues: VenueServers) -> ServiceSettings:
    """The demo's market settings on the local Pyth and Hyperliquid only (no option venues)."""
    return demo_settings(venues).model_copy(update={
        "venues": VenueEndpoints(pyth=venues.urls["pyth"], hyperliquid=venues.urls["hyperliquid"]),
        "hyperliquid_dexes": (), "assets": ("BTC", "ETH", "WSTETH", "USDC", "HYPE"),
    })


async def refresh(venues: VenueServers, session: aiohttp.ClientSession, clients: list[ChainClient],
                  clock: Any) -> SnapshotBuild:
    service = AggregatorService(settings=market_settings(venues), session=session, clients=clients, clock=clock)
    return await service.refresh_market()


def used(agg: AggregatedPrice) -> dict[str, float]:
    return {v.source: v.price for v in agg.sources if v.used}


def statuses(build: SnapshotBuild) -> dict[str, Any]:
    return {s.name: s for s in build.snapshot.sources}


def latest_round(devnet: RunningDevnet, asset: str) -> tuple[int, int, int]:
    """The ethereum feed's latest round id and updatedAt, and the chain's latest block timestamp."""
    w3 = Web3(Web3.HTTPProvider(devnet.nodes["ethereum"].url))
    feed = next(f for f in devnet.chains.chain("ethereum").price_feeds if f.asset == asset)
    contract = w3.eth.contract(address=Web3.to_checksum_address(feed.address), abi=compile_abi("MockV3Aggregator"))
    round_id, _, _, updated_at, _ = contract.functions.latestRoundData().call()
    return int(round_id), int(updated_at), int(w3.eth.get_block("latest")["timestamp"])


async def test_feeds_at_the_market_join_each_assets_median(
    devnet: RunningDevnet, venues: VenueServers, session: aiohttp.ClientSession,
    chain_clients: dict[str, ChainClient], clock: Any, restore_chains: None,
) -> None:
    published = await publish_feed_prices(session, resolve_feeds(devnet), compute_feed_prices(venues.scenario))
    assert set(published) == {"ethereum", "arbitrum", "base"}
    answers = published["ethereum"]
    build = await refresh(venues, session, list(chain_clients.values()), clock)
    found = statuses(build)
    assert found["fetch:chainlink@ethereum"].status == "ok"
    assert not [name for name in found if "chainlink@arbitrum" in name or "chainlink@base" in name]  # one vote

    for asset in ("ETH", "BTC"):
        agg = build.prices[asset]
        prices = used(agg)
        # the feed's answer, one source among the venues', every one within the policy's 2% of the median
        assert prices == {"chainlink@ethereum": answers[asset] / 1e8, "pyth": pytest.approx(prices["pyth"]),
                          "hyperliquid-oracle": pytest.approx(prices["hyperliquid-oracle"])}
        assert agg.status == "ok" and build.snapshot.spot[asset] == statistics.median(prices.values())
        spread = (max(prices.values()) - min(prices.values())) / statistics.median(prices.values())
        assert build.snapshot.dispersion[asset] == pytest.approx(max(spread, pyth_confidence_ratio()), rel=1e-6)
        source = found[f"chainlink@ethereum:{asset}/USD"]
        round_id, updated_at, block_time = latest_round(devnet, asset)
        assert source.status == "ok" and source.as_of is not None
        # its age at the block read, on the service's (replayed) clock
        assert (clock.now - source.as_of).total_seconds() == block_time - updated_at
        assert f"round {round_id}, updatedAt {updated_at} (" in str(source.reason)

    # the single-source assets: wstETH and USDC from the feeds alone, HYPE from the venue's oracle
    assert build.snapshot.spot["WSTETH"] == answers["WSTETH"] / 1e8
    assert PRICE_NOTES["WSTETH"] in build.prices["WSTETH"].flags
    assert "approximated" in str(found["price:WSTETH/USD"].reason)
    assert build.snapshot.spot["USDC"] == 1.0 and build.prices["USDC"].status == "ok"  # on its peg
    assert used(build.prices["HYPE"]) == {"hyperliquid-oracle": build.snapshot.spot["HYPE"]}
    assert PRICE_NOTES["HYPE"] in build.prices["HYPE"].flags
    # priced tokens with no options anywhere: no surface expected, none reported missing
    assert not {f"vol:{a}" for a in ("WSTETH", "USDC", "HYPE")} & set(found)


async def test_a_feed_off_the_market_is_an_outlier_under_the_same_policy(
    devnet: RunningDevnet, venues: VenueServers, session: aiohttp.ClientSession,
    chain_clients: dict[str, ChainClient], clock: Any, restore_chains: None,
) -> None:
    off = venues.scenario.spot["ETH"] * 1.05
    published = (await publish_feed_prices(session, resolve_feeds(devnet), {"ETH": off}))["ethereum"]["ETH"]
    build = await refresh(venues, session, list(chain_clients.values()), clock)
    eth = build.prices["ETH"]
    (chainlink,) = [v for v in eth.sources if v.source == "chainlink@ethereum"]
    assert (chainlink.used, chainlink.price, chainlink.status) == (False, published / 1e8, "failed")
    assert str(chainlink.reason).startswith("outlier: +")
    rest = used(eth)
    assert set(rest) == {"pyth", "hyperliquid-oracle"} and eth.status == "degraded"
    assert build.snapshot.spot["ETH"] == statistics.median(rest.values())


async def test_an_unreachable_chain_fails_its_source_alone(
    devnet: RunningDevnet, venues: VenueServers, session: aiohttp.ClientSession, clock: Any,
) -> None:
    config = devnet.chains.chain("ethereum").model_copy(update={"rpc_urls": ["http://127.0.0.1:9"]})
    dead = await make_chain_client(config, policy=TEST_POLICY)
    try:
        build = await refresh(venues, session, [dead], clock)
    finally:
        await dead.close()
    found = statuses(build)
    assert found["fetch:chainlink@ethereum"].status == "failed"
    assert str(found["fetch:chainlink@ethereum"].reason).startswith("chainlink@ethereum: ")
    assert set(used(build.prices["ETH"])) == {"pyth", "hyperliquid-oracle"}  # the venues still price ETH
    assert "WSTETH" not in build.snapshot.spot and build.prices["WSTETH"].status == "failed"  # no guess
