"""`metarisk surface` and POST /v1/surface on the recorded Deribit chains.

Every figure of the report is recomputed here from what it prints or from the CSV, with formulas of the test's own:
the total variance on the k grid and each quote's model IV from the printed eSSVI parameters and correction; the
market IV against Deribit's own `implied_volatility` column; min g(k) by finite differences; the calendar gap from
the printed parameters; the per-currency RMSE from the printed IVs, weighted by Black-76 vegas computed here (QuantLib's
normal distribution is not needed: vega = F n(d1) sqrt(T)). The JSON has exactly the documented keys and conforms
to the exported JSON Schema."""

from __future__ import annotations

import csv
import json
import math
from datetime import datetime
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest
from aiohttp.test_utils import TestClient
from scipy.interpolate import BSpline

import reference_data
from api.cli import main
from api.http.settings import DEMO_API_KEY
from risk_core.schema.positions import SCHEMA_VERSION

DERIBIT = reference_data.path("market", "deribit")
CALM = DERIBIT / "deribit_options_snapshot_20260105T153329Z.csv"
SELL_OFF = DERIBIT / "deribit_options_snapshot_20260205T212937Z.csv"
SCHEMA = Path(__file__).resolve().parents[2] / "schema" / f"v{SCHEMA_VERSION}" / "surface_report.schema.json"
TOP_KEYS = {"asset", "as_of", "method", "rmse_vol_points", "min_butterfly_g", "min_calendar_gap", "expiries"}
EXPIRY_KEYS = {"expiry", "forward", "status", "params", "rmse_vol_points", "k", "total_variance", "quotes"}
QUOTE_KEYS = {"instrument", "strike", "market_iv", "model_iv"}
SECONDS_PER_YEAR = 365 * 86400


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    assert main(["surface", *args]) == 0
    report: dict[str, Any] = json.loads(capsys.readouterr().out)
    return report


def ssvi(k: np.ndarray, p: dict[str, Any]) -> np.ndarray:
    """The printed slice: Gatheral-Jacquier SSVI written out, plus the printed correction (a cubic B-spline on
    uniform knots, evaluated by scipy's de Boor recursion, zero outside its knots)."""
    theta, rho, psi = p["theta"], p["rho"], p["psi"]
    phi = psi / theta
    w = theta / 2 * (1 + rho * phi * k + np.sqrt((phi * k + rho) ** 2 + 1 - rho**2))
    c = p.get("correction")
    if c is None:
        return w
    n = len(c["coefficients"])
    knots = c["k_start"] + c["k_step"] * np.arange(-3, n + 7)  # padded by 3 zero coefficients on either side
    spline = BSpline(knots, np.concatenate([np.zeros(3), c["coefficients"], np.zeros(3)]), 3, extrapolate=False)
    return np.asarray(w + np.nan_to_num(spline(k)))


def years(report: dict[str, Any], expiry: str) -> float:
    as_of = datetime.fromisoformat(report["as_of"].replace("Z", "+00:00"))
    return (datetime.fromisoformat(expiry.replace("Z", "+00:00")) - as_of).total_seconds() / SECONDS_PER_YEAR


_REPORTS: dict[tuple[str, str], dict[str, Any]] = {}


