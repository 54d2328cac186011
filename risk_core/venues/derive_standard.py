"""Derive standard manager (naked option positions), from the method's description in docs/venue-parity.md.

Each option is margined in isolation; per expiry the balance is then capped by the most the expiry can lose at
settlement. Figures are *balances* (negative: short of margin), amounts signed (short < 0):
    short call  MM = MTM + mm_call x S x amount
                IM = MTM + max(max_spot - OTM%, min_spot) x S x amount
    short put   MM = MTM + min(mm_put x S x amount, mm_put_mtm x MTM)
                IM = min(MTM + max(max_spot - OTM%, min_spot) x S x amount, 1.05 x MM)
OTM% is how far out of the money the strike is, as a fraction of spot (0 in the money). A long option is not
covered by the description; it counts at its mark value (MM = IM = MTM), which is what lets a spread's long leg
offset its short leg before the settlement cap applies. MTM is Black-76 on the expiry's forward, undiscounted,
as in the description's worked example.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field

from risk_core.pricing.black76 import black76_price

FloatArray = NDArray[np.float64]

SECONDS_PER_YEAR = 365.0 * 86_400.0
PUT_IM_MM_MULTIPLE = 1.05  # a short put's IM balance is at least 1.05 times as negative as its MM balance

Positive = Annotated[float, Field(gt=0)]
NonNegative = Annotated[float, Field(ge=0)]


class _StrictModel(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, allow_inf_nan=False)


class StandardMarginParams(_StrictModel):
    max_spot_req: NonNegative = Field(description="IM spot fraction for an at-the-money short (maxSpot)")
    min_spot_req: NonNegative = Field(description="IM spot fraction floor, far out of the money (minSpot)")
    mm_call_spot_req: NonNegative = Field(description="MM spot fraction of a short call")
    mm_put_spot_req: NonNegative = Field(description="MM spot fraction of a short put")
    mm_put_mtm_req: NonNegative = Field(description="MM multiple of a short put's mark value")


class StandardOption(_StrictModel):
    strike: Positive
    is_call: bool
    amount: float = Field(description="signed: short < 0")
    vol: NonNegative


class StandardExpiry(_StrictModel):
    """The options of one expiry with that expiry's market."""

    spot: Positive
    forward: Positive
    seconds_to_expiry: NonNegative
    options: Annotated[tuple[StandardOption, ...], Field(strict=False, min_length=1)]


@dataclass(frozen=True)
class StandardMargin:
    """Balances (negative: short of margin) and the mark value they include."""

    mm: float
    im: float
    mtm: float


@dataclass(frozen=True)
class IsolatedMargins:
    """Per option, in the expiry's order."""

    mm: FloatArray
    im: FloatArray
    mtm: FloatArray


def isolated_margins(expiry: StandardExpiry, params: StandardMarginParams) -> IsolatedMargins:
    strike = np.array([o.strike for o in expiry.options], dtype=np.float64)
    is_call = np.array([o.is_call for o in expiry.options], dtype=np.bool_)
    amount = np.array([o.amount for o in expiry.options], dtype=np.float64)
    vol = np.array([o.vol for o in expiry.options], dtype=np.float64)
    spot = expiry.spot

    mtm = amount * black76_price(expiry.forward, strike, expiry.seconds_to_expiry / SECONDS_PER_YEAR, vol, is_call)
    out_of_money = np.maximum(np.where(is_call, strike - spot, spot - strike), 0.0) / spot
    im_spot_fraction = np.maximum(params.max_spot_req - out_of_money, params.min_spot_req)
    call_mm = mtm + params.mm_call_spot_req * spot * amount
    put_mm = mtm + np.minimum(params.mm_put_spot_req * spot * amount, params.mm_put_mtm_req * mtm)
    spot_im = mtm + im_spot_fraction * spot * amount
    short_mm = np.where(is_call, call_mm, put_mm)
    short_im = np.where(is_call, spot_im, np.minimum(spot_im, PUT_IM_MM_MULTIPLE * put_mm))
    is_short = amount < 0
    return IsolatedMargins(mm=np.where(is_short, short_mm, mtm), im=np.where(is_short, short_im, mtm), mtm=mtm)


def worst_settlement_payoff(expiry: StandardExpiry) -> float:
    """The expiry's lowest payoff over settlement at 0 and at each strike; -inf when net short calls make the loss
    unbounded as the price rises."""
    strike = np.array([o.strike for o in expiry.options], dtype=np.float64)
    is_call = np.array([o.is_call for o in expiry.options], dtype=np.bool_)
    amount = np.array([o.amount for o in expiry.options], dtype=np.float64)
    if amount[is_call].sum() < 0:
        return -np.inf
    settlement = np.concatenate([[0.0], strike])[:, None]
    payoff = np.maximum(np.where(is_call, settlement - strike, strike - settlement), 0.0) @ amount
    return float(payoff.min())


def expiry_margin(expiry: StandardExpiry, params: StandardMarginParams) -> StandardMargin:
    """Sum of the isolated balances, capped by the worst settlement payoff (a spread never needs more than it can
    lose)."""
    isolated = isolated_margins(expiry, params)
    settlement_floor = worst_settlement_payoff(expiry)
    return StandardMargin(
        mm=max(float(isolated.mm.sum()), settlement_floor),
        im=max(float(isolated.im.sum()), settlement_floor),
        mtm=float(isolated.mtm.sum()),
    )
