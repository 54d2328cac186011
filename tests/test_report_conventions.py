"""Conventions every report holds, checked on the demo request (examples/demo_request.json): no negative zero in
any figure or its text, and the scenario grid's shocks in ascending order, rows and columns alike."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from api.report_text import render_report
from risk_core.margin.engine import compute_margin_request
from risk_core.schema.report import MarginReport
from risk_core.schema.request import MarginRequest

DEMO_REQUEST = Path(__file__).resolve().parents[1] / "examples" / "demo_request.json"


def demo_report() -> MarginReport:
    return compute_margin_request(MarginRequest.model_validate_json(DEMO_REQUEST.read_text()))


def floats(node: Any, path: str = "") -> Iterator[tuple[str, float]]:
    if isinstance(node, float):
        yield path, node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from floats(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from floats(value, f"{path}[{i}]")


def test_no_figure_is_a_negative_zero() -> None:
    report = demo_report()
    perp = next(p for p in report.positions if p.kind == "perp")
    assert perp.vega == 0.0 and perp.gamma == 0.0  # a perp has no vega nor gamma: -1 x 0, the case that printed -0
    document = json.loads(report.model_dump_json())
    negative_zeros = [path for path, x in floats(document) if x == 0.0 and math.copysign(1.0, x) < 0]
    assert negative_zeros == []


def test_the_text_report_shows_no_minus_zero() -> None:
    text = render_report(demo_report())
    # a negative number whose digits are all zeros: "-0.00", "-0", "-0.0%"
    assert [n for n in re.findall(r"-[0-9][0-9,.]*", text) if not re.search("[1-9]", n)] == []
    perp_row = next(line for line in text.splitlines() if "eth-perp-short" in line)
    assert perp_row.split()[-2] == "0.00"  # its vega


def test_grid_shocks_ascend() -> None:
    report = demo_report()
    for u in report.underlyings.values():
        assert u.grid.vol_shocks == sorted(u.grid.vol_shocks) and len(u.grid.vol_shocks) > 1
        assert u.grid.spot_shocks == sorted(u.grid.spot_shocks)
    header = next(line for line in render_report(report).splitlines() if line.strip().startswith("-25%"))
    assert header.split() == ["-25%", "+0%", "+50%"]
