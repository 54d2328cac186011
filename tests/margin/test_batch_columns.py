"""The batch path's columnar input (risk_core.schema.holdings): a table of rows, one per position, gives the
figures of the Position-object batch path and of compute_margin; bad rows and columns are named."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from support.batch_books import EXPIRIES, batch_market, random_wallet, rows_of

from risk_core.errors import InputError
from risk_core.margin import batch as batch_module
from risk_core.margin.batch import RESULT_COLUMNS, compute_batch_margin, compute_batch_margin_table
from risk_core.margin.engine import compute_margin
from risk_core.schema.holdings import HOLDINGS_ARROW_SCHEMA, HoldingsRow
from risk_core.schema.params import default_params
from risk_core.schema.positions import Position, PositionAdapter

REL, ABS = 1e-9, 1e-6
MARKET = batch_market()
WALLETS: list[list[Position]] = [random_wallet(np.random.default_rng(300 + w), w) for w in range(12)]
LABELS = [f"0x{w:04x}" for w in range(len(WALLETS))]  # ascending


def table_of(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=HOLDINGS_ARROW_SCHEMA)


def test_the_schema_documents_every_column() -> None:
    assert set(HoldingsRow.model_fields) == set(HOLDINGS_ARROW_SCHEMA.names)
    required = {name for name, f in HoldingsRow.model_fields.items() if f.is_required()}
    assert required == {f.name for f in HOLDINGS_ARROW_SCHEMA if not f.nullable}


@pytest.mark.parametrize("block", [10_000, 50])
def test_a_table_gives_the_figures_of_compute_margin_wallet_by_wallet(
    block: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(batch_module, "BLOCK_POSITIONS", block)
    params = default_params()
    result = compute_batch_margin_table(table_of(rows_of(WALLETS, LABELS)), MARKET, params)
    assert result.column("wallet").to_pylist() == LABELS
    objects = compute_batch_margin(WALLETS, MARKET, params)
    for w, wallet in enumerate(WALLETS):
        report = compute_margin(wallet, MARKET, params)
        for name in RESULT_COLUMNS:
            got = result.column(name)[w].as_py()
            assert got == pytest.approx(getattr(report, name), rel=REL, abs=ABS), (w, name)
            assert got == pytest.approx(float(getattr(objects, name)[w]), rel=REL, abs=ABS), (w, name)
        assert result.column("complete")[w].as_py() == report.complete
        issues = result.column("issues")[w].as_py()
        assert [(i["field"], i["code"], i["severity"]) for i in issues] == [
            (i.field, i.code, i.severity) for i in report.issues
        ]


def test_columns_as_a_mapping_and_unpriceable_rows_left_out() -> None:
    doge = PositionAdapter.validate_python({"kind": "option", "venue": "derive", "chain": "derive", "account": "x",
                                            "underlying": "DOGE", "quantity": -3.0, "option_type": "put",
                                            "strike": 0.1, "expiry": EXPIRIES[1], "settlement": "linear"})
    wallets = [WALLETS[0], [*WALLETS[1][:4], doge]]
    rows = rows_of(wallets, ["a", "b"])
    columns = {name: [r[name] for r in rows] for name in HOLDINGS_ARROW_SCHEMA.names if name != "entry_price"}
    result = compute_batch_margin_table(columns, MARKET, default_params())
    assert result.column("left_out").to_pylist() == [0, 1]
    issues = result.column("issues")[1].as_py()
    assert {"index": 4, "field": "positions[4].underlying", "code": "no_price", "severity": "error"} in issues
    report = compute_margin(wallets[1], MARKET, default_params())
    assert result.column("maintenance_margin_usd")[1].as_py() == pytest.approx(report.maintenance_margin_usd, rel=REL)
    assert report.complete is False and result.column("complete").to_pylist() == [
        compute_margin(wallets[0], MARKET, default_params()).complete, False
    ]


def _bad(rows: list[dict[str, Any]]) -> InputError:
    with pytest.raises(InputError) as caught:
        compute_batch_margin_table(table_of(rows), MARKET, default_params())
    return caught.value


def test_bad_rows_and_columns_are_named() -> None:
    rows = rows_of(WALLETS[:3], LABELS[:3])
    option = next(i for i, r in enumerate(rows) if r["kind"] == "option")
    lend = next(i for i, r in enumerate(rows) if r["kind"] == "lend")
    third = next(i for i, r in enumerate(rows) if r["wallet"] == LABELS[2])
    assert _bad([*rows[:third], {**rows[third], "wallet": LABELS[0]}, *rows[third + 1:]]).field == (
        f"rows[{third}].wallet"  # wallet 0 again, after wallet 1
    )
    negative_strike = {**rows[option], "strike": -1.0}
    assert _bad([*rows[:option], negative_strike, *rows[option + 1:]]).field == f"rows[{option}].strike"
    assert _bad([*rows[:option], {**rows[option], "entry_price": 5.0}, *rows[option + 1:]]).field == (
        f"rows[{option}].entry_price"
    )
    assert _bad([*rows[:lend], {**rows[lend], "size": -1.0}, *rows[lend + 1:]]).field == f"rows[{lend}].size"
    assert _bad([*rows[:1], {**rows[1], "size": float("nan")}, *rows[2:]]).field == "rows[1].size"
    assert _bad([{**rows[0], "kind": "swap"}, *rows[1:]]).field.startswith("rows[0]")
    expired = {**rows[option], "expiry": datetime(2020, 1, 1, tzinfo=EXPIRIES[0].tzinfo)}
    result = compute_batch_margin_table(table_of([*rows[:option], expired, *rows[option + 1:]]), MARKET,
                                        default_params())
    assert "expired" in [i["code"] for issues in result.column("issues").to_pylist() for i in issues]
    columns = {name: [r[name] for r in rows] for name in HOLDINGS_ARROW_SCHEMA.names if name != "size"}
    with pytest.raises(InputError) as caught:
        compute_batch_margin_table(columns, MARKET, default_params())
    assert caught.value.field == "size"
    with pytest.raises(InputError) as caught:
        compute_batch_margin_table({**columns, "size": ["x"] * len(rows)}, MARKET, default_params())
    assert caught.value.field == "size"
    with pytest.raises(InputError) as caught:
        compute_batch_margin_table({**columns, "size": [1.0] * len(rows), "colour": [1] * len(rows)}, MARKET,
                                   default_params())
    assert caught.value.field == "colour"


def test_an_empty_table_margins_no_wallet() -> None:
    result = compute_batch_margin_table(table_of([]), MARKET, default_params())
    assert result.num_rows == 0 and "maintenance_margin_usd" in result.column_names
