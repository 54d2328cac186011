"""What every adapter returns: schema positions, the venue's own view, and an honest status.

An adapter never raises for a venue that is down, slow or answering garbage: it returns a result whose status is
`failed` with the reason, and the aggregator marks the wallet incomplete.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from risk_core.schema.market import SourceStatus
from risk_core.schema.positions import Position
from risk_core.schema.venues import VenueState


@dataclass(frozen=True)
class AdapterResult:
    source: str  # e.g. "aave-v3@ethereum"
    status: SourceStatus
    positions: list[Position] = field(default_factory=list)
    venue_states: list[VenueState] = field(default_factory=list)
    block: int | None = None  # the block every read was pinned to (on-chain sources)

    @property
    def complete(self) -> bool:
        return self.status.status == "ok"
