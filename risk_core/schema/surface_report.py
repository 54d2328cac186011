"""The surface report (`metarisk surface`, POST /v1/surface): a fitted eSSVI surface per expiry, beside the market.

Keys are fixed so that scripts can rely on them; IVs are decimals, expiries ISO 8601 UTC with `Z`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, Field, PlainSerializer

from risk_core.schema.market import ESSVICorrection
from risk_core.schema.positions import FiniteFloat, PositiveFloat, StrictModel


def _iso_utc(moment: datetime) -> str:
    """ISO 8601 in UTC with `Z`, microseconds only when there are any."""
    text = moment.astimezone(UTC).isoformat()
    return text.removesuffix("+00:00") + "Z"


UtcDatetime = Annotated[AwareDatetime, PlainSerializer(_iso_utc)]


class ESSVIParams(StrictModel):
    theta: PositiveFloat = Field(description="at-the-money total variance")
    rho: Annotated[float, Field(gt=-1, lt=1, allow_inf_nan=False)]
    psi: PositiveFloat = Field(description="theta x phi, the at-the-money skew scale")
    correction: ESSVICorrection | None = Field(
        default=None, description="total variance added to the eSSVI slice (a short expiry's B-spline); null: none"
    )


class QuoteComparison(StrictModel):
    instrument: str
    strike: PositiveFloat
    market_iv: PositiveFloat = Field(description="implied vol of the quote's price, decimal")
    model_iv: PositiveFloat = Field(description="the surface's implied vol at that strike, decimal")


class ExpirySurface(StrictModel):
    expiry: UtcDatetime
    forward: PositiveFloat
    status: Literal["fitted", "interpolated"] = Field(
        description="fitted: the expiry's quotes are in the joint fit; interpolated: none was usable"
    )
    params: ESSVIParams
    rmse_vol_points: FiniteFloat | None = Field(description="vega-weighted, on the expiry's quotes; null without")
    k: list[FiniteFloat] = Field(description="log-moneyness ln(K / forward)")
    total_variance: list[FiniteFloat] = Field(description="the slice's total variance at each k")
    quotes: list[QuoteComparison]


class SurfaceReport(StrictModel):
    asset: str
    as_of: UtcDatetime
    method: str
    rmse_vol_points: FiniteFloat | None = Field(description="vega-weighted over every quote of every expiry")
    min_butterfly_g: FiniteFloat = Field(description="least Gatheral g(k) over |k| <= 5 on every slice (>= 0: free)")
    min_calendar_gap: FiniteFloat = Field(
        description="least total-variance increase between consecutive expiries over the k grid (>= 0: free)"
    )
    expiries: list[ExpirySurface]
