"""Backtest books (BOOKS.json): named books of schema positions and of legs in relative terms.

    {"books": [{"name": "short straddle", "rebalance": "daily",
                "positions": [...schema positions, held as given...],
                "legs": [{"kind": "option", "asset": "BTC", "notional_usd": -1e6, "tenor_days": 30,
                          "option_type": "call", "moneyness": 1.0}, ...]}]}

A leg is rebuilt from its terms at a date: quantity = notional_usd / spot (a borrow's notional is the amount owed,
> 0), an option's expiry tenor_days later and its strike = moneyness x spot, or set by its Black-76 forward
`delta` at the date's ATM vol (-0.25: the 25-delta put); a perp or future's entry price is the date's mark, so its
value is its P&L. `rebalance: "daily"` rebuilds the legs at every date (a constant-maturity, constant-notional
book); `"static"` builds them at the first date and holds them (the book's rows end before an option expires).
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Annotated, Literal

from pydantic import Field, model_validator
from scipy.special import ndtri

from risk_core.schema.positions import Asset, FiniteFloat, Position, PositionAdapter, StrictModel

_PLACE = {"venue": "backtest", "chain": "offchain", "account": "book"}


class Leg(StrictModel):
    kind: Literal["spot", "lend", "borrow", "perp", "future", "option"]
    asset: Asset = Field(description="the asset held or owed, or the derivative's underlying")
    notional_usd: FiniteFloat = Field(description="signed USD of the asset at the date (a borrow's: owed, > 0)")
    tenor_days: Annotated[float, Field(gt=0, le=3650)] | None = Field(default=None, description="future, option")
    option_type: Literal["call", "put"] | None = None
    moneyness: Annotated[float, Field(gt=0, le=100)] | None = Field(default=None, description="strike / spot")
    delta: Annotated[float, Field(gt=-1, lt=1)] | None = Field(default=None, description="Black-76 forward delta")
    settlement: Literal["linear", "inverse"] = "linear"
    venue: str = _PLACE["venue"]
    chain: str = _PLACE["chain"]
    account: str = _PLACE["account"]

    @model_validator(mode="after")
    def _terms_fit_the_kind(self) -> Leg:
        dated = self.kind in ("future", "option")
        if dated != (self.tenor_days is not None):
            raise ValueError("tenor_days is required for a future or option, and only for them")
        if self.kind == "option":
            if self.option_type is None:
                raise ValueError("option_type is required for an option")
            if (self.moneyness is None) == (self.delta is None):
                raise ValueError("an option needs exactly one of moneyness and delta")
            if self.delta is not None and (self.delta > 0) != (self.option_type == "call"):
                raise ValueError("delta: a call's delta is > 0, a put's < 0")
        elif self.option_type is not None or self.moneyness is not None or self.delta is not None:
            raise ValueError("option_type, moneyness and delta are for options only")
        if self.kind == "borrow" and self.notional_usd <= 0:
            raise ValueError("notional_usd: a borrow's amount owed is > 0")
        return self

    def position(self, as_of: datetime, spot: float, atm_iv: float | None) -> Position:
        """The schema position of this leg at `as_of`. `atm_iv` is needed for a leg struck by delta."""
        quantity = self.notional_usd / spot
        base = {"venue": self.venue, "chain": self.chain, "account": self.account, "kind": self.kind}
        if self.kind in ("spot", "lend", "borrow"):
            return PositionAdapter.validate_python({**base, "asset": self.asset, "quantity": quantity})
        if self.kind == "perp":
            return PositionAdapter.validate_python(
                {**base, "underlying": self.asset, "quantity": quantity, "entry_price": spot}
            )
        assert self.tenor_days is not None
        expiry = as_of + timedelta(days=self.tenor_days)
        if self.kind == "future":
            return PositionAdapter.validate_python(
                {**base, "underlying": self.asset, "quantity": quantity, "expiry": expiry, "entry_price": spot}
            )
        return PositionAdapter.validate_python({
            **base, "underlying": self.asset, "quantity": quantity, "expiry": expiry,
            "option_type": self.option_type, "settlement": self.settlement,
            "strike": self.strike(spot, atm_iv),
        })

    def strike(self, spot: float, atm_iv: float | None) -> float:
        """An option leg's strike at a date's spot (and ATM vol, for a leg struck by delta)."""
        if self.moneyness is not None:
            return self.moneyness * spot
        assert self.delta is not None and self.tenor_days is not None
        if atm_iv is None:
            raise ValueError(f"{self.asset}: no ATM vol to strike a {self.delta} delta option")
        # Black-76 forward delta N(d1) (a put's N(d1) - 1), the forward at spot: K = F exp(-d1 s + s^2 / 2)
        d1 = float(ndtri(self.delta if self.delta > 0 else 1.0 + self.delta))
        total = atm_iv * (self.tenor_days / 365.0) ** 0.5
        return spot * math.exp(-d1 * total + 0.5 * total * total)


class Book(StrictModel):
    name: str = Field(min_length=1, max_length=200)
    rebalance: Literal["static", "daily"]
    positions: list[Position] = Field(default_factory=list, description="schema positions, held as given")
    legs: list[Leg] = Field(default_factory=list, description="positions in relative terms, built at a date")

    @model_validator(mode="after")
    def _not_empty(self) -> Book:
        if not self.positions and not self.legs:
            raise ValueError("a book needs positions or legs")
        return self

    def assets(self) -> set[str]:
        held: set[str] = {leg.asset for leg in self.legs}
        for p in self.positions:
            held |= {getattr(p, name) for name in ("asset", "underlying", "token0", "token1") if hasattr(p, name)}
        return held


class BooksFile(StrictModel):
    books: Annotated[list[Book], Field(min_length=1)]

    @model_validator(mode="after")
    def _names_unique(self) -> BooksFile:
        names = [b.name for b in self.books]
        if len(set(names)) != len(names):
            raise ValueError("book names must be unique")
        return self
