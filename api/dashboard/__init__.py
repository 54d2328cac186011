"""The dashboard: a static page at `/` that fetches an account's margin report from `/v1/accounts/{id}/risk` and
renders it in the browser. No build step and no third-party assets: three files read once at start-up.

These routes are a page, not API: they stay out of the OpenAPI document and need no key.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Handler
from pydantic import BaseModel

HERE = Path(__file__).resolve().parent
ASSET_PREFIX = "/dashboard/"

# The page loads only its own script and style sheet and calls only this origin. `data:` images: the empty favicon
# (otherwise the browser asks for /favicon.ico and logs the 404). Styles set through the CSSOM (heatmap colours,
# bar widths) are not inline styles and need no 'unsafe-inline'.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


@dataclass(frozen=True)
class Asset:
    file: str
    content_type: str


PAGE = Asset("index.html", "text/html")
ASSETS = (
    Asset("dashboard.js", "text/javascript"),
    Asset("dashboard.css", "text/css"),
    Asset("credit_line.js", "text/javascript"),  # the demo's credit-line panel
)


def _handler(asset: Asset) -> Handler:
    body = (HERE / asset.file).read_bytes()
    headers = {
        "Cache-Control": "no-cache",  # revalidated each time: a new release is seen at once
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }
    if asset is PAGE:
        headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY

    async def serve(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type=asset.content_type, charset="utf-8", headers=headers)

    return serve


DASHBOARD_PATHS = ("/", *(ASSET_PREFIX + asset.file for asset in ASSETS))
CREDIT_LINE_PATH = "/demo/credit-line"
StatusSource = Callable[[], Awaitable[BaseModel]]
CREDIT_LINE_STATUS: web.AppKey[StatusSource] = web.AppKey("credit_line_status")
"""Set by the demo: what the credit-line panel shows. Elsewhere the panel's route answers 204 and it stays hidden."""


async def _credit_line(request: web.Request) -> web.Response:
    status = request.app.get(CREDIT_LINE_STATUS)
    if status is None:
        return web.Response(status=204)
    return web.Response(body=(await status()).model_dump_json(), content_type="application/json")


def add_dashboard_routes(app: web.Application) -> None:
    """`GET /` (the page), `GET /dashboard/<asset>` (its script and style sheet) and the demo's credit-line panel
    data; HEAD too."""
    for path, asset in zip(DASHBOARD_PATHS, (PAGE, *ASSETS), strict=True):
        app.router.add_get(path, _handler(asset))
    app.router.add_get(CREDIT_LINE_PATH, _credit_line)
