"""A venue's own view of one account: what its method needs beyond positions and the figures it reports.

Adapters fill it (Aave's liquidation thresholds and getUserAccountData health factor, Hyperliquid's max leverage
and reported maintenance margin); the engine reproduces the venue's figure beside the universal one.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, Strict

from risk_core.schema.positions import Provenance, StrictModel

VenueMethod = Literal[
    "aave-v3-health-factor", "hyperliquid-cross-margin", "derive-pm2", "derive-standard", "deribit-portfolio-margin"
]


class VenueState(StrictModel):
    venue: str
    chain: str
    account: str
    method: VenueMethod
    parameters: dict[str, Any] = Field(
        default_factory=dict,
        description="method inputs that positions do not carry, e.g. liquidation_thresholds {asset: fraction}, "
        "emode_category, max_leverage {asset: int}",
    )
    reported: dict[str, Annotated[float, Strict()]] = Field(
        default_factory=dict, description="the venue's own figures, e.g. health_factor or maintenance_margin_usd"
    )
    provenance: Provenance | None = None
