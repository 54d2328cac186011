"""`metarisk population synthetic` and `metarisk cascade` end to end: files with the documented keys, bad input
named with exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from api.cli import main


@pytest.fixture(scope="module")
def population(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "pop.parquet"
    assert main(["population", "synthetic", "--wallets", "500", "--seed", "4", "--out", str(path)]) == 0
    return path


def test_a_cascade_writes_its_summary_tables_and_plots(tmp_path: Path, population: Path, capsys) -> None:
    out = tmp_path / "run"
    assert main(["cascade", str(population), "--shock", "BTC=-0.3,ETH=-0.35", "--workers", "0", "--out", str(out)]) == 0
    document = json.loads((out / "summary.json").read_text())
    for key in ("rounds", "liquidated_usd", "liquidated_usd_by_venue", "bad_debt_usd_by_venue", "final_prices",
                "per_round", "params_version", "params_sha256"):
        assert key in document
    assert document["rounds"] == len(document["per_round"]) >= 1
    for row in document["per_round"]:
        assert {"round", "liquidated_usd", "sold_by_asset", "prices"} <= set(row)
    assert document["liquidated_usd"] == pytest.approx(sum(r["liquidated_usd"] for r in document["per_round"]))
    rounds = pq.read_table(out / "rounds.parquet")
    assert sum(rounds.column("liquidated_usd").to_pylist()) == pytest.approx(document["liquidated_usd"])
    assert (out / "cascade.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "contagion.png").read_bytes()[:4] == b"\x89PNG"
    printed = json.loads(capsys.readouterr().out)
    assert printed["final_prices"] == document["final_prices"]


def test_a_sweep_gives_a_monotone_quantile_order(tmp_path: Path, population: Path) -> None:
    out = tmp_path / "sweep"
    assert main(["cascade", str(population), "--sweep", "BTC,ETH=-0.05:-0.5:6", "--out", str(out)]) == 0
    document = json.loads((out / "sweep.json").read_text())
    assert len(document["points"]) == 6
    assert document["var_95_usd"] <= document["var_99_usd"]
    assert document["lar_95_usd"] <= document["lar_99_usd"] <= max(p["liquidated_usd"] for p in document["points"])


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        (["--shock", "BTC=x"], "--shock"),
        (["--shock", "DOGE=-0.3"], "shock.DOGE"),
        (["--shock", "BTC=-1.5"], "shock.BTC"),
        (["--sweep", "BTC=-0.1"], "--sweep"),
    ],
)
def test_bad_arguments_exit_2_naming_them(tmp_path: Path, population: Path, capsys, arguments, named) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["cascade", str(population), *arguments, "--workers", "0", "--out", str(tmp_path / "x")])
    assert stop.value.code == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and named in error and "Traceback" not in error


def test_a_file_that_is_not_a_population_names_the_column(tmp_path: Path, capsys) -> None:
    path = tmp_path / "bad.parquet"


    pq.write_table(pa.table({"wallet": [1, 2], "venue": ["aave-v3", "aave-v3"]}), path)
    with pytest.raises(SystemExit) as stop:
        main(["cascade", str(path), "--shock", "BTC=-0.3", "--workers", "0", "--out", str(tmp_path / "x")])
    assert stop.value.code == 2
    assert "population: missing column 'account'" in capsys.readouterr().err
