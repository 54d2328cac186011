"""`metarisk margin`: the report in JSON and text, and bad input answered with exit code 2 naming the field."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from support.golden import EXPIRY_30D, market, option, position

from api.cli import EXIT_BAD_INPUT, main

ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, request: Any, name: str = "request.json") -> str:
    path = tmp_path / name
    path.write_text(request if isinstance(request, str) else json.dumps(request))
    return str(path)


def good_request() -> dict[str, Any]:
    return {"positions": [option(-1, "call", 110_000), position("spot", asset="USDC", quantity=20_000)],
            "market": market()}


def test_json_report_names_every_contract_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["margin", write(tmp_path, good_request())]) == 0
    report = json.loads(capsys.readouterr().out)
    for field in ("equity_usd", "collateral_usd", "maintenance_margin_usd", "initial_margin_usd",
                  "free_collateral_usd", "margin_ratio", "status", "isolated_margin_usd", "portfolio_saving_usd",
                  "complete", "warnings", "params_version", "positions", "underlyings", "by_venue", "by_chain",
                  "liquidation_plan"):
        assert field in report, field
    assert report["initial_margin_usd"] == pytest.approx(1.25 * report["maintenance_margin_usd"], rel=1e-12)
    assert set(report["underlyings"]["BTC"]) >= {"risk_usd", "worst_scenario", "delta", "gamma", "vega", "theta",
                                                 "liquidation_move", "grid"}


def test_text_report_is_a_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["margin", write(tmp_path, good_request()), "--format", "text"]) == 0
    out = capsys.readouterr().out
    assert "maintenance margin" in out and "HEALTHY" in out
    grid_rows = [line for line in out.splitlines() if line.strip().startswith(("-", "+")) and "%" in line
                 and "," in line]
    assert len(grid_rows) == 15  # the P&L grid: one row per spot shock from -16% to +16%


def test_params_override_changes_the_scenarios(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    request = good_request() | {"params": {"scenarios": {"BTC": {"spot_shocks": [-0.1, 0.1], "vol_shocks": [0.0],
                                                                  "extreme_shocks": [], "skew_enabled": False}},
                                           "contingencies_enabled": False, "im_factor": 1.5}}
    assert main(["margin", write(tmp_path, request)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["underlyings"]["BTC"]["grid"]["spot_shocks"] == [-0.1, 0.0, 0.1]
    assert report["contingency_usd"] == 0
    assert report["initial_margin_usd"] == pytest.approx(1.5 * report["maintenance_margin_usd"], rel=1e-12)


def bad(request: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    target: Any = request
    keys = path.split(".")
    for key in keys[:-1]:
        target = target[int(key)] if key.isdigit() else target[key]
    target[keys[-1]] = value
    return request


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: bad(r, "positions.0.strike", float("nan")), "positions[0].strike"),
        (lambda r: bad(r, "positions.0.strike", -5), "positions[0].strike: Input should be greater than 0"),
        (lambda r: bad(r, "positions.0.expiry", "2020-01-01T00:00:00Z"), "positions[0].expiry: expiry 2020-01-01"),
        (lambda r: bad(r, "positions.0.kind", "swaption"), "positions[0]: Input tag 'swaption' found using 'kind'"),
        (lambda r: bad(r, "positions.0.underlying", "DOGE"), "positions[0].underlying: no price for DOGE"),
        (lambda r: bad(r, "positions.0.quantity", "lots"), "positions[0].quantity"),
        (lambda r: bad(r, "market.spot.BTC", 0), "market.spot.BTC: Input should be greater than 0"),
        (lambda r: bad(r, "params", {"im_factr": 2}), "error: params.im_factr: Extra inputs are not permitted"),
        (lambda r: bad(r, "positions", []), "error: positions: at least one position is needed"),
        (lambda r: bad(r, "positions", [{"kind": "spot"}] * 1_000_000),
         "error: positions: 1000000 positions exceed the limit"),
    ],
    ids=["nan", "negative-strike", "expired", "unknown-kind", "unpriced-underlying", "bad-quantity", "zero-spot",
         "unknown-param", "no-positions", "a-million-positions"],
)
def test_bad_input_exits_2_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], mutate: Any, message: str
) -> None:
    assert main(["margin", write(tmp_path, mutate(good_request()))]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_unpriced_token_is_a_warning_with_no_collateral(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    request = good_request()
    request["positions"].append(position("spot", asset="PEPE", quantity=1e9))
    assert main(["margin", write(tmp_path, request)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert any("PEPE" in w and "no price" in w for w in report["warnings"])
    assert report["positions"][2]["priced"] is False and report["positions"][2]["value_usd"] == 0


@pytest.mark.parametrize(("content", "message"), [("{not json", "invalid JSON at line 1"), (None, "cannot read")])
def test_unreadable_request(tmp_path: Path, capsys: pytest.CaptureFixture[str], content: Any, message: str) -> None:
    path = write(tmp_path, content) if content else str(tmp_path / "missing.json")
    assert main(["margin", path]) == EXIT_BAD_INPUT
    assert message in capsys.readouterr().err


def test_console_script_exit_code_and_clean_stderr(tmp_path: Path) -> None:
    request = bad(good_request(), "positions.0.expiry", "2020-01-01T00:00:00Z")
    done = subprocess.run([sys.executable, "-m", "api.cli", "margin", write(tmp_path, request)],
                          capture_output=True, text=True, cwd=ROOT, check=False)
    assert done.returncode == EXIT_BAD_INPUT
    assert done.stderr.startswith("error: positions[0].expiry") and "Traceback" not in done.stderr


def test_demo_request_runs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["margin", str(ROOT / "examples" / "demo_request.json")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["complete"] is True and report["portfolio_saving_usd"] > 0
    assert EXPIRY_30D  # the golden market's expiry is shared with the other tests


def test_demo_on_a_busy_port_is_one_line_before_any_devnet(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A second `metarisk demo` on the first one's port: exit 2 with one line, and no devnet started."""
    import socket

    import api.demo

    def no_devnet() -> None:
        raise AssertionError("the devnet was started although the port is taken")

    monkeypatch.setattr(api.demo, "start_devnet", no_devnet)
    with socket.socket() as first_demo:
        first_demo.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as aiohttp listens
        first_demo.bind(("127.0.0.1", 0))
        first_demo.listen()
        port = first_demo.getsockname()[1]
        assert main(["demo", "--host", "127.0.0.1", "--port", str(port)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.splitlines() == [
        f"error: --port: cannot listen on 127.0.0.1:{port} (Address already in use); is another metarisk demo "
        "running? Stop it or pick another --port"
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "JSON nested too deeply"),  # issue 12: a RecursionError traceback
        ('{"positions": [], "note": "caf\u00e9"}'.encode("latin-1"), "not UTF-8 text (byte 30 is 0xe9)"),
        (b"\xff\xfe{\x00}\x00", "not UTF-8 text (byte 0 is 0xff)"),  # UTF-16 with its byte-order mark
    ],
)
def test_a_file_that_cannot_be_json_exits_2_with_one_line(tmp_path: Path, content: bytes, message: str) -> None:
    """Run as the console script would be, so an escaping exception would show as a traceback on stderr."""
    path = tmp_path / "request.json"
    path.write_bytes(content)
    done = subprocess.run([sys.executable, "-m", "api.cli", "margin", str(path)],
                          capture_output=True, text=True, cwd=ROOT, check=False)
    assert done.returncode == EXIT_BAD_INPUT
    assert done.stderr == f"error: {path}: {message}\n"
