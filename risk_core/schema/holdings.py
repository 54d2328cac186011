"""The batch path's columnar input: one row per position (Parquet, or a pyarrow table), wallets' rows together.

`HoldingsRow` documents the columns and is exported with the other schemas (`holdings_row.schema.json`);
`HOLDINGS_ARROW_SCHEMA` is the same as Arrow types. The instrument columns of a row are those of its kind's
Position model (an option's underlying, option_type, strike, expiry, settlement; a spot's asset ...), null
where the kind has no such field; `size` is the signed quantity (liquidity for an LP range).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray
from pydantic import AwareDatetime, Field, ValidationError

from risk_core.errors import InputError
from risk_core.schema.positions import Asset, Position, PositionAdapter, StrictModel

UNIT_PLACE = "unit"  # venue, chain and account of an instrument read from rows


class HoldingsRow(StrictModel):
    """One position of a wallet, as a row of the batch path's input (null for the fields its kind has not)."""

    wallet: str = Field(min_length=1, description="wallet label; a wallet's rows are consecutive, labels ascending")
    venue: str = Field(min_length=1)
    chain: str = Field(min_length=1)
    account: str = Field(min_length=1)
    kind: Literal["spot", "lend", "borrow", "perp", "future", "option", "lp"]
    asset: Asset | None = Field(default=None, description="spot, lend, borrow")
    underlying: Asset | None = Field(default=None, description="perp, future, option")
    option_type: Literal["call", "put"] | None = None
    strike: float | None = None
    expiry: AwareDatetime | None = Field(default=None, description="future, option (timestamp, UTC)")
    settlement: Literal["inverse", "linear"] | None = None
    token0: Asset | None = None
    token1: Asset | None = None
    price_lower: float | None = None
    price_upper: float | None = None
    size: float = Field(description="signed quantity; liquidity for lp; > 0 for lend and borrow")
    entry_price: float | None = Field(default=None, description="perp, future")


_STRING, _FLOAT = pa.string(), pa.float64()
HOLDINGS_ARROW_SCHEMA = pa.schema([
    pa.field("wallet", _STRING, nullable=False),
    pa.field("venue", _STRING, nullable=False),
    pa.field("chain", _STRING, nullable=False),
    pa.field("account", _STRING, nullable=False),
    pa.field("kind", _STRING, nullable=False),
    pa.field("asset", _STRING),
    pa.field("underlying", _STRING),
    pa.field("option_type", _STRING),
    pa.field("strike", _FLOAT),
    pa.field("expiry", pa.timestamp("us", tz="UTC")),
    pa.field("settlement", _STRING),
    pa.field("token0", _STRING),
    pa.field("token1", _STRING),
    pa.field("price_lower", _FLOAT),
    pa.field("price_upper", _FLOAT),
    pa.field("size", _FLOAT, nullable=False),
    pa.field("entry_price", _FLOAT),
])
INSTRUMENT_COLUMNS = ("kind", "asset", "underlying", "option_type", "strike", "expiry", "settlement", "token0",
                      "token1", "price_lower", "price_upper")
_REQUIRED = tuple(f.name for f in HOLDINGS_ARROW_SCHEMA if not f.nullable)


@dataclass(frozen=True)
class ParsedHoldings:
    """Rows as codes: each row's distinct instrument, size, entry price, wallet and groups."""

    instruments: list[Position]  # distinct, at size 1 and no place
    instrument: NDArray[np.intp]  # per row: index into `instruments`
    size: NDArray[np.float64]
    entry_price: NDArray[np.float64]  # NaN where none
    wallet: NDArray[np.intp]  # per row: 0..len(wallets)-1, ascending
    wallets: list[str]  # the wallets' labels, in order
    chain: NDArray[np.intp]  # per row: a code of its chain
    venue_account: NDArray[np.intp]  # per row: a code of its (venue, chain, account)


def as_holdings_table(columns: pa.Table | Mapping[str, Sequence[Any]]) -> pa.Table:
    """The input as a table of HOLDINGS_ARROW_SCHEMA (absent nullable columns are null). Raises InputError naming
    a missing or mistyped column."""
    table = columns if isinstance(columns, pa.Table) else pa.table(dict(columns))
    arrays = []
    for field in HOLDINGS_ARROW_SCHEMA:
        if field.name not in table.column_names:
            if not field.nullable:
                raise InputError(field.name, "required column is missing")
            arrays.append(pa.nulls(table.num_rows, field.type))
            continue
        column = table.column(field.name)
        try:
            arrays.append(column.cast(field.type))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
            raise InputError(field.name, f"not {field.type}: {e}") from e
        if not field.nullable and column.null_count:
            raise InputError(f"rows[{_first(pc.is_null(column))}].{field.name}", "must not be null")
    unknown = sorted(set(table.column_names) - set(HOLDINGS_ARROW_SCHEMA.names))
    if unknown:
        raise InputError(unknown[0], "unknown column")
    return pa.Table.from_arrays(arrays, schema=HOLDINGS_ARROW_SCHEMA)


