"""Demo mode: the devnet, the local venues and the service with a seeded demo account, on one laptop, no accounts.

The local venues replay a recorded market (the calm-day Deribit chain and its prices), so the service's clock is
that recording's time moving forward from start-up: option expiries and staleness read as they did that day. The
market moves along a recorded price path as that clock runs (venue_servers.price_path), and a keeper publishes it
on the devnet's Chainlink feeds, so margin ratios, alerts and history move.
The on-chain side is live: three anvil chains with real Aave v3, Uniswap v3 and Multicall3 bytecode.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

import aiohttp
from aiohttp import web
from eth_abi import encode
from web3 import Web3

from aggregator.attestations import AttestationService
from aggregator.engine_pool import EnginePool
from aggregator.scheduler import AlertWatcher, WebhookSender, build_scheduler
from aggregator.service import AggregatorService
from aggregator.settings import ServiceSettings, VenueCredentials, VenueEndpoints
from aggregator.store import AsyncStore, Store, WatchedAccount
from aggregator.store.engine import data_dir
from aggregator.webhook_target import webhook_session
from api.demo_attestation import demo_signer, trust_signer_on_devnet
from api.demo_credit_line import CreditLineDemo, show_on_dashboard
from api.fhs_history import with_recorded_history
from api.http.app import SERVICE_ENGINE_PRELOAD, SHUTDOWN_TIMEOUT_S, create_app, refresh_engine
from api.http.settings import DEMO_API_KEY, ApiSettings
from chains.client import make_chain_clients
from devnet.deploy import DEPLOYER, TOKENS, compile_abi
from devnet.errors import DevnetError
from devnet.run import RunningDevnet, start_devnet
from venue_servers import derive as derive_venue
from venue_servers import hyperliquid as hyperliquid_venue
from venue_servers.price_path import recorded_price_path
from venue_servers.runner import VenueServers, run_venue_servers
from venue_servers.scenario import MarketScenario, default_scenario

DEMO_ACCOUNT = "demo"
log = logging.getLogger(__name__)
# The devnet's wstETH:ETH ratio as deployed (its wstETH/USD and ETH/USD mocks' first answers): recorded data has no
# wstETH rate, so the demo's wstETH price is the recorded ETH price times this ratio, an approximation it says so.
_DEPLOYED_USD = {spec.asset: spec.usd_price for spec in TOKENS}
WSTETH_PER_ETH = _DEPLOYED_USD["WSTETH"] / _DEPLOYED_USD["ETH"]
# seconds between the keeper's rounds: 5 recorded minutes of the price path, so the feeds stay within its moves
KEEPER_INTERVAL_S = 5.0
KEEPER_RPC_TIMEOUT_S = 4.0
KEEPER_RECEIPT_POLL_S = 0.01
# a round costs ~103k gas; anvil's own estimate for the first round after a state load falls short (out of gas)
KEEPER_GAS = 200_000
UPDATE_ANSWER_SELECTOR = "0x" + Web3.keccak(text="updateAnswer(int256)")[:4].hex().removeprefix("0x")
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


@dataclass(frozen=True)
class DevnetFeed:
    """One Chainlink feed the keeper publishes on: where it is and how its answers are scaled."""

    chain: str
    rpc_url: str
    asset: str
    address: str
    decimals: int


def resolve_feeds(devnet: RunningDevnet) -> list[DevnetFeed]:
    """Every chain's feeds, with their decimals read once (they never change)."""
    abi = compile_abi("MockV3Aggregator")
    feeds = []
    for chain in devnet.manifest.chains:
        url = devnet.nodes[chain.config.name].url
        w3 = Web3(Web3.HTTPProvider(url))
        for feed in chain.config.price_feeds:
            contract = w3.eth.contract(address=Web3.to_checksum_address(feed.address), abi=abi)
            feeds.append(DevnetFeed(chain=chain.config.name, rpc_url=url, asset=feed.asset, address=feed.address,
                                    decimals=int(contract.functions.decimals().call())))
    return feeds


