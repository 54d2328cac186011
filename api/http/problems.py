"""RFC 9457 problem details: every error the API answers, with the fields at fault named.

Statuses: 400 the body is not JSON; 422 it is JSON but breaks the request schema or cannot be priced (pydantic
and risk_core.errors.InputError alike: the client must change the content, not the syntax); 401 no or unknown
API key; 404; 405; 413 body over the size limit; 415 body not declared application/json; 429 rate limited or too
many live reads at once (with Retry-After); 503 the aggregator is not configured, a dependency is down or the
server runs its maximum of live reads; 500 only from the catch-all, without internals.
"""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.typedefs import Handler
from pydantic import BaseModel, ConfigDict, Field

from api.errors import FieldError as FieldError
from api.errors import field_errors as field_errors

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://metarisk.dev/problems/"

log = logging.getLogger(__name__)


class ProblemDetails(BaseModel):
    """The body of every error response (RFC 9457), extended with the list of fields at fault."""

    model_config = ConfigDict(frozen=True)

    type: str = Field(description="URI naming the kind of problem")
    title: str
    status: int
    detail: str
    instance: str | None = Field(default=None, description="path of the request that failed")
    errors: list[FieldError] = Field(default_factory=list)


class Problem(Exception):
    """Raised by handlers and middlewares; the problem middleware answers it as application/problem+json."""

    def __init__(
        self,
        status: int,
        slug: str,
        title: str,
        detail: str,
        errors: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.slug = slug
        self.title = title
        self.detail = detail
        self.errors = errors or []
        self.headers = headers or {}

    def __reduce__(self) -> tuple[type[Problem], tuple[object, ...]]:
        # answered by an engine worker process: pickled whole, with its fields
        return Problem, (self.status, self.slug, self.title, self.detail, self.errors, self.headers)

    def details(self, instance: str | None) -> ProblemDetails:
        return ProblemDetails(
            type=PROBLEM_TYPE_BASE + self.slug,
            title=self.title,
            status=self.status,
            detail=self.detail,
            instance=instance,
            errors=self.errors,
        )


def invalid_request(errors: list[FieldError], total: int | None = None) -> Problem:
    """A 422 listing the fields at fault; `total` counts the problems beyond those listed."""
    count = total if total is not None else len(errors)
    return Problem(
        422,
        "invalid-request",
        "Invalid request",
        f"{count} problem{'s' if count != 1 else ''} with the request: "
        + "; ".join(f"{e.field}: {e.reason}" for e in errors[:3]),
        errors,
    )


def problem_response(problem: Problem, instance: str | None) -> web.Response:
    return web.Response(
        body=problem.details(instance).model_dump_json(exclude_none=True),
        status=problem.status,
        content_type=PROBLEM_CONTENT_TYPE,
        headers=problem.headers,
    )


_HTTP_PROBLEMS = {
    400: ("bad-request", "Bad request"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    413: ("payload-too-large", "Payload too large"),
}


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answers every failure as problem+json; anything unexpected is logged and answered 500 without internals."""
    try:
        return await handler(request)
    except Problem as problem:
        return problem_response(problem, request.path)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        slug, title = _HTTP_PROBLEMS.get(e.status, ("http-error", e.reason))
        headers = {"Allow": e.headers["Allow"]} if "Allow" in e.headers else None
        detail = _http_detail(e, request)
        return problem_response(Problem(e.status, slug, title, detail, headers=headers), request.path)
    except Exception:
        log.exception("unhandled error answering %s %s", request.method, request.path)
        internal = Problem(500, "internal-error", "Internal error", "the server failed to answer; it has been logged")
        return problem_response(internal, request.path)


def _http_detail(e: web.HTTPException, request: web.Request) -> str:
    if e.status == 404:
        return f"no route {request.path}"
    if e.status == 405:
        return f"{request.method} is not allowed on {request.path}; allowed: {e.headers.get('Allow', '')}"
    return e.text or e.reason
