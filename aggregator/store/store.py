"""The store: watched accounts and the history of their refreshes, on SQLite or PostgreSQL.

Every method is one transaction. A refresh (position snapshot, market snapshot, report) is written all or
nothing, so a crash or a lost database mid-refresh leaves the previous snapshot as the latest. A database that
cannot be reached raises StoreUnavailable, which the service turns into an answer with complete: false.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, exists, func
from sqlalchemy import select as sa_select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DataError, DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlmodel import Session, col, delete, select

from aggregator.store.engine import DEFAULT_TIMEOUT_S, WRITE_OPTIONS, create_store_engine, database_url
from aggregator.store.errors import (
    AccountExists,
    AccountNotFound,
    StoreError,
    StoreInputRefused,
    StoreUnavailable,
)
from aggregator.store.records import (
    PositionSnapshot,
    PruneCounts,
    RefreshIds,
    ReportHeadline,
    StoredMarketSnapshot,
    StoredPositionSnapshot,
    StoredReport,
    WatchedAccount,
    utc_now,
)
from aggregator.store.tables import MarginReportRow, MarketSnapshotRow, PositionSnapshotRow, WatchedAccountRow
from risk_core.schema.market import MarketSnapshot
from risk_core.schema.report import MarginReport

ALEMBIC_INI = Path(__file__).with_name("alembic.ini")
# an arbitrary constant: the key of the PostgreSQL advisory lock that serialises concurrent migrations
_MIGRATION_LOCK_KEY = 0x6D657461726973
_SUPPORTED_BACKENDS = ("sqlite", "postgresql")
log = logging.getLogger(__name__)
_HEADLINE_COLUMNS = [col(getattr(MarginReportRow, name)) for name in ReportHeadline.model_fields]


class Store:
    """Sync API over a SQLAlchemy engine; the async service calls it through AsyncStore (worker threads)."""

    def __init__(self, engine: Engine) -> None:
        if engine.dialect.name not in _SUPPORTED_BACKENDS:
            raise StoreError(f"unsupported database {engine.dialect.name!r}: use SQLite or PostgreSQL")
        self.engine = engine
        self._write_engine = engine.execution_options(**WRITE_OPTIONS)

    @classmethod
    def from_url(cls, url: str | None = None, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> Store:
        """The store at `url`, else DATABASE_URL, else the SQLite file <data dir>/metarisk.db.

        `timeout_s` bounds the wait for the database (connecting to PostgreSQL, a lock on SQLite) before
        StoreUnavailable. Nothing is connected until the first call.
        """
        return cls(create_store_engine(database_url(url), timeout_s=timeout_s))

    def close(self) -> None:
        self.engine.dispose()

    def migrate(self) -> None:
        """Bring the schema to the newest migration shipped in the package; a no-op when it is there already.

        Raises: StoreUnavailable.
        """
        config = Config(str(ALEMBIC_INI))
        with _unavailable_on_connection_errors(), self._write_engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                # two processes starting together would both create the tables: the second waits, then finds head
                connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK_KEY})")
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    # watched accounts

    def add_account(self, account: WatchedAccount) -> WatchedAccount:
        """Raises: AccountExists, StoreUnavailable."""
        with self._transaction(write=True) as session:
            if session.get(WatchedAccountRow, account.id) is not None:
                raise AccountExists(account.id)
            session.add(_account_row(account))
        return account

    def get_account(self, account_id: str) -> WatchedAccount | None:
        with self._transaction() as session:
            row = session.get(WatchedAccountRow, account_id)
            return None if row is None else _account(row)

    def list_accounts(self) -> list[WatchedAccount]:
        with self._transaction() as session:
            rows = session.exec(select(WatchedAccountRow).order_by(col(WatchedAccountRow.id)))
            return [_account(row) for row in rows]

    def update_account(self, account: WatchedAccount) -> WatchedAccount:
        """Replaces every field but created_at, which stays the stored one. Raises: AccountNotFound."""
        with self._transaction(write=True) as session:
            row = session.get(WatchedAccountRow, account.id)
            if row is None:
                raise AccountNotFound(account.id)
            replacement = _account_row(account.model_copy(update={"created_at": row.created_at}))
            for field in WatchedAccountRow.model_fields:
                setattr(row, field, getattr(replacement, field))
            return _account(row)

    def delete_account(self, account_id: str) -> bool:
        """Deletes the account with its snapshots and reports; false when there was none."""
        with self._transaction(write=True) as session:
            row = session.get(WatchedAccountRow, account_id)
            if row is None:
                return False
            session.delete(row)
            return True

    # refreshes

    def save_market_snapshot(self, snapshot: MarketSnapshot) -> int:
        """Stores the snapshot once (identical snapshots share a row) and returns its id."""
        with self._transaction(write=True) as session:
            return _market_snapshot_id(session, snapshot)

    def save_refresh(
        self,
        account_id: str,
        positions_snapshot: PositionSnapshot,
        market_snapshot: MarketSnapshot,
        report: MarginReport,
        *,
        computed_at: datetime | None = None,
    ) -> RefreshIds:
        """Writes one refresh of an account in one transaction: all three records or none.

        Raises: AccountNotFound, StoreUnavailable.
        """
        with self._transaction(write=True) as session:
            if session.get(WatchedAccountRow, account_id) is None:
                raise AccountNotFound(account_id)
            market_id = _market_snapshot_id(session, market_snapshot)
            positions_row = PositionSnapshotRow(
                account_id=account_id,
                taken_at=positions_snapshot.taken_at,
                complete=positions_snapshot.complete,
                **positions_snapshot.model_dump(
                    mode="json", include={"sources", "blocks", "positions", "venue_states"}
                ),
            )
            session.add(positions_row)
            session.flush()  # gives the snapshot its id
            report_row = MarginReportRow(
                account_id=account_id,
                position_snapshot_id=_id(positions_row.id),
                market_snapshot_id=market_id,
                computed_at=computed_at or utc_now(),
                equity_usd=report.equity_usd,
                collateral_usd=report.collateral_usd,
                maintenance_margin_usd=report.maintenance_margin_usd,
                initial_margin_usd=report.initial_margin_usd,
                margin_ratio=report.margin_ratio,
                status=report.status,
                complete=report.complete,
                params_version=report.params_version,
                report=report.model_dump(mode="json"),
            )
            session.add(report_row)
            session.flush()
            return RefreshIds(
                position_snapshot_id=_id(positions_row.id), market_snapshot_id=market_id, report_id=_id(report_row.id)
            )

    def latest_report(self, account_id: str, *, complete_only: bool = False) -> StoredReport | None:
        """The account's newest report (newest complete one with complete_only), or None."""
        query = select(MarginReportRow).where(MarginReportRow.account_id == account_id)
        if complete_only:
            query = query.where(col(MarginReportRow.complete))
        query = query.order_by(col(MarginReportRow.computed_at).desc(), col(MarginReportRow.id).desc()).limit(1)
        with self._transaction() as session:
            row = session.exec(query).first()
            return None if row is None else _stored_report(row)

    def report(self, report_id: int) -> StoredReport | None:
        with self._transaction() as session:
            row = session.get(MarginReportRow, report_id)
            return None if row is None else _stored_report(row)

    def report_history(
        self,
        account_id: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 500,
    ) -> list[ReportHeadline]:
        """Headline figures of the account's reports with since <= computed_at < until, newest first."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        computed_at = col(MarginReportRow.computed_at)
        query = sa_select(*_HEADLINE_COLUMNS).where(col(MarginReportRow.account_id) == account_id)
        if since is not None:
            query = query.where(computed_at >= since)
        if until is not None:
            query = query.where(computed_at < until)
        query = query.order_by(computed_at.desc(), col(MarginReportRow.id).desc()).limit(limit)
        with self._transaction() as session:
            rows = session.connection().execute(query).mappings()
            return [ReportHeadline.model_validate(dict(row)) for row in rows]

    def latest_position_snapshot(
        self, account_id: str, *, complete_only: bool = False
    ) -> StoredPositionSnapshot | None:
        query = select(PositionSnapshotRow).where(PositionSnapshotRow.account_id == account_id)
        if complete_only:
            query = query.where(col(PositionSnapshotRow.complete))
        query = query.order_by(col(PositionSnapshotRow.taken_at).desc(), col(PositionSnapshotRow.id).desc()).limit(1)
        with self._transaction() as session:
            row = session.exec(query).first()
            return None if row is None else _stored_positions(row)

    def position_snapshot(self, snapshot_id: int) -> StoredPositionSnapshot | None:
        with self._transaction() as session:
            row = session.get(PositionSnapshotRow, snapshot_id)
            return None if row is None else _stored_positions(row)

    def latest_market_snapshot(self) -> StoredMarketSnapshot | None:
        query = select(MarketSnapshotRow).order_by(
            col(MarketSnapshotRow.as_of).desc(), col(MarketSnapshotRow.id).desc()
        )
        with self._transaction() as session:
            row = session.exec(query.limit(1)).first()
            return None if row is None else _stored_market(row)

    def market_snapshot(self, snapshot_id: int) -> StoredMarketSnapshot | None:
        with self._transaction() as session:
            row = session.get(MarketSnapshotRow, snapshot_id)
            return None if row is None else _stored_market(row)

    def prune(self, older_than: datetime) -> PruneCounts:
        """Deletes history older than `older_than`, but never an account's latest position snapshot, its latest
        complete one, the reports on them and their market snapshots, nor the latest market snapshot."""
        with self._transaction(write=True) as session:
            kept_positions = _latest_position_snapshot_ids(session, complete_only=False)
            kept_positions |= _latest_position_snapshot_ids(session, complete_only=True)
            reports = session.exec(
                delete(MarginReportRow).where(
                    col(MarginReportRow.computed_at) < older_than,
                    col(MarginReportRow.position_snapshot_id).not_in(kept_positions),
                )
            )
            position_snapshots = session.exec(
                delete(PositionSnapshotRow).where(
                    col(PositionSnapshotRow.taken_at) < older_than,
                    col(PositionSnapshotRow.id).not_in(kept_positions),
                    ~exists().where(col(MarginReportRow.position_snapshot_id) == PositionSnapshotRow.id),
                )
            )
            latest_market = session.exec(
                select(MarketSnapshotRow.id)
                .order_by(col(MarketSnapshotRow.as_of).desc(), col(MarketSnapshotRow.id).desc())
                .limit(1)
            ).first()
            market_snapshots = session.exec(
                delete(MarketSnapshotRow).where(
                    col(MarketSnapshotRow.as_of) < older_than,
                    col(MarketSnapshotRow.id).not_in([] if latest_market is None else [latest_market]),
                    ~exists().where(col(MarginReportRow.market_snapshot_id) == MarketSnapshotRow.id),
                )
            )
            return PruneCounts(
                reports=reports.rowcount,
                position_snapshots=position_snapshots.rowcount,
                market_snapshots=market_snapshots.rowcount,
            )

    @contextmanager
    def _transaction(self, *, write: bool = False) -> Iterator[Session]:
        with (
            _unavailable_on_connection_errors(),
            Session(self._write_engine if write else self.engine, expire_on_commit=False) as session,
            session.begin(),
        ):
            yield session


class AsyncStore:
    """The Store for async code: each call runs in a worker thread, so the event loop never waits on the database."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def migrate(self) -> None:
        await asyncio.to_thread(self.store.migrate)

    async def add_account(self, account: WatchedAccount) -> WatchedAccount:
        return await asyncio.to_thread(self.store.add_account, account)

    async def get_account(self, account_id: str) -> WatchedAccount | None:
        return await asyncio.to_thread(self.store.get_account, account_id)

    async def list_accounts(self) -> list[WatchedAccount]:
        return await asyncio.to_thread(self.store.list_accounts)

    async def update_account(self, account: WatchedAccount) -> WatchedAccount:
        return await asyncio.to_thread(self.store.update_account, account)

    async def delete_account(self, account_id: str) -> bool:
        return await asyncio.to_thread(self.store.delete_account, account_id)

    async def save_market_snapshot(self, snapshot: MarketSnapshot) -> int:
        return await asyncio.to_thread(self.store.save_market_snapshot, snapshot)

    async def save_refresh(
        self,
        account_id: str,
        positions_snapshot: PositionSnapshot,
        market_snapshot: MarketSnapshot,
        report: MarginReport,
        *,
        computed_at: datetime | None = None,
    ) -> RefreshIds:
        return await asyncio.to_thread(
            self.store.save_refresh,
            account_id,
            positions_snapshot,
            market_snapshot,
            report,
            computed_at=computed_at,
        )

    async def latest_report(self, account_id: str, *, complete_only: bool = False) -> StoredReport | None:
        return await asyncio.to_thread(self.store.latest_report, account_id, complete_only=complete_only)

    async def report(self, report_id: int) -> StoredReport | None:
        return await asyncio.to_thread(self.store.report, report_id)

    async def report_history(
        self,
        account_id: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 500,
    ) -> list[ReportHeadline]:
        return await asyncio.to_thread(self.store.report_history, account_id, since=since, until=until, limit=limit)

    async def latest_position_snapshot(
        self, account_id: str, *, complete_only: bool = False
    ) -> StoredPositionSnapshot | None:
        return await asyncio.to_thread(self.store.latest_position_snapshot, account_id, complete_only=complete_only)

    async def position_snapshot(self, snapshot_id: int) -> StoredPositionSnapshot | None:
        return await asyncio.to_thread(self.store.position_snapshot, snapshot_id)

    async def latest_market_snapshot(self) -> StoredMarketSnapshot | None:
        return await asyncio.to_thread(self.store.latest_market_snapshot)

    async def market_snapshot(self, snapshot_id: int) -> StoredMarketSnapshot | None:
        return await asyncio.to_thread(self.store.market_snapshot, snapshot_id)

    async def prune(self, older_than: datetime) -> PruneCounts:
        return await asyncio.to_thread(self.store.prune, older_than)


