"""Storage of watched accounts and their refresh history (sqlmodel on SQLite or PostgreSQL, alembic migrations)."""

from aggregator.store.errors import AccountExists, AccountNotFound, StoreError, StoreInputRefused, StoreUnavailable
from aggregator.store.records import (
    PositionSnapshot,
    PruneCounts,
    RefreshIds,
    ReportHeadline,
    StoredMarketSnapshot,
    StoredPositionSnapshot,
    StoredReport,
    WatchedAccount,
)
from aggregator.store.store import AsyncStore, Store

__all__ = [
    "AccountExists",
    "AccountNotFound",
    "AsyncStore",
    "PositionSnapshot",
    "PruneCounts",
    "RefreshIds",
    "ReportHeadline",
    "Store",
    "StoreError",
    "StoreInputRefused",
    "StoreUnavailable",
    "StoredMarketSnapshot",
    "StoredPositionSnapshot",
    "StoredReport",
    "WatchedAccount",
]
