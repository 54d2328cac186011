"""The stored history routes, REST and GraphQL, served from the fake service's three hourly reports of the account
(ids 1-3 from its history_start, 2026-01-05 08:00 UTC) and one report (id 4) of another account."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from aggregator.store import StoredReport
from api.http.settings import DEMO_API_KEY

HISTORY = "/v1/accounts/demo/history"
GRAPHQL_HEADERS = {"X-API-Key": DEMO_API_KEY, "Content-Type": "application/json"}


HISTORY_START = datetime(2026, 1, 5, 8, tzinfo=UTC)


def at(hours: float) -> str:
    return (HISTORY_START + timedelta(hours=hours)).isoformat().replace("+00:00", "Z")


async def problem(client: Any, path: str, status: int) -> dict[str, Any]:
    response = await client.get(path)
    assert response.status == status, await response.text()
    assert response.content_type == "application/problem+json"
    body: dict[str, Any] = await response.json(content_type=None)
    return body


async def test_history_is_the_accounts_headlines_newest_first(make_client: Any, fake_service: Any) -> None:
    client = await make_client(service=fake_service)
    response = await client.get(HISTORY)
    assert response.status == 200
    page = await response.json()
    assert [r["id"] for r in page["reports"]] == [3, 2, 1]  # report 4 is another account's
    assert [r["computed_at"] for r in page["reports"]] == [at(2), at(1), at(0)]
    newest, stored = page["reports"][0], fake_service.stored()[2].report
    assert (newest["equity_usd"], newest["maintenance_margin_usd"], newest["initial_margin_usd"]) == (
        stored.equity_usd, stored.maintenance_margin_usd, stored.initial_margin_usd
    )
    assert (newest["status"], newest["complete"], newest["params_version"]) == (
        stored.status, stored.complete, stored.params_version
    )
    assert {k: page[k] for k in ("account_id", "since", "until", "limit", "more", "next_until")} == {
        "account_id": "demo", "since": None, "until": None, "limit": 100, "more": False, "next_until": None
    }


async def test_paging_with_next_until_visits_every_report_once(make_client: Any, fake_service: Any) -> None:
    client = await make_client(service=fake_service)
    first = await (await client.get(HISTORY, params={"limit": "2"})).json()
    assert ([r["id"] for r in first["reports"]], first["more"], first["next_until"]) == ([3, 2], True, at(1))
    second = await (await client.get(HISTORY, params={"limit": "2", "until": first["next_until"]})).json()
    assert ([r["id"] for r in second["reports"]], second["more"], second["next_until"]) == ([1], False, None)
    assert second["until"] == at(1)


async def test_since_is_inclusive_and_until_exclusive_in_any_offset(make_client: Any, fake_service: Any) -> None:
    client = await make_client(service=fake_service)
    # 10:00+01:00 is report 2's instant, 11:00+01:00 report 3's
    query = {"since": "2026-01-05T10:00:00+01:00", "until": "2026-01-05T11:00:00+01:00"}
    page = await (await client.get(HISTORY, params=query)).json()
    assert [r["id"] for r in page["reports"]] == [2]
    assert (page["since"], page["until"]) == (query["since"], query["until"])


@pytest.mark.parametrize(
    ("query", "field", "reason"),
    [
        ("since=yesterday", "since", "not an ISO 8601 datetime such as 2026-01-05T08:00:00Z"),
        ("since=1767600000", "since", "not an ISO 8601 datetime such as 2026-01-05T08:00:00Z"),
        ("until=2026-01-05T08:00:00", "until", "no timezone: end it with Z or an offset such as +02:00"),
        ("since=2026-01-05T08:00:00+01:00", "since", "a '+' in a URL query reads as a space: write it %2B, or use Z"),
        ("until=2026-02-30T08:00:00Z", "until", "not a valid datetime: day is out of range for month"),
        ("since=2026-01-05T09:00:00Z&until=2026-01-05T08:00:00Z", "until", "must be later than since"),
        ("since=2026-01-05T08:00:00Z&until=2026-01-05T08:00:00Z", "until", "must be later than since"),
        ("limit=0", "limit", "Input should be greater than or equal to 1"),
        ("limit=1001", "limit", "Input should be less than or equal to 1000"),
        ("limit=ten", "limit", "Input should be a valid integer, unable to parse string as an integer"),
        ("limit=2.5", "limit", "Input should be a valid integer, unable to parse string as an integer"),
        ("limit=1&limit=2", "limit", "given more than once"),
        ("sinse=2026-01-05T08:00:00Z", "sinse", "Extra inputs are not permitted"),
    ],
)
async def test_a_bad_query_is_a_422_naming_the_parameter(
    make_client: Any, fake_service: Any, query: str, field: str, reason: str
) -> None:
    client = await make_client(service=fake_service)
    body = await problem(client, f"{HISTORY}?{query}", 422)
    assert body["errors"] == [{"field": field, "reason": reason}]


async def test_a_stored_report_is_served_whole(make_client: Any, fake_service: Any) -> None:
    client = await make_client(service=fake_service)
    response = await client.get("/v1/accounts/demo/reports/2")
    assert response.status == 200
    served = StoredReport.model_validate(await response.json())
    assert served == fake_service.stored()[1]
    assert served.computed_at == HISTORY_START + timedelta(hours=1)


@pytest.mark.parametrize(
    ("path", "status", "field"),
    [
        ("/v1/accounts/nobody/history", 404, "account_id"),
        ("/v1/accounts/nobody/reports/1", 404, "account_id"),
        ("/v1/accounts/demo/reports/4", 404, "report_id"),  # report 4 is another account's: never served here
        ("/v1/accounts/demo/reports/99", 404, "report_id"),
        ("/v1/accounts/demo/reports/abc", 422, "report_id"),
        ("/v1/accounts/demo/reports/0", 422, "report_id"),
        ("/v1/accounts/demo/reports/99999999999999999999", 422, "report_id"),
    ],
)
async def test_unknown_or_malformed_ids_are_problems(
    make_client: Any, fake_service: Any, path: str, status: int, field: str
) -> None:
    client = await make_client(service=fake_service)
    body = await problem(client, path, status)
    assert [e["field"] for e in body["errors"]] == [field]


async def test_another_accounts_report_is_answered_as_absent(make_client: Any, fake_service: Any) -> None:
    client = await make_client(service=fake_service)
    assert fake_service.stored()[3].account_id != "demo"
    theirs = await problem(client, f"/v1/accounts/demo/reports/{fake_service.other_accounts_report}", 404)
    missing = await problem(client, "/v1/accounts/demo/reports/99", 404)
    assert theirs["detail"] == "account 'demo' has no report 4"
    assert {k: v for k, v in theirs.items() if k not in ("detail", "instance")} == {
        k: v for k, v in missing.items() if k not in ("detail", "instance")
    }


async def test_a_database_down_is_a_503(make_client: Any, down_service: Any) -> None:
    client = await make_client(service=down_service)
    history = await problem(client, HISTORY, 503)
    assert history["detail"] == "the history of account 'demo' cannot be read: database unavailable"
    report = await problem(client, "/v1/accounts/demo/reports/1", 503)
    assert report["detail"] == "report 1 cannot be read: database unavailable"


async def test_without_a_service_history_is_a_503(client: Any) -> None:
    for path in (HISTORY, "/v1/accounts/demo/reports/1"):
        body = await problem(client, path, 503)
        assert body["detail"].startswith("no aggregator is configured in this server")


async def graphql(client: Any, query: str, variables: dict[str, Any] | None = None) -> Any:
    body = json.dumps({"query": query, "variables": variables})
    response = await client.post("/graphql", data=body, headers=GRAPHQL_HEADERS)
    assert response.status == 200
    return await response.json()


HEADLINE_FIELDS = ("id accountId positionSnapshotId marketSnapshotId computedAt equityUsd collateralUsd "
                   "maintenanceMarginUsd initialMarginUsd marginRatio status complete paramsVersion")
HISTORY_QUERY = f"""query($since: DateTime, $until: DateTime, $limit: Int!) {{
  accountHistory(accountId: "demo", since: $since, until: $until, limit: $limit) {{
    accountId since until limit more nextUntil reports {{ {HEADLINE_FIELDS} }}
  }}
  storedReport(accountId: "demo", reportId: 2) {{
    id accountId positionSnapshotId marketSnapshotId computedAt report {{ asOf maintenanceMarginUsd reportJson }}
  }}
}}"""


def camel(document: Any) -> Any:
    """REST's snake_case keys as GraphQL names them."""
    if isinstance(document, dict):
        return {re.sub(r"_([a-z])", lambda m: m.group(1).upper(), k): camel(v) for k, v in document.items()}
    if isinstance(document, list):
        return [camel(v) for v in document]
    return document