async def publish_feed_prices(
    session: aiohttp.ClientSession, feeds: Sequence[DevnetFeed], prices: Mapping[str, float]
) -> dict[str, dict[str, int]]:
    """Publish `prices` on the feeds of those assets, as Chainlink's keepers would (a new round stamped with the
    chain's time), so the feeds, and Aave's oracle reading them, stand at the market the venues replay.

    Raw JSON-RPC on the event loop: web3's synchronous stack in a thread held the interpreter for tens of ms every
    round, stalling the service beside it.
    Returns chain -> asset -> the raw answer published. Raises DevnetError when a round is not mined or reverts."""
    published: dict[str, dict[str, int]] = {}
    for feed in feeds:  # one transaction at a time: anvil gives a batch's transactions one nonce
        if feed.asset not in prices:
            continue
        answer = round(prices[feed.asset] * 10**feed.decimals)
        call = {"from": DEPLOYER, "to": feed.address, "gas": hex(KEEPER_GAS),
                "data": UPDATE_ANSWER_SELECTOR + encode(["int256"], [answer]).hex()}
        (tx,) = await _rpc_batch(session, feed.rpc_url, [("eth_sendTransaction", [call])])
        if (await _receipt(session, feed.rpc_url, tx)).get("status") != "0x1":
            raise DevnetError(f"publish {feed.asset} on {feed.chain}: the round reverted")
        published.setdefault(feed.chain, {})[feed.asset] = answer
    return published


async def _receipt(session: aiohttp.ClientSession, url: str, tx: str) -> dict[str, Any]:
    """The transaction's receipt, polled until anvil has mined it (a few ms), within the keeper's RPC timeout."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + KEEPER_RPC_TIMEOUT_S
    while True:
        (receipt,) = await _rpc_batch(session, url, [("eth_getTransactionReceipt", [tx])])
        if receipt is not None:
            return cast(dict[str, Any], receipt)
        if loop.time() > deadline:
            raise DevnetError(f"transaction {tx} not mined within {KEEPER_RPC_TIMEOUT_S:g} s")
        await asyncio.sleep(KEEPER_RECEIPT_POLL_S)


async def _rpc_batch(session: aiohttp.ClientSession, url: str, calls: Sequence[tuple[str, list[Any]]]) -> list[Any]:
    body = [{"jsonrpc": "2.0", "id": i, "method": method, "params": params} for i, (method, params) in enumerate(calls)]
    async with session.post(url, json=body, timeout=aiohttp.ClientTimeout(total=KEEPER_RPC_TIMEOUT_S)) as response:
        answers = sorted(await response.json(), key=lambda answer: answer["id"])
    errors = [answer["error"] for answer in answers if "error" in answer]
    if errors:
        raise DevnetError(f"{calls[0][0]}: {errors[0]}")
    return [answer["result"] for answer in answers]


@dataclass
class FeedKeeper:
    """Publishes the replayed market on the devnet's Chainlink feeds, as Chainlink's keepers would: once before
    anything reads them, then every `interval_s` while the market moves along its path (`run`)."""

    devnet: RunningDevnet
    scenario: MarketScenario
    session: aiohttp.ClientSession
    interval_s: float = KEEPER_INTERVAL_S
    published: dict[str, dict[str, int]] = field(default_factory=dict)  # chain -> asset -> the last raw answer
    feeds: list[DevnetFeed] = field(default_factory=list)

    async def publish(self) -> None:
        if not self.feeds:
            self.feeds = await asyncio.to_thread(resolve_feeds, self.devnet)
        self.published = await publish_feed_prices(self.session, self.feeds, compute_feed_prices(self.scenario))

    @contextlib.asynccontextmanager
    async def run(self) -> AsyncIterator[FeedKeeper]:
        await self.publish()

        async def keep() -> None:
            while True:
                await asyncio.sleep(self.interval_s)
                try:
                    await self.publish()
                except Exception as e:  # noqa: BLE001 - a chain down is the service's to report; keep publishing
                    log.warning("the demo's feed keeper could not publish: %s", e)

        task = asyncio.create_task(keep())
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def replay_clock(start: datetime) -> Callable[[], datetime]:
    """The recorded market's time, moving forward with the wall clock from now."""
    origin = time.monotonic()
    return lambda: start + timedelta(seconds=time.monotonic() - origin)


