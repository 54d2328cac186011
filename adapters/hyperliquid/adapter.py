"""Hyperliquid: POST /info perpDexs, then clearinghouseState for the main dex ("") and every HIP-3 dex, and
spotClearinghouseState, concurrently.

Each dex is its own clearinghouse (its own margin): venue "hyperliquid" for the main dex, "hyperliquid-DEX" for a
HIP-3 dex, whose coins are named "DEX:COIN" (the underlying is COIN). Perps are USD-linear with the entry price;
the account's USDC is its account value less the unrealised PnL, both as the venue reports them. The venue's own
cross maintenance margin and each asset's max leverage go to a `hyperliquid-cross-margin` VenueState.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import aiohttp
from pydantic import BeforeValidator

from adapters.base import AdapterResult
from risk_core.schema.market import SourceStatus
from risk_core.schema.positions import PerpPosition, Position, Provenance, SpotPosition
from risk_core.schema.venues import VenueState
from venue_http import SourceError, VenueModel, decimal_str, parse, request_json

Dec = Annotated[float, BeforeValidator(decimal_str)]
CHAIN = "hyperliquid"


class Leverage(VenueModel):
    type: Literal["cross", "isolated"]
    value: int


class Position_(VenueModel):
    coin: str
    szi: Dec
    entryPx: Dec
    positionValue: Dec
    unrealizedPnl: Dec
    marginUsed: Dec
    leverage: Leverage
    maxLeverage: int | None = None


class AssetPosition(VenueModel):
    position: Position_


class MarginSummary(VenueModel):
    accountValue: Dec
    totalNtlPos: Dec
    totalRawUsd: Dec
    totalMarginUsed: Dec


class ClearinghouseState(VenueModel):
    assetPositions: list[AssetPosition]
    marginSummary: MarginSummary
    crossMarginSummary: MarginSummary
    withdrawable: Dec
    crossMaintenanceMarginUsed: Dec | None = None
    time: int | None = None


class SpotBalance(VenueModel):
    coin: str
    total: Dec
    hold: Dec


class SpotState(VenueModel):
    balances: list[SpotBalance]


class PerpDex(VenueModel):
    name: str


async def _info(session: aiohttp.ClientSession, base_url: str, body: dict[str, Any], timeout_s: float) -> Any:
    return await request_json(session, "POST", f"{base_url}/info", json_body=body, timeout_s=timeout_s)


def compute_dex_positions(
    state: ClearinghouseState, *, user: str, dex: str, as_of: datetime
) -> tuple[list[Position], VenueState]:
    venue = "hyperliquid" if dex == "" else f"hyperliquid-{dex}"
    prov = Provenance(source=venue, timestamp=as_of)
    positions: list[Position] = []
    max_leverage: dict[str, int] = {}
    for ap in state.assetPositions:
        p = ap.position
        coin = p.coin.split(":", 1)[1] if ":" in p.coin else p.coin
        positions.append(PerpPosition(kind="perp", venue=venue, chain=CHAIN, account=user, underlying=coin,
                                      quantity=p.szi, entry_price=p.entryPx, provenance=prov, id=f"{venue}:{p.coin}"))
        if p.maxLeverage is not None:
            max_leverage[coin] = p.maxLeverage
    usdc = state.marginSummary.accountValue - sum(ap.position.unrealizedPnl for ap in state.assetPositions)
    positions.append(SpotPosition(kind="spot", venue=venue, chain=CHAIN, account=user, asset="USDC", quantity=usdc,
                                  provenance=prov, id=f"{venue}:USDC"))
    reported = {"account_value_usd": state.marginSummary.accountValue,
                "total_margin_used_usd": state.marginSummary.totalMarginUsed,
                "withdrawable_usd": state.withdrawable}
    if state.crossMaintenanceMarginUsed is not None:
        reported["maintenance_margin_usd"] = state.crossMaintenanceMarginUsed
    venue_state = VenueState(venue=venue, chain=CHAIN, account=user, method="hyperliquid-cross-margin",
                             parameters={"max_leverage": max_leverage, "usdc_balance": usdc}, reported=reported,
                             provenance=prov)
    return positions, venue_state


async def fetch_hyperliquid_positions(
    session: aiohttp.ClientSession, base_url: str, user: str, *, now: datetime | None = None,
    timeout_s: float = 5.0,
) -> AdapterResult:
    """Never raises for a venue fault: a failed part makes the result `failed` (incomplete) with the reason, and
    the parts that answered are still returned."""
    source = "hyperliquid"
    at = now or datetime.now(tz=UTC)
    try:
        raw = await _info(session, base_url, {"type": "perpDexs"}, timeout_s)
        if not isinstance(raw, list):
            raise SourceError("unexpected perpDexs response: not a list")
        dexes = [""] + [parse(PerpDex, d, what="perpDexs").name for d in raw if d is not None]
    except SourceError as e:
        return AdapterResult(source=source, status=SourceStatus(name=source, status="failed", reason=str(e),
                                                                as_of=at))

    async def dex_state(dex: str) -> ClearinghouseState:
        body = await _info(session, base_url, {"type": "clearinghouseState", "user": user, "dex": dex}, timeout_s)
        return parse(ClearinghouseState, body, what=f"clearinghouseState (dex {dex or 'main'})")

    async def spot() -> SpotState:
        body = await _info(session, base_url, {"type": "spotClearinghouseState", "user": user}, timeout_s)
        return parse(SpotState, body, what="spotClearinghouseState")

    dex_results, (spot_res,) = await asyncio.gather(
        asyncio.gather(*(dex_state(d) for d in dexes), return_exceptions=True),
        asyncio.gather(spot(), return_exceptions=True),
    )
    positions: list[Position] = []
    states: list[VenueState] = []
    problems: list[str] = []
    for dex, res in zip(dexes, dex_results, strict=True):
        if isinstance(res, SourceError):
            problems.append(f"dex {dex or 'main'}: {res}")
        elif isinstance(res, BaseException):
            raise res
        else:
            p, s = compute_dex_positions(res, user=user, dex=dex, as_of=at)
            positions.extend(p)
            states.append(s)
    if isinstance(spot_res, SourceError):
        problems.append(f"spot: {spot_res}")
    elif isinstance(spot_res, BaseException):
        raise spot_res
    else:
        prov = Provenance(source="hyperliquid-spot", timestamp=at)
        positions.extend(SpotPosition(kind="spot", venue="hyperliquid-spot", chain=CHAIN, account=user,
                                      asset=b.coin, quantity=b.total, provenance=prov, id=f"hyperliquid-spot:{b.coin}")
                         for b in spot_res.balances if b.total != 0)
    if problems:
        positions = [p.model_copy(update={"provenance": p.provenance.model_copy(update={"complete": False})})
                     if p.provenance else p for p in positions]
        status = SourceStatus(name=source, status="failed", reason="partial: " + "; ".join(problems), as_of=at)
    else:
        status = SourceStatus(name=source, status="ok", reason=f"{len(dexes)} dexes and spot", as_of=at)
    return AdapterResult(source=source, status=status, positions=positions, venue_states=states)
