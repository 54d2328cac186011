"""The market snapshot the engine prices against: immutable and timestamped, with its sources' status."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import date
from functools import cached_property
from typing import Annotated, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import (
    AwareDatetime,
    BeforeValidator,
    Field,
    PlainSerializer,
    Strict,
    StrictBool,
    WithJsonSchema,
    model_validator,
)

from risk_core.errors import InputError
from risk_core.pricing.smile import butterfly_g, corrected_essvi, correction_check_grid
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


class ESSVICorrection(StrictModel):
    """Total variance added to an eSSVI slice where three parameters cannot follow the market (steep short-dated
    smiles): sum_j coefficients[j] B_j(k), B_j the cubic B-spline on the uniform knots k_start + i k_step,
    i = j .. j + 4. Twice continuously differentiable, and zero outside [k_start, k_start + (n + 3) k_step]."""

    k_start: FiniteFloat
    k_step: PositiveFloat
    coefficients: Annotated[list[FiniteFloat], Field(min_length=1, max_length=64)]

    def as_tuple(self) -> tuple[float, float, NDArray[np.float64]]:
        return self.k_start, self.k_step, np.array(self.coefficients, dtype=np.float64)


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
    correction: ESSVICorrection | None = Field(
        default=None,
        description="a short expiry's correction of total variance (null: the eSSVI slice alone); the surface "
        "checks the corrected slice for butterfly and calendar arbitrage",
    )

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
        return self._corrections_free()

    def _corrections_free(self) -> ESSVISurface:
        """Corrected slices: checked on a grid over their corrections' support (outside it the slices are eSSVI,
        free by the conditions above): g(k) >= 0 and total variance ordered against both neighbours."""
        corrected = [i for i, s in enumerate(self.essvi) if s.correction is not None]
        if not corrected:
            return self
        if corrected[-1] == len(self.essvi) - 1:
            raise InputError(f"essvi[{corrected[-1]}].correction",
                             "the last expiry's slice cannot carry a correction (the surface extrapolates it)")
        k = correction_check_grid([c.as_tuple() for s in self.essvi if (c := s.correction) is not None])

        def variance(s: ESSVISlice, derivatives: int = 0) -> tuple[NDArray[np.float64], ...]:
            up, down = s.psi * (1 + s.rho) / 2, s.psi * (1 - s.rho) / 2
            return corrected_essvi(k, s.theta, up, down, s.correction.as_tuple() if s.correction else None,
                                   derivatives)

        for i in corrected:
            w, w1, w2 = variance(self.essvi[i], 2)
            if np.min(butterfly_g(k, w, w1, w2)) < -ESSVI_TOLERANCE:
                raise InputError(f"essvi[{i}]", "the corrected slice has g(k) < 0 (butterfly arbitrage)")
            below = variance(self.essvi[i - 1])[0] if i > 0 else np.zeros_like(k)
            above = variance(self.essvi[i + 1])[0]
            scale = ESSVI_TOLERANCE * float(np.max(above))
            if np.min(w - below) < -scale or np.min(above - w) < -scale:
                raise InputError(f"essvi[{i}]", "the corrected slice crosses a neighbour (calendar arbitrage)")
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


def _bounded(low: int, high: int) -> Callable[[object], int]:
    """An integer beyond JSON numbers' exact range (uint160, uint128, int128): a decimal string in JSON, as the
    subgraphs write BigInt, or an int in Python; bounds checked here, not as JSON Schema numbers (no 64-bit encoder
    could write them)."""

    def parse(value: object) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, str) and re.fullmatch(r"-?[0-9]{1,60}", value):
            number = int(value)
        else:
            raise ValueError("an integer, as a decimal string")
        if not low <= number < high:
            raise ValueError(f"outside [{low}, {high})")
        return number

    return parse


def _string_schema(low: int, high: int) -> WithJsonSchema:
    return WithJsonSchema({"type": "string", "pattern": "^-?[0-9]{1,60}$",
                           "description": f"a decimal integer from {low} up to {high} (excluded)"})


_MIN_SQRT, _MAX_SQRT = 4295128739, 1461446703485210103287273052203988822378723970342
SqrtPriceX96 = Annotated[int, BeforeValidator(_bounded(_MIN_SQRT, _MAX_SQRT)), PlainSerializer(str, return_type=str),
                         _string_schema(_MIN_SQRT, _MAX_SQRT)]
Liquidity = Annotated[int, BeforeValidator(_bounded(0, 2**128)), PlainSerializer(str, return_type=str),
                      _string_schema(0, 2**128)]
LiquidityNet = Annotated[int, BeforeValidator(_bounded(-(2**127), 2**127)), PlainSerializer(str, return_type=str),
                         _string_schema(-(2**127), 2**127)]


class PoolTick(StrictModel):
    tick: Annotated[int, Strict(), Field(ge=-887272, le=887272)]
    liquidity_net: LiquidityNet


class UniswapV3Pool(StrictModel):
    """A Uniswap v3 pool's depth as read at one block (slot0, liquidity, the initialised ticks' liquidityNet):
    the price impact of selling the asset into it is the pool's own swap (risk_core.pricing.uniswap_v3)."""

    asset: Asset = Field(description="the asset this pool trades (token0 or token1)")
    quote: Asset = Field(description="the other token, valued at its spot price")
    asset_is_token0: StrictBool
    decimals0: Annotated[int, Strict(), Field(ge=0, le=36)]
    decimals1: Annotated[int, Strict(), Field(ge=0, le=36)]
    fee: Annotated[int, Strict(), Field(ge=0, lt=1_000_000, description="fee tier in pips (3000 = 0.3%)")]
    tick_spacing: Annotated[int, Strict(), Field(ge=1, le=16384)]
    sqrt_price_x96: SqrtPriceX96
    tick: Annotated[int, Strict(), Field(ge=-887272, le=887272)]
    liquidity: Liquidity = Field(description="active liquidity (raw)")
    ticks: list[PoolTick] = Field(description="the initialised ticks read, ascending (those around the price)")
    tick_range: tuple[int, int] | None = Field(
        default=None, description="the ticks [lower, upper] whose bitmap words were read: beyond them the depth is "
        "unknown and a swap stops at their edge; null: every initialised tick is listed")
    source: Literal["onchain", "subgraph"]
    address: str | None = None
    chain: str | None = None
    block: Annotated[int, Strict(), Field(ge=0)] | None = None


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
    pools: list[UniswapV3Pool] = Field(
        default_factory=list, description="Uniswap v3 pools read: the liquidity add-on and the cascade take an "
        "asset's price impact from its pools where any is given, else from the parameter file's depth curve")