def check_port_free(host: str, port: int) -> None:
    """Raises OSError when `host:port` cannot be listened on (another demo holds it): checked before the devnet
    starts, which takes seconds and would be wasted. Bound as aiohttp binds (SO_REUSEADDR), so a port in
    TIME_WAIT counts as free, as it is to the server."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))
        probe.listen()


def demo_api_settings(environ: Mapping[str, str]) -> ApiSettings:
    """The environment's API settings; the demo key (the one `metarisk serve` accepts by default, and the one the
    OpenAPI document names) always works beside any keys the environment names."""
    keys = ",".join(filter(None, [environ.get("METARISK_API_KEYS", ""), DEMO_API_KEY]))
    return ApiSettings.from_env({**environ, "METARISK_API_KEYS": keys})


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
    keeper: FeedKeeper
    app: web.Application
    attestations: AttestationService
    credit_line: CreditLineDemo


@contextlib.asynccontextmanager
async def run_demo_service(
    *, database_url: str | None = None, data_directory: Path | None = None,
    keeper_interval_s: float = KEEPER_INTERVAL_S,
) -> AsyncIterator[Demo]:
    """Everything the demo needs, started; stopped on exit. The attestation key is kept in `data_directory` (the
    data directory by default)."""
    devnet = await asyncio.to_thread(start_devnet)
    try:
        signer = await asyncio.to_thread(demo_signer, data_directory or data_dir())
        attestation_settings = await asyncio.to_thread(trust_signer_on_devnet, devnet, signer)
        recorded = default_scenario()
        # one clock for the venues' quotes and the service: the replay stays as fresh as it was recorded
        clock = replay_clock(recorded.as_of)
        replayed = replace(recorded, clock=clock, path=recorded_price_path())
        async with (
            # the tests check every shape of these answers against the venues' specifications; checking them again
            # here would spend the service's own event loop (the venues share it) on every answer
            run_venue_servers(replayed, validate=False) as venues,
            aiohttp.ClientSession() as session,
            webhook_session() as hooks,
            FeedKeeper(devnet, venues.scenario, session, keeper_interval_s).run() as keeper,
        ):
            clients = await make_chain_clients(devnet.chains)
            store = Store.from_url(database_url)
            try:
                await asyncio.to_thread(store.migrate)
                await asyncio.to_thread(seed_demo_account, store, demo_account(devnet))
                api_settings = demo_api_settings(os.environ)
                engine = EnginePool(api_settings.engine, preload=SERVICE_ENGINE_PRELOAD)  # what-ifs
                refreshes = refresh_engine(api_settings)
                # the credit view and the attestations are signed by the service's own key, never a wallet's
                settings = demo_settings(venues).model_copy(
                    update={"signer_key": "0x" + bytes(signer.key).hex(), "attestation": attestation_settings}
                )
                service = AggregatorService(
                    settings=settings, session=session, clients=list(clients.values()), store=AsyncStore(store),
                    clock=clock, engine=refreshes, with_history=with_recorded_history,
                )
                attestations = AttestationService(risk=service, signer=signer, settings=attestation_settings)
                # the first market snapshot before any request: the local venues share this event loop, and their
                # cold start (the first chains built and served, the first fits) would hold the loop for seconds
                # while the first account refresh's chain reads ran out their timeout (complete: false)
                await service.refresh_market()
                watcher = AlertWatcher(WebhookSender(hooks))
                service.on_report.append(watcher.observe)
                app = create_app(service=service, settings=api_settings, attestations=attestations, engine=engine)
                app.on_cleanup.append(lambda _: engine.close())
                app.on_cleanup.append(lambda _: refreshes.close())
                credit_line = CreditLineDemo(devnet=devnet, attestations=attestations)
                show_on_dashboard(app, credit_line)
                yield Demo(devnet=devnet, venues=venues, service=service, keeper=keeper, app=app,
                           attestations=attestations, credit_line=credit_line)
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
        runner = web.AppRunner(demo.app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
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
        print(f"  signer   {demo.attestations.signer.address}  {base}/v1/attestations/signer", flush=True)
        story = asyncio.create_task(tell_credit_line_story(demo.credit_line))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            story.cancel()
            scheduler.shutdown(wait=False)
            await runner.cleanup()


async def tell_credit_line_story(credit_line: CreditLineDemo) -> None:
    """The lender story once the demo serves (the dashboard's credit-line panel shows it); a failure is logged, the
    demo goes on."""
    try:
        attempts = await credit_line.run_story()
    except Exception:
        log.exception("the credit-line story failed")
        return
    for attempt in attempts:
        outcome = "lent" if attempt.accepted else f"refused ({attempt.refusal})"
        print(f"  credit   borrow {attempt.amount:,.2f} against free collateral {attempt.free_collateral_usd:,.2f} "
              f"USD: {outcome}", flush=True)
