"""Derive public market data (JSON-RPC over HTTP POST): option tickers per expiry and the perp index.

public/get_all_instruments gives each option's expiry, strike and type; public/get_tickers (options need currency
and an 8-digit expiry_date) gives best bid/ask and mark in USD (USDC-linear options) and the forward Derive prices
it at (`option_pricing.f`); a bid of "0" is an empty side. The perp's ticker carries the index ("I").
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any

import aiohttp
from pydantic import BeforeValidator

from oracles.observations import PriceObservation
from oracles.surface import OptionQuote, VenueChain
from venue_http import SourceError, VenueModel, decimal_str, parse, request_json

Dec = Annotated[float, BeforeValidator(decimal_str)]
HEARTBEAT_S = 60.0


class OptionDetails(VenueModel):
    expiry: int
    strike: Dec
    option_type: str


class Instrument(VenueModel):
    instrument_name: str
    instrument_type: str
    option_details: OptionDetails | None = None


class AllInstruments(VenueModel):
    instruments: list[Instrument]


class OptionPricing(VenueModel):
    f: Dec
    i: Dec
    m: Dec


class Ticker(VenueModel):
    I: Dec  # noqa: E741 - the venue's field name
    M: Dec
    a: Dec
    b: Dec
    t: int
    option_pricing: OptionPricing | None = None


class Tickers(VenueModel):
    tickers: dict[str, Ticker]


async def _rpc(session: aiohttp.ClientSession, base_url: str, method: str, params: dict[str, Any],
               timeout_s: float) -> Any:
    data = await request_json(session, "POST", f"{base_url}/{method}", json_body=params, timeout_s=timeout_s)
    if not isinstance(data, dict):
        raise SourceError(f"derive {method}: not a JSON-RPC response")
    if data.get("error") is not None:
        err = data["error"]
        raise SourceError(f"derive {method}: error {err.get('code')} {err.get('message')} {err.get('data') or ''}")
    if "result" not in data:
        raise SourceError(f"derive {method}: neither result nor error")
    return data["result"]


async def fetch_derive_market(
    session: aiohttp.ClientSession, base_url: str, currency: str, *, timeout_s: float = 5.0
) -> tuple[VenueChain, list[PriceObservation]]:
    """The currency's option chain and its index observation. Raises: SourceError."""
    instr_raw, perp_raw = await asyncio.gather(
        _rpc(session, base_url, "public/get_all_instruments",
             {"instrument_type": "option", "currency": currency, "expired": False}, timeout_s),
        _rpc(session, base_url, "public/get_tickers", {"instrument_type": "perp", "currency": currency}, timeout_s),
    )
    instruments = {i.instrument_name: i for i in parse(AllInstruments, instr_raw, what="derive instruments").instruments
                   if i.option_details is not None}
    perps = parse(Tickers, perp_raw, what="derive perp tickers").tickers
    perp = perps.get(f"{currency}-PERP")
    if perp is None:
        raise SourceError(f"derive: no {currency}-PERP ticker")
    expiries = sorted({i.option_details.expiry for i in instruments.values() if i.option_details is not None})
    pages = await asyncio.gather(*(
        _rpc(session, base_url, "public/get_tickers",
             {"instrument_type": "option", "currency": currency,
              "expiry_date": int(datetime.fromtimestamp(e, tz=UTC).strftime("%Y%m%d"))}, timeout_s)
        for e in expiries
    ))
    quotes = []
    for page in pages:
        for name, t in parse(Tickers, page, what="derive option tickers").tickers.items():
            ins = instruments.get(name)
            if ins is None or ins.option_details is None:
                continue
            d = ins.option_details
            quotes.append(OptionQuote(
                venue="derive", instrument=name, expiry=datetime.fromtimestamp(d.expiry, tz=UTC), strike=d.strike,
                is_call=d.option_type == "C", bid=t.b if t.b > 0 else None, ask=t.a if t.a > 0 else None,
                mark=t.M, underlying_price=t.option_pricing.f if t.option_pricing else None, inverse=False,
            ))
    at = datetime.fromtimestamp(perp.t / 1000, tz=UTC)
    obs = PriceObservation(source="derive-index", asset=currency, price=perp.I, published_at=at,
                           heartbeat_s=HEARTBEAT_S, raw={"perp_mark": str(perp.M)})
    return VenueChain(venue="derive", asset=currency, as_of=at, quotes=tuple(quotes)), [obs]


async def fetch_derive_index(
    session: aiohttp.ClientSession, base_url: str, currency: str, *, timeout_s: float = 5.0
) -> list[PriceObservation]:
    """Only the perp index (assets without Derive options). Raises: SourceError."""
    raw = await _rpc(session, base_url, "public/get_tickers", {"instrument_type": "perp", "currency": currency},
                     timeout_s)
    perp = parse(Tickers, raw, what="derive perp tickers").tickers.get(f"{currency}-PERP")
    if perp is None:
        raise SourceError(f"derive: no {currency}-PERP ticker")
    at = datetime.fromtimestamp(perp.t / 1000, tz=UTC)
    return [PriceObservation(source="derive-index", asset=currency, price=perp.I, published_at=at,
                             heartbeat_s=HEARTBEAT_S, raw={"perp_mark": str(perp.M)})]
