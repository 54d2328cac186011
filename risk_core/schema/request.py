"""A margin request: the positions, the market they are priced against, and optional parameter overrides."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from risk_core.errors import InputError
from risk_core.schema.market import MarketSnapshot, SourceStatus
from risk_core.schema.params import default_params
from risk_core.schema.positions import Position, StrictModel
from risk_core.schema.venues import VenueState


class MarginRequest(StrictModel):
    positions: list[Position] = Field(
        description="the book to margin: at least one position, unless venue_states asks for venues' own figures "
        "alone (an empty book has no margin of its own)"
    )
    market: MarketSnapshot | None = Field(
        default=None,
        description="the market to price against; omitted, the API prices against its aggregator's current "
        "snapshot (the CLI, and an API without an aggregator, need one)",
    )
    params: dict[str, Any] | None = Field(default=None, description="overrides of the shipped risk parameters")
    sources: list[SourceStatus] = Field(
        default_factory=list, description="status of every position source; a failed one makes the report incomplete"
    )
    venue_states: list[VenueState] = Field(
        default_factory=list, description="venues' own views of accounts: their margin is reproduced beside ours"
    )

    @model_validator(mode="after")
    def _asks_something(self) -> MarginRequest:
        if not self.positions and not self.venue_states:
            raise InputError("positions", "at least one position is needed (nothing to margin in an empty book)")
        return self

    @model_validator(mode="before")
    @classmethod
    def _bounded_size(cls, data: Any) -> Any:
        # checked before parsing each position, so a huge request fails fast instead of parsing a million rows
        if isinstance(data, dict) and isinstance(data.get("positions"), list):
            limit = default_params().max_positions
            overrides = data.get("params")
            if isinstance(overrides, dict) and isinstance(overrides.get("max_positions"), int):
                limit = min(limit, overrides["max_positions"])
            if len(data["positions"]) > limit:
                raise InputError(
                    "positions", f"{len(data['positions'])} positions exceed the limit of {limit} per request"
                )
        return data
