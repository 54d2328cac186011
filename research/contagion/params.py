"""The cascade's parameters: research/contagion/defaults/cascade_params.toml, validated, versioned and hashed."""

from __future__ import annotations

import hashlib
import json
import tomllib
from importlib import resources
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

import reference_data
from risk_core.venues.derive_pm2 import Pm2Parameters

Fraction = Annotated[float, Field(ge=0, le=1)]
Positive = Annotated[float, Field(gt=0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class AaveReserveRule(_Strict):
    liquidation_threshold: Fraction
    liquidation_bonus: Annotated[float, Field(ge=0, le=0.5)]


class AaveRule(_Strict):
    close_factor: Fraction
    full_close_factor_below_health: Positive
    max_liquidations_per_round: Annotated[int, Field(ge=1)]
    reserves: dict[str, AaveReserveRule]


class HyperliquidRule(_Strict):
    max_leverage: dict[str, Annotated[int, Field(ge=1)]]


class GmxRule(_Strict):
    min_collateral_factor: Fraction
    min_collateral_usd: Annotated[float, Field(ge=0)]


class DeriveRule(_Strict):
    pm2_parameters_case: str = Field(min_length=1)


class AssetDepth(_Strict):
    depth_usd_2pct: Positive


class DepthProfile(_Strict):
    bands: tuple[tuple[Annotated[float, Field(ge=0, lt=1)], Positive], ...] = Field(min_length=1)


class CascadeParams(_Strict):
    version: str
    aave: AaveRule
    hyperliquid: HyperliquidRule
    gmx: GmxRule
    derive: DeriveRule
    depth: dict[str, AssetDepth]
    depth_profile: DepthProfile

    def digest(self) -> str:
        """sha256 of the effective parameters (canonical JSON): equal parameters, equal hash."""
        text = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def pm2_parameters(self) -> Pm2Parameters:
        """Derive's published PM2 parameter set named by `derive.pm2_parameters_case`."""
        case = json.loads(reference_data.path("derive-pm2", self.derive.pm2_parameters_case).read_text())
        return Pm2Parameters.model_validate(case["Parameters"])

    def with_depth_scaled(self, factor: float) -> CascadeParams:
        """The same parameters with every asset's depth multiplied by `factor` (a research knob, e.g. sweeps)."""
        depth = {asset: AssetDepth(depth_usd_2pct=d.depth_usd_2pct * factor) for asset, d in self.depth.items()}
        return self.model_copy(update={"depth": depth})


def load_cascade_params(overrides: dict[str, Any] | None = None) -> CascadeParams:
    text = resources.files("research.contagion.defaults").joinpath("cascade_params.toml").read_text()
    data = tomllib.loads(text)
    for key, value in (overrides or {}).items():
        data[key] = value
    return CascadeParams.model_validate(data)
