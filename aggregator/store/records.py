"""What the store takes and gives back: frozen pydantic models, independent of how rows are laid out."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AnyHttpUrl, AwareDatetime, BaseModel, ConfigDict, Field

from risk_core.schema.market import MarketSnapshot, SourceStatus
from risk_core.schema.positions import Position
from risk_core.schema.report import MarginReport
from risk_core.schema.venues import VenueState

ACCOUNT_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
AccountId = Annotated[str, Field(pattern=ACCOUNT_ID_PATTERN, description="slug, e.g. 'treasury-1'")]


def utc_now() -> datetime:
    return datetime.now(UTC)


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WatchedAccount(Record):
    """A wallet the service refreshes: its addresses per chain and sub-accounts per venue, and when to alert."""

    id: AccountId
    label: str = Field(default="", max_length=200)
    addresses: dict[str, list[str]] = Field(default_factory=dict, description="chain -> addresses")
    venue_accounts: dict[str, list[str]] = Field(default_factory=dict, description="venue -> sub-account ids")
    alert_webhook_url: AnyHttpUrl | None = None
    margin_ratio_alerts: list[Annotated[float, Field(gt=0, allow_inf_nan=False)]] = Field(
        default_factory=list, description="alert when the margin ratio (MM / collateral) rises through each"
    )
    created_at: AwareDatetime = Field(default_factory=utc_now)


class PositionSnapshot(Record):
    """Every position of one account as read in one refresh, with each source's status."""

    taken_at: AwareDatetime
    positions: list[Position]
    sources: list[SourceStatus] = Field(default_factory=list, description="status of every position source")
    blocks: dict[str, int] = Field(default_factory=dict, description="chain -> block the reads were pinned to")
    venue_states: list[VenueState] = Field(default_factory=list)
    complete: bool = Field(description="false when any position source failed or returned part")


class StoredPositionSnapshot(Record):
    id: int
    account_id: str
    snapshot: PositionSnapshot


class StoredMarketSnapshot(Record):
    id: int
    snapshot: MarketSnapshot


class StoredReport(Record):
    id: int
    account_id: str
    position_snapshot_id: int
    market_snapshot_id: int
    computed_at: AwareDatetime
    report: MarginReport


class ReportHeadline(Record):
    """One row of an account's history: the figures a chart or an alert needs, without the report's bulk."""

    id: int
    account_id: str
    position_snapshot_id: int
    market_snapshot_id: int
    computed_at: AwareDatetime
    equity_usd: float
    collateral_usd: float
    maintenance_margin_usd: float
    initial_margin_usd: float
    margin_ratio: float | None
    status: str
    complete: bool
    params_version: str


class RefreshIds(Record):
    position_snapshot_id: int
    market_snapshot_id: int
    report_id: int


class PruneCounts(Record):
    reports: int
    position_snapshots: int
    market_snapshots: int
