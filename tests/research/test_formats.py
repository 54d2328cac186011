"""The checked-in backtest format schemas equal the models; the backtest's own output validates against them."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import jsonschema
import pytest
from support.history import tape

from research.backtest import MarketTape, run_backtest
from research.formats import schema_documents
from research.publish import standard_books
from research.report import backtest_document
from research.series import write_series_csv
from risk_core.schema.params import default_params

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schema" / "backtest"


@pytest.mark.parametrize("name", sorted(schema_documents()))
def test_checked_in_schema_matches_the_models(name: str) -> None:
    assert json.loads((SCHEMA_DIR / name).read_text()) == schema_documents()[name], "run python -m research.formats"


def test_outputs_and_inputs_validate(tmp_path: Path) -> None:
    prices = tape(60)
    books = standard_books()
    spot_books = books.model_copy(update={"books": [books.books[0], books.books[4]]})
    results = run_backtest(spot_books, MarketTape(prices, None), default_params(), horizon_days=1)
    document = json.loads(json.dumps(backtest_document(results, model="grid", horizon_days=1)))
    jsonschema.validate(document, json.loads((SCHEMA_DIR / "backtest.schema.json").read_text()))
    jsonschema.validate(books.model_dump(mode="json"), json.loads((SCHEMA_DIR / "books.schema.json").read_text()))
    write_series_csv(tmp_path / "p.csv", prices)
    row_schema = json.loads((SCHEMA_DIR / "prices_row.schema.json").read_text())
    with (tmp_path / "p.csv").open() as handle:
        for row in list(csv.DictReader(handle))[:5]:
            jsonschema.validate({**row, "price": float(row["price"])}, row_schema)
