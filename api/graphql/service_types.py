"""GraphQL types of the service's market, history and stored reports: typed fields named in camelCase like the
margin report's, times in UTC with Z, read off the aggregator's models (MarketView, AccountHistory,
StoredReport) by field name. A vol surface stays one JSON value, as the report's grids do (PERFORMANCE_NOTES.md):
its keys (expiry, a, b, rho, m, sigma; strike, iv) are single words."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from pydantic import BaseModel
from strawberry.scalars import JSON

if TYPE_CHECKING:
    from api.graphql.schema import Margin


def _fields(model: BaseModel, names: list[str]) -> dict[str, Any]:
    return {name: getattr(model, name) for name in names}


@strawberry.type(description="The status of one source that fed a market snapshot or an account's positions")
class Source:
    name: str
    status: str
    reason: str | None
    as_of: datetime | None
    asset: str | None = strawberry.field(description="the one asset this source prices; null when not about one")


@strawberry.type
class ForwardPrice:
    expiry: datetime
    price: float


@strawberry.type(description="Spot, forwards, vol surface and sources of one asset in the current snapshot")
class Market:
    asset: str
    as_of: datetime
    age_seconds: float
    spot: float | None = strawberry.field(description="null when no price passed the aggregation policy")
    dispersion: float | None
    forwards: list[ForwardPrice]
    vol: JSON | None = strawberry.field(description="the surface: {svi: [{expiry, a, b, rho, m, sigma}]} or "
                                        "{points: [{expiry, strike, iv}]}; null without options")
    sources: list[Source]

    @classmethod
    def from_view(cls, view: BaseModel) -> Market:
        vol = getattr(view, "vol", None)
        return cls(
            **_fields(view, ["asset", "as_of", "age_seconds", "spot", "dispersion"]),
            forwards=[ForwardPrice(expiry=e, price=p) for e, p in sorted(getattr(view, "forwards", {}).items())],
            vol=None if vol is None else JSON(vol.model_dump(mode="json")),
            sources=[Source(**_fields(s, ["name", "status", "reason", "as_of", "asset"])) for s in view.sources],  # type: ignore[attr-defined]
        )


_HEADLINE = ["id", "account_id", "position_snapshot_id", "market_snapshot_id", "computed_at", "equity_usd",
             "collateral_usd", "maintenance_margin_usd", "initial_margin_usd", "margin_ratio", "status", "complete",
             "params_version"]


@strawberry.type(description="The headline figures of one stored report")
class ReportHeadline:
    id: int
    account_id: str
    position_snapshot_id: int
    market_snapshot_id: int
    computed_at: datetime
    equity_usd: float
    collateral_usd: float
    maintenance_margin_usd: float
    initial_margin_usd: float
    margin_ratio: float | None
    status: str
    complete: bool
    params_version: str


@strawberry.type(description="A page of an account's stored report headlines, newest first")
class AccountHistory:
    account_id: str
    since: datetime | None
    until: datetime | None
    limit: int
    reports: list[ReportHeadline]
    more: bool = strawberry.field(description="older reports within [since, until) remain beyond this page")
    next_until: datetime | None = strawberry.field(description="`until` of the next page; null when no more")

    @classmethod
    def from_page(cls, page: BaseModel) -> AccountHistory:
        return cls(
            **_fields(page, ["account_id", "since", "until", "limit", "more", "next_until"]),
            reports=[ReportHeadline(**_fields(r, _HEADLINE)) for r in page.reports],  # type: ignore[attr-defined]
        )


@strawberry.type(description="One stored report of an account, with its ids and when it was computed")
class StoredReport:
    id: int
    account_id: str
    position_snapshot_id: int
    market_snapshot_id: int
    computed_at: datetime
    report: Annotated[Margin, strawberry.lazy("api.graphql.schema")]

    @classmethod
    def from_stored(cls, stored: BaseModel) -> StoredReport:
        from api.graphql.schema import Margin  # the report's own type, defined beside the queries

        ids = _fields(stored, ["id", "account_id", "position_snapshot_id", "market_snapshot_id", "computed_at"])
        return cls(**ids, report=Margin.from_report(stored.report))  # type: ignore[attr-defined]
