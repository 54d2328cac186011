"""The margin report: every field of docs/margin-model.md's outputs. Outside tools depend on these names."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from functools import cache
from typing import Any, Literal, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from risk_core.schema.market import SourceStatus


class ReportModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @classmethod
    def trusted(cls, **values: Any) -> Self:
        """An instance of values the engine built with each field's exact type, every field given, not validated.

        For rows built by the hundred per report: ~1.2 us each against ~3.5 us validated, and pydantic's own
        `model_construct` costs more than validating (~6 us: it resolves defaults and aliases in Python)."""
        if values.keys() != _field_names(cls):
            raise TypeError(f"{cls.__name__}.trusted needs exactly its fields: {sorted(_field_names(cls))}")
        instance = cls.__new__(cls)
        object.__setattr__(instance, "__dict__", values)
        object.__setattr__(instance, "__pydantic_fields_set__", set(values))
        object.__setattr__(instance, "__pydantic_extra__", None)
        object.__setattr__(instance, "__pydantic_private__", None)
        return instance

    @classmethod
    def trusted_rows(cls, **columns: Sequence[Any]) -> list[Self]:
        """`trusted` instances from columns of equal length, one per row: a report's hundred position rows
        without a keyword call per row."""
        if columns.keys() != _field_names(cls):
            raise TypeError(f"{cls.__name__}.trusted_rows needs exactly its fields: {sorted(_field_names(cls))}")
        names = tuple(columns)
        fields_set = set(names)
        set_attribute, new = object.__setattr__, cls.__new__
        rows = []
        for values in zip(*columns.values(), strict=True):
            instance = new(cls)
            set_attribute(instance, "__dict__", dict(zip(names, values, strict=True)))
            set_attribute(instance, "__pydantic_fields_set__", set(fields_set))
            set_attribute(instance, "__pydantic_extra__", None)
            set_attribute(instance, "__pydantic_private__", None)
            rows.append(instance)
        return rows


@cache
def _field_names(model: type[BaseModel]) -> frozenset[str]:
    return frozenset(model.model_fields)  # `model_fields` costs ~1 us a call; names are fixed per class


class PositionRisk(ReportModel):
    id: str | None
    index: int = Field(description="position's index in the request")
    kind: str
    category: str = Field(description="LlamaFolio category: wallet, lend, borrow, perpetual, future, option, lp")
    venue: str
    chain: str
    account: str
    underlying: str | None = Field(description="asset whose scenarios revalue it; null for stablecoins")
    value_usd: float
    delta: float = Field(description="d value / d spot, in units of the underlying")
    gamma: float = Field(description="d delta / d spot")
    vega: float = Field(description="USD per one vol point (0.01)")
    theta: float = Field(description="USD per calendar day")
    standalone_margin_usd: float = Field(description="MM of this position alone under the same model")
    priced: bool = Field(description="false when the asset has no price: value and collateral count as 0")


class ScenarioPoint(ReportModel):
    spot_shock: float
    vol_shock: float
    kind: Literal["grid", "extreme", "skew", "historical"] = "grid"
    name: str | None = Field(default=None, description="skew scenario's name")
    date: dt.date | None = Field(default=None, description="historical scenario's date (fhs): its margin period's end")


class HistoricalScenario(ReportModel):
    """One of the book's worst historical scenarios under the fhs model."""

    date: dt.date = Field(description="the day its margin period of risk ends")
    pnl_usd: float = Field(description="the book's P&L in it, at its worst vol move")
    stressed: bool = Field(description="from the stressed window (unscaled) rather than the filtered history")


class ScenarioGrid(ReportModel):
    """P&L (USD) of the whole book's positions in one underlying: rows = spot shocks, columns = vol shocks."""

    spot_shocks: list[float]
    vol_shocks: list[float]
    pnl: list[list[float]]
    extreme: list[dict[str, float]] = Field(description="spot_shock, pnl (undampened) and counted (dampened)")
    skew: list[dict[str, Any]] = Field(description="name and pnl of each skew scenario")


class LiquidationMove(ReportModel):
    """Signed relative spot moves: the spot at liquidation is spot x (1 + move). 0 means collateral is already
    below MM."""

    down: float | None = Field(
        description="the fall at which collateral meets MM, as a signed relative move <= 0 (-0.25: spot 25% "
        "lower; 0: already below MM); null when no fall down to -99.9% reaches it"
    )
    up: float | None = Field(
        description="the rise at which collateral meets MM, as a signed relative move >= 0 (0.25: spot 25% "
        "higher; 0: already below MM); null when no rise up to +1000% reaches it"
    )


class UnderlyingRisk(ReportModel):
    spot: float
    risk_usd: float
    worst_scenario: ScenarioPoint
    delta: float
    delta_usd: float
    gamma: float
    gamma_usd: float = Field(description="change of delta_usd for a 1% spot move")
    vega: float
    theta: float
    liquidation_move: LiquidationMove
    grid: ScenarioGrid


class Breakdown(ReportModel):
    equity_usd: float
    collateral_usd: float
    maintenance_margin_usd: float = Field(description="MM of these positions margined alone")
    positions: int


class LiquidationStep(ReportModel):
    index: int
    id: str | None
    venue: str
    fraction: float = Field(description="fraction of the position to close")
    cost_usd: float


class LiquidationPlan(ReportModel):
    steps: list[LiquidationStep]
    total_cost_usd: float
    restores_initial_margin: bool


