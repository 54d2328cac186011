"""Venue responses parse strictly: a renamed, missing or retyped field is an error naming it, never a zero."""

from __future__ import annotations

from typing import Any

import pytest

from oracles import deribit, derive, hyperliquid, pyth
from venue_http import SourceError, parse

BOOK: dict[str, Any] = {"instrument_name": "BTC-27MAR26-90000-P", "bid_price": None, "ask_price": 0.06,
                        "mark_price": 0.0579, "underlying_price": 94704.08}


def test_deribit_book_summary() -> None:
    b = parse(deribit.BookSummary, BOOK, what="book")
    assert b.bid_price is None and b.mark_price == 0.0579  # no bid stays no bid
    with pytest.raises(SourceError, match="mark_price: Input should be a valid number"):
        parse(deribit.BookSummary, {**BOOK, "mark_price": "0.0579"}, what="book")
    renamed = {k: v for k, v in BOOK.items() if k != "mark_price"} | {"markPrice": 0.0579}
    with pytest.raises(SourceError, match="unexpected book response: mark_price: Field required"):
        parse(deribit.BookSummary, renamed, what="book")
    with pytest.raises(SourceError, match="bid_price: Field required"):
        parse(deribit.BookSummary, {k: v for k, v in BOOK.items() if k != "bid_price"}, what="book")


def test_hyperliquid_decimal_strings() -> None:
    ctx = {"markPx": "93680.1", "oraclePx": "93631.0", "funding": "0.0000125", "openInterest": "10000"}
    assert parse(hyperliquid.AssetCtx, ctx, what="ctx").oraclePx == 93631.0
    with pytest.raises(SourceError, match="oraclePx: Value error, expected a decimal string, got float"):
        parse(hyperliquid.AssetCtx, {**ctx, "oraclePx": 93631.0}, what="ctx")
    with pytest.raises(SourceError, match="oraclePx: Value error, not a decimal: ''"):
        parse(hyperliquid.AssetCtx, {**ctx, "oraclePx": ""}, what="ctx")


def test_derive_ticker_and_hermes_price() -> None:
    t = {"I": "3178.98", "M": "480.06", "a": "484.4", "b": "0", "t": 1767627209748}
    assert parse(derive.Ticker, t, what="t").b == 0.0
    with pytest.raises(SourceError, match="M: Field required"):
        parse(derive.Ticker, {k: v for k, v in t.items() if k != "M"}, what="t")
    price = {"price": "9365900805600", "conf": "3050223451", "expo": -8, "publish_time": 1767627208}
    assert parse(pyth.HermesPrice, price, what="p").price == "9365900805600"
    with pytest.raises(SourceError, match="price: Input should be a valid string"):
        parse(pyth.HermesPrice, {**price, "price": 9365900805600}, what="p")
    with pytest.raises(SourceError, match="expo: Input should be a valid integer"):
        parse(pyth.HermesPrice, {**price, "expo": "-8"}, what="p")
