"""The aiohttp application: REST, GraphQL, metrics and problem+json errors, assembled from its parts."""

from __future__ import annotations

import dataclasses
import time
from importlib.metadata import version

import orjson
from aiohttp import web

from aggregator.engine_pool import EnginePool
from api.dashboard import add_dashboard_routes
from api.graphql.schema import GraphQLContext, build_schema
from api.graphql.view import MetariskGraphQLView
from api.http.access import Clock, LiveReadSlots, access_middleware
from api.http.attestation import ATTESTATION_ROUTE_ACCESS, AttestationProvider, add_attestation_routes
from api.http.loop_lag import track_event_loop_lag
from api.http.metrics import ApiMetrics, metrics_middleware
from api.http.openapi import build_openapi
from api.http.problems import problem_middleware
from api.http.routes import (
    HEALTH_BODY,
    METRICS,
    OPENAPI_BODY,
    ROUTE_ACCESS,
    HealthReport,
    add_routes,
)
from api.http.service import RiskService
from api.http.settings import ApiSettings
from api.http.what_if import ENGINE, ENGINE_PRELOAD
from risk_core.schema.params import default_params
from risk_core.schema.positions import SCHEMA_VERSION

SERVICE_ENGINE_PRELOAD = (*ENGINE_PRELOAD, "aggregator.service")  # what-ifs and the aggregator's refreshes


def refresh_engine(settings: ApiSettings) -> EnginePool:
    """The aggregator's own pool, one worker with the what-ifs' budget, for refresh margining and surface fits: a
    what-if never queues behind a market refresh's fits (a tenth of a second each) in the requests' pool."""
    return EnginePool(dataclasses.replace(settings.engine, workers=1), preload=SERVICE_ENGINE_PRELOAD)
SHUTDOWN_TIMEOUT_S = 3.0  # on SIGTERM, requests in flight get this long: the process stops within seconds


APP_ROUTE_ACCESS = {**ROUTE_ACCESS, **ATTESTATION_ROUTE_ACCESS}
"""Every route of the app by (method, route template): a pair not named here needs a key (api.http.access)."""

def create_app(
    *,
    service: RiskService | None = None,
    settings: ApiSettings | None = None,
    clock: Clock = time.monotonic,
    attestations: AttestationProvider | None = None,
    engine: EnginePool | None = None,
) -> web.Application:
    """The app; `service` (the aggregator) adds the account, wallet and market routes and GraphQL fields,
    `attestations` signs margin attestations, `clock` drives the rate limiter (tests inject one). What-ifs run in
    `engine` (shared with the aggregator's refreshes), else in a pool of the app's own, closed with it."""
    settings = settings or ApiSettings()
    if engine is None:
        engine = EnginePool(settings.engine, preload=ENGINE_PRELOAD)

        async def close_engine(_: web.Application) -> None:
            await engine.close()

        app_cleanup = [close_engine]
    else:
        app_cleanup = []
    metrics = ApiMetrics()
    slots = LiveReadSlots(per_client=settings.live_reads_per_client, total=settings.live_reads_total)
    app = web.Application(
        client_max_size=settings.client_max_size,
        # outermost first: metrics see the final status of every answer, problems turn failures into answers
        middlewares=[
            metrics_middleware(metrics),
            problem_middleware,
            access_middleware(APP_ROUTE_ACCESS, settings, clock, slots),
        ],
    )
    package_version = version("metarisk")
    app[METRICS] = metrics
    app[ENGINE] = engine

    async def start_engine(_: web.Application) -> None:
        await engine.start()  # its workers ready before the first request, not inside its budget

    app.on_startup.append(start_engine)
    app.on_cleanup.extend(app_cleanup)
    track_event_loop_lag(app, metrics)
    app[HEALTH_BODY] = (
        HealthReport(
            status="ok",
            version=package_version,
            schema_version=SCHEMA_VERSION,
            params_version=default_params().version,  # also parses the shipped parameters once, at start-up
            aggregator=service is not None,
        )
        .model_dump_json()
        .encode()
    )
    app[OPENAPI_BODY] = orjson.dumps(build_openapi(version=package_version, service=service, attestations=attestations))
    add_routes(app, service)
    add_attestation_routes(app, attestations)
    add_dashboard_routes(app)  # the page at /: not API, so not in the OpenAPI document
    graphql = MetariskGraphQLView(
        build_schema(service=service, settings=settings, attested=attestations is not None),
        GraphQLContext(metrics=metrics, service=service, engine=engine, attestations=attestations, live_reads=slots),
    )
    app.router.add_get("/graphql", graphql)
    app.router.add_post("/graphql", graphql)
    return app
