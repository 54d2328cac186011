"""POST /v1/margin bodies, as an engine worker computes them (api.http.what_if.what_if_in_worker), with markets
cached by content in the worker (api.http.what_if.MarketCache): a hit answers what the engine computes on the
request itself, a changed market is a miss, and only standard JSON is ever keyed."""

from __future__ import annotations

import json
import math
from typing import Any
from unittest import mock

import pytest
from support.golden import EXPIRY_30D, market, option, position

from api.http import what_if
from api.http.problems import PROBLEM_CONTENT_TYPE
from api.http.what_if import MarketCache, what_if_in_worker
from risk_core.margin.engine import compute_margin_request
from risk_core.schema.request import MarginRequest

MAX_RISE = 10.0


@pytest.fixture
def cache() -> MarketCache:
    """This process's worker cache, emptied for the test."""
    what_if.WORKER_MARKETS = MarketCache()
    return what_if.WORKER_MARKETS


def full_market(**extra: Any) -> dict[str, Any]:
    return market(
        forwards={"BTC": {EXPIRY_30D: 100_400.0}},
        sources=[{"name": "pyth", "status": "stale", "reason": None}],
        **extra,
    )


def reordered(value: Any) -> Any:
    """The same JSON value with every object's keys in reverse order."""
    if isinstance(value, dict):
        return {k: reordered(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [reordered(v) for v in value]
    return value


BOOK_A = [option(-1, "call", 110_000), position("spot", asset="BTC", quantity=0.5),
          position("perp", underlying="ETH", quantity=-4, entry_price=3_100.0)]
BOOK_B = [option(2, "put", 90_000, account="acct-2"), position("spot", asset="USDC", quantity=20_000),
          position("perp", underlying="ETH", quantity=3), position("spot", asset="BTC", quantity=1.5)]


def leaves(value: Any, path: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else None
    if items is None:
        return {path: value}
    for k, v in items:
        out.update(leaves(v, f"{path}.{k}"))
    return out


def assert_same_to_the_cent(answer: Any, expected: Any) -> None:
    a, b = leaves(answer), leaves(expected)
    assert a.keys() == b.keys()
    for path, x in a.items():
        y = b[path]
        if isinstance(x, float) or isinstance(y, float):
            assert math.isclose(x, y, abs_tol=0.005), (path, x, y)
        else:
            assert x == y, (path, x, y)


def engine_report(document: dict[str, Any]) -> Any:
    """What `metarisk margin` writes for the document (the same function, through JSON)."""
    return json.loads(compute_margin_request(MarginRequest.model_validate(document)).model_dump_json())


def post(body: str | bytes) -> tuple[int, str, Any]:
    outcome = what_if_in_worker(body.encode() if isinstance(body, str) else body, None)
    if outcome.problem is not None:
        return outcome.problem.status, PROBLEM_CONTENT_TYPE, json.loads(outcome.problem.details(None).model_dump_json())
    assert outcome.report_json is not None
    return 200, "application/json", json.loads(outcome.report_json)


def entries(cache: MarketCache) -> int:
    return len(cache._entries)


def test_two_books_on_one_market_share_its_cache_entry_and_its_instruments(cache: MarketCache) -> None:
    m = full_market()
    first = {"positions": BOOK_A, "market": m}
    second = {"positions": BOOK_B, "market": reordered(m)}
    assert list(second["market"]) != list(m)  # the second document really is written differently
    assert entries(cache) == 0

    status_a, _, answer_a = post(json.dumps(first))
    status_b, _, answer_b = post(json.dumps(second))
    assert (status_a, status_b) == (200, 200)
    assert_same_to_the_cent(answer_a, engine_report(first))
    assert_same_to_the_cent(answer_b, engine_report(second))
    assert answer_a["warnings"] == answer_b["warnings"] == ["market source pyth is stale"]

    assert entries(cache) == 1
    key = MarketCache.key(second, strict=True)
    assert key is not None and key == MarketCache.key(first, strict=True)
    snapshot = cache.get(key)
    assert snapshot is not None and snapshot.spot["BTC"] == 100_000.0
    # both books were gathered from one set of instruments: call, BTC spot, ETH perp, then put and USDC
    assert cache.context(key, snapshot, None).instruments.size == 5

    # the same request again is a hit answering the same report
    status_c, _, answer_c = post(json.dumps(first))
    assert status_c == 200 and answer_c == answer_a
    assert entries(cache) == 1


def test_a_changed_spot_is_a_miss_priced_at_the_new_spot(cache: MarketCache) -> None:
    before = {"positions": BOOK_B, "market": full_market()}
    moved = full_market()
    moved["spot"] = {**moved["spot"], "BTC": 101_000.0}
    after = {"positions": BOOK_B, "market": moved}

    status, _, old = post(json.dumps(before))
    assert status == 200
    status, _, new = post(json.dumps(after))
    assert status == 200
    assert entries(cache) == 2
    assert old["positions"][3]["value_usd"] == 1.5 * 100_000.0
    assert new["positions"][3]["value_usd"] == 1.5 * 101_000.0
    assert new["underlyings"]["BTC"]["spot"] == 101_000.0
    assert new["equity_usd"] != old["equity_usd"]
    assert_same_to_the_cent(new, engine_report(after))


def test_nan_body_is_a_field_error_even_when_the_null_market_is_cached(cache: MarketCache) -> None:
    valid = {"positions": BOOK_A, "market": full_market()}  # sources[0].reason is null
    status, _, answer = post(json.dumps(valid))
    assert status == 200 and answer["warnings"] == ["market source pyth is stale"]
    assert entries(cache) == 1

    nan_market = full_market()
    nan_market["sources"][0]["reason"] = float("nan")
    with_nan = {"positions": BOOK_A, "market": nan_market}
    body = json.dumps(with_nan)  # "reason": NaN: not standard JSON, read by the fallback parser
    assert '"reason": NaN' in body
    # written back as JSON, NaN would be null: the very key of the cached market
    assert MarketCache.key(with_nan, strict=True) == MarketCache.key(valid, strict=True)
    with (
        mock.patch.object(cache, "get", wraps=cache.get) as get,
        mock.patch.object(cache, "put", wraps=cache.put) as put,
    ):
        status, content_type, problem = post(body)
    assert status == 422
    assert content_type == "application/problem+json"
    assert problem["status"] == 422
    assert [e["field"] for e in problem["errors"]] == ["market.sources[0].reason"]
    assert get.call_count == 0 and put.call_count == 0
    assert entries(cache) == 1


def test_an_invalid_market_names_the_market_field(cache: MarketCache) -> None:
    good = {"positions": BOOK_A, "market": full_market()}
    assert (post(json.dumps(good)))[0] == 200

    negative = full_market()
    negative["spot"]["BTC"] = -5
    bad_spot = {"positions": BOOK_A, "market": negative}
    status, content_type, problem = post(json.dumps(bad_spot))
    assert (status, content_type) == (422, "application/problem+json")
    assert [e["field"] for e in problem["errors"]] == ["market.spot.BTC"]

    unknown = {"positions": BOOK_A, "market": full_market(oracle="pyth")}
    status, _, problem = post(json.dumps(unknown))
    assert status == 422
    assert [e["field"] for e in problem["errors"]] == ["market.oracle"]

    # a cached market does not hide a fault elsewhere in the request
    bad_position = {"positions": [{**BOOK_A[0], "strike": -1}], "market": full_market()}
    status, _, problem = post(json.dumps(bad_position))
    assert status == 422
    assert [e["field"] for e in problem["errors"]] == ["positions[0].strike"]
    assert entries(cache) == 1  # invalid markets are never kept
