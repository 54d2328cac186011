"""A request for the fhs model without a history is margined on the repository's recorded one, up to as_of."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from api.cli import main

REQUEST = {
    "positions": [
        {"kind": "spot", "asset": "BTC", "quantity": 1, "venue": "wallet", "chain": "ethereum", "account": "a"},
        {"kind": "perp", "underlying": "ETH", "quantity": -10, "venue": "hl", "chain": "hyperliquid", "account": "a"},
    ],
    "market": {"as_of": "2024-06-01T00:00:00Z", "spot": {"BTC": 67_000, "ETH": 3_800}},
}


def run(tmp_path: Path, capsys: pytest.CaptureFixture[str], params: dict[str, object]) -> dict[str, object]:
    path = tmp_path / "request.json"
    path.write_text(json.dumps({**REQUEST, "params": params}))
    assert main(["margin", str(path)]) == 0
    return json.loads(capsys.readouterr().out)  # type: ignore[no-any-return]


def test_the_fhs_model_reads_the_recorded_history_up_to_as_of(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fhs = run(tmp_path, capsys, {"model": "fhs"})
    grid = run(tmp_path, capsys, {})
    assert (fhs["model"], grid["model"]) == ("fhs", "grid")
    worst = fhs["worst_scenarios"]
    assert isinstance(worst, list) and len(worst) == 5
    assert all(date.fromisoformat(w["date"]) <= date(2024, 6, 1) for w in worst)
    assert fhs["maintenance_margin_usd"] != grid["maintenance_margin_usd"]
    assert grid["worst_scenarios"] == []
