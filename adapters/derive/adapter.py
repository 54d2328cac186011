"""Derive: private/get_subaccount, authenticated per request with a session key.

Auth (Derive's REST scheme): headers X-DeriveWallet (the Derive smart-contract wallet), X-DeriveTimestamp (UTC
milliseconds) and X-DeriveSignature (EIP-191 personal_sign of that timestamp string by the session key); the older
X-Lyra* names are sent too. Options are USDC-linear (ETH-20260327-3600-C: expiry date at 08:00 UTC), perps
USD-linear with their average price, collaterals spot balances. A PM2 subaccount gets a `derive-pm2` VenueState
with the venue's own margins: Derive reports `initial_margin` and `maintenance_margin` as margin balances (the
subaccount's value less the requirement; below zero is short of margin), so the requirements in USD are
`subaccount_value` less each.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated, Any, get_args

import aiohttp
from eth_account import Account
from eth_account.messages import encode_defunct
from pydantic import BeforeValidator

from adapters.base import AdapterResult
from risk_core.schema.market import SourceStatus
from risk_core.schema.positions import OptionPosition, PerpPosition, Position, Provenance, SpotPosition
from risk_core.schema.venues import VenueMethod, VenueState
from venue_http import SourceError, VenueModel, decimal_str, parse, request_json

Dec = Annotated[float, BeforeValidator(decimal_str)]
CHAIN = "derive"


class Position_(VenueModel):
    instrument_name: str
    instrument_type: str
    amount: Dec
    average_price: Dec
    mark_price: Dec
    initial_margin: Dec
    maintenance_margin: Dec


class Collateral(VenueModel):
    asset_name: str
    amount: Dec
    mark_price: Dec


class Subaccount(VenueModel):
    subaccount_id: int
    margin_type: str
    initial_margin: Dec
    maintenance_margin: Dec
    subaccount_value: Dec
    is_under_liquidation: bool
    positions: list[Position_]
    collaterals: list[Collateral]


def auth_headers(wallet: str, session_key: str, *, now_ms: int | None = None) -> dict[str, str]:
    ts = str(now_ms if now_ms is not None else int(time.time() * 1000))
    sig = Account.sign_message(encode_defunct(text=ts), private_key=session_key).signature.hex()
    sig = sig if sig.startswith("0x") else "0x" + sig
    return {"X-DeriveWallet": wallet, "X-DeriveTimestamp": ts, "X-DeriveSignature": sig,
            "X-LyraWallet": wallet, "X-LyraTimestamp": ts, "X-LyraSignature": sig}


def compute_positions(sub: Subaccount, *, wallet: str, as_of: datetime) -> list[Position]:
    account = f"{wallet}/{sub.subaccount_id}"
    prov = Provenance(source="derive", timestamp=as_of)
    out: list[Position] = []
    for p in sub.positions:
        if p.amount == 0:
            continue
        base: dict[str, Any] = dict(venue="derive", chain=CHAIN, account=account, provenance=prov,
                                    id=f"derive:{p.instrument_name}")
        parts = p.instrument_name.split("-")
        if p.instrument_type == "option":
            expiry = datetime.strptime(parts[1], "%Y%m%d").replace(hour=8, tzinfo=UTC)
            out.append(OptionPosition(kind="option", underlying=parts[0], quantity=p.amount, strike=float(parts[2]),
                                      expiry=expiry, option_type="call" if parts[3] == "C" else "put",
                                      settlement="linear", **base))
        elif p.instrument_type == "perp":
            out.append(PerpPosition(kind="perp", underlying=parts[0], quantity=p.amount,
                                    entry_price=p.average_price if p.average_price > 0 else None, **base))
        else:
            raise SourceError(f"derive position {p.instrument_name}: unknown instrument_type {p.instrument_type!r}")
    for c in sub.collaterals:
        if c.amount != 0:
            out.append(SpotPosition(kind="spot", venue="derive", chain=CHAIN, account=account, asset=c.asset_name,
                                    quantity=c.amount, provenance=prov, id=f"derive:{c.asset_name}"))
    return out


async def fetch_derive_positions(
    session: aiohttp.ClientSession, base_url: str, *, wallet: str, session_key: str, subaccount_id: int,
    now: datetime | None = None, timeout_s: float = 5.0,
) -> AdapterResult:
    """Never raises for a venue fault: the result is `failed` with the reason."""
    at = now or datetime.now(tz=UTC)
    source = "derive"
    try:
        data = await request_json(session, "POST", f"{base_url}/private/get_subaccount",
                                  json_body={"subaccount_id": subaccount_id}, headers=auth_headers(wallet, session_key),
                                  timeout_s=timeout_s)
        if not isinstance(data, dict) or "result" not in data:
            err = data.get("error") if isinstance(data, dict) else None
            raise SourceError(f"derive get_subaccount: error {err}" if err else "derive: not a JSON-RPC result")
        sub = parse(Subaccount, data["result"], what="derive get_subaccount")
        positions = compute_positions(sub, wallet=wallet, as_of=at)
    except SourceError as e:
        return AdapterResult(source=source, status=SourceStatus(name=source, status="failed", reason=str(e),
                                                                as_of=at))
    states = []
    method = {"PM2": "derive-pm2", "SM": "derive-standard"}.get(sub.margin_type)
    if method in get_args(VenueMethod):
        states.append(VenueState(
            venue="derive", chain=CHAIN, account=f"{wallet}/{sub.subaccount_id}", method=method,  # type: ignore[arg-type]
            reported={"initial_margin": sub.initial_margin, "maintenance_margin": sub.maintenance_margin,
                      "subaccount_value": sub.subaccount_value,
                      # Derive's margins are balances (value less requirement): the requirements themselves
                      "initial_margin_usd": sub.subaccount_value - sub.initial_margin,
                      "maintenance_margin_usd": sub.subaccount_value - sub.maintenance_margin,
                      "equity_usd": sub.subaccount_value},
            parameters={"margin_type": sub.margin_type, "is_under_liquidation": sub.is_under_liquidation},
            provenance=Provenance(source="derive", timestamp=at),
        ))
    status = SourceStatus(name=source, status="ok", reason=f"subaccount {sub.subaccount_id} ({sub.margin_type}): "
                          f"{len(positions)} positions", as_of=at)
    return AdapterResult(source=source, status=status, positions=positions, venue_states=states)
