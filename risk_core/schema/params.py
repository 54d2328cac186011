"""Risk parameters: loaded from the versioned file shipped with the package, overridable per request."""

from __future__ import annotations

import tomllib
from functools import cache
from importlib import resources
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field, Strict, StrictBool, model_validator

from risk_core.errors import InputError
from risk_core.schema.positions import StrictModel

Fraction = Annotated[float, Strict(), Field(ge=0, le=1, allow_inf_nan=False)]
NonNegative = Annotated[float, Strict(), Field(ge=0, allow_inf_nan=False)]
Shock = Annotated[float, Strict(), Field(gt=-1, le=100, allow_inf_nan=False)]
VolShock = Annotated[float, Strict(), Field(ge=-1, le=100, allow_inf_nan=False)]


class AssetClassParams(StrictModel):
    haircut: Fraction
    peg: NonNegative | None = None
    spot_range: Annotated[float, Strict(), Field(ge=0, lt=1, allow_inf_nan=False)]
    spot_steps: Annotated[int, Strict(), Field(ge=0, le=50)]
    vol_shocks: list[VolShock]
    extreme_shocks: list[Shock]
    skew_enabled: StrictBool
    min_vol_up: NonNegative


class ScenarioOverride(StrictModel):
    """Per-asset scenarios given explicitly by a request; each field replaces the class default."""

    spot_shocks: Annotated[list[Shock], Field(min_length=1, max_length=201)] | None = None
    vol_shocks: Annotated[list[VolShock], Field(min_length=1, max_length=21)] | None = None
    extreme_shocks: Annotated[list[Shock], Field(max_length=50)] | None = None
    skew_enabled: StrictBool | None = None


class OffsetCredit(StrictModel):
    cross_venue: Fraction
    cross_chain: Fraction


class TailParams(StrictModel):
    cover: Annotated[float, Strict(), Field(gt=0, le=1, allow_inf_nan=False)]


class VolShockParams(StrictModel):
    reference_days: Annotated[float, Strict(), Field(gt=0, allow_inf_nan=False)]
    power: NonNegative
    dte_floor_days: Annotated[float, Strict(), Field(gt=0, allow_inf_nan=False)]


class SkewParams(StrictModel):
    linear_slope: NonNegative
    abs_slope: NonNegative
    cap: Annotated[float, Strict(), Field(ge=0, lt=1, allow_inf_nan=False)]


class ContingencyParams(StrictModel):
    short_option_minimum: Fraction
    perp_future: Fraction
    dispersion_threshold: NonNegative


class LiquidationParams(StrictModel):
    default_cost: Fraction
    venue_cost: dict[str, Fraction] = Field(default_factory=dict)

    def cost_for(self, venue: str) -> float:
        return self.venue_cost.get(venue, self.default_cost)


class FHSParams(StrictModel):
    """Filtered historical simulation (risk_core.margin.fhs)."""

    ewma_lambda: Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)]
    margin_period_days: Annotated[int, Field(ge=1, le=30)]
    confidence: Annotated[float, Field(gt=0.5, lt=1, allow_inf_nan=False)]
    lookback_days: Annotated[int, Field(ge=10)]
    seed_days: Annotated[int, Field(ge=2)]
    min_scenarios: Annotated[int, Field(ge=10)]
    stress_window_days: Annotated[int, Field(ge=10)]
    stress_weight: Fraction


class DepthCurve(StrictModel):
    """Price impact of closing Q USD: impact_at_depth x (Q / depth_usd)^exponent (risk_core.margin.liquidity)."""

    depth_usd: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    impact_at_depth: Fraction
    exponent: Annotated[float, Field(gt=0, le=2, allow_inf_nan=False)]


class LiquidityParams(StrictModel):
    enabled: bool
    depth: dict[str, DepthCurve] = Field(default_factory=dict)


