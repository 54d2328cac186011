"""The market snapshot the engine prices against: immutable and timestamped, with its sources' status."""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import AwareDatetime, Field, Strict, model_validator

from risk_core.schema.positions import Asset, FiniteFloat, PositiveFloat, StrictModel


class SVISlice(StrictModel):
    """Raw SVI for one expiry: total variance w(k) = a + b (rho (k - m) + sqrt((k - m)^2 + sigma^2)),
    k = ln(strike / forward of that expiry)."""

    expiry: AwareDatetime
    a: FiniteFloat
    b: Annotated[float, Strict(), Field(ge=0, allow_inf_nan=False)]
    rho: Annotated[float, Strict(), Field(gt=-1, lt=1, allow_inf_nan=False)]
    m: FiniteFloat
    sigma: PositiveFloat

    @model_validator(mode="after")
    def _variance_never_negative(self) -> SVISlice:
        if self.a + self.b * self.sigma * math.sqrt(1 - self.rho**2) < 0:
            raise ValueError("a + b sigma sqrt(1 - rho^2) must be >= 0 (negative total variance)")
        return self


class VolPoint(StrictModel):
    expiry: AwareDatetime
    strike: PositiveFloat
    iv: Annotated[float, Strict(), Field(gt=0, le=20, allow_inf_nan=False, description="implied vol, decimal")]


class SVISurface(StrictModel):
    svi: Annotated[list[SVISlice], Field(min_length=1)]


class PointsSurface(StrictModel):
    points: Annotated[list[VolPoint], Field(min_length=1)]


VolSurface = SVISurface | PointsSurface


class SourceStatus(StrictModel):
    """The status of one source that fed the snapshot or the positions."""

    name: str
    status: Literal["ok", "stale", "failed"]
    reason: str | None = None
    as_of: AwareDatetime | None = None


class MarketSnapshot(StrictModel):
    as_of: AwareDatetime
    spot: dict[Asset, PositiveFloat] = Field(description="index price in USD per asset")
    forwards: dict[Asset, dict[AwareDatetime, PositiveFloat]] = Field(
        default_factory=dict, description="forward price per asset and expiry; spot when absent"
    )
    vol: dict[Asset, VolSurface] = Field(default_factory=dict)
    rates: dict[Asset, FiniteFloat] = Field(default_factory=dict, description="continuous rate; 0 when absent")
    dispersion: dict[Asset, Annotated[float, Strict(), Field(ge=0, allow_inf_nan=False)]] = Field(
        default_factory=dict, description="relative spread between price sources, widens the scan range"
    )
    sources: list[SourceStatus] = Field(default_factory=list)