@pytest.fixture(params=[(CALM, "BTC"), (SELL_OFF, "ETH")], ids=["calm-BTC", "sell-off-ETH"])
def report(request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    path, asset = request.param
    key = (path.name, asset)
    if key not in _REPORTS:
        _REPORTS[key] = run_json(capsys, str(path), "--asset", asset, "--k-grid", "-3:3:0.01")
    return _REPORTS[key]


def test_keys_types_and_schema(report: dict[str, Any]) -> None:
    assert set(report) == TOP_KEYS and report["as_of"].endswith("Z")
    jsonschema.validate(report, json.loads(SCHEMA.read_text()))
    assert len(report["expiries"]) >= 10
    for e in report["expiries"]:
        assert set(e) == EXPIRY_KEYS and e["expiry"].endswith("Z") and e["status"] == "fitted"
        assert set(e["params"]) == {"theta", "rho", "psi", "correction"}
        correction = e["params"]["correction"]
        assert correction is None or set(correction) == {"k_start", "k_step", "coefficients"}
        assert len(e["k"]) == 601 and e["k"][0] == -3.0 and e["k"][-1] == pytest.approx(3.0)
        for q in e["quotes"]:
            assert set(q) == QUOTE_KEYS and 0 < q["market_iv"] < 10 and 0 < q["model_iv"] < 10  # decimals


def test_every_figure_follows_from_the_printed_parameters(report: dict[str, Any]) -> None:
    previous = np.zeros(601)
    least_gap, least_g = math.inf, math.inf
    k5 = np.linspace(-5, 5, 4001)
    for e in report["expiries"]:
        k, w = np.array(e["k"]), np.array(e["total_variance"])
        np.testing.assert_allclose(w, ssvi(k, e["params"]), rtol=1e-12)
        least_gap = min(least_gap, float(np.min(w - previous)))
        previous = w
        w5 = ssvi(k5, e["params"])
        d1 = np.gradient(w5, k5[1] - k5[0])
        d2 = np.gradient(d1, k5[1] - k5[0])
        g = (1 - k5 * d1 / (2 * w5)) ** 2 - d1**2 / 4 * (1 / w5 + 0.25) + d2 / 2
        least_g = min(least_g, float(g[2:-2].min()))
        t = years(report, e["expiry"])
        for q in e["quotes"]:
            expected = math.sqrt(ssvi(np.array([math.log(q["strike"] / e["forward"])]), e["params"])[0] / t)
            assert q["model_iv"] == pytest.approx(expected, rel=1e-9)
    assert report["min_calendar_gap"] == pytest.approx(least_gap, rel=1e-9) and least_gap > 0
    assert report["min_butterfly_g"] == pytest.approx(least_g, abs=1e-4) and least_g > 0


def test_rmse_is_the_vega_weighted_error_of_the_printed_ivs(report: dict[str, Any]) -> None:
    num = den = 0.0
    for e in report["expiries"]:
        t, f = years(report, e["expiry"]), e["forward"]
        for q in e["quotes"]:
            sigma = q["market_iv"]
            d1 = (math.log(f / q["strike"]) + sigma * sigma * t / 2) / (sigma * math.sqrt(t))
            vega = f * math.exp(-d1 * d1 / 2) / math.sqrt(2 * math.pi) * math.sqrt(t)
            num += vega * (q["model_iv"] - sigma) ** 2
            den += vega
    assert report["rmse_vol_points"] == pytest.approx(100 * math.sqrt(num / den), rel=1e-9)
    assert report["rmse_vol_points"] <= 2.0


def test_market_ivs_are_deribits_own_on_the_calm_day(capsys: pytest.CaptureFixture[str]) -> None:
    report = run_json(capsys, str(CALM), "--asset", "BTC")
    with CALM.open(newline="") as f:
        rows = {r["instrument_name"]: r for r in csv.DictReader(f)}
    compared = 0
    for e in report["expiries"]:
        for q in e["quotes"]:
            row = rows[q["instrument"]]
            assert q["strike"] == float(row["strike"])
            if abs(float(row["delta"])) >= 0.02:
                assert q["market_iv"] == pytest.approx(float(row["implied_volatility"]), abs=0.005)
                compared += 1
    assert compared > 200


def test_text_format_lists_every_expiry(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["surface", str(CALM), "--asset", "ETH", "--format", "text"]) == 0
    out = capsys.readouterr().out
    assert "vega-weighted RMSE" in out and out.count("fitted") >= 10


@pytest.mark.parametrize(
    ("edit", "args", "named"),
    [
        (lambda t: t.replace("strike,", "strik,", 1), (), "column strike: missing"),
        (lambda t: t.replace(",82000.0,", ",eighty,", 1), (), "row 2 column strike: 'eighty' is not a number"),
        (lambda t: t.replace(",call,", ",straddle,", 1), (), "row 2 column option_type"),
        (lambda t: t, ("--asset", "XRP"), "asset: no row with currency XRP"),
        (lambda t: t, ("--k-grid", "3:-3:0.01"), "k_grid:"),
    ],
    ids=["missing-column", "bad-number", "bad-type", "unknown-asset", "bad-grid"],
)
def test_bad_input_exits_2_naming_the_column_or_row(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], edit: Any, args: tuple[str, ...], named: str
) -> None:
    path = tmp_path / "chain.csv"
    path.write_text(edit(CALM.read_text()))
    with pytest.raises(SystemExit) as exited:
        main(["surface", str(path), "--asset", "BTC", *args])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and named in err and "Traceback" not in err


async def test_the_route_answers_the_cli_report(
    client: TestClient[Any, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    expected = run_json(capsys, str(CALM), "--asset", "ETH", "--k-grid", "-1:1:0.1")
    key = {"X-API-Key": DEMO_API_KEY, "Content-Type": "text/csv"}
    response = await client.post("/v1/surface?asset=ETH&k_grid=-1:1:0.1", data=CALM.read_bytes(), headers=key)
    assert response.status == 200
    assert await response.json() == expected

    response = await client.post("/v1/surface", data=CALM.read_bytes(), headers=key)
    assert response.status == 422 and response.content_type == "application/problem+json"
    assert (await response.json())["errors"][0]["field"] == "asset"
    response = await client.post("/v1/surface?asset=BTC", data=b"strike,price\n1,2\n", headers=key)
    assert response.status == 422
    assert (await response.json())["errors"][0]["field"] == "column timestamp"
    response = await client.post("/v1/surface?asset=BTC", data=CALM.read_bytes())
    assert response.status == 401
