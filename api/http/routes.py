"""Route handlers. Whatever does not change per request (health body, OpenAPI document) is built at start-up."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Literal, Protocol, TypeVar, runtime_checkable

from aiohttp import web
from aiohttp.typedefs import Handler
from pydantic import BaseModel, Field

from api.dashboard import CREDIT_LINE_PATH, DASHBOARD_PATHS
from api.http.access import KEYED, OPEN, RouteTable
from api.http.history import HISTORY_PATH, STORED_REPORT_PATH, parse_history_query, parse_query, parse_report_id
from api.http.json_body import require_json_media_type
from api.http.metrics import METRICS_CONTENT_TYPE, ApiMetrics
from api.http.path_parameters import check_path_parameter
from api.http.problems import FieldError, Problem, invalid_request
from api.http.service import SERVICE_ROUTES, RiskService, ServiceRoute
from api.http.surface import SURFACE_PATH, surface
from api.http.what_if import ENGINE, compute_what_if_in_pool
from risk_core.errors import InputError

JSON_CONTENT_TYPE = "application/json"
METRICS = web.AppKey("metrics", ApiMetrics)
HEALTH_BODY = web.AppKey("health_body", bytes)
OPENAPI_BODY = web.AppKey("openapi_body", bytes)
Answer = TypeVar("Answer")


class HealthReport(BaseModel):
    status: Literal["ok", "degraded"]
    version: str
    schema_version: str
    params_version: str
    aggregator: bool = Field(description="whether an aggregator service answers the account and wallet routes")
    issues: list[str] = Field(
        default_factory=list,
        description="what makes it degraded, one line each: the market or a watched account older than its "
        "freshness limit, a chain down",
    )


@runtime_checkable
class HealthSource(Protocol):
    def health_issues(self) -> list[str]:
        """What is wrong now, from memory only (never awaits): empty when all is well."""
        ...


def what_if_handler(service: RiskService | None) -> Handler:
    """POST /v1/margin: a request naming no market is priced against the aggregator's current snapshot."""

    async def margin(request: web.Request) -> web.Response:
        require_json_media_type(request)
        body = await request.read()
        if request.transport is None or request.transport.is_closing():
            # the client gave up while this request queued behind others: computing it would only delay the next
            raise Problem(499, "client-closed-request", "Client closed request", "the client closed the connection")
        outcome = await compute_what_if_in_pool(body, service, request.app[ENGINE], request.app[METRICS])
        return web.Response(body=outcome.report_json, content_type=JSON_CONTENT_TYPE)

    return margin


def health_handler(service: RiskService | None) -> Handler:
    """GET /health: the start-up body while all is well, else `degraded` with the service's issues."""
    source = service if isinstance(service, HealthSource) else None

    async def health(request: web.Request) -> web.Response:
        issues: list[str] = source.health_issues() if source is not None else []
        if not issues:
            return web.Response(body=request.app[HEALTH_BODY], content_type=JSON_CONTENT_TYPE)
        report = HealthReport.model_validate_json(request.app[HEALTH_BODY])
        degraded = report.model_copy(update={"status": "degraded", "issues": issues})
        return web.Response(body=degraded.model_dump_json(), content_type=JSON_CONTENT_TYPE)

    return health


async def metrics(request: web.Request) -> web.Response:
    return web.Response(body=request.app[METRICS].exposition(), headers={"Content-Type": METRICS_CONTENT_TYPE})


async def openapi(request: web.Request) -> web.Response:
    return web.Response(body=request.app[OPENAPI_BODY], content_type=JSON_CONTENT_TYPE)


def service_handler(service: RiskService | None, route: ServiceRoute) -> Handler:
    """The handler of one aggregator route: 503 while no service is configured."""

    async def answer(request: web.Request) -> web.Response:
        query = parse_query(route.query, request.query) if route.query is not None else None
        ask = getattr(_require(service), route.method_name)
        identifier = check_path_parameter(route.parameter, request.match_info[route.parameter])
        asked = ask(identifier) if query is None else ask(identifier, **query.model_dump())
        queried = set(type(query).model_fields) if query is not None else set()
        model = await _answer_of(asked, route.parameter, identifier, queried)
        return web.Response(body=model.model_dump_json(), content_type=JSON_CONTENT_TYPE)

    return answer


