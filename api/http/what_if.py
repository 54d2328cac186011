"""A what-if margin: a request document in, the margin report out, exactly as `metarisk margin` computes it."""

from __future__ import annotations

import time

import orjson
from pydantic import ValidationError
from pydantic_core import from_json

from api.http.metrics import ApiMetrics
from api.http.problems import FieldError, Problem, field_errors, invalid_request
from risk_core.errors import InputError
from risk_core.margin.engine import compute_margin_request
from risk_core.schema.params import RiskParams
from risk_core.schema.report import MarginReport
from risk_core.schema.request import MarginRequest


def parse_json_body(body: bytes) -> object:
    """orjson first (fast); on failure pydantic's parser, which like the CLI reads NaN and Infinity, so that such
    a number is reported as a field error naming the field, not as broken JSON. (Not the standard json module:
    deep nesting can overflow its C stack when a library has raised the recursion limit.)

    Raises:
        Problem: 400 when the body is not JSON at all.
    """
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    try:
        return from_json(body, allow_inf_nan=True)
    except ValueError as e:
        raise Problem(
            400,
            "invalid-json",
            "Invalid JSON",
            f"the body is not valid JSON: {e}",
            [FieldError(field="(request)", reason=f"invalid JSON: {e}")],
        ) from e


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
    except ValidationError as e:
        if e.title != RiskParams.__name__:
            raise  # the engine built an invalid model: a bug for the catch-all, not the client's fault
        # the parameter overrides, merged into the shipped parameters and validated inside the engine
        metrics.margin_computations.labels("invalid").inc()
        raise invalid_request(field_errors(e, prefix="params"), e.error_count()) from e
    except InputError as e:
        metrics.margin_computations.labels("invalid").inc()
        raise invalid_request([FieldError(field=e.field, reason=e.reason)]) from e
    metrics.margin_duration.observe(time.perf_counter() - start)
    metrics.margin_computations.labels("ok").inc()
    return report
