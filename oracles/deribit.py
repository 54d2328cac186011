"""Deribit public market data (JSON-RPC over HTTP GET): the option chain, futures marks and the index.

get_instruments (options and futures: expiry, strike, type), get_book_summary_by_currency (options: bid, ask and
mark in coin, each option's `underlying_price`; futures: marks), ticker of the perpetual (the index's timestamp) and
get_index. Option quotes are inverse (coin premiums); a null bid is no bid, never zero.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any, Literal

import aiohttp

from oracles.observations import PriceObservation
from oracles.surface import OptionQuote, VenueChain
from venue_http import SourceError, VenueModel, parse, request_json

HEARTBEAT_S = 60.0


class Envelope(VenueModel):
    result: Any = None
    error: dict[str, Any] | None = None
    usOut: int


class Instrument(VenueModel):
    instrument_name: str
    kind: Literal["option", "future"]
    expiration_timestamp: int
    strike: float | None = None
    option_type: Literal["call", "put"] | None = None


class BookSummary(VenueModel):
    instrument_name: str
    bid_price: float | None
    ask_price: float | None
    mark_price: float
    underlying_price: float | None = None


class Ticker(VenueModel):
    instrument_name: str
    timestamp: int
    index_price: float
    mark_price: float


async def _call(session: aiohttp.ClientSession, base_url: str, method: str, timeout_s: float,
                **params: str) -> tuple[Any, int]:
    data = await request_json(session, "GET", f"{base_url}/{method}", params=params, timeout_s=timeout_s)
    env = parse(Envelope, data, what=f"deribit {method}")
    if env.error is not None:
        raise SourceError(f"deribit {method}: error {env.error.get('code')} {env.error.get('message')}")
    return env.result, env.usOut


def _ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


async def fetch_deribit_market(
    session: aiohttp.ClientSession, base_url: str, currency: str, *, timeout_s: float = 5.0
) -> tuple[VenueChain, list[PriceObservation]]:
    """The currency's option chain (with futures marks by expiry) and its index observation. Raises: SourceError."""
    (instr, _), (opts, us_out), (futs, _), (tick, _), (index, _) = await asyncio.gather(
        _call(session, base_url, "public/get_instruments", timeout_s, currency=currency),
        _call(session, base_url, "public/get_book_summary_by_currency", timeout_s, currency=currency, kind="option"),
        _call(session, base_url, "public/get_book_summary_by_currency", timeout_s, currency=currency, kind="future"),
        _call(session, base_url, "public/ticker", timeout_s, instrument_name=f"{currency}-PERPETUAL"),
        _call(session, base_url, "public/get_index", timeout_s, currency=currency),
    )
    if not isinstance(instr, list) or not isinstance(opts, list) or not isinstance(futs, list):
        raise SourceError("deribit: expected lists of instruments and book summaries")
    instruments = {i.instrument_name: i for i in (parse(Instrument, x, what="deribit instrument") for x in instr)}
    quotes = []
    for raw in opts:
        b = parse(BookSummary, raw, what="deribit option book summary")
        ins = instruments.get(b.instrument_name)
        if ins is None or ins.kind != "option" or ins.strike is None or ins.option_type is None:
            continue
        quotes.append(OptionQuote(
            venue="deribit", instrument=b.instrument_name, expiry=_ms(ins.expiration_timestamp), strike=ins.strike,
            is_call=ins.option_type == "call", bid=b.bid_price if b.bid_price and b.bid_price > 0 else None,
            ask=b.ask_price if b.ask_price and b.ask_price > 0 else None, mark=b.mark_price,
            underlying_price=b.underlying_price, inverse=True,
        ))
    futures = {}
    for raw in futs:
        b = parse(BookSummary, raw, what="deribit future book summary")
        ins = instruments.get(b.instrument_name)
        if ins is not None and ins.kind == "future":
            futures[_ms(ins.expiration_timestamp)] = b.mark_price
    ticker = parse(Ticker, tick, what="deribit ticker")
    if not isinstance(index, dict) or not isinstance(index.get(currency), int | float):
        raise SourceError(f"unexpected deribit get_index response: no {currency} price")
    obs = PriceObservation(source="deribit-index", asset=currency, price=float(index[currency]),
                           published_at=_ms(ticker.timestamp), heartbeat_s=HEARTBEAT_S,
                           raw={"perpetual_mark": str(ticker.mark_price)})
    chain = VenueChain(venue="deribit", asset=currency, as_of=_ms(us_out // 1000), quotes=tuple(quotes),
                       futures=futures)
    return chain, [obs]
