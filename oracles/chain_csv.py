"""An option chain in the column layout of the recorded Deribit chains (reference_data/market/deribit), for one asset.

Columns read (others are ignored): `timestamp` (ISO 8601 with a timezone; the chain's time is the latest),
`currency` (the asset), `instrument_name`, `option_type` (call|put), `strike`, `expiry_datetime` (ISO 8601 with a
timezone), `bid_price`, `ask_price`, `mark_price` (in the coin, as Deribit quotes inverse options; empty or 0 when
absent), `underlying` (Deribit's forward for the option), `futures_price` and `futures_instrument_name` (a dated
future's mark is the expiry's forward unless the name starts with `SYN.`, Deribit's synthetic forward).
Bad input raises `InputError` naming the column, or the row (1 = the header) and column.
"""

from __future__ import annotations

import csv
import io
import math
from datetime import datetime

from oracles.surface import OptionQuote, VenueChain
from risk_core.errors import InputError

COLUMNS = (
    "timestamp", "currency", "instrument_name", "option_type", "strike", "expiry_datetime", "bid_price", "ask_price",
    "mark_price", "underlying", "futures_price", "futures_instrument_name",
)
VENUE = "deribit"


def _moment(text: str, where: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InputError(where, f"{text!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise InputError(where, f"{text!r} has no timezone")
    return moment


def _number(text: str, where: str, *, optional: bool = False) -> float | None:
    if optional and text.strip() == "":
        return None
    try:
        value = float(text)
    except ValueError:
        raise InputError(where, f"{text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise InputError(where, f"{text!r} must be a finite number >= 0")
    if optional and value == 0:
        return None  # Deribit writes 0 for a missing bid or ask
    return value


def parse_chain_csv(text: str, asset: str) -> VenueChain:
    """The `asset` rows of a chain CSV as one venue's chain."""
    try:
        return _parse(text, asset)
    except csv.Error as e:
        raise InputError("chain", f"not CSV: {e}") from None


def _parse(text: str, asset: str) -> VenueChain:
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or ())]
    if missing:
        raise InputError(f"column {missing[0]}", "missing (needed: " + ", ".join(COLUMNS) + ")")
    quotes: list[OptionQuote] = []
    futures: dict[datetime, float] = {}
    stamps: list[datetime] = []
    currencies: set[str] = set()
    for row_number, row in enumerate(reader, start=2):
        def where(column: str, row_number: int = row_number) -> str:
            return f"row {row_number} column {column}"

        if None in row.values() or None in row:
            raise InputError(f"row {row_number}", f"has {len(row) - (None in row)} fields, not {len(COLUMNS)}+")
        currencies.add(row["currency"])
        if row["currency"] != asset:
            continue
        option_type = row["option_type"]
        if option_type not in ("call", "put"):
            raise InputError(where("option_type"), f"{option_type!r} is not call or put")
        strike = _number(row["strike"], where("strike"))
        underlying = _number(row["underlying"], where("underlying"))
        if not strike or not underlying:
            raise InputError(where("strike" if not strike else "underlying"), "must be > 0")
        expiry = _moment(row["expiry_datetime"], where("expiry_datetime"))
        stamps.append(_moment(row["timestamp"], where("timestamp")))
        quotes.append(OptionQuote(
            venue=VENUE, instrument=row["instrument_name"], expiry=expiry, strike=strike,
            is_call=option_type == "call", bid=_number(row["bid_price"], where("bid_price"), optional=True),
            ask=_number(row["ask_price"], where("ask_price"), optional=True),
            mark=_number(row["mark_price"], where("mark_price"), optional=True), underlying_price=underlying,
            inverse=True,
        ))
        future = _number(row["futures_price"], where("futures_price"), optional=True)
        if future and not row["futures_instrument_name"].startswith("SYN."):
            futures[expiry] = future
    if not quotes:
        found = ", ".join(sorted(currencies)) or "no rows"
        raise InputError("asset", f"no row with currency {asset} (the file has: {found})")
    return VenueChain(venue=VENUE, asset=asset, as_of=max(stamps), quotes=tuple(quotes), futures=futures)
