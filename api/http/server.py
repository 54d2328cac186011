"""Running the app: `metarisk serve`."""

from __future__ import annotations

import gc
import logging
import os

from aiohttp import web

from api.http.app import create_app
from api.http.service import RiskService
from api.http.settings import ApiSettings


async def _freeze_startup_objects(app: web.Application) -> None:
    # everything built at start-up lives as long as the server: moving it out of the collector's generations
    # keeps full collections short (p99 of a GraphQL route fell from ~70 to ~6 ms; PERFORMANCE_NOTES.md)
    gc.collect()
    gc.freeze()


def serve(*, host: str, port: int, service: RiskService | None = None) -> None:
    """Blocks serving until interrupted; keys and limits come from the environment (ApiSettings.from_env)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(service=service, settings=ApiSettings.from_env(os.environ))
    app.on_startup.append(_freeze_startup_objects)
    web.run_app(app, host=host, port=port, access_log=None, print=lambda line: logging.info(line.strip()))