def parse_holdings(table: pa.Table, *, first_row: int = 0) -> ParsedHoldings:
    """Rows of HOLDINGS_ARROW_SCHEMA as codes. Raises InputError naming `rows[i].field` (i counted from
    `first_row`, the block's first row in the whole input)."""
    n = table.num_rows
    wallet_label = table.column("wallet")
    if n > 1 and not pc.all(pc.greater_equal(wallet_label[1:], wallet_label[:-1])).as_py():
        at = _first(pc.less(wallet_label[1:], wallet_label[:-1])) + 1
        raise InputError(f"rows[{first_row + at}].wallet", "wallets must come in ascending order, each one's rows"
                         " together")
    wallet_code = _codes(wallet_label)
    new_wallet = np.r_[True, wallet_code[1:] != wallet_code[:-1]][:n]  # ascending labels: one run per wallet
    instrument = _row_codes(table, INSTRUMENT_COLUMNS)  # a row's instrument: its instrument columns together
    distinct, first = np.unique(instrument, return_index=True)
    rows = table.select(INSTRUMENT_COLUMNS).take(pa.array(first)).to_pylist()
    instruments = []
    for row, at in zip(rows, first.tolist(), strict=True):
        fields = {k: v for k, v in row.items() if v is not None}
        size_field = "liquidity" if fields.get("kind") == "lp" else "quantity"
        try:
            instruments.append(PositionAdapter.validate_python(
                {**fields, size_field: 1.0, "venue": UNIT_PLACE, "chain": UNIT_PLACE, "account": UNIT_PLACE}
            ))
        except ValidationError as e:
            error = e.errors()[0]
            where = ".".join(str(part) for part in error["loc"][1:] if part not in (size_field,))
            raise InputError(f"rows[{first_row + at}].{where or 'kind'}", error["msg"]) from e
    size = table.column("size").to_numpy().astype(np.float64)
    entry = pc.fill_null(table.column("entry_price"), np.nan).to_numpy().astype(np.float64)
    kinds = np.array([p.kind for p in instruments])[np.searchsorted(distinct, instrument)]
    _check(~np.isfinite(size), first_row, "size", "not finite")
    _check(np.isin(kinds, ("lend", "borrow")) & (size <= 0), first_row, "size", "a lend or borrow must be > 0")
    has_entry = ~np.isnan(entry)
    _check(has_entry & ~np.isin(kinds, ("perp", "future")), first_row, "entry_price", "perps and futures only")
    _check(has_entry & ~(np.isfinite(entry) & (entry > 0)), first_row, "entry_price", "must be > 0 and finite")
    return ParsedHoldings(
        instruments=instruments,
        instrument=np.searchsorted(distinct, instrument).astype(np.intp),
        size=size,
        entry_price=entry,
        wallet=(np.cumsum(new_wallet) - 1).astype(np.intp),
        wallets=wallet_label.take(pa.array(np.flatnonzero(new_wallet))).to_pylist(),
        chain=_codes(table.column("chain")),
        venue_account=_row_codes(table, ("venue", "chain", "account")),
    )


def wallet_runs(wallet: pa.ChunkedArray | pa.Array) -> NDArray[np.intp]:
    """The first row of each wallet's run of rows."""
    code = _codes(wallet)
    return np.flatnonzero(np.r_[True, code[1:] != code[:-1]][: code.size])


def _row_codes(table: pa.Table, columns: Sequence[str]) -> NDArray[np.intp]:
    """An integer code per row: rows equal in every one of `columns` (nulls included), equal codes. Column codes
    combined one column at a time, renumbered densely after each, so the key never overflows."""
    key = np.zeros(table.num_rows, dtype=np.int64)
    for name in columns if table.num_rows else ():
        encoded = pc.dictionary_encode(table.column(name), null_encoding="encode")
        if isinstance(encoded, pa.ChunkedArray):
            encoded = encoded.combine_chunks()
        key = key * (len(encoded.dictionary) + 1) + np.asarray(encoded.indices, dtype=np.int64)
        key = np.unique(key, return_inverse=True)[1].reshape(table.num_rows)
    return key.astype(np.intp)


def _codes(column: pa.ChunkedArray | pa.Array) -> NDArray[np.intp]:
    """An integer code per row: equal values, equal codes."""
    encoded = pc.dictionary_encode(column)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    return np.asarray(encoded.indices, dtype=np.intp)


def _first(mask: Any) -> int:
    return int(np.flatnonzero(np.asarray(mask))[0])


def _check(bad: NDArray[np.bool_], first_row: int, field: str, reason: str) -> None:
    if bad.any():
        raise InputError(f"rows[{first_row + int(np.flatnonzero(bad)[0])}].{field}", reason)
