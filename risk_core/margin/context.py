"""A pricing context: one (market snapshot, parameters) pair and what is valued on it, kept by its caller.

The engine keeps nothing between calls. A caller that margins many books on one snapshot (the aggregator per
snapshot, the API per cached market document) builds a context once and passes it with each book: the scenario
sets and the instrument table (risk_core.margin.instruments) then grow with it and go when the caller drops it.
The hashes name what a report was computed from: equal inputs give equal hashes, whatever object holds them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from risk_core.margin.instruments import InstrumentTable, ScenarioSets
from risk_core.margin.liquidation import coarse_grid
from risk_core.schema.market import MarketSnapshot
from risk_core.schema.params import RiskParams, default_params

MAX_RISE_SEARCHED = 10.0  # liquidation distance upward is searched to +1000%


@dataclass(frozen=True)
class PricingContext:
    market: MarketSnapshot
    params: RiskParams
    instruments: InstrumentTable = field(repr=False)

    @cached_property
    def params_hash(self) -> str:
        """Of the effective parameters, overrides included."""
        return content_hash(self.params)

    @cached_property
    def market_hash(self) -> str:
        return content_hash(self.market)


def pricing_context(market: MarketSnapshot, params: RiskParams) -> PricingContext:
    """A new context on (market, params): nothing valued yet."""
    instruments = InstrumentTable(market, params, coarse_grid(MAX_RISE_SEARCHED).reshape(-1), ScenarioSets(params))
    return PricingContext(market, params, instruments)


def effective_params(overrides: dict[str, Any] | None) -> RiskParams:
    """The shipped parameters with a request's overrides (validated: raises pydantic's ValidationError)."""
    return default_params().with_overrides(overrides) if overrides else default_params()


def content_hash(model: MarketSnapshot | RiskParams) -> str:
    """SHA-256 of the model's canonical JSON (sorted keys): equal content, equal hash."""
    document = json.dumps(model.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(document.encode()).hexdigest()
