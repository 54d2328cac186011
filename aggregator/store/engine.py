"""Where the database is and how to connect: DATABASE_URL, or a SQLite file in the data directory."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.engine import URL

DEFAULT_TIMEOUT_S = 10.0


def data_dir() -> Path:
    """METARISK_DATA_DIR, else $XDG_DATA_HOME/metarisk (~/.local/share/metarisk)."""
    if explicit := os.environ.get("METARISK_DATA_DIR"):
        return Path(explicit)
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg) / "metarisk"


def database_url(url: str | None = None) -> URL:
    """The URL given, else DATABASE_URL, else sqlite:///<data dir>/metarisk.db (the directory is created)."""
    raw = url or os.environ.get("DATABASE_URL")
    if not raw:
        directory = data_dir()
        directory.mkdir(parents=True, exist_ok=True)
        return URL.create("sqlite", database=str(directory / "metarisk.db"))
    parsed = make_url(raw)
    # hosting platforms hand out postgres:// or postgresql:// URLs; SQLAlchemy would then look for psycopg2,
    # which is not installed: psycopg (3) is
    if parsed.drivername in ("postgres", "postgresql"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def create_store_engine(url: URL, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> Engine:
    """A sync engine. SQLite: WAL, foreign keys on, SQLAlchemy-controlled transactions (BEGIN IMMEDIATE for
    writers, see WRITE_OPTIONS). PostgreSQL: connections checked before use, so a restarted server or a killed
    backend costs one failed call, not a poisoned pool."""
    if url.get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args={"timeout": timeout_s})
        _configure_sqlite(engine, timeout_s=timeout_s)
        return engine
    connect_args: dict[str, Any] = {}
    if url.get_backend_name() == "postgresql":
        connect_args["connect_timeout"] = max(1, round(timeout_s))
    return create_engine(url, pool_pre_ping=True, connect_args=connect_args)


# Execution option naming the SQLite BEGIN mode. A writer that reads first (existence checks, the market
# snapshot's digest) must take the write lock up front: a deferred BEGIN would fail with SQLITE_BUSY at its
# first write if another writer committed meanwhile, without waiting for the busy timeout.
SQLITE_BEGIN_OPTION = "metarisk_sqlite_begin"
WRITE_OPTIONS = {SQLITE_BEGIN_OPTION: "IMMEDIATE"}


def _configure_sqlite(engine: Engine, *, timeout_s: float) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # take BEGIN away from the sqlite3 module: it would only begin before DML, so reads ran outside any
        # transaction and DDL autocommitted
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(timeout_s * 1000)}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        mode = connection.get_execution_options().get(SQLITE_BEGIN_OPTION, "")
        connection.exec_driver_sql(f"BEGIN {mode}".strip())
