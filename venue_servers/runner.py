"""Start every local venue on 127.0.0.1 (ephemeral ports) and hand back their base URLs, fixtures and faults."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aiohttp import web

from venue_servers import deribit, derive, hyperliquid, pyth
from venue_servers.faults import Faults
from venue_servers.scenario import MarketScenario, default_scenario
from venue_servers.spec import load_specifications


@dataclass
class VenueServers:
    scenario: MarketScenario
    urls: dict[str, str]  # venue -> base URL (deribit: .../api/v2, others: the root)
    faults: dict[str, Faults]
    deribit: deribit.DeribitFixture
    derive: derive.DeriveFixture
    hyperliquid: hyperliquid.HyperliquidFixture
    pyth: pyth.PythFixture
    _runners: list[web.AppRunner] = field(default_factory=list)


async def serve_app(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server  # noqa: SLF001 - aiohttp exposes the bound port only here
    assert server is not None
    port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    return runner, f"http://127.0.0.1:{port}"


@contextlib.asynccontextmanager
async def run_venue_servers(
    scenario: MarketScenario | None = None, *, validate: bool = True
) -> AsyncIterator[VenueServers]:
    scn = scenario or default_scenario()
    if validate:
        await asyncio.to_thread(load_specifications)
    faults = {name: Faults() for name in ("deribit", "derive", "hyperliquid", "pyth")}
    fx_deribit = deribit.make_fixture(scn)
    fx_derive = derive.make_fixture(scn)
    fx_hl = hyperliquid.HyperliquidFixture(scenario=scn)
    fx_pyth = pyth.PythFixture(scenario=scn)
    apps = {
        "deribit": deribit.make_app(fx_deribit, faults["deribit"], validate=validate),
        "derive": derive.make_app(fx_derive, faults["derive"], validate=validate),
        "hyperliquid": hyperliquid.make_app(fx_hl, faults["hyperliquid"], validate=validate),
        "pyth": pyth.make_app(fx_pyth, faults["pyth"], validate=validate),
    }
    servers = VenueServers(scenario=scn, urls={}, faults=faults, deribit=fx_deribit, derive=fx_derive,
                           hyperliquid=fx_hl, pyth=fx_pyth)
    try:
        for name, app in apps.items():
            runner, url = await serve_app(app)
            servers._runners.append(runner)
            servers.urls[name] = url + "/api/v2" if name == "deribit" else url
        yield servers
    finally:
        for f in faults.values():
            f.release()
        for runner in servers._runners:
            await runner.cleanup()
