"""POST /v1/surface?asset=BTC[&k_grid=-3:3:0.01]: `metarisk surface` over HTTP, the chain CSV as the body."""

from __future__ import annotations

from aiohttp import web

from api.http.problems import FieldError, invalid_request
from api.http.what_if import ENGINE, run_in_engine
from api.surface_cli import DEFAULT_K_GRID, surface_report
from risk_core.errors import InputError

SURFACE_PATH = "/v1/surface"


async def surface(request: web.Request) -> web.Response:
    asset = request.query.get("asset", "")
    if not asset:
        raise invalid_request([FieldError(field="asset", reason="required query parameter, e.g. ?asset=BTC")])
    try:
        text = (await request.read()).decode("utf-8")
    except UnicodeDecodeError:
        raise invalid_request([FieldError(field="(request)", reason="the body is not UTF-8 text")]) from None
    try:
        # a fit takes a tenth of a second of CPU: in the engine pool, never in the event loop's process
        report = await run_in_engine(request.app[ENGINE], surface_report, text, asset,
                                     request.query.get("k_grid", DEFAULT_K_GRID))
    except InputError as e:
        raise invalid_request([FieldError(field=e.field, reason=e.reason)]) from None
    return web.Response(body=report.model_dump_json(), content_type="application/json")
