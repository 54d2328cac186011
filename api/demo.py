"""Demo mode: the devnet, the local venues and the service with a seeded demo account, on one laptop, no accounts.

The local venues replay a recorded market (the calm-day Deribit chain and its prices), so the service's clock is
that recording's time moving forward from start-up: option expiries and staleness read as they did that day.
The on-chain side is live: three anvil chains with real Aave v3, Uniswap v3 and Multicall3 bytecode.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import aiohttp
from aiohttp import web
from web3 import Web3

from aggregator.scheduler import AlertWatcher, WebhookSender, build_scheduler
from aggregator.service import AggregatorService
from aggregator.settings import ServiceSettings, VenueCredentials, VenueEndpoints
from aggregator.store import AsyncStore, Store, WatchedAccount
from aggregator.webhook_target import webhook_session
from api.http.app import create_app
from api.http.settings import ApiSettings
from chains.client import make_chain_clients
from devnet.deploy import TOKENS, ChainDeployer, compile_abi
from devnet.run import RunningDevnet, start_devnet
from venue_servers import derive as derive_venue
from venue_servers import hyperliquid as hyperliquid_venue
from venue_servers.runner import VenueServers, run_venue_servers
from venue_servers.scenario import MarketScenario, default_scenario

DEMO_ACCOUNT = "demo"
# anvil's well-known second test key: public, for signing demo credit views only
DEMO_SIGNER_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
DEMO_API_KEY = "demo-key"
log = logging.getLogger(__name__)
# The devnet's wstETH:ETH ratio as deployed (its wstETH/USD and ETH/USD mocks' first answers): recorded data has no
# wstETH rate, so the demo's wstETH price is the recorded ETH price times this ratio, an approximation it says so.
_DEPLOYED_USD = {spec.asset: spec.usd_price for spec in TOKENS}
WSTETH_PER_ETH = _DEPLOYED_USD["WSTETH"] / _DEPLOYED_USD["ETH"]
CHAINLINK_CHAIN = "ethereum"  # the demo's Chainlink source: the L1 feeds (one chain, one vote in the median)
PRICE_NOTES = {
    "WSTETH": f"approximated: the devnet's wstETH/USD feed carries the recorded ETH price x {WSTETH_PER_ETH:.6g}, "
              "the devnet's deployed wstETH:ETH ratio (no recorded wstETH rate; a real deployment would read the "
              "wstETH/ETH exchange-rate feed)",
    "HYPE": f"the local Hyperliquid's stated fixture level ({hyperliquid_venue.HyperliquidFixture.hype:g} USD), "
            "not a recorded price",
}


def compute_feed_prices(scenario: MarketScenario) -> dict[str, float]:
    """What the demo's keeper publishes on the devnet's Chainlink feeds, in USD: the recorded market (Chainlink's
    own small offset from it, like every local venue), wstETH at ETH x WSTETH_PER_ETH. USDC keeps its 1.00."""
    eth = scenario.price("chainlink", "ETH")
    return {"ETH": eth, "BTC": scenario.price("chainlink", "BTC"), "WSTETH": eth * WSTETH_PER_ETH}


def publish_feed_prices(devnet: RunningDevnet, prices: dict[str, float]) -> dict[str, dict[str, int]]:
    """Publish `prices` on every chain's feeds of those assets, as Chainlink's keepers would (a new round stamped
    with the chain's time), so the feeds, and Aave's oracle reading them, stand at the market the venues replay.
    Returns chain -> asset -> the raw answer published."""
    abi = compile_abi("MockV3Aggregator")
    published: dict[str, dict[str, int]] = {}
    for chain in devnet.manifest.chains:
        w3 = Web3(Web3.HTTPProvider(devnet.nodes[chain.config.name].url))
        deployer = ChainDeployer(w3)
        answers = published.setdefault(chain.config.name, {})
        for feed in chain.config.price_feeds:
            if feed.asset not in prices:
                continue
            contract = w3.eth.contract(address=Web3.to_checksum_address(feed.address), abi=abi)
            answer = round(prices[feed.asset] * 10 ** contract.functions.decimals().call())
            deployer.send(contract.functions.updateAnswer(answer), what=f"publish {feed.asset} on {chain.config.name}")
            answers[feed.asset] = answer
    return published


def replay_clock(start: datetime) -> Callable[[], datetime]:
    """The recorded market's time, moving forward with the wall clock from now."""
    origin = time.monotonic()
    return lambda: start + timedelta(seconds=time.monotonic() - origin)


def demo_account(devnet: RunningDevnet) -> WatchedAccount:
    wallet = devnet.manifest.demo_account
    return WatchedAccount(
        id=DEMO_ACCOUNT,
        label="demo wallet: Aave, Uniswap v3, GMX-style perp on three chains; Deribit, Derive, Hyperliquid",
        addresses={chain.name: [wallet] for chain in devnet.chains.chains},
        venue_accounts={
            "hyperliquid": [hyperliquid_venue.USER],
            "deribit": ["metarisk-readonly"],
            "derive": [f"{derive_venue.WALLET}/{derive_venue.SUBACCOUNT_ID}"],
        },
        margin_ratio_alerts=[0.5, 0.8, 1.0],
    )


def seed_demo_account(store: Store, account: WatchedAccount) -> None:
    """The demo account, watched afresh: each run replays the recorded day from its start, so an earlier run's
    stored reports would interleave with this run's on the same clock (and its devnet addresses may be new)."""
    store.delete_account(account.id)
    store.add_account(account)


def demo_settings(venues: VenueServers) -> ServiceSettings:
    return ServiceSettings(
        venues=VenueEndpoints(
            deribit=venues.urls["deribit"], derive=venues.urls["derive"],
            hyperliquid=venues.urls["hyperliquid"], pyth=venues.urls["pyth"],
        ),
        credentials=VenueCredentials(
            deribit={"metarisk-readonly": "fixture-secret"},
            derive={derive_venue.WALLET: derive_venue.SESSION_KEY},
        ),
        signer_key=DEMO_SIGNER_KEY,
        assets=("BTC", "ETH", "SOL", "GOLD", "HYPE", "WSTETH", "USDC"),
        hyperliquid_dexes=("xyz",),
        # GOLD: the HIP-3 dex's own oracle; HYPE: Hyperliquid's oracle; wstETH and USDC: the Chainlink feeds
        single_source_assets=("GOLD", "HYPE", "WSTETH", "USDC"),
        spot_only_assets=("GOLD", "HYPE", "WSTETH", "USDC"),  # no options anywhere: no surface expected
        pegs={"USDC": 1.0},
        price_notes=dict(PRICE_NOTES),
        chainlink_chains=(CHAINLINK_CHAIN,),
        chainlink_age_at_block=True,  # live anvil chains beside the replayed market's clock
    )


@dataclass
class Demo:
    devnet: RunningDevnet
    venues: VenueServers
    service: AggregatorService
    app: web.Application


@contextlib.asynccontextmanager
async def run_demo_service(*, database_url: str | None = None) -> AsyncIterator[Demo]:
    """Everything the demo needs, started; stopped on exit."""
    devnet = await asyncio.to_thread(start_devnet)
    try:
        recorded = default_scenario()
        # one clock for the venues' quotes and the service: the replay stays as fresh as it was recorded
        clock = replay_clock(recorded.as_of)
        async with (
            run_venue_servers(replace(recorded, clock=clock)) as venues,
            aiohttp.ClientSession() as session,
            webhook_session() as hooks,
        ):
            await asyncio.to_thread(publish_feed_prices, devnet, compute_feed_prices(venues.scenario))
            clients = await make_chain_clients(devnet.chains)
            store = Store.from_url(database_url)
            try:
                await asyncio.to_thread(store.migrate)
                await asyncio.to_thread(seed_demo_account, store, demo_account(devnet))
                service = AggregatorService(
                    settings=demo_settings(venues), session=session, clients=list(clients.values()),
                    store=AsyncStore(store), clock=clock,
                )
                # the first market snapshot before any request: the local venues share this event loop, and their
                # cold start (the Deribit spec is parsed once, every answer validated) would hold the loop for
                # seconds while the first account refresh's chain reads ran out their timeout (complete: false)
                await service.refresh_market()
                watcher = AlertWatcher(WebhookSender(hooks))
                service.on_report.append(watcher.observe)
                # the demo key always works beside any keys the environment names
                keys = ",".join(filter(None, [os.environ.get("METARISK_API_KEYS", ""), DEMO_API_KEY]))
                settings = ApiSettings.from_env({**os.environ, "METARISK_API_KEYS": keys})
                app = create_app(service=service, settings=settings)
                yield Demo(devnet=devnet, venues=venues, service=service, app=app)
            finally:
                for client in clients.values():
                    await client.close()
                store.close()
    finally:
        devnet.stop()


async def serve_demo(*, host: str, port: int, database_url: str | None) -> None:
    async with run_demo_service(database_url=database_url) as demo:
        scheduler = build_scheduler(demo.service)
        scheduler.start()
        runner = web.AppRunner(demo.app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        base = f"http://{host}:{port}"
        print(f"metarisk demo serving at {base}/?account={DEMO_ACCOUNT}", flush=True)
        print(f"  REST     {base}/v1/accounts/{DEMO_ACCOUNT}/risk   {base}/openapi.json", flush=True)
        print(f"  GraphQL  {base}/graphql      API key for POST and credit routes: {DEMO_API_KEY}", flush=True)
        for chain in demo.devnet.chains.chains:
            print(f"  chain    {chain.name:<9} {chain.rpc_urls[0]}", flush=True)
        print(f"  wallet   {demo.devnet.manifest.demo_account}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            scheduler.shutdown(wait=False)
            await runner.cleanup()
