"""The market snapshot the engine prices against: immutable and timestamped, with its sources' status."""

from __future__ import annotations

import math
from datetime import date
from functools import cached_property
from typing import Annotated, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import AwareDatetime, Field, Strict, model_validator

from risk_core.errors import InputError
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


# Rounding slack of the no-arbitrage conditions below, relative to the figures compared.
ESSVI_TOLERANCE = 1e-9


class ESSVISlice(StrictModel):
    """One expiry of an eSSVI surface (Hendriks & Martini 2019): total variance
    w(k) = (theta + rho psi k + sqrt((psi k + rho theta)^2 + (1 - rho^2) theta^2)) / 2, k = ln(strike / forward).
    theta is the at-the-money total variance, psi = theta phi the at-the-money skew scale.

    Free of butterfly arbitrage at every k by Gatheral & Jacquier (2014), Theorem 4.2:
    psi (1 + |rho|) <= 4 and psi^2 (1 + |rho|) <= 4 theta."""

    expiry: AwareDatetime
    theta: PositiveFloat
    rho: Annotated[float, Field(gt=-1, lt=1, allow_inf_nan=False)]
    psi: PositiveFloat

    @model_validator(mode="after")
    def _butterfly_free(self) -> ESSVISlice:
        wing = 1 + abs(self.rho)
        if self.psi * wing > 4 * (1 + ESSVI_TOLERANCE):
            raise ValueError("psi (1 + |rho|) must be <= 4 (Roger Lee's bound on the wings)")
        if self.psi**2 * wing > 4 * self.theta * (1 + ESSVI_TOLERANCE):
            raise ValueError("psi^2 (1 + |rho|) must be <= 4 theta (butterfly arbitrage)")
        return self


class ESSVISurface(StrictModel):
    """eSSVI slices in increasing expiry, free of calendar arbitrage between every pair and so at every k: with
    the wing slopes psi (1 + rho) / 2 and psi (1 - rho) / 2 and theta non-decreasing and phi = psi / theta
    non-increasing in expiry (Hendriks & Martini 2019; Mingone 2022). Parameters are interpolated linearly in time
    between expiries and extrapolated in total variance outside them (risk_core.pricing.vol_surface)."""

    essvi: Annotated[list[ESSVISlice], Field(min_length=1)]

    @model_validator(mode="after")
    def _calendar_free(self) -> ESSVISurface:
        tol = 1 + ESSVI_TOLERANCE
        for i, (before, after) in enumerate(zip(self.essvi, self.essvi[1:], strict=False), start=1):
            if after.expiry <= before.expiry:
                raise InputError(f"essvi[{i}]", "expiries must be strictly increasing")
            for name, low, high in (
                ("theta", before.theta, after.theta),
                ("psi (1 + rho)", before.psi * (1 + before.rho), after.psi * (1 + after.rho)),
                ("psi (1 - rho)", before.psi * (1 - before.rho), after.psi * (1 - after.rho)),
                ("theta / psi", before.theta / before.psi, after.theta / after.psi),
            ):
                if high * tol < low:
                    raise InputError(f"essvi[{i}]", f"{name} must not decrease with expiry (calendar arbitrage)")
        return self


class PointsSurface(StrictModel):
    points: Annotated[list[VolPoint], Field(min_length=1)]


VolSurface = SVISurface | ESSVISurface | PointsSurface


class SourceStatus(StrictModel):
    """The status of one source that fed the snapshot or the positions."""

    name: str
    status: Literal["ok", "stale", "failed"]
    reason: str | None = None
    as_of: AwareDatetime | None = None
    asset: Asset | None = Field(
        default=None,
        description="the one asset this source prices (a price, an observation, a surface); null when it is not "
        "about one asset (a venue's whole fetch, a position source): a report carries a market source's warning "
        "only when the source is about none or about an asset its positions hold",
    )


class MarketHistory(StrictModel):
    """Daily closes of underlyings on common dates, oldest first: what the filtered-historical-simulation model
    draws its scenarios from. Only dates before the snapshot's `as_of` are used."""

    dates: Annotated[list[date], Field(min_length=2, description="UTC days, strictly increasing")]
    close: dict[Asset, list[PositiveFloat]] = Field(description="USD close per asset, one per date")
    atm_iv: dict[Asset, list[Annotated[float, Field(gt=0, le=20)] | None]] = Field(
        default_factory=dict,
        description="at-the-money implied vol (decimal, a DVOL-like series) per asset and date; null where none",
    )

    @model_validator(mode="after")
    def _aligned(self) -> MarketHistory:
        if any(b <= a for a, b in zip(self.dates, self.dates[1:], strict=False)):
            raise ValueError("dates must be strictly increasing")
        for name, series in (("close", self.close), ("atm_iv", self.atm_iv)):
            for asset, values in series.items():
                if len(values) != len(self.dates):
                    raise InputError(f"{name}.{asset}", f"{len(values)} values for {len(self.dates)} dates")
        return self

    @cached_property
    def day_numbers(self) -> NDArray[np.int64]:
        """The dates as days since 1970-01-01."""
        return np.array(self.dates, dtype="datetime64[D]").astype(np.int64)

    @cached_property
    def close_array(self) -> dict[str, NDArray[np.float64]]:
        return {asset: np.array(values, dtype=np.float64) for asset, values in self.close.items()}

    @cached_property
    def atm_iv_array(self) -> dict[str, NDArray[np.float64]]:
        """ATM vols per asset, NaN where not recorded."""
        return {
            asset: np.array([np.nan if v is None else v for v in values], dtype=np.float64)
            for asset, values in self.atm_iv.items()
        }


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
    history: MarketHistory | None = Field(
        default=None, description="daily history for the fhs model (params.model); unused by the grid"
    )
