"""Every figure a report carries is finite, or the request is refused naming the input that overflowed it.

A quantity of 1e308 or a forward of 1e-300 is a valid float, but the figures computed from it are not: their
JSON would read `null` beside `status: healthy`. The report is checked once, at its exit from the engine; when a
figure is not finite, the input blamed is the most extreme magnitude (farthest from 1 in orders of magnitude)
among those that feed the failing figures: the failing positions and the market, or the whole request when only
book-level figures failed. Overflow needs an input hundreds of orders of magnitude off, so that input stands out.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from risk_core.errors import InputError
from risk_core.schema.market import MarketSnapshot
from risk_core.schema.positions import Position
from risk_core.schema.report import MarginReport

_POSITION_ROW = "positions["
# infinite by the venue's own definition, not by overflow: Aave's health factor of an account without debt
_INFINITE_BY_DEFINITION = ".health_factor"


def non_finite_figures(report: MarginReport) -> list[str]:
    """The paths of every figure of the report that is NaN or infinite (empty when all are finite), except
    a health factor of +inf (no debt)."""
    if all_finite(report.model_dump(mode="json")):  # the common case, in a fraction of the walk's time
        return []
    return [
        path
        for path, value in _numbers(report.__dict__, "")
        if not math.isfinite(value) and not (value == math.inf and path.endswith(_INFINITE_BY_DEFINITION))
    ]


def require_finite(
    report: MarginReport, positions: Sequence[Position], market: MarketSnapshot, *, rows_finite: bool = False
) -> MarginReport:
    """The report, when every figure is finite. `rows_finite`: the caller has checked every float of the report's
    position rows on the arrays they were built from, so only the other figures are dumped and checked.

    Raises:
        InputError: naming the input blamed for the first non-finite figure (see the module's docstring).
    """
    if rows_finite and all_finite(report.model_dump(mode="json", exclude={"positions"})):
        return report
    failing = non_finite_figures(report)
    if not failing:
        return report
    rows = sorted(
        {int(path[len(_POSITION_ROW) :].split("]", 1)[0]) for path in failing if path.startswith(_POSITION_ROW)}
    )
    suspects = rows or range(len(positions))
    inputs = [
        *(item for i in suspects for item in _numbers(positions[i].model_dump(), f"positions[{i}]")),
        *_numbers(market.model_dump(exclude={"as_of", "sources"}), "market"),
    ]
    figures = ", ".join(failing[:3]) + (f" and {len(failing) - 3} more" if len(failing) > 3 else "")
    blamed = max(inputs, key=lambda item: _orders_of_magnitude(item[1]), default=None)
    if blamed is None:
        raise InputError("(request)", f"the report's figures overflow: {figures} would not be finite")
    path, value = blamed
    raise InputError(path, f"{value:g} is out of range: the report's {figures} would not be finite")


def all_finite(dumped: Any) -> bool:
    """Whether every float in a model's plain dump (dicts, lists) is finite. A list of numbers (the scenario grids,
    most of a report's floats) is checked by one exact sum in C: finite values sum to a finite total unless the
    sum overflows, and then, or for a list of anything else, its items are looked at one by one."""
    pending = [dumped]
    while pending:
        node = pending.pop()
        if isinstance(node, float):  # numpy's float64 included
            if not math.isfinite(node):
                return False
        elif type(node) is dict:
            pending.extend(node.values())
        elif type(node) is list:
            try:
                if math.isfinite(math.fsum(node)):
                    continue
            except (TypeError, ValueError, OverflowError):
                pass
            pending.extend(node)
    return True


def _orders_of_magnitude(value: float) -> float:
    return abs(math.log10(abs(value))) if value != 0 and math.isfinite(value) else 0.0


def _numbers(node: Any, path: str) -> Iterator[tuple[str, float]]:
    """(path, value) of every float under `node` (models, dicts, lists), booleans and integers excepted."""
    if isinstance(node, float):
        yield path, node
    elif isinstance(node, BaseModel):
        yield from _numbers(node.__dict__, path)
    elif isinstance(node, dict):
        for key, value in node.items():
            name = key.isoformat() if isinstance(key, datetime) else str(key)
            yield from _numbers(value, f"{path}.{name}" if path else name)
    elif isinstance(node, list | tuple):
        for i, value in enumerate(node):
            yield from _numbers(value, f"{path}[{i}]")
