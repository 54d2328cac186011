"""`metarisk service CONFIG.yaml`: the aggregator against real chains and venues, with its store and scheduler.

The config file is ServiceSettings in YAML (chains file, venue endpoints, assets, TTLs). Secrets come from the
environment, never from a file in the repository: METARISK_SIGNER_KEY (hex key signing credit views),
METARISK_ATTESTATION_KEY or METARISK_ATTESTATION_KEYSTORE with its password (the attestation signer),
METARISK_DERIBIT_KEYS ("client_id:secret,..."), METARISK_DERIVE_SESSION_KEYS ("wallet:hexkey,..."); the
database from DATABASE_URL (SQLite in the data directory when unset); API keys as `metarisk serve` reads them.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Mapping
from pathlib import Path

import aiohttp
import yaml
from aiohttp import web
from eth_account.signers.local import LocalAccount

from aggregator.attestations import AttestationService
from aggregator.engine_pool import EnginePool
from aggregator.scheduler import AlertWatcher, WebhookSender, build_scheduler
from aggregator.service import AggregatorService
from aggregator.settings import ServiceSettings, VenueCredentials
from aggregator.store import AsyncStore, Store
from aggregator.webhook_target import webhook_session
from api.fhs_history import with_recorded_history
from api.http.app import SERVICE_ENGINE_PRELOAD, SHUTDOWN_TIMEOUT_S, create_app, refresh_engine
from api.http.settings import ApiSettings
from chains.client import make_chain_clients
from chains.config import ChainsFile, load_chains_file
from chains.errors import ChainConfigError


def _pairs(value: str | None) -> dict[str, str]:
    if not value:
        return {}
    return dict(item.strip().split(":", 1) for item in value.split(",") if ":" in item)


def load_service_settings(path: Path, environ: Mapping[str, str]) -> ServiceSettings:
    """The settings of `path`, a relative `chains_file` taken beside it (as a mounted config directory holds both).

    Raises OSError, yaml.YAMLError or pydantic.ValidationError for a bad file."""
    settings = ServiceSettings.model_validate(yaml.safe_load(path.read_text()) or {})
    if settings.chains_file is not None and not settings.chains_file.is_absolute():
        settings = settings.model_copy(update={"chains_file": path.parent / settings.chains_file})
    credentials = VenueCredentials(
        deribit={**settings.credentials.deribit, **_pairs(environ.get("METARISK_DERIBIT_KEYS"))},
        derive={**settings.credentials.derive, **_pairs(environ.get("METARISK_DERIVE_SESSION_KEYS"))},
    )
    signer = environ.get("METARISK_SIGNER_KEY") or settings.signer_key
    return settings.model_copy(update={"credentials": credentials, "signer_key": signer})


def load_service_chains(settings: ServiceSettings) -> ChainsFile | None:
    """The settings' chains file, checked against the chains the settings read Chainlink feeds on.

    Raises:
        ChainConfigError: the file is missing or invalid, or `chainlink_chains` names a chain it does not list (a
            source that would silently never vote)."""
    try:
        chains = load_chains_file(settings.chains_file) if settings.chains_file is not None else None
    except ChainConfigError as e:
        raise ChainConfigError(f"chains_file: {e}") from e
    known = {chain.name for chain in chains.chains} if chains is not None else set()
    unknown = [name for name in settings.chainlink_chains if name not in known]
    if unknown:
        where = f"the chains file {settings.chains_file}" if chains is not None else "no chains file (chains_file)"
        raise ChainConfigError(f"chainlink_chains: {', '.join(unknown)} not among the chains of {where}")
    return chains


def production_api_settings(environ: Mapping[str, str]) -> ApiSettings:
    """The API settings of a production service: as `metarisk serve` reads them, but GraphQL introspection is off
    unless METARISK_GRAPHQL_INTROSPECTION turns it on (the schema is no business of anonymous callers)."""
    return ApiSettings.from_env({"METARISK_GRAPHQL_INTROSPECTION": "false", **environ})


async def serve_service(
    settings: ServiceSettings,
    chains: ChainsFile | None,
    *,
    host: str,
    port: int,
    attestation_signer: LocalAccount | None = None,
) -> None:
    """`attestation_signer` (METARISK_ATTESTATION_KEY or its keystore) serves the attestation routes for the
    verifiers of the settings' `attestation` section; without it they answer 503."""
    store = Store.from_url(os.environ.get("DATABASE_URL"))
    await asyncio.to_thread(store.migrate)
    clients = await make_chain_clients(chains) if chains else {}
    async with aiohttp.ClientSession() as session, webhook_session() as hooks:
        api_settings = production_api_settings(os.environ)
        engine = EnginePool(api_settings.engine, preload=SERVICE_ENGINE_PRELOAD)  # what-ifs
        refreshes = refresh_engine(api_settings)
        service = AggregatorService(settings=settings, session=session, clients=list(clients.values()),
                                    store=AsyncStore(store), engine=refreshes, with_history=with_recorded_history)
        service.on_report.append(AlertWatcher(WebhookSender(hooks)).observe)
        attestations = (
            AttestationService(risk=service, signer=attestation_signer, settings=settings.attestation)
            if attestation_signer is not None
            else None
        )
        app = create_app(service=service, settings=api_settings, attestations=attestations, engine=engine)
        scheduler = build_scheduler(service)
        scheduler.start()
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        print(f"metarisk service at http://{host}:{port}", flush=True)
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            scheduler.shutdown(wait=False)
            await runner.cleanup()
            await engine.close()
            await refreshes.close()
            for client in clients.values():
                await client.close()
            store.close()
