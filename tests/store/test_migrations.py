"""Migrations: shipped in the package, applied from empty, idempotent, reversible, and in step with the models."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from store.helpers import demo_refresh

from aggregator.store import Store, WatchedAccount
from aggregator.store.store import ALEMBIC_INI
from aggregator.store.tables import metadata

STORE_TABLES = {"watched_accounts", "position_snapshots", "market_snapshots", "margin_reports"}


def current_revision(store: Store) -> str | None:
    with store.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(Config(str(ALEMBIC_INI))).get_current_head()


def test_migrations_apply_from_empty_and_are_idempotent(unmigrated_store: Store) -> None:
    store = unmigrated_store
    assert ALEMBIC_INI.is_file() and head_revision() is not None
    assert current_revision(store) is None
    assert not STORE_TABLES & set(inspect(store.engine).get_table_names())

    store.migrate()
    assert current_revision(store) == head_revision()
    assert set(inspect(store.engine).get_table_names()) >= STORE_TABLES

    store.add_account(WatchedAccount(id="demo"))
    refresh = demo_refresh(datetime(2026, 11, 25, tzinfo=UTC))
    store.save_refresh("demo", *refresh)
    store.migrate()
    assert current_revision(store) == head_revision()
    latest = store.latest_report("demo")
    assert latest is not None and latest.report == refresh.report, "a second migrate changes nothing"


def test_models_and_migrations_do_not_drift(store: Store) -> None:
    """What `alembic revision --autogenerate` would write after the shipped migrations: it must be nothing."""
    with store.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True, "compare_server_default": True})
        assert compare_metadata(context, metadata) == []


def test_migrations_downgrade_to_empty_and_back(store: Store) -> None:
    config = Config(str(ALEMBIC_INI))
    with store.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "base")
    assert not STORE_TABLES & set(inspect(store.engine).get_table_names())
    store.migrate()
    assert current_revision(store) == head_revision()
