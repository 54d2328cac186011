"""`metarisk batch`: Parquet holdings in, one row per wallet out, streamed in blocks whose edges cut wallets;
the figures are compute_margin's for each wallet alone; bad input exits 2 naming the field."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support.batch_books import batch_market, random_wallet, rows_of

from api.cli import main
from risk_core.margin.engine import compute_margin
from risk_core.schema.holdings import HOLDINGS_ARROW_SCHEMA
from risk_core.schema.params import default_params

MARKET = batch_market()
WALLETS = [random_wallet(np.random.default_rng(700 + w), w) for w in range(9)]
LABELS = [f"w{w:03d}" for w in range(len(WALLETS))]


def write_inputs(tmp_path: Path, rows: list[dict[str, object]]) -> tuple[str, str]:
    holdings, market = tmp_path / "holdings.parquet", tmp_path / "market.json"
    pq.write_table(pa.Table.from_pylist(rows, schema=HOLDINGS_ARROW_SCHEMA), holdings, row_group_size=11)
    market.write_text(MARKET.model_dump_json())
    return str(holdings), str(market)


@pytest.mark.parametrize("block", ["7", "1000"])
def test_batch_writes_each_wallets_figures(tmp_path: Path, block: str, capsys: pytest.CaptureFixture[str]) -> None:
    holdings, market = write_inputs(tmp_path, rows_of(WALLETS, LABELS))
    params = tmp_path / "params.json"
    params.write_text('{"im_factor": 1.5}')
    out = tmp_path / "margins.parquet"
    code = main(["batch", holdings, "--market", market, "--params", str(params), "--out", str(out), "--block", block])
    assert code == 0
    captured = capsys.readouterr()
    assert f"wrote {len(WALLETS)} wallets" in captured.out and "positions/s" in captured.err
    result = pq.read_table(out)
    assert result.column("wallet").to_pylist() == LABELS
    overridden = default_params().with_overrides({"im_factor": 1.5})
    for w, wallet in enumerate(WALLETS):
        report = compute_margin(wallet, MARKET, overridden)
        for name in ("equity_usd", "collateral_usd", "maintenance_margin_usd", "initial_margin_usd"):
            assert result.column(name)[w].as_py() == pytest.approx(getattr(report, name), rel=1e-9, abs=1e-6)
        assert result.column("complete")[w].as_py() == report.complete


def test_bad_input_exits_2_naming_the_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = rows_of(WALLETS[:2], LABELS[:2])
    out = str(tmp_path / "out.parquet")
    holdings, market = write_inputs(tmp_path, [*rows[:3], {**rows[3], "strike": -5.0, "kind": "option"}, *rows[4:]])
    with pytest.raises(SystemExit) as exited:
        main(["batch", holdings, "--market", market, "--out", out])
    assert exited.value.code == 2
    assert "error: rows[3]." in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        main(["batch", str(tmp_path / "missing.parquet"), "--market", market, "--out", out])
    assert exited.value.code == 2 and "cannot read as Parquet" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text('{"as_of": "yesterday"}')
    with pytest.raises(SystemExit) as exited:
        main(["batch", holdings, "--market", str(tmp_path / "bad.json"), "--out", out])
    assert exited.value.code == 2 and "error: market." in capsys.readouterr().err