class VenueMargin(ReportModel):
    venue: str
    chain: str
    account: str
    method: str
    method_summary: str = Field(default="", description="how the venue computes its own figure, in one sentence")
    reproduced: dict[str, float]
    reported: dict[str, float] | None = None
    difference: dict[str, float] | None = None
    note: str | None = None
    venue_equity_usd: float | None = Field(
        default=None, description="the venue's own account value in USD, as it reports it; null if it reports none"
    )
    venue_maintenance_margin_usd: float | None = Field(
        default=None,
        description="the venue's own maintenance requirement in USD (a requirement, not a margin balance); null "
        "for a method without one (Aave's health factor)",
    )
    universal_maintenance_margin_usd: float | None = Field(
        default=None, description="MM of this venue-account's positions alone under the universal model"
    )
    universal_risk_usd: float | None = Field(
        default=None, description="its scenario risk: the worst loss of this venue-account alone over the grid"
    )
    universal_contingency_usd: float | None = Field(
        default=None, description="its contingencies: short-option minimums, perp/future basis, depeg"
    )


class VenueAccountRisk(ReportModel):
    venue: str
    chain: str
    account: str
    risk_usd: float = Field(description="scenario risk of this venue-account's positions netted together")


class OffsetDecomposition(ReportModel):
    """Where the combined scenario risk comes from: the risk at each netting level, the offsets between levels,
    and the share of each offset credited. combined = venue_accounts_siloed - cross_chain_credit_usd -
    cross_venue_credit_usd; with full credit it is `everything_usd`, with none `venue_accounts_siloed_usd`."""

    everything_usd: float = Field(description="scenario risk of every position netted as one portfolio")
    risk_by_chain_usd: dict[str, float] = Field(description="scenario risk of each chain's positions netted together")
    chains_siloed_usd: float = Field(description="sum of risk_by_chain_usd")
    risk_by_venue_account: list[VenueAccountRisk]
    venue_accounts_siloed_usd: float = Field(description="sum of risk_by_venue_account's risk_usd")
    cross_chain_offset_usd: float = Field(
        description="chains_siloed - everything: what offsets between chains would remove, fully credited"
    )
    cross_chain_credit: float = Field(description="fraction of the cross-chain offset credited (params)")
    cross_chain_credit_usd: float = Field(description="cross_chain_credit x cross_chain_offset_usd")
    cross_venue_offset_usd: float = Field(
        description="venue_accounts_siloed - chains_siloed: what offsets between venue-accounts on one chain remove"
    )
    cross_venue_credit: float = Field(description="fraction of the cross-venue offset credited (params)")
    cross_venue_credit_usd: float = Field(description="cross_venue_credit x cross_venue_offset_usd")
    combined_risk_usd: float = Field(description="the report's risk_usd")


class Issue(ReportModel):
    """What pricing could not do: an `error` leaves the position out (the report is then incomplete), a
    `warning` counts the position with a caveat."""

    index: int | None = Field(description="the position's index in the request; null for an asset or the market")
    field: str = Field(description="the field at fault, from the request's root")
    code: str = Field(description="what happened, e.g. no_price, no_vol_surface, expired, unknown_asset_class")
    severity: Literal["error", "warning"]
    message: str


class MarginReport(ReportModel):
    as_of: AwareDatetime
    params_version: str
    schema_version: str
    equity_usd: float
    collateral_usd: float = Field(description="after haircuts")
    maintenance_margin_usd: float
    initial_margin_usd: float
    free_collateral_usd: float
    margin_ratio: float | None = Field(description="MM / collateral; null when collateral <= 0")
    status: Literal["healthy", "margin_call", "liquidatable"]
    isolated_margin_usd: float = Field(description="sum of every position's standalone MM")
    portfolio_saving_usd: float
    risk_usd: float = Field(description="combined scenario risk, before contingencies")
    contingency_usd: float
    liquidity_addon_usd: float = Field(
        default=0.0, description="price impact of closing net exposures beyond the market's depth; part of MM"
    )
    liquidity_depth_source: dict[str, str] = Field(
        default_factory=dict, description="per asset with a liquidity add-on: the depth it was priced on, "
        "'depth curve' (the parameter file's) or the Uniswap v3 pools read (market.pools)"
    )
    model: Literal["grid", "fhs"] = Field(default="grid", description="the margin model that produced the report")
    worst_scenarios: list[HistoricalScenario] = Field(
        default_factory=list, description="fhs: the book's worst historical scenarios, worst first; empty for grid"
    )
    complete: bool
    warnings: list[str]
    sources: list[SourceStatus]
    positions: list[PositionRisk]
    underlyings: dict[str, UnderlyingRisk]
    by_venue: dict[str, Breakdown]
    by_chain: dict[str, Breakdown]
    liquidation_plan: LiquidationPlan | None
    venue_margins: list[VenueMargin] = Field(default_factory=list)
    offsets: OffsetDecomposition | None = Field(
        default=None, description="how offsets across venue-accounts and chains were credited; null in reports "
        "stored before schema 1.3.0"
    )
    issues: list[Issue] = Field(default_factory=list, description="per position or asset, what could not be priced")
    params_hash: str | None = Field(default=None, description="SHA-256 of the effective parameters, overrides included")
    market_hash: str | None = Field(default=None, description="SHA-256 of the market snapshot priced against")
    computed_at: AwareDatetime | None = Field(default=None, description="when the service computed it; null offline")
    age_seconds: float | None = Field(default=None, description="age when served; null offline")
