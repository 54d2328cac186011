"""A what-if margin: a request document in, the margin report out, exactly as `metarisk margin` computes it."""

from __future__ import annotations

import json
import time

import orjson
from pydantic import ValidationError

from api.http.metrics import ApiMetrics
from api.http.problems import FieldError, Problem, field_errors, invalid_request
from risk_core.errors import InputError
from risk_core.margin.engine import compute_margin_request
from risk_core.schema.report import MarginReport
from risk_core.schema.request import MarginRequest


def parse_json_body(body: bytes) -> object:
    """orjson first (fast); on failure the standard parser, which like the CLI reads NaN and Infinity, so that
    such a number is reported as a field error (naming the field) rather than as broken JSON.

    Raises:
        Problem: 400 when the body is not JSON at all.
    """
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        reason = _json_failure(e)
        raise Problem(
            400,
            "invalid-json",
            "Invalid JSON",
            f"the body is not valid JSON: {reason}",
            [FieldError(field="(request)", reason=f"invalid JSON: {reason}")],
        ) from e


def _json_failure(error: ValueError | RecursionError) -> str:
    if isinstance(error, json.JSONDecodeError):
        return f"{error.msg} at line {error.lineno} column {error.colno}"
    if isinstance(error, UnicodeDecodeError):
        return "the body is not UTF-8 text"
    return "nested too deeply"


def compute_what_if(document: object, metrics: ApiMetrics) -> MarginReport:
    """The report of a MarginRequest document; computed inline because it is CPU-bound and short, and a thread
    would add overhead without parallelism under the GIL.

    Raises:
        Problem: 422 naming the fields at fault (schema violation, bad parameter override, unpriceable input).
    """
    start = time.perf_counter()
    try:
        request = MarginRequest.model_validate(document)
    except ValidationError as e:
        metrics.margin_computations.labels("invalid").inc()
        raise invalid_request(field_errors(e), e.error_count()) from e
    try:
        report = compute_margin_request(request)
    except ValidationError as e:  # the parameter overrides, validated against RiskParams inside the engine
        metrics.margin_computations.labels("invalid").inc()
        raise invalid_request(field_errors(e, prefix="params"), e.error_count()) from e
    except InputError as e:
        metrics.margin_computations.labels("invalid").inc()
        raise invalid_request([FieldError(field=e.field, reason=e.reason)]) from e
    metrics.margin_duration.observe(time.perf_counter() - start)
    metrics.margin_computations.labels("ok").inc()
    return report
