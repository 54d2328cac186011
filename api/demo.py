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
from dataclasses import dataclass
from datetime import datetime, timedelta

import aiohttp
from aiohttp import web

from aggregator.scheduler import AlertWatcher, WebhookSender, build_scheduler
from aggregator.service import AggregatorService
from aggregator.settings import ServiceSettings, VenueCredentials, VenueEndpoints
from aggregator.store import AsyncStore, Store, WatchedAccount
from api.http.app import create_app
from api.http.settings import ApiSettings
from chains.client import make_chain_clients
from devnet.run import RunningDevnet, start_devnet
from venue_servers import derive as derive_venue
from venue_servers import hyperliquid as hyperliquid_venue
from venue_servers.runner import VenueServers, run_venue_servers

DEMO_ACCOUNT = "demo"
# anvil's well-known second test key: public, for signing demo credit views only
DEMO_SIGNER_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
DEMO_API_KEY = "demo-key"
log = logging.getLogger(__name__)


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
        assets=("BTC", "ETH", "SOL", "GOLD"),
        hyperliquid_dexes=("xyz",),
        single_source_assets=("GOLD",),
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
        async with run_venue_servers() as venues, aiohttp.ClientSession() as session:
            clients = await make_chain_clients(devnet.chains)
            store = Store.from_url(database_url)
            try:
                await asyncio.to_thread(store.migrate)
                account = demo_account(devnet)
                existing = await asyncio.to_thread(store.get_account, account.id)
                if existing is None:
                    await asyncio.to_thread(store.add_account, account)
                else:
                    await asyncio.to_thread(store.update_account, account)  # the devnet's addresses may be new
                service = AggregatorService(
                    settings=demo_settings(venues), session=session, clients=list(clients.values()),
                    store=AsyncStore(store), clock=replay_clock(venues.scenario.as_of),
                )
                # the first market snapshot before any request: the local venues share this event loop, and their
                # cold start (the Deribit spec is parsed once, every answer validated) would hold the loop for
                # seconds while the first account refresh's chain reads ran out their timeout (complete: false)
                await service.refresh_market()
                watcher = AlertWatcher(WebhookSender(session))
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
