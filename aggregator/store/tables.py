"""The tables: one row per watched account, per account's position snapshot, per distinct market snapshot and
per margin report. Payloads are JSON dumps of the risk schema (model_dump(mode="json")); the report's headline
figures are columns too, so history and alert queries never parse the JSON."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Dialect, Index, MetaData, String, TypeDecorator
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

# deterministic constraint names, so migrations can refer to them on every backend
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
store_registry = registry(metadata=MetaData(naming_convention=NAMING_CONVENTION))
metadata = store_registry.metadata


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend: SQLite keeps no zone, so it stores naive UTC and gets UTC back."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the store only takes aware datetimes")
        utc = value.astimezone(UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class StoreTable(SQLModel, registry=store_registry):
    """Base of the store's tables: their own metadata, so migrations and the drift test see only these."""


class WatchedAccountRow(StoreTable, table=True):
    __tablename__ = "watched_accounts"

    id: str = Field(primary_key=True, sa_type=String(64))
    label: str = Field(sa_type=String(200))
    addresses: dict[str, Any] = Field(sa_type=JSON)
    venue_accounts: dict[str, Any] = Field(sa_type=JSON)
    alert_webhook_url: str | None = Field(default=None, sa_type=String(2000))
    margin_ratio_alerts: list[float] = Field(sa_type=JSON)
    created_at: datetime = Field(sa_type=UTCDateTime)


class PositionSnapshotRow(StoreTable, table=True):
    __tablename__ = "position_snapshots"
    __table_args__ = (Index("ix_position_snapshots_account_taken", "account_id", "taken_at"),)

    id: int | None = Field(default=None, primary_key=True)
    account_id: str = Field(foreign_key="watched_accounts.id", ondelete="CASCADE", sa_type=String(64))
    taken_at: datetime = Field(sa_type=UTCDateTime)
    complete: bool
    sources: list[Any] = Field(sa_type=JSON)
    blocks: dict[str, Any] = Field(sa_type=JSON)
    positions: list[Any] = Field(sa_type=JSON)
    venue_states: list[Any] = Field(sa_type=JSON)


class MarketSnapshotRow(StoreTable, table=True):
    """One row per distinct snapshot: a refresh of many accounts prices them all against the same one."""

    __tablename__ = "market_snapshots"

    id: int | None = Field(default=None, primary_key=True)
    as_of: datetime = Field(sa_type=UTCDateTime, index=True)
    digest: str = Field(sa_type=String(64), unique=True, description="sha256 of the canonical JSON")
    sources: list[Any] = Field(sa_type=JSON)
    snapshot: dict[str, Any] = Field(sa_type=JSON)


class MarginReportRow(StoreTable, table=True):
    __tablename__ = "margin_reports"
    __table_args__ = (Index("ix_margin_reports_account_computed", "account_id", "computed_at"),)

    id: int | None = Field(default=None, primary_key=True)
    account_id: str = Field(foreign_key="watched_accounts.id", ondelete="CASCADE", sa_type=String(64))
    position_snapshot_id: int = Field(foreign_key="position_snapshots.id", ondelete="CASCADE", index=True)
    market_snapshot_id: int = Field(foreign_key="market_snapshots.id", index=True)
    computed_at: datetime = Field(sa_type=UTCDateTime)
    equity_usd: float
    collateral_usd: float
    maintenance_margin_usd: float
    initial_margin_usd: float
    margin_ratio: float | None
    status: str = Field(sa_type=String(32))
    complete: bool
    params_version: str = Field(sa_type=String(64))
    report: dict[str, Any] = Field(sa_type=JSON)
