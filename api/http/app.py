"""The aiohttp application: REST, GraphQL, metrics and problem+json errors, assembled from its parts."""

from __future__ import annotations

import time
from importlib.metadata import version

import orjson
from aiohttp import web

from api.dashboard import add_dashboard_routes
from api.graphql.schema import GraphQLContext, build_schema
from api.graphql.view import MetariskGraphQLView
from api.http.access import Clock, LiveReadSlots, access_middleware
from api.http.metrics import ApiMetrics, metrics_middleware
from api.http.openapi import build_openapi
from api.http.problems import problem_middleware
from api.http.routes import (
    HEALTH_BODY,
    MARKETS,
    METRICS,
    OPENAPI_BODY,
    ROUTE_ACCESS,
    HealthReport,
    add_routes,
)
from api.http.service import RiskService
from api.http.settings import ApiSettings
from api.http.what_if import MarketCache
from risk_core.schema.params import default_params
from risk_core.schema.positions import SCHEMA_VERSION


def create_app(
    *,
    service: RiskService | None = None,
    settings: ApiSettings | None = None,
    clock: Clock = time.monotonic,
) -> web.Application:
    """The app; `service` (the aggregator) adds the account, wallet and market routes and GraphQL fields,
    `clock` drives the rate limiter (tests inject one)."""
    settings = settings or ApiSettings()
    metrics = ApiMetrics()
    slots = LiveReadSlots(per_client=settings.live_reads_per_client, total=settings.live_reads_total)
    app = web.Application(
        client_max_size=settings.client_max_size,
        # outermost first: metrics see the final status of every answer, problems turn failures into answers
        middlewares=[
            metrics_middleware(metrics),
            problem_middleware,
            access_middleware(ROUTE_ACCESS, settings, clock, slots),
        ],
    )
    package_version = version("metarisk")
    app[METRICS] = metrics
    app[MARKETS] = MarketCache()
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
    app[OPENAPI_BODY] = orjson.dumps(build_openapi(version=package_version, service=service))
    add_routes(app, service)
    add_dashboard_routes(app)  # the page at /: not API, so not in the OpenAPI document
    graphql = MetariskGraphQLView(
        build_schema(service=service, settings=settings),
        GraphQLContext(metrics=metrics, service=service, live_reads=slots),
    )
    app.router.add_get("/graphql", graphql)
    app.router.add_post("/graphql", graphql)
    return app
