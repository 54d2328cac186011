"""Every store test runs on SQLite (a file in tmp_path) and on PostgreSQL (METARISK_TEST_DATABASE_URL).

Each PostgreSQL test gets a schema of its own (search_path) and an application_name equal to it, so parallel runs
never see, or terminate, each other's tables and connections. An unreachable PostgreSQL skips its half of the
tests locally, but fails them when CI or METARISK_TEST_DATABASE_URL is set (.ci/run sets the URL), so CI cannot
pass without having run them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine
from store.helpers import pg_base_url, pg_unreachable_reason, postgresql_required, scratch_schema

from aggregator.store import Store, WatchedAccount


@pytest.fixture
def pg_admin() -> Iterator[Engine]:
    """Connections outside the store's schema: to create and drop schemas and to kill the store's backends."""
    engine = create_engine(pg_base_url(), isolation_level="AUTOCOMMIT")
    yield engine
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    if reason := pg_unreachable_reason():
        message = f"PostgreSQL at {pg_base_url().render_as_string()} unreachable: {reason}"
        if postgresql_required():
            pytest.fail(f"{message} (CI or METARISK_TEST_DATABASE_URL is set: the PostgreSQL tests must run)")
        pytest.skip(message)
    pg_admin: Engine = request.getfixturevalue("pg_admin")
    with scratch_schema(pg_admin, "store_test") as url:
        yield url


@pytest.fixture
def unmigrated_store(database_url: str) -> Iterator[Store]:
    store = Store.from_url(database_url, timeout_s=5)
    yield store
    store.close()


@pytest.fixture
def store(unmigrated_store: Store) -> Store:
    unmigrated_store.migrate()
    return unmigrated_store


@pytest.fixture
def account(store: Store) -> WatchedAccount:
    return store.add_account(
        WatchedAccount(
            id="demo",
            label="Demo wallet",
            addresses={"ethereum": ["0x00000000000000000000000000000000000000d3"]},
            venue_accounts={"deribit": ["demo-sub-1"]},
            alert_webhook_url="https://hooks.example.com/metarisk",
            margin_ratio_alerts=[0.7, 0.9],
        )
    )
