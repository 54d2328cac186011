"""What pricing could not do, as data: one issue per position or per asset, with a code a caller can act on.

Resolution never raises for a position the market cannot price: it records an `error` issue naming the position
and leaves the position out; a caveat on a counted position (an unpriced token valued at 0, an asset of unknown
class, a stablecoin valued at its peg) is a `warning`. Callers decide on codes and indexes, never on text: the
message is rendered from the code and its details only when a report or an error answer is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Severity = Literal["error", "warning"]

# code -> message template over the issue's details
_TEMPLATES = {
    "no_price": "no price for {asset} in market.spot",
    "unpriced_token": "no price for {asset} in market.spot; the position counts 0 value and 0 collateral",
    "unpriced_debt": "no price for {asset} in market.spot: a debt cannot be valued",
    "no_vol_surface": "no vol surface for {asset} in market.vol",
    "expired": "expiry {expiry} is not after market.as_of",
    "lp_two_risky_assets": "LP of two risky assets; each is shocked with the other held",
    "valued_at_peg": "{asset}: no price in market.spot; valued at its peg {peg}",
    "tracked_asset_unpriced": "{asset}: tracks {tracked}, which has no price in market.spot; {asset} is margined on"
                              " its own scenarios",
    "unknown_asset_class": "{asset}: unknown asset class; it gets no collateral credit (haircut 100%)",
    "scan_range_widened": "{asset}: price sources disagree by {dispersion:.2%}; scan range widened to {widened:.2%}",
}


@dataclass(frozen=True)
class PricingIssue:
    """One thing pricing could not do. `index` is the position's index in its book (None for an issue about an
    asset or the market, said once per book); `field` is then relative to the position (`underlying`), else a
    path from the request (`market.spot.WSTETH`)."""

    code: str
    severity: Severity
    field: str
    index: int | None = None
    details: tuple[tuple[str, Any], ...] = ()

    @property
    def path(self) -> str:
        """The field from the request's root."""
        return self.field if self.index is None else f"positions[{self.index}].{self.field}"

    @property
    def message(self) -> str:
        return _TEMPLATES[self.code].format(**dict(self.details))

    @property
    def subject(self) -> tuple[str, str]:
        """What an asset-level issue is about: a book says it once."""
        return self.code, self.field

    def at(self, index: int) -> PricingIssue:
        """The same issue about the position at `index` of another book."""
        return PricingIssue(self.code, self.severity, self.field, index, self.details)


def position_issue(index: int, field: str, code: str, severity: Severity = "error", **details: Any) -> PricingIssue:
    return PricingIssue(code, severity, field, index, tuple(details.items()))


def asset_issue(field: str, code: str, **details: Any) -> PricingIssue:
    return PricingIssue(code, "warning", field, None, tuple(details.items()))
