"""Each venue's own margin method, reproduced from the venue's own inputs, beside the venue's reported figure.

A `VenueState` names the method and carries what positions do not (thresholds, leverage tiers, the venue's own
prices); the positions of that venue-account come from the book. The difference says why our universal figure
and the venue's disagree only where the venue's own method does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from pydantic import ValidationError

from risk_core.errors import InputError
from risk_core.schema.market import MarketSnapshot
from risk_core.schema.positions import BorrowPosition, LendPosition, PerpPosition, Position, SpotPosition
from risk_core.schema.report import VenueMargin
from risk_core.schema.venues import VenueState
from risk_core.venues.aave import AaveAccount, AaveReserve, EModeCategory, aave_health
from risk_core.venues.derive_pm2 import Pm2Case, evaluate_pm2
from risk_core.venues.hyperliquid import HyperliquidAccount, HyperliquidPosition, hyperliquid_cross_margin

STABLE_CASH = ("USDC",)
Reproducer = Callable[[Sequence[Position], MarketSnapshot, dict[str, Any]], tuple[dict[str, float], str | None]]


def compute_venue_margins(
    positions: Sequence[Position],
    market: MarketSnapshot,
    states: Sequence[VenueState],
    *,
    universal_mm: Sequence[float] | None = None,
    universal_risk: Sequence[float] | None = None,
    universal_contingency: Sequence[float] | None = None,
) -> list[VenueMargin]:
    """Raises InputError naming `venue_states[i]...` when a state's inputs are invalid; a state missing inputs is
    shown with the venue's figure only and a note."""
    out = []
    for i, state in enumerate(states):
        own = [p for p in positions if p.venue_account == (state.venue, state.chain, state.account)]
        try:
            reproduced, note = _REPRODUCERS[state.method](own, market, state.parameters)
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            raise InputError(f"venue_states[{i}].parameters.{where}", first["msg"]) from e
        except KeyError as e:
            # the venue reported its figure but not the inputs its method needs: show the figure, say why alone
            reproduced, note = {}, f"not reproduced: parameters lack {e.args[0]}"
        shared = sorted(set(reproduced) & set(state.reported))
        equity_key, requirement_key = _VENUE_FIGURES[state.method]
        out.append(
            VenueMargin(
                venue=state.venue,
                chain=state.chain,
                account=state.account,
                method=state.method,
                method_summary=METHOD_SUMMARIES[state.method],
                reproduced=reproduced,
                reported=dict(state.reported) or None,
                difference={k: reproduced[k] - state.reported[k] for k in shared} or None,
                note=note,
                venue_equity_usd=state.reported.get(equity_key) if equity_key else None,
                venue_maintenance_margin_usd=state.reported.get(requirement_key) if requirement_key else None,
                universal_maintenance_margin_usd=universal_mm[i] if universal_mm is not None else None,
                universal_risk_usd=universal_risk[i] if universal_risk is not None else None,
                universal_contingency_usd=universal_contingency[i] if universal_contingency is not None else None,
            )
        )
    return out


def _price(market: MarketSnapshot, prices: dict[str, float], asset: str) -> float:
    if asset in prices:
        return prices[asset]
    if asset in market.spot:
        return market.spot[asset]
    raise KeyError(f"prices_usd.{asset} (and no market.spot.{asset})")


def _aave(
    positions: Sequence[Position], market: MarketSnapshot, parameters: dict[str, Any]
) -> tuple[dict[str, float], str | None]:
    prices: dict[str, float] = parameters.get("prices_usd", {})
    thresholds: dict[str, int] = parameters["liquidation_thresholds_bps"]
    disabled = set(parameters.get("collateral_disabled", []))
    emode = parameters.get("emode")
    categories: dict[str, int] = (emode or {}).get("assets", {})
    supplied: dict[str, float] = {}
    borrowed: dict[str, float] = {}
    for p in positions:
        if isinstance(p, LendPosition):
            supplied[p.asset] = supplied.get(p.asset, 0.0) + p.quantity
        elif isinstance(p, BorrowPosition):
            borrowed[p.asset] = borrowed.get(p.asset, 0.0) + p.quantity
    reserves = tuple(
        AaveReserve(
            asset=asset,
            supplied=supplied.get(asset, 0.0),
            borrowed=borrowed.get(asset, 0.0),
            price_usd=_price(market, prices, asset),
            liquidation_threshold_bps=thresholds[asset],
            usage_as_collateral=asset not in disabled,
            emode_category=categories.get(asset),
        )
        for asset in sorted(set(supplied) | set(borrowed))
    )
    category = (
        EModeCategory(
            category_id=emode["category_id"],
            liquidation_threshold_bps=emode["liquidation_threshold_bps"],
            price_usd=emode.get("price_usd"),
        )
        if emode
        else None
    )
    health = aave_health(AaveAccount(reserves=reserves, emode=category))
    figures = {
        "health_factor": health.health_factor,
        "total_collateral_usd": health.total_collateral_usd,
        "total_debt_usd": health.total_debt_usd,
    }
    note = "no debt: health factor is infinite" if health.total_debt_usd == 0 else None
    return figures, note


