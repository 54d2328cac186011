"""Crashes and lost databases mid-refresh: the last complete snapshot stays intact and readable, nothing half
written appears, and a database that cannot be reached is a clear StoreUnavailable, never a stray driver error."""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, text
from store.helpers import demo_refresh, row_counts

from aggregator.store import Store, StoreUnavailable, WatchedAccount

T0 = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
CRASH_SCRIPT = Path(__file__).with_name("crash_mid_refresh.py")


def test_a_process_killed_mid_refresh_leaves_the_last_complete_snapshot(
    store: Store, account: WatchedAccount, database_url: str, tmp_path: Path
) -> None:
    before = demo_refresh(T0)
    store.save_refresh(account.id, *before, computed_at=T0)
    counts = row_counts(store)

    doomed = demo_refresh(T0 + timedelta(minutes=1), eth_spot=2000.0)
    inputs = tmp_path / "refresh.json"
    inputs.write_text(
        json.dumps({"account_id": account.id, **{k: v.model_dump(mode="json") for k, v in doomed._asdict().items()}})
    )
    killed = subprocess.run(
        [sys.executable, str(CRASH_SCRIPT), database_url, str(inputs)], capture_output=True, text=True, timeout=120
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr

    assert row_counts(store) == counts
    latest = store.latest_report(account.id)
    assert latest is not None and latest.report == before.report
    positions = store.latest_position_snapshot(account.id)
    assert positions is not None and positions.snapshot == before.positions
    market = store.latest_market_snapshot()
    assert market is not None and market.snapshot == before.market
    # and the store still takes refreshes: no lock or half transaction was left behind
    store.save_refresh(account.id, *doomed, computed_at=T0 + timedelta(minutes=1))
    latest = store.latest_report(account.id)
    assert latest is not None and latest.report == doomed.report


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_database_connections_killed_mid_refresh(store: Store, account: WatchedAccount, pg_admin: Engine) -> None:
    """The server ends the store's backends (as on a crash or restart) between two INSERTs of a refresh."""
    before = demo_refresh(T0)
    store.save_refresh(account.id, *before, computed_at=T0)
    counts = row_counts(store)
    application_name = store.engine.url.query["application_name"]

    def terminate_store_backends(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.startswith("INSERT INTO position_snapshots"):
            with pg_admin.connect() as admin:
                admin.execute(
                    text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = :name"),
                    {"name": application_name},
                )

    event.listen(store.engine, "after_cursor_execute", terminate_store_backends)
    try:
        with pytest.raises(StoreUnavailable, match="^database (unavailable|connection lost)$") as lost:
            store.save_refresh(account.id, *demo_refresh(T0 + timedelta(minutes=1), eth_spot=2000.0))
        # the driver's reason stays with the error's cause (and the log), out of the text clients may see
        assert re.search("terminat|closed", str(lost.value.__cause__))
    finally:
        event.remove(store.engine, "after_cursor_execute", terminate_store_backends)

    assert row_counts(store) == counts
    latest = store.latest_report(account.id)
    assert latest is not None and latest.report == before.report
    # the next refresh reconnects
    after = demo_refresh(T0 + timedelta(minutes=2))
    store.save_refresh(account.id, *after, computed_at=T0 + timedelta(minutes=2))
    latest = store.latest_report(account.id)
    assert latest is not None and latest.report == after.report


def test_an_unreachable_postgresql_is_store_unavailable() -> None:
    store = Store.from_url("postgresql+psycopg://postgres@127.0.0.1:1/test", timeout_s=1)
    refresh = demo_refresh(T0)
    with pytest.raises(StoreUnavailable, match="unavailable"):
        store.latest_report("demo")
    with pytest.raises(StoreUnavailable):
        store.save_refresh("demo", *refresh)
    with pytest.raises(StoreUnavailable):
        store.migrate()


def test_a_locked_sqlite_file_is_store_unavailable_after_the_timeout(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = Store.from_url(url, timeout_s=0.2)
    store.migrate()
    store.add_account(WatchedAccount(id="demo"))
    blocker = sqlite3.connect(tmp_path / "store.db", isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreUnavailable, match="^database unavailable$") as locked:
            store.save_refresh("demo", *demo_refresh(T0))
        assert "locked" in str(locked.value.__cause__)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    store.save_refresh("demo", *demo_refresh(T0))
    assert store.latest_report("demo") is not None
