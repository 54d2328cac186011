"""Where the store connects: DATABASE_URL or a SQLite file in the data directory, and how SQLite is set up."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from aggregator.store import Store
from aggregator.store.engine import database_url


def test_default_is_a_sqlite_file_in_the_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("METARISK_DATA_DIR", str(tmp_path / "data"))
    url = database_url()
    assert (url.drivername, url.database) == ("sqlite", str(tmp_path / "data" / "metarisk.db"))
    assert (tmp_path / "data").is_dir()

    store = Store.from_url()
    store.migrate()
    assert (tmp_path / "data" / "metarisk.db").is_file()
    store.close()


def test_database_url_wins_and_plain_postgresql_urls_use_psycopg(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgres://svc:secret@db.internal:5432/metarisk")
    url = database_url()
    assert (url.drivername, url.host, url.database) == ("postgresql+psycopg", "db.internal", "metarisk")
    assert database_url("postgresql://localhost/other").drivername == "postgresql+psycopg"
    assert database_url("sqlite:///explicit.db").database == "explicit.db"


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path: Path) -> None:
    store = Store.from_url(f"sqlite:///{tmp_path / 'store.db'}")
    with store.engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
        assert connection.execute(text("PRAGMA foreign_keys")).scalar_one() == 1
    store.close()