def _hyperliquid(
    positions: Sequence[Position], market: MarketSnapshot, parameters: dict[str, Any]
) -> tuple[dict[str, float], str | None]:
    marks: dict[str, float] = parameters.get("mark_prices", {})
    leverage: dict[str, int] = parameters["max_leverage"]
    cash = sum(p.quantity for p in positions if isinstance(p, SpotPosition) and p.asset in STABLE_CASH)
    perps = [p for p in positions if isinstance(p, PerpPosition)]
    account = HyperliquidAccount(
        usdc_balance=cash,
        positions=tuple(
            HyperliquidPosition(
                coin=p.underlying,
                size=p.quantity,
                entry_price=p.entry_price if p.entry_price is not None else _price(market, marks, p.underlying),
                mark_price=_price(market, marks, p.underlying),
                max_leverage=leverage[p.underlying],
            )
            for p in perps
        ),
    )
    margin = hyperliquid_cross_margin(account)
    note = None
    if any(p.entry_price is None for p in perps):
        note = "a position without entry price is taken at mark: its unrealised P&L counts 0"
    return (
        {
            "account_value_usd": margin.account_value,
            "maintenance_margin_usd": margin.maintenance_margin,
            "total_notional_usd": margin.total_notional,
        },
        note,
    )


def _derive_pm2(
    positions: Sequence[Position], market: MarketSnapshot, parameters: dict[str, Any]
) -> tuple[dict[str, float], str | None]:
    result = evaluate_pm2(Pm2Case.model_validate(parameters["case"]))
    return {"mm": result.mm, "im": result.im, "mtm": result.mtm, "worst_loss": result.worst_loss}, None


def _reported_only(method: str) -> Reproducer:
    """A venue whose own method is not reproduced here: its figure stands beside the universal one, with why."""

    def reproduce(
        positions: Sequence[Position], market: MarketSnapshot, parameters: dict[str, Any]
    ) -> tuple[dict[str, float], str | None]:
        return {}, f"{method} is not reproduced: the venue's figure is shown beside the universal one"

    return reproduce


# How each venue computes its own figure: why it differs from the universal model's for the same positions.
METHOD_SUMMARIES: dict[str, str] = {
    "aave-v3-health-factor": "Aave v3: health factor = collateral x liquidation threshold / debt, at today's prices; "
    "no scenarios and no maintenance requirement in USD",
    "hyperliquid-cross-margin": "Hyperliquid cross margin: each perp's notional / (2 x its max leverage) at the "
    "mark, no scenarios: a fraction of a percent to a few percent of notional",
    "derive-pm2": "Derive PM2: the worst loss over its own grid (spot up to +-18%, vol up/down, dampened tails, "
    "skew) x 0.8, plus contingencies; reported as margin balances (value less requirement)",
    "derive-standard": "Derive's standard manager: per-position requirements of each naked option and perp, "
    "reported as margin balances (value less requirement)",
    "deribit-portfolio-margin": "Deribit portfolio margin: its own scenario grid (BTC and ETH +-16%, vol shocks, "
    "an extended tail table) computed in coin per currency, MM = 0.8 x IM; cash held in the coin carries no risk "
    "in coin",
}
# The reported keys of the venue's own account value and maintenance requirement in USD (adapters fill them).
_VENUE_FIGURES: dict[str, tuple[str | None, str | None]] = {
    "aave-v3-health-factor": (None, None),  # it reports collateral and debt, not an account value
    "hyperliquid-cross-margin": ("account_value_usd", "maintenance_margin_usd"),
    "derive-pm2": ("equity_usd", "maintenance_margin_usd"),
    "derive-standard": ("equity_usd", "maintenance_margin_usd"),
    "deribit-portfolio-margin": ("equity_usd", "maintenance_margin_usd"),
}

_REPRODUCERS: dict[str, Reproducer] = {
    "aave-v3-health-factor": _aave,
    "hyperliquid-cross-margin": _hyperliquid,
    "derive-pm2": _derive_pm2,
    "derive-standard": _reported_only("Derive's standard manager (from positions)"),
    "deribit-portfolio-margin": _reported_only("Deribit's portfolio margin"),
}