def account_history_handler(service: RiskService | None) -> Handler:
    """GET /v1/accounts/{account_id}/history: a page of the account's stored report headlines, newest first."""

    async def answer(request: web.Request) -> web.Response:
        query = parse_history_query(request.query)
        served = _require(service)
        account_id = check_path_parameter("account_id", request.match_info["account_id"])
        ask = served.account_history(account_id, since=query.since, until=query.until, limit=query.limit)
        model = await _answer_of(ask, "account_id", account_id)
        return web.Response(body=model.model_dump_json(), content_type=JSON_CONTENT_TYPE)

    return answer


def stored_report_handler(service: RiskService | None) -> Handler:
    """GET /v1/accounts/{account_id}/reports/{report_id}: one stored report, only ever of that account."""

    async def answer(request: web.Request) -> web.Response:
        report_id = parse_report_id(request.match_info["report_id"])
        served = _require(service)
        account_id = check_path_parameter("account_id", request.match_info["account_id"])
        model = await _answer_of(served.stored_report(account_id, report_id), "account_id", account_id)
        if model is None:
            raise Problem(
                404,
                "not-found",
                "Not found",
                f"account {account_id!r} has no report {report_id}",
                [FieldError(field="report_id", reason="not found")],
            )
        return web.Response(body=model.model_dump_json(), content_type=JSON_CONTENT_TYPE)

    return answer


def _require(service: RiskService | None) -> RiskService:
    if service is None:
        raise Problem(
            503,
            "service-unavailable",
            "Service unavailable",
            "no aggregator is configured in this server: only what-if margin (POST /v1/margin) is served",
        )
    return service


async def _answer_of(
    asked: Awaitable[Answer], parameter: str, identifier: str, queried: set[str] | frozenset[str] = frozenset()
) -> Answer:
    """The service's answer, its failures as problems: LookupError 404 and InputError 422 naming `parameter`, or
    the query parameter it names (one of `queried`)."""
    try:
        return await asked
    except LookupError as e:
        raise Problem(
            404,
            "not-found",
            "Not found",
            f"no {parameter} {identifier!r}",
            [FieldError(field=parameter, reason="not found")],
        ) from e
    except InputError as e:
        raise invalid_request([FieldError(field=e.field if e.field in queried else parameter, reason=e.reason)]) from e
    except ConnectionError as e:
        # a dependency the service cannot answer without (the database, for an account it has never read)
        raise Problem(503, "service-unavailable", "Service unavailable", str(e)) from e


def add_routes(app: web.Application, service: RiskService | None) -> None:
    app.router.add_post("/v1/margin", what_if_handler(service))
    app.router.add_get("/health", health_handler(service))
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/openapi.json", openapi)
    for route in SERVICE_ROUTES:
        app.router.add_get(route.path, service_handler(service, route))
    app.router.add_get(HISTORY_PATH, account_history_handler(service))
    app.router.add_get(STORED_REPORT_PATH, stored_report_handler(service))
    app.router.add_post(SURFACE_PATH, surface)


ROUTE_ACCESS: RouteTable = {
    ("POST", "/v1/margin"): KEYED,
    ("GET", "/health"): OPEN,
    ("GET", "/metrics"): OPEN,
    ("GET", "/openapi.json"): OPEN,
    # the service routes (api.http.service): the credit view keyed and a live read whatever its `?model=` (an fhs
    # view is computed inside the same live-read slot)
    **{("GET", route.path): route.access for route in SERVICE_ROUTES},
    ("GET", HISTORY_PATH): OPEN,
    ("GET", STORED_REPORT_PATH): OPEN,
    ("GET", "/graphql"): OPEN,  # the GraphiQL page; queries are POSTed
    ("POST", "/graphql"): KEYED,
    ("POST", SURFACE_PATH): KEYED,
    **{("GET", path): OPEN for path in DASHBOARD_PATHS},
    ("GET", CREDIT_LINE_PATH): OPEN,  # the demo's credit-line panel data (204 elsewhere)
}
"""Every route of the app by (method, route template); a pair not named here needs a key (api.http.access)."""
