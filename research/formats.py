"""JSON Schema of the backtest's formats: BOOKS.json, a row of the prices and vols CSVs, and the JSON output.

    .venv/bin/python -m research.formats [DIR]     # writes DIR (default schema/backtest)/*.schema.json

tests/research/test_formats.py fails when the checked-in files drift from these models.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from research.books import BooksFile
from risk_core.schema.positions import Asset, StrictModel

FORMAT_VERSION = "1.0.0"
When = Annotated[
    str, Field(description="ISO 8601: a date (00:00 UTC) or a time with a timezone", examples=["2024-01-31"])
]


class PriceRow(StrictModel):
    """One row of PRICES.csv (columns timestamp,asset,price): the asset's USD price at that time."""

    timestamp: When
    asset: Asset
    price: Annotated[float, Field(gt=0)]


class VolRow(StrictModel):
    """One row of VOLS.csv (columns timestamp,asset,atm_iv): the at-the-money implied vol (decimal; DVOL / 100),
    applied flat to the asset's options, the model's skew scenarios on top."""

    timestamp: When
    asset: Asset
    atm_iv: Annotated[float, Field(gt=0, le=20)]


class BacktestRow(StrictModel):
    date: str = Field(description="YYYY-MM-DD: margined at 00:00 UTC with what was known then")
    mm_usd: float = Field(description="maintenance margin")
    pnl_usd: float = Field(description="the book's value change over the horizon; a loss is negative")
    exception: bool = Field(description="the loss exceeded mm_usd")


class BookResult(StrictModel):
    name: str
    days: int
    exceptions: int
    coverage: float | None
    kupiec_pof_p: float | None
    christoffersen_independence_p: float | None
    christoffersen_cc_p: float | None
    traffic_light: Literal["green", "yellow", "red"] | None
    largest_exception_usd: float = Field(description="largest loss beyond the margin, USD; 0 without exceptions")
    mean_mm_usd: float | None
    rows: list[BacktestRow]
    largest_exception_in_margins: float | None = Field(description="largest excepted loss / its margin")
    largest_mm_rise_5d: float = Field(description="procyclicality: largest relative rise of the margin in 5 days")
    largest_mm_rise_30d: float
    mean_liquidity_addon_usd: float | None
    rebalance: Literal["static", "daily"]


class BacktestDocument(StrictModel):
    model: Literal["grid", "fhs"]
    horizon_days: int
    coverage_target: float
    books: list[BookResult]


_MODELS: dict[str, type[BaseModel]] = {
    "books": BooksFile,
    "prices_row": PriceRow,
    "vols_row": VolRow,
    "backtest": BacktestDocument,
}


def schema_documents() -> dict[str, dict[str, Any]]:
    return {
        f"{name}.schema.json": {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"https://metarisk.dev/schema/backtest/v{FORMAT_VERSION}/{name}.schema.json",
            **model.model_json_schema(),
        }
        for name, model in _MODELS.items()
    }


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else Path("schema") / "backtest"
    out.mkdir(parents=True, exist_ok=True)
    for name, document in schema_documents().items():
        (out / name).write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
