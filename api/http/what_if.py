"""A what-if margin: a request document in, the margin report out, exactly as `metarisk margin` computes it."""

from __future__ import annotations

import time
from collections import OrderedDict
from threading import Lock

import orjson
from pydantic import ValidationError
from pydantic_core import from_json

from api.http.json_body import refuse_duplicate_keys
from api.http.metrics import ApiMetrics
from api.http.problems import FieldError, Problem, field_errors, invalid_request
from api.http.service import RiskService
from risk_core.errors import InputError
from risk_core.margin.engine import compute_margin_request
from risk_core.schema.market import MarketSnapshot
from risk_core.schema.params import RiskParams
from risk_core.schema.report import MarginReport
from risk_core.schema.request import MarginRequest


class MarketCache:
    """Validated market snapshots by their content, the few most recent.

    Clients of a what-if service send one snapshot (the service's own, or their desk's) with many books. Handing
    the engine the same snapshot object again skips validating it and lets the engine reuse every instrument it
    has already valued on that snapshot (risk_core.margin.instruments). The key is the market document itself,
    serialized with sorted keys: two documents share an entry only if they are the same JSON. Only documents
    parsed as standard JSON are keyed (`strict`): orjson writes NaN as null, which would confuse the two.
    """

    def __init__(self, size: int = 4) -> None:  # each snapshot holds its instruments (up to ~40 MB)
        self._size = size
        self._entries: OrderedDict[bytes, MarketSnapshot] = OrderedDict()
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
                self._entries.popitem(last=False)


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


async def with_service_market(document: object, service: RiskService | None) -> object:
    """The request document, priced against the aggregator's current snapshot when it names no market.

    Raises:
        Problem: 503 when the service cannot produce its snapshot (its market sources are down).
    """
    if service is None or not isinstance(document, dict) or document.get("market") is not None:
        return document
    try:
        snapshot = await service.market_snapshot()
    except ConnectionError as e:
        raise Problem(503, "service-unavailable", "Service unavailable", f"no market snapshot: {e}") from e
    return {**document, "market": snapshot}


def compute_what_if(
    document: object, metrics: ApiMetrics, markets: MarketCache | None = None, *, strict: bool = False
) -> MarginReport:
    """The report of a MarginRequest document; computed inline because it is CPU-bound and short, and a thread
    would add overhead without parallelism under the GIL. A market found in `markets` is not validated again.

    Raises:
        Problem: 422 naming the fields at fault (schema violation, bad parameter override, unpriceable input).
    """
    start = time.perf_counter()
    key = None if markets is None else markets.key(document, strict=strict)
    known = None if key is None or markets is None else markets.get(key)
    if known is not None and isinstance(document, dict):
        document = {**document, "market": known}
    try:
        request = MarginRequest.model_validate(document)
    except ValidationError as e:
        metrics.margin_computations.labels("invalid").inc()
        raise invalid_request(field_errors(e), e.error_count()) from e
    if key is not None and known is None and markets is not None and request.market is not None:
        markets.put(key, request.market)
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
