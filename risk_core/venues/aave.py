"""Aave v3 health factor from positions, e-mode aware (Aave v3.0/v3.1 e-mode: one category per user).

    HF = sum over collateral reserves of value x liquidation threshold / total debt value
A reserve counts as collateral when the user has it enabled as collateral and its own liquidation threshold is
above zero (Aave's rule: a zero threshold means the asset cannot back debt). With the user in an e-mode category,
every reserve of that category takes the category's threshold instead of its own and, when the category has a
price source, that price for both its supply and its debt. With no debt the health factor is `math.inf` (Aave
itself returns the largest uint256). Amounts are human units; Aave's fixed-point rounding (8-decimal base
currency, basis-point percentMul) is not reproduced.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, model_validator

BPS = 10_000

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
IntArray = NDArray[np.intp]

NonNegative = Annotated[float, Field(ge=0)]
ThresholdBps = Annotated[int, Field(ge=0, le=BPS)]


class _StrictModel(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, allow_inf_nan=False)


class AaveReserve(_StrictModel):
    """The user's position in one reserve."""

    asset: str = Field(min_length=1)
    supplied: NonNegative = Field(description="aToken balance, human units")
    borrowed: NonNegative = Field(description="variable plus stable debt, human units")
    price_usd: NonNegative = Field(description="the reserve's oracle price")
    liquidation_threshold_bps: ThresholdBps
    usage_as_collateral: bool
    emode_category: int | None = Field(default=None, ge=1, description="the reserve's e-mode category, if any")


class EModeCategory(_StrictModel):
    category_id: int = Field(ge=1)
    liquidation_threshold_bps: ThresholdBps
    price_usd: Annotated[float, Field(gt=0)] | None = Field(
        default=None, description="the category's own price source, pricing every reserve of the category"
    )


class AaveAccount(_StrictModel):
    reserves: Annotated[tuple[AaveReserve, ...], Field(strict=False)]
    emode: EModeCategory | None = Field(default=None, description="the user's e-mode category; None: e-mode off")

    @model_validator(mode="after")
    def _one_position_per_asset(self) -> AaveAccount:
        assets = [reserve.asset for reserve in self.reserves]
        for index, asset in enumerate(assets):
            if asset in assets[:index]:
                raise ValueError(f"reserves[{index}].asset = {asset!r} appears twice")
        return self


@dataclass(frozen=True)
class AaveHealth:
    total_collateral_usd: float
    threshold_weighted_collateral_usd: float
    total_debt_usd: float
    health_factor: float  # math.inf without debt

    @property
    def liquidation_threshold(self) -> float:
        """The collateral-weighted average threshold (Aave's currentLiquidationThreshold), 0 without collateral."""
        if self.total_collateral_usd == 0:
            return 0.0
        return self.threshold_weighted_collateral_usd / self.total_collateral_usd


def aave_health(account: AaveAccount) -> AaveHealth:
    reserves = account.reserves
    supplied = np.array([r.supplied for r in reserves], dtype=np.float64)
    borrowed = np.array([r.borrowed for r in reserves], dtype=np.float64)
    price = np.array([r.price_usd for r in reserves], dtype=np.float64)
    reserve_threshold = np.array([r.liquidation_threshold_bps for r in reserves], dtype=np.float64) / BPS
    enabled = np.array([r.usage_as_collateral for r in reserves], dtype=np.bool_)

    threshold = reserve_threshold
    if account.emode is not None:
        emode = account.emode
        in_emode = np.array([r.emode_category == emode.category_id for r in reserves], dtype=np.bool_)
        threshold = np.where(in_emode, emode.liquidation_threshold_bps / BPS, reserve_threshold)
        if emode.price_usd is not None:
            price = np.where(in_emode, emode.price_usd, price)

    weighted_collateral, collateral_value, total_debt = grouped_health_terms(
        supplied, borrowed, price, threshold, enabled & (reserve_threshold > 0), np.zeros(len(reserves), np.intp), 1
    )
    return AaveHealth(
        total_collateral_usd=float(collateral_value[0]),
        threshold_weighted_collateral_usd=float(weighted_collateral[0]),
        total_debt_usd=float(total_debt[0]),
        health_factor=float(health_factor(weighted_collateral, total_debt)[0]),
    )


def grouped_health_terms(
    supplied: FloatArray,
    borrowed: FloatArray,
    price: FloatArray,
    threshold: FloatArray,
    is_collateral: BoolArray,
    account: IntArray,
    n_accounts: int,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Per account (rows grouped by `account`): threshold-weighted collateral, collateral value and debt value.
    One reserve a row; `is_collateral` already applies Aave's rule (enabled and a threshold above zero)."""
    collateral_value = np.where(is_collateral, supplied * price, 0.0)
    def total(values: FloatArray) -> FloatArray:
        return np.asarray(np.bincount(account, weights=values, minlength=n_accounts), dtype=np.float64)

    return total(collateral_value * threshold), total(collateral_value), total(borrowed * price)


def health_factor(threshold_weighted_collateral: FloatArray, debt: FloatArray) -> FloatArray:
    """HF = threshold-weighted collateral / debt; inf without debt (Aave returns the largest uint256)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(debt > 0, threshold_weighted_collateral / np.where(debt > 0, debt, 1.0), np.inf)