async def test_graphql_answers_what_rest_does(make_client: Any, fake_service: Any) -> None:
    client = await make_client(service=fake_service)
    variables = {"since": at(0), "until": at(2), "limit": 1}
    result = await graphql(client, HISTORY_QUERY, variables)
    assert "errors" not in result, result
    rest_page = await (await client.get(HISTORY, params={k: str(v) for k, v in variables.items()})).json()
    # the same figures, typed and named in camelCase like every other GraphQL field, times in UTC with Z
    assert result["data"]["accountHistory"] == camel(rest_page)
    assert [r["id"] for r in rest_page["reports"]] == [2] and rest_page["more"] is True
    assert rest_page["reports"][0]["computed_at"].endswith("Z")
    rest_report = await (await client.get("/v1/accounts/demo/reports/2")).json()
    stored = result["data"]["storedReport"]
    report = stored.pop("report")
    assert stored == camel({k: v for k, v in rest_report.items() if k != "report"})
    assert report["reportJson"] == rest_report["report"]
    assert (report["asOf"], report["maintenanceMarginUsd"]) == (
        rest_report["report"]["as_of"], rest_report["report"]["maintenance_margin_usd"])


async def test_graphql_history_errors(make_client: Any, fake_service: Any, down_service: Any) -> None:
    client = await make_client(service=fake_service)
    naive = await graphql(client, HISTORY_QUERY, {"since": "2026-01-05T08:00:00", "until": None, "limit": 5})
    (error,) = naive["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["extensions"]["errors"] == [{"field": "since", "reason": "Input should have timezone info"}]
    too_many = await graphql(client, HISTORY_QUERY, {"since": None, "until": None, "limit": 5000})
    assert too_many["errors"][0]["extensions"]["errors"] == [
        {"field": "limit", "reason": "Input should be less than or equal to 1000"}
    ]
    absent = await graphql(
        client, '{ accountHistory(accountId: "nobody") { more } storedReport(accountId: "demo", reportId: 4) { id } }'
    )
    assert absent == {"data": {"accountHistory": None, "storedReport": None}}
    down = await graphql(await make_client(service=down_service), '{ accountHistory(accountId: "demo") { more } }')
    assert down["errors"][0]["extensions"] == {"code": "SERVICE_UNAVAILABLE", "status": 503}
    assert down["errors"][0]["message"] == "the history of account 'demo' cannot be read: database unavailable"
