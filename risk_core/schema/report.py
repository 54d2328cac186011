"""The margin report: every field of MARGIN_MODEL.md's outputs. Outside tools depend on these names."""

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
    down: float | None = Field(description="relative spot fall at which collateral meets MM; null if none")
    up: float | None = Field(description="relative spot rise at which collateral meets MM; null if none")


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
    reproduced: dict[str, float]
    reported: dict[str, float] | None = None
    difference: dict[str, float] | None = None
    note: str | None = None
    universal_maintenance_margin_usd: float | None = Field(
        default=None, description="MM of this venue-account's positions alone under the universal model"
    )


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
    computed_at: AwareDatetime | None = Field(default=None, description="when the service computed it; null offline")
    age_seconds: float | None = Field(default=None, description="age when served; null offline")