@contextmanager
def _unavailable_on_connection_errors() -> Iterator[None]:
    """Driver failures as the store's errors. A connection failure's text names the server (host, port, the
    server's own message): it is logged here and kept out of the error, whose text may reach any client."""
    try:
        yield
    except (OperationalError, InterfaceError, PoolTimeoutError) as error:
        log.warning("database unavailable: %s", _reason(error))
        raise StoreUnavailable("database unavailable") from error
    except DataError as error:  # the value, not the connection: psycopg's own text names what it refused
        raise StoreInputRefused(f"the database refused a value: {_reason(error)}") from error
    except DBAPIError as error:
        if error.connection_invalidated:
            log.warning("database connection lost: %s", _reason(error))
            raise StoreUnavailable("database connection lost") from error
        raise


def _reason(error: Exception) -> str:
    original = getattr(error, "orig", None) or error
    first_line = str(original).strip().partition("\n")[0]
    return first_line or type(original).__name__


def _market_snapshot_id(session: Session, snapshot: MarketSnapshot) -> int:
    payload = snapshot.model_dump(mode="json")
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    row = {"as_of": snapshot.as_of, "digest": digest, "sources": payload["sources"], "snapshot": payload}
    # on conflict do nothing: a concurrent refresh may have stored the same snapshot a moment ago
    if session.get_bind().dialect.name == "postgresql":
        session.exec(postgresql_insert(MarketSnapshotRow).values(row).on_conflict_do_nothing(index_elements=["digest"]))
    else:
        session.exec(sqlite_insert(MarketSnapshotRow).values(row).on_conflict_do_nothing(index_elements=["digest"]))
    return _id(session.exec(select(MarketSnapshotRow.id).where(MarketSnapshotRow.digest == digest)).one())


