"""Helpers of the store tests: where the test PostgreSQL is, real refreshes of the demo wallet, row counts."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import create_engine, func, make_url, select, text
from sqlalchemy.engine import URL, Engine
from sqlalchemy.exc import OperationalError

from aggregator.store import PositionSnapshot, Store
from aggregator.store.tables import MarginReportRow, MarketSnapshotRow, PositionSnapshotRow
from risk_core.margin.engine import compute_margin_request
from risk_core.schema.market import MarketSnapshot, SourceStatus
from risk_core.schema.report import MarginReport
from risk_core.schema.request import MarginRequest

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
DEMO_REQUEST = Path(__file__).resolve().parents[2] / "examples" / "demo_request.json"


def pg_base_url() -> URL:
    return make_url(os.environ.get("METARISK_TEST_DATABASE_URL") or DEFAULT_PG_URL)


def postgresql_required() -> bool:
    """Under CI, or when the URL was given explicitly (.ci/run does), a missing PostgreSQL is a failure."""
    under_ci = os.environ.get("CI", "").lower() not in ("", "0", "false")
    return under_ci or bool(os.environ.get("METARISK_TEST_DATABASE_URL"))


@cache
def pg_unreachable_reason() -> str | None:
    engine = create_engine(pg_base_url(), connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as connection:
            connection.execute(text("select 1"))
    except OperationalError as error:
        return str(error.orig).strip().partition("\n")[0]
    finally:
        engine.dispose()
    return None


@contextmanager
def scratch_schema(admin: Engine, prefix: str) -> Iterator[str]:
    """The URL of a fresh schema of the test PostgreSQL (its search path), dropped with everything in it after."""
    schema = f"{prefix}_{uuid.uuid4().hex[:16]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = pg_base_url().update_query_dict({"options": f"-csearch_path={schema}", "application_name": schema})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


class Refresh(NamedTuple):
    positions: PositionSnapshot
    market: MarketSnapshot
    report: MarginReport


def demo_refresh(taken_at: datetime, *, eth_spot: float = 3000.0, complete: bool = True) -> Refresh:
    """A real refresh of the demo wallet: the market moved to `taken_at` and `eth_spot`, the report computed;
    an incomplete one has a failed position source."""
    demo = json.loads(DEMO_REQUEST.read_text())
    payload: dict[str, Any] = {**demo, "market": {**demo["market"], "as_of": taken_at.isoformat()}}
    payload["market"]["spot"] = {**demo["market"]["spot"], "ETH": eth_spot}
    payload["sources"] = [
        SourceStatus(name="aave-v3@ethereum", status="ok", as_of=taken_at).model_dump(mode="json"),
        SourceStatus(name="gmx-v2@arbitrum", status="ok" if complete else "failed", as_of=taken_at).model_dump(
            mode="json"
        ),
    ]
    request = MarginRequest.model_validate(payload)
    positions = PositionSnapshot(
        taken_at=taken_at,
        positions=request.positions,
        sources=request.sources,
        blocks={"ethereum": 21_000_000, "arbitrum": 280_000_000},
        complete=complete,
    )
    return Refresh(positions=positions, market=request.market, report=compute_margin_request(request))


def row_counts(store: Store) -> dict[str, int]:
    with store.engine.connect() as connection:
        return {
            str(table.__tablename__): connection.execute(select(func.count()).select_from(table)).scalar_one()
            for table in (PositionSnapshotRow, MarketSnapshotRow, MarginReportRow)
        }
