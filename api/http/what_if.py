"""A what-if margin: a request document in, the margin report out, exactly as `metarisk margin` computes it."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from threading import Lock
from typing import Any, TypeVar

import orjson
from aiohttp import web
from pydantic import ValidationError
from pydantic_core import from_json

from aggregator.engine_pool import BudgetExceeded, EnginePool, WorkerFailed
from api.errors import InvalidRequest, compute_request_report
from api.fhs_history import with_recorded_history
from api.http.json_body import refuse_duplicate_keys
from api.http.metrics import ApiMetrics
from api.http.problems import FieldError, Problem, field_errors, invalid_request
from api.http.service import RiskService
from risk_core.margin.context import PricingContext, effective_params, pricing_context
from risk_core.schema.market import MarketSnapshot
from risk_core.schema.params import RiskParams
from risk_core.schema.report import MarginReport
from risk_core.schema.request import MarginRequest

Result = TypeVar("Result")
ENGINE = web.AppKey("engine", EnginePool)  # the app's engine pool: what-ifs and surface fits


class MarketCache:
    """Validated market snapshots by their content, the few most recent, each with its pricing contexts.

    Clients of a what-if service send one snapshot (the service's own, or their desk's) with many books. Keeping
    the snapshot skips validating it again, and keeping its pricing context per parameter overrides
    (risk_core.margin.context) reuses every instrument already valued on it. The key is the market document itself,
    serialized with sorted keys: two documents share an entry only if they are the same JSON. Only documents
    parsed as standard JSON are keyed (`strict`): orjson writes NaN as null, which would confuse the two.
    """

    def __init__(self, size: int = 4) -> None:  # each snapshot holds its instruments (up to ~40 MB)
        self._size = size
        self._entries: OrderedDict[bytes, MarketSnapshot] = OrderedDict()
        self._contexts: dict[bytes, dict[bytes, PricingContext]] = {}  # per entry: per canonical overrides
        self._lock = Lock()  # GraphQL resolvers may run in threads

    @staticmethod
    def key(document: object, *, strict: bool) -> bytes | None:
        if not strict or not isinstance(document, dict) or not isinstance(document.get("market"), dict):
            return None
        return orjson.dumps(document["market"], option=orjson.OPT_SORT_KEYS)

    def get(self, key: bytes) -> MarketSnapshot | None:
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
            return found

    def put(self, key: bytes, market: MarketSnapshot) -> None:
        with self._lock:
            self._entries[key] = market
            self._entries.move_to_end(key)
            while len(self._entries) > self._size:
                evicted, _ = self._entries.popitem(last=False)
                self._contexts.pop(evicted, None)

    def context(self, key: bytes, market: MarketSnapshot, overrides: dict[str, Any] | None) -> PricingContext | None:
        """The pricing context of the cached `market` with these parameter overrides, made on first use; None when
        the overrides cannot be written as a key (nested past orjson's depth: they are refused as parameters).

        Raises:
            ValidationError: the overrides do not make valid parameters.
        """
        try:
            canonical = orjson.dumps(overrides or {}, option=orjson.OPT_SORT_KEYS)
        except TypeError:
            return None
        with self._lock:
            found = self._contexts.get(key, {}).get(canonical)
        if found is None or found.market is not market:
            found = pricing_context(market, effective_params(overrides))
            with self._lock:
                if key in self._entries:
                    per_params = self._contexts.setdefault(key, {})
                    per_params[canonical] = found
                    while len(per_params) > self._size:
                        del per_params[next(iter(per_params))]
        return found


def parse_json_body(body: bytes) -> tuple[object, bool]:
    """The document, and whether it is standard JSON. orjson first (fast); on failure pydantic's parser, which
    like the CLI reads NaN and Infinity, so that such a number is reported as a field error naming the field, not
    as broken JSON. (Not the standard json module: deep nesting can overflow its C stack when a library has
    raised the recursion limit.)

    Raises:
        Problem: 400 when the body is not JSON at all, 422 when an object gives a key twice.
    """
    try:
        document = orjson.loads(body)
        refuse_duplicate_keys(body)
        return document, True
    except orjson.JSONDecodeError:
        pass
    try:
        document = from_json(body, allow_inf_nan=True)
        refuse_duplicate_keys(body)
        return document, False
    except ValueError as e:
        raise Problem(
            400,
            "invalid-json",
            "Invalid JSON",
            f"the body is not valid JSON: {e}",
            [FieldError(field="(request)", reason=f"invalid JSON: {e}")],
        ) from e


ENGINE_PRELOAD = ("api.http.what_if",)  # the engine workers' functions (aggregator.engine_pool)
WORKER_MARKETS = MarketCache()
"""The validated markets of this process: each engine worker (aggregator.engine_pool) keeps its own."""


@dataclass(frozen=True)
class WhatIfOutcome:
    """What an engine worker answers for a what-if: the report's JSON, or a problem, or that the request names no
    market (the caller fills in the service's and asks again)."""

    report_json: bytes | None = None
    problem: Problem | None = None
    needs_market: bool = False
    seconds: float = 0.0


def what_if_in_worker(request: bytes | object, service_market: MarketSnapshot | None) -> WhatIfOutcome:
    """A what-if from the request's body (or a parsed document, from GraphQL), in an engine worker: parsed,
    validated and computed there, off the event loop. `service_market` prices a request naming no market; when it
    is None such a request answers `needs_market`. A refusal by the engine of a request priced on the service's
    market is the service's fault (its market lacks a price or a surface): 503, not the client's 422."""
    start = time.perf_counter()
    try:
        document, strict = parse_json_body(request) if isinstance(request, bytes) else (request, False)
        if isinstance(document, dict) and document.get("market") is None:
            if service_market is None:
                return WhatIfOutcome(needs_market=True)
            document, strict = {**document, "market": _known_service_market(service_market)}, False
            try:
                report = compute_what_if(document, WORKER_MARKETS, strict=strict)
            except Problem as problem:
                raise _service_market_problem(problem, service_market) from problem
        else:
            report = compute_what_if(document, WORKER_MARKETS, strict=strict)
    except Problem as problem:
        return WhatIfOutcome(problem=problem, seconds=time.perf_counter() - start)
    # pydantic's own serializer measured faster here than orjson over model_dump (0.15 vs 0.21 ms per report)
    return WhatIfOutcome(report_json=report.model_dump_json().encode(), seconds=time.perf_counter() - start)


def _known_service_market(market: MarketSnapshot) -> MarketSnapshot:
    """The worker's copy of the service's snapshot, one object per snapshot: unpickled afresh with each request,
    it would be new to the engine's instrument cache every time."""
    key = orjson.dumps([market.as_of.isoformat(), sorted(market.spot.items()), len(market.sources)])
    known = WORKER_MARKETS.get(key)
    if known is None:
        WORKER_MARKETS.put(key, market)
        return market
    return known


def _service_market_problem(problem: Problem, market: MarketSnapshot) -> Problem:
    priced_by_market = any(e.field.startswith(("positions[", "market")) for e in problem.errors)
    down = [s.name for s in market.sources if s.status != "ok"]
    if problem.status != 422 or not priced_by_market or not down:
        return problem
    return Problem(
        503,
        "service-unavailable",
        "Service unavailable",
        f"the service's market cannot price this request ({problem.detail}); its sources {', '.join(down[:8])} "
        "are down or stale",
        problem.errors,
    )


async def compute_what_if_in_pool(
    request: bytes | object, service: RiskService | None, pool: EnginePool, metrics: ApiMetrics
) -> WhatIfOutcome:
    """The outcome of a what-if computed in the engine pool, the service's market filled in when the request names
    none. Counted in `metrics`.

    Raises:
        Problem: the request's own (400, 422), 503 when the service has no market or the pool is saturated or past
            its time budget, 422 past its memory budget (the request is too large to compute).
    """
    snapshot = None
    # a body without the word cannot name a market (an escaped spelling is asked for again below)
    names_market = b'"market"' in request if isinstance(request, bytes) else (
        isinstance(request, dict) and request.get("market") is not None)
    if service is not None and not names_market:
        snapshot = await _service_snapshot(service)
    outcome = await run_in_engine(pool, what_if_in_worker, request, snapshot)
    if outcome.needs_market and service is not None and snapshot is None:
        outcome = await run_in_engine(pool, what_if_in_worker, request, await _service_snapshot(service))
    if outcome.needs_market:
        outcome = WhatIfOutcome(problem=invalid_request(
            [FieldError(field="market", reason="required: the market snapshot to price against")]))
    if outcome.problem is not None:
        if outcome.problem.status == 422:
            metrics.margin_computations.labels("invalid").inc()
        raise outcome.problem
    metrics.margin_duration.observe(outcome.seconds)
    metrics.margin_computations.labels("ok").inc()
    return outcome


async def _service_snapshot(service: RiskService) -> MarketSnapshot:
    try:
        return await service.market_snapshot()
    except ConnectionError as e:
        raise Problem(503, "service-unavailable", "Service unavailable", f"no market snapshot: {e}") from e


async def run_in_engine(pool: EnginePool, call: Callable[..., Result], *args: Any) -> Result:
    """`call(*args)` in the engine pool, its budget's refusals as problems: a memory overrun is the request's
    (422), a time overrun or a saturated pool the service's (503, retry)."""
    try:
        return await pool.run(call, *args)
    except BudgetExceeded as e:
        if e.limit == "memory":
            raise Problem(422, "over-budget", "Request over the engine's budget", f"{e.detail}: the request is "
                          "too large to compute", [FieldError(field="positions", reason=e.detail)]) from e
        raise Problem(503, "engine-busy", "Engine busy", e.detail, headers={"Retry-After": "5"}) from e
    except WorkerFailed as e:
        raise Problem(503, "engine-busy", "Engine busy", f"{e}; retry", headers={"Retry-After": "1"}) from e


def compute_what_if(document: object, markets: MarketCache | None = None, *, strict: bool = False) -> MarginReport:
    """The report of a MarginRequest document (in an engine worker: see `what_if_in_worker`). A market found in
    `markets` is not validated again.

    Raises:
        Problem: 422 naming the fields at fault (schema violation, bad parameter override, unpriceable input).
    """
    key = None if markets is None else markets.key(document, strict=strict)
    known = None if key is None or markets is None else markets.get(key)
    if known is not None and isinstance(document, dict):
        document = {**document, "market": known}
    try:
        request = MarginRequest.model_validate(document)
    except ValidationError as e:
        raise invalid_request(field_errors(e), e.error_count()) from e
    if key is not None and known is None and markets is not None and request.market is not None:
        markets.put(key, request.market)
    try:
        filled = with_recorded_history(request)  # an fhs request without history gets the recorded one
        context = None
        if filled is request and key is not None and markets is not None and request.market is not None:
            context = markets.context(key, request.market, request.params)
        return compute_request_report(filled, context)
    except ValidationError as e:
        if e.title != RiskParams.__name__:
            raise  # the engine built an invalid model: a bug for the catch-all, not the client's fault
        # the parameter overrides, merged into the shipped parameters and validated with the context
        raise invalid_request(field_errors(e, prefix="params"), e.error_count()) from e
    except InvalidRequest as e:
        raise invalid_request(e.errors, e.total) from e