def _latest_position_snapshot_ids(session: Session, *, complete_only: bool) -> set[int]:
    rank = (
        func.row_number()
        .over(
            partition_by=PositionSnapshotRow.account_id,
            order_by=(col(PositionSnapshotRow.taken_at).desc(), col(PositionSnapshotRow.id).desc()),
        )
        .label("rank")
    )
    ranked = sa_select(col(PositionSnapshotRow.id).label("id"), rank)
    if complete_only:
        ranked = ranked.where(col(PositionSnapshotRow.complete))
    subquery = ranked.subquery()
    return set(session.connection().execute(sa_select(subquery.c.id).where(subquery.c.rank == 1)).scalars())


def _account_row(account: WatchedAccount) -> WatchedAccountRow:
    return WatchedAccountRow(created_at=account.created_at, **account.model_dump(mode="json", exclude={"created_at"}))


def _account(row: WatchedAccountRow) -> WatchedAccount:
    return WatchedAccount.model_validate(row.model_dump())


def _stored_positions(row: PositionSnapshotRow) -> StoredPositionSnapshot:
    fields: dict[str, Any] = row.model_dump(exclude={"id", "account_id"})
    return StoredPositionSnapshot(
        id=_id(row.id), account_id=row.account_id, snapshot=PositionSnapshot.model_validate(fields)
    )


def _stored_market(row: MarketSnapshotRow) -> StoredMarketSnapshot:
    return StoredMarketSnapshot(id=_id(row.id), snapshot=MarketSnapshot.model_validate(row.snapshot))


def _stored_report(row: MarginReportRow) -> StoredReport:
    return StoredReport(
        id=_id(row.id),
        account_id=row.account_id,
        position_snapshot_id=row.position_snapshot_id,
        market_snapshot_id=row.market_snapshot_id,
        computed_at=row.computed_at,
        report=MarginReport.model_validate(row.report),
    )


def _id(value: int | None) -> int:
    if value is None:
        raise StoreError("a stored row has no id")
    return value
