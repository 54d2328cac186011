"""Hyperliquid cross margin from positions.

Each perp's maintenance margin is half the initial margin at its maximum leverage:
    MM = |size| x mark price / (2 x max leverage)
The cross account is liquidatable once its account value (USDC balance plus unrealised PnL at mark) falls below
the sum of its positions' maintenance margins. `max_leverage` is the leverage of the position's tier in the asset's
margin table (for a single-tier asset, the asset's maxLeverage).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field

Positive = Annotated[float, Field(gt=0)]
FloatArray = NDArray[np.float64]


class _StrictModel(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, allow_inf_nan=False)


class HyperliquidPosition(_StrictModel):
    coin: str = Field(min_length=1)
    size: float = Field(description="signed: short < 0")
    entry_price: Positive
    mark_price: Positive
    max_leverage: int = Field(ge=1)


class HyperliquidAccount(_StrictModel):
    usdc_balance: float = Field(description="cross account USDC before unrealised PnL")
    positions: Annotated[tuple[HyperliquidPosition, ...], Field(strict=False)]


@dataclass(frozen=True)
class HyperliquidMargin:
    account_value: float
    total_notional: float
    maintenance_margin: float
    position_maintenance_margin: tuple[float, ...]  # per position, in the account's order

    @property
    def margin_surplus(self) -> float:
        """Account value above maintenance margin; negative once liquidatable."""
        return self.account_value - self.maintenance_margin

    @property
    def is_liquidatable(self) -> bool:
        return self.account_value < self.maintenance_margin


def hyperliquid_cross_margin(account: HyperliquidAccount) -> HyperliquidMargin:
    positions = account.positions
    size = np.array([p.size for p in positions], dtype=np.float64)
    entry = np.array([p.entry_price for p in positions], dtype=np.float64)
    mark = np.array([p.mark_price for p in positions], dtype=np.float64)
    max_leverage = np.array([p.max_leverage for p in positions], dtype=np.float64)

    maintenance = position_maintenance_margin(size, mark, max_leverage)
    return HyperliquidMargin(
        account_value=account.usdc_balance + float(size @ (mark - entry)),
        total_notional=float((np.abs(size) * mark).sum()),
        maintenance_margin=float(maintenance.sum()),
        position_maintenance_margin=tuple(maintenance.tolist()),
    )


def position_maintenance_margin(size: FloatArray, mark: FloatArray, max_leverage: FloatArray) -> FloatArray:
    """Each position's maintenance margin: half the initial margin at its maximum leverage."""
    return np.abs(size) * mark / (2.0 * max_leverage)
