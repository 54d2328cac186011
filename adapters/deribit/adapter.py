"""Deribit: public/auth (client_credentials of a read-only key), then per currency private/get_positions,
private/get_account_summary and public/get_index.

- Options are inverse (coin-settled): `size` is signed, in coin; strike, expiry (08:00 UTC) and type come from the
  instrument name (BTC-27MAR26-90000-P).
- Futures and perpetuals are inverse too, sized in USD. Converted at the current price, an inverse contract's USD
  P&L is size_usd x (1/entry - 1/F) x F = (size_usd / entry) x (F - entry): linear, with quantity size_usd / entry
  in coin. That is the schema's linear future/perp with `entry_price`.
- The account's collateral is its cash balance per currency (`balance` of get_account_summary, in coin): a spot
  holding of the coin. The options' mark value and the futures' P&L are the positions' own, so the universal equity
  adds up as Deribit's `equity` does (balance + options value + futures P&L).
- The venue's own initial and maintenance margin and equity (in coin, from the account summary) are converted at
  the index and reported in a `deribit-portfolio-margin` VenueState, shown beside the universal figure.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any, Literal

import aiohttp

from adapters.base import AdapterResult
from risk_core.schema.market import SourceStatus
from risk_core.schema.positions import (
    FuturePosition,
    OptionPosition,
    PerpPosition,
    Position,
    Provenance,
    SpotPosition,
)
from risk_core.schema.venues import VenueState
from venue_http import SourceError, VenueModel, parse, request_json

MONTHS = {m: i for i, m in enumerate(
    ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), start=1)}
CHAIN = "offchain"



class Envelope(VenueModel):
    result: Any = None
    error: dict[str, Any] | None = None


class Auth(VenueModel):
    access_token: str


class Position_(VenueModel):
    instrument_name: str
    kind: Literal["option", "future"]
    size: float
    average_price: float
    mark_price: float
    index_price: float
    initial_margin: float
    maintenance_margin: float


class AccountSummary(VenueModel):
    currency: str
    balance: float
    equity: float
    initial_margin: float
    maintenance_margin: float


def parse_expiry(code: str) -> datetime:
    """'27MAR26' -> 2026-03-27 08:00 UTC (Deribit's expiry time)."""
    day, month, year = int(code[:-5]), MONTHS[code[-5:-2]], 2000 + int(code[-2:])
    return datetime(year, month, day, 8, tzinfo=UTC)


def compute_balance(summary: AccountSummary, *, account: str, as_of: datetime) -> SpotPosition:
    return SpotPosition(kind="spot", venue="deribit", chain=CHAIN, account=account, asset=summary.currency,
                        quantity=summary.balance, provenance=Provenance(source="deribit", timestamp=as_of),
                        id=f"deribit:{summary.currency}")


def compute_reported(summaries: list[AccountSummary], index: dict[str, float]) -> dict[str, float]:
    """The venue's own figures per currency in coin and USD (at the index), and their USD totals."""
    reported: dict[str, float] = {}
    for s in summaries:
        for name in ("equity", "initial_margin", "maintenance_margin"):
            coin = getattr(s, name)
            reported[f"{s.currency}.{name}"] = coin
            reported[f"{s.currency}.{name}_usd"] = coin * index[s.currency]
    for name in ("equity", "initial_margin", "maintenance_margin"):
        reported[f"{name}_usd"] = sum(reported[f"{s.currency}.{name}_usd"] for s in summaries)
    return reported


def compute_position(p: Position_, *, account: str, as_of: datetime) -> Position:
    prov = Provenance(source="deribit", timestamp=as_of)
    parts = p.instrument_name.split("-")
    base = dict(venue="deribit", chain=CHAIN, account=account, provenance=prov, id=f"deribit:{p.instrument_name}")
    if p.kind == "option":
        return OptionPosition(kind="option", underlying=parts[0], quantity=p.size, strike=float(parts[2]),
                              expiry=parse_expiry(parts[1]), option_type="call" if parts[3] == "C" else "put",
                              settlement="inverse", **base)  # type: ignore[arg-type]
    quantity = p.size / p.average_price
    if parts[1] == "PERPETUAL":
        return PerpPosition(kind="perp", underlying=parts[0], quantity=quantity, entry_price=p.average_price,
                            **base)  # type: ignore[arg-type]
    return FuturePosition(kind="future", underlying=parts[0], quantity=quantity, expiry=parse_expiry(parts[1]),
                          entry_price=p.average_price, **base)  # type: ignore[arg-type]


async def _call(session: aiohttp.ClientSession, base_url: str, method: str, *, timeout_s: float,
                token: str | None = None, **params: str) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else None
    try:
        data = await request_json(session, "GET", f"{base_url}/{method}", params=params, headers=headers,
                                  timeout_s=timeout_s)
    except SourceError as e:
        raise SourceError(f"{method}: {e}") from e
    env = parse(Envelope, data, what=f"deribit {method}")
    if env.error is not None:
        raise SourceError(f"deribit {method}: error {env.error.get('code')} {env.error.get('message')}")
    return env.result


async def fetch_deribit_positions(
    session: aiohttp.ClientSession, base_url: str, *, client_id: str, client_secret: str, account: str,
    currencies: tuple[str, ...] = ("BTC", "ETH"), now: datetime | None = None, timeout_s: float = 5.0,
) -> AdapterResult:
    """Never raises for a venue fault: the result is `failed` with the reason."""
    at = now or datetime.now(tz=UTC)
    source = "deribit"
    try:
        auth = parse(Auth, await _call(session, base_url, "public/auth", timeout_s=timeout_s,
                                       grant_type="client_credentials", client_id=client_id,
                                       client_secret=client_secret), what="deribit auth")
        token = auth.access_token

        async def currency_reads(currency: str) -> tuple[Any, Any, Any]:
            return await asyncio.gather(
                _call(session, base_url, "private/get_positions", timeout_s=timeout_s, token=token, currency=currency),
                _call(session, base_url, "private/get_account_summary", timeout_s=timeout_s, token=token,
                      currency=currency),
                _call(session, base_url, "public/get_index", timeout_s=timeout_s, currency=currency))

        reads = await asyncio.gather(*(currency_reads(c) for c in currencies))
        positions: list[Position] = []
        summaries: list[AccountSummary] = []
        index: dict[str, float] = {}
        for cur, (page, summary, idx) in zip(currencies, reads, strict=True):
            if not isinstance(page, list):
                raise SourceError("unexpected deribit get_positions response: not a list")
            items = [parse(Position_, x, what="deribit position") for x in page]
            positions.extend(compute_position(p, account=account, as_of=at) for p in items if p.size != 0)
            summaries.append(parse(AccountSummary, summary, what="deribit get_account_summary"))
            if not isinstance(idx, dict) or not isinstance(idx.get(cur), int | float):
                raise SourceError(f"unexpected deribit get_index response: no {cur} price")
            index[cur] = float(idx[cur])
        positions.extend(compute_balance(s, account=account, as_of=at) for s in summaries if s.balance != 0)
        reported = compute_reported(summaries, index)
    except SourceError as e:
        return AdapterResult(source=source, status=SourceStatus(name=source, status="failed", reason=str(e),
                                                                as_of=at))
    status = SourceStatus(name=source, status="ok", reason=f"{len(positions)} positions", as_of=at)
    states = [VenueState(venue="deribit", chain=CHAIN, account=account, method="deribit-portfolio-margin",
                         reported=reported, provenance=Provenance(source="deribit", timestamp=at))]
    return AdapterResult(source=source, status=status, positions=positions, venue_states=states)
