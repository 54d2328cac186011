"""The standardized risk schema for positions: what every adapter fills and the engine reads.

Names follow what users of such data know: ccxt's position fields (`quantity` signed, `entry_price`,
`option_type`, `strike`, `expiry`) and LlamaFolio's categories (wallet, lend, borrow, lp, perpetual,
future, option) exposed as `category`. Amounts are human units (already scaled by the token's decimals
at the adapter boundary), prices in USD unless said otherwise.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    StrictBool,
    StrictInt,
    TypeAdapter,
    model_validator,
)

SCHEMA_VERSION = "1.4.0"

Asset = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9._-]+$")]
# numbers are strict: a JSON number only, never a numeric string or a boolean read as one
FiniteFloat = Annotated[float, Strict(), Field(allow_inf_nan=False)]
PositiveFloat = Annotated[float, Strict(), Field(gt=0, allow_inf_nan=False)]


class StrictModel(BaseModel):
    """Frozen, closed models: an unknown or misspelt field is an error, never silently dropped."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Provenance(StrictModel):
    """Where a position came from: its source, the block or time it was read at, and whether it is whole."""

    source: str = Field(description="adapter or feed that produced the figure, e.g. 'aave-v3' or 'cli'")
    block: StrictInt | None = Field(default=None, ge=0, description="block number the read was pinned to")
    timestamp: AwareDatetime | None = Field(default=None, description="time of the read (UTC)")
    complete: StrictBool = Field(default=True, description="false when the source could only return part")


class _PositionBase(StrictModel):
    id: str | None = Field(default=None, max_length=200, description="caller's identifier, echoed back")
    venue: str = Field(min_length=1, max_length=64, description="e.g. 'deribit', 'aave-v3', 'wallet'")
    chain: str = Field(min_length=1, max_length=64, description="e.g. 'ethereum', 'arbitrum', 'offchain'")
    account: str = Field(min_length=1, max_length=200, description="address or venue sub-account")
    provenance: Provenance | None = None

    @property
    def venue_account(self) -> tuple[str, str, str]:
        return (self.venue, self.chain, self.account)


class SpotPosition(_PositionBase):
    """A token balance held in a wallet or on a venue (LlamaFolio category 'wallet')."""

    kind: Literal["spot"]
    asset: Asset
    quantity: FiniteFloat = Field(description="signed balance in units of the asset")


class LendPosition(_PositionBase):
    """Supplied to a lending market: collateral that earns (category 'lend')."""

    kind: Literal["lend"]
    asset: Asset
    quantity: PositiveFloat = Field(description="amount supplied, in units of the asset")


class BorrowPosition(_PositionBase):
    """Debt owed to a lending market (category 'borrow'): the quantity is the amount owed, > 0."""

    kind: Literal["borrow"]
    asset: Asset
    quantity: PositiveFloat = Field(description="amount owed, in units of the asset")


class PerpPosition(_PositionBase):
    """A USD-linear perpetual swap: P&L = quantity x (price move)."""

    kind: Literal["perp"]
    underlying: Asset
    quantity: FiniteFloat = Field(description="signed contracts in units of the underlying; long > 0")
    entry_price: PositiveFloat | None = Field(default=None, description="average entry; gives unrealised P&L")


class FuturePosition(_PositionBase):
    """A USD-linear dated future, marked at the snapshot's forward for its expiry."""

    kind: Literal["future"]
    underlying: Asset
    quantity: FiniteFloat = Field(description="signed, in units of the underlying; long > 0")
    expiry: AwareDatetime
    entry_price: PositiveFloat | None = None


class OptionPosition(_PositionBase):
    """A European option. `inverse` settles in the coin (Deribit-style), `linear` in USD."""

    kind: Literal["option"]
    underlying: Asset
    quantity: FiniteFloat = Field(description="signed, in units of the underlying; long > 0")
    option_type: Literal["call", "put"]
    strike: PositiveFloat
    expiry: AwareDatetime
    settlement: Literal["inverse", "linear"] = "linear"


class LPPosition(_PositionBase):
    """A concentrated-liquidity range (Uniswap v3 style).

    Prices are token1 per token0 in human units; `liquidity` is in human units, i.e. the raw L divided by
    10**((decimals0 + decimals1) / 2). A negative liquidity is a short range (long gamma).
    """

    kind: Literal["lp"]
    token0: Asset
    token1: Asset
    liquidity: FiniteFloat
    price_lower: PositiveFloat
    price_upper: PositiveFloat

    @model_validator(mode="after")
    def _range_is_ordered(self) -> LPPosition:
        if not self.price_lower < self.price_upper:
            raise ValueError("price_lower must be below price_upper")
        if self.token0 == self.token1:
            raise ValueError("token0 and token1 must differ")
        return self


Position = Annotated[
    SpotPosition | LendPosition | BorrowPosition | PerpPosition | FuturePosition | OptionPosition | LPPosition,
    Field(discriminator="kind"),
]
PositionAdapter: TypeAdapter[Position] = TypeAdapter(Position)

CATEGORY_BY_KIND = {
    "spot": "wallet",
    "lend": "lend",
    "borrow": "borrow",
    "perp": "perpetual",
    "future": "future",
    "option": "option",
    "lp": "lp",
}