class TrackedAsset(StrictModel):
    """A token that tracks another asset (a liquid-staking ETH tracks ETH): its holdings move with the tracked
    asset's scenarios, and a depeg is charged on them as a contingency."""

    underlying: str = Field(min_length=1, description="the asset whose scenarios the token's holdings move with")
    depeg: Annotated[float, Strict(), Field(ge=0, lt=1, allow_inf_nan=False)] = Field(
        description="the fall of the token against its underlying charged on a net holding, as a fraction of its value"
    )


class AssetScenarios(StrictModel):
    """The scenario set of one underlying, resolved from its class and any request override."""

    spot_shocks: tuple[float, ...]
    vol_shocks: tuple[float, ...]
    extreme_shocks: tuple[float, ...]
    skew_enabled: bool
    min_vol_up: float


class RiskParams(StrictModel):
    version: str
    im_factor: Annotated[float, Strict(), Field(ge=1, le=10, allow_inf_nan=False)]
    contingencies_enabled: StrictBool
    max_positions: Annotated[int, Strict(), Field(ge=1)]
    model: Literal["grid", "fhs"] = Field(
        default="grid", description="grid: the scenario grid; fhs: filtered historical simulation (market.history)"
    )
    fhs: FHSParams
    liquidity: LiquidityParams
    offset_credit: OffsetCredit
    tails: TailParams
    vol_shock: VolShockParams
    skew: SkewParams
    contingencies: ContingencyParams
    liquidation: LiquidationParams
    cross_underlying_credit: dict[str, Fraction] = Field(default_factory=dict)
    classes: dict[str, AssetClassParams]
    assets: dict[str, str]
    scenarios: dict[str, ScenarioOverride] = Field(default_factory=dict)
    tracking: dict[str, TrackedAsset] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _tracking_is_one_level(self) -> RiskParams:
        for asset, tracked in self.tracking.items():
            if tracked.underlying == asset or tracked.underlying in self.tracking:
                raise InputError(f"tracking.{asset}", f"tracks {tracked.underlying}, which is itself tracked")
        return self

    def asset_class(self, asset: str) -> str:
        return self.assets.get(asset, "unknown")

    def class_params(self, asset: str) -> AssetClassParams:
        return self.classes[self.asset_class(asset)]

    def is_known(self, asset: str) -> bool:
        return asset in self.assets

    def scenarios_for(self, asset: str) -> AssetScenarios:
        cls = self.class_params(asset)
        override = self.scenarios.get(asset) or ScenarioOverride()
        if override.spot_shocks is not None:
            spot = tuple(sorted(set(override.spot_shocks) | {0.0}))
        else:
            spot = tuple(float(x) for x in np.linspace(-cls.spot_range, cls.spot_range, 2 * cls.spot_steps + 1))
        vol = override.vol_shocks if override.vol_shocks is not None else cls.vol_shocks
        extreme = override.extreme_shocks if override.extreme_shocks is not None else cls.extreme_shocks
        skew = override.skew_enabled if override.skew_enabled is not None else cls.skew_enabled
        return AssetScenarios(
            spot_shocks=spot,
            vol_shocks=tuple(sorted({0.0, *vol})),  # ascending, like the spot shocks: the grid's columns in order
            extreme_shocks=tuple(extreme),
            skew_enabled=skew,
            min_vol_up=cls.min_vol_up,
        )

    def pair_credit(self, asset_a: str, asset_b: str) -> float:
        return self.cross_underlying_credit.get(
            f"{asset_a}-{asset_b}", self.cross_underlying_credit.get(f"{asset_b}-{asset_a}", 0.0)
        )

    def with_overrides(self, overrides: dict[str, Any] | None) -> RiskParams:
        """A copy with `overrides` merged in depth; unknown keys fail validation, naming the field.

        Raises:
            pydantic.ValidationError: an override names an unknown field or has a bad value.
        """
        if not overrides:
            return self
        return RiskParams.model_validate(_deep_merge(self.model_dump(), overrides))


def _deep_merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


@cache
def default_params() -> RiskParams:
    """The shipped parameter file, parsed once."""
    text = resources.files("risk_core.params").joinpath("risk_params.toml").read_text()
    return RiskParams.model_validate(tomllib.loads(text))
