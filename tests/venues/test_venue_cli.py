"""`venue-margin derive-pm2`: the report in both formats, and bad input as one line per problem with exit code 2."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import reference_data
from api.venue_margin_cli import add_parser, main

REPO_ROOT = Path(__file__).resolve().parents[2]
PM2_CASES_DIR = reference_data.path("derive-pm2")
PERP_CASE = PM2_CASES_DIR / "test_29_perps_basic_perp.json"
SHORT_CALL_CASE = PM2_CASES_DIR / "test_12_risk_cancelling_naked_short_call.json"


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "api.venue_margin_cli", "venue-margin", "derive-pm2", *args],
        cwd=REPO_ROOT, capture_output=True, text=True, check=False,
    )


def test_json_report_of_a_perp_case() -> None:
    completed = run_cli(str(PERP_CASE), "--format", "json")
    assert completed.returncode == 0, completed.stderr
    report = json.loads(completed.stdout)
    # One long perp at 3100 (spot 3000): worst is -18% x 3100 = -558; MM = 0.8 x -558 - 45 + 10 funding.
    assert report["mm"] == pytest.approx(-481.4)
    assert report["im"] == pytest.approx(-608.0)
    assert report["mtm"] == 10.0
    assert report["worst_loss"] == pytest.approx(-558.0)
    assert report["worst_scenario"]["index"] == 22
    assert report["worst_scenario"]["description"] == "spot -18.0%, vol Up"
    assert len(report["scenarios"]) == 32
    assert report["scenarios"][0]["pnl"] == pytest.approx(0.18 * 3100)
    assert report["scenarios"][-1] == {"index": 31, "description": "basis contingency", "pnl": 0.0}
    assert report["venue_expected"] == {"mm": pytest.approx(-481.4), "im": pytest.approx(-608.0)}


def test_text_report_is_a_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["venue-margin", "derive-pm2", str(SHORT_CALL_CASE), "--format", "text"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "  maintenance margin (MM)           -11,824.8587" in lines
    assert "  initial margin (IM)               -14,604.0481" in lines
    worst_row = next(line for line in lines if line.endswith("<- worst"))
    assert worst_row.split() == ["0", "spot", "+18.0%,", "vol", "Up", "-12,939.3120", "<-", "worst"]
    assert lines[-1].split() == ["31", "basis", "contingency", "-947.2098"]


def case_with_option_field(tmp_path: Path, key: str, value: object) -> Path:
    data = json.loads(SHORT_CALL_CASE.read_text())
    data["Scenario"]["Options"][0][key] = value
    path = tmp_path / "case.json"
    path.write_text(json.dumps(data))
    return path


def truncated_json(tmp_path: Path) -> Path:
    path = tmp_path / "bad.json"
    path.write_text('{"Scenario": ')
    return path


BAD_INPUTS: dict[str, tuple[Callable[[Path], Path], str]] = {
    "missing-file": (lambda tmp: tmp / "missing.json", "{path}: cannot read: No such file or directory"),
    "invalid-json": (truncated_json, "{path}: invalid JSON at line 1 column 14: Expecting value"),
    "zero-strike": (
        lambda tmp: case_with_option_field(tmp, "Strike", 0),
        "Scenario.Options[0].Strike: Input should be greater than 0",
    ),
    "vol-as-text": (
        lambda tmp: case_with_option_field(tmp, "MarkVol", "high"),
        "Scenario.Options[0].MarkVol: Input should be a valid number",
    ),
}


@pytest.mark.parametrize("kind", BAD_INPUTS)
def test_bad_input_exits_2_with_one_line(tmp_path: Path, kind: str) -> None:
    make_path, message = BAD_INPUTS[kind]
    path = make_path(tmp_path)
    completed = run_cli(str(path))
    assert completed.returncode == 2
    assert completed.stdout == ""
    assert completed.stderr == f"error: {message.format(path=path)}\n"


def test_handler_exits_2_under_a_parent_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parent = argparse.ArgumentParser(prog="metarisk")
    add_parser(parent.add_subparsers(dest="command", required=True))
    args = parent.parse_args(["venue-margin", "derive-pm2", str(tmp_path / "missing.json")])
    with pytest.raises(SystemExit) as exited:
        args.run(args)
    assert exited.value.code == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_every_problem_is_one_line_named_from_the_case_root(tmp_path: Path) -> None:
    """A recorded case with eleven scenarios' shocks and a collateral amount broken: twelve lines, none summarised
    away, each named from the document's root as the API names fields."""
    data = json.loads(SHORT_CALL_CASE.read_text())
    broken = range(11)
    for i in broken:
        data["Parameters"]["Scenarios"][i]["SpotShock"] = -1
    data["Scenario"]["Options"][0]["MarkVol"] = "high"
    path = tmp_path / "case.json"
    path.write_text(json.dumps(data))
    completed = run_cli(str(path))
    assert completed.returncode == 2
    assert completed.stderr.splitlines() == [
        "error: Scenario.Options[0].MarkVol: Input should be a valid number",
        *(f"error: Parameters.Scenarios[{i}].SpotShock: Input should be greater than 0" for i in broken),
    ]
