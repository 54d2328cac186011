"""`venue-margin`: a venue's own margin, computed from the venue's own input layout.

    venue-margin derive-pm2 CASE.json [--format json|text]

`add_parser(subparsers)` registers the command on a parent CLI. The handler it sets as `run` takes the parsed
arguments and returns the report text; on bad input (unreadable file, invalid JSON, fields with bad values) it
prints one line per problem, `error: <field path>: <reason>`, to stderr and exits with code 2 (SystemExit, as
argparse does on a usage error), whichever CLI dispatches it. `render_derive_pm2` is the same without the exit, raising
`VenueInputError`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from api.errors import describe_validation_error
from risk_core.venues.derive_pm2 import Pm2Case, Pm2Result, ScenarioPnl, evaluate_pm2

EXIT_BAD_INPUT = 2
BALANCE_CONVENTION = "balances: negative means short of margin"


class VenueInputError(Exception):
    """Bad input, as the lines shown to the user: one per problem, each naming the field from the case's root."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


def load_pm2_case(path: str) -> Pm2Case:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise VenueInputError([f"{path}: cannot read: {e.strerror}"]) from e
    except UnicodeDecodeError as e:
        raise VenueInputError([f"{path}: not UTF-8 text"]) from e
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as e:
        raise VenueInputError([f"{path}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}"]) from e
    except RecursionError as e:
        raise VenueInputError([f"{path}: JSON nested too deeply"]) from e
    try:
        return Pm2Case.model_validate(raw)
    except ValidationError as e:
        raise VenueInputError(describe_validation_error(e)) from e


def _scenario_json(outcome: ScenarioPnl) -> dict[str, Any]:
    return {"index": outcome.index, "description": outcome.description, "pnl": outcome.pnl}


def pm2_report_json(case: Pm2Case, result: Pm2Result, source: str) -> str:
    expected = case.expected
    report = {
        "venue": "derive-pm2",
        "case": source,
        "convention": BALANCE_CONVENTION,
        "mm": result.mm,
        "im": result.im,
        "mtm": result.mtm,
        "worst_loss": result.worst_loss,
        "worst_scenario": _scenario_json(result.worst_scenario),
        "mm_contingency": result.mm_contingency,
        "im_contingency": result.im_contingency,
        "scenarios": [_scenario_json(outcome) for outcome in result.scenarios],
        "venue_expected": None if expected is None else {"mm": expected.mm, "im": expected.im},
    }
    return json.dumps(report, indent=2) + "\n"


def pm2_report_text(case: Pm2Case, result: Pm2Result, source: str) -> str:
    worst = result.worst_scenario
    summary = [
        ("maintenance margin (MM)", result.mm, ""),
        ("initial margin (IM)", result.im, ""),
        ("mark-to-market (MTM)", result.mtm, ""),
        ("worst loss", result.worst_loss, f"scenario {worst.index}: {worst.description}"),
        ("MM contingency", result.mm_contingency, ""),
        ("IM contingency", result.im_contingency, "on top of the MM contingency"),
    ]
    if case.expected is not None:
        summary += [("venue's expected MM", case.expected.mm, ""), ("venue's expected IM", case.expected.im, "")]
    lines = [f"Derive PM2 margin of {source}", f"({BALANCE_CONVENTION})", ""]
    lines += [f"  {label:<26}{value:>20,.4f}  {note}".rstrip() for label, value, note in summary]
    lines += ["", f"  {'#':>3}  {'scenario':<40}{'P&L':>20}"]
    for outcome in result.scenarios:
        marker = "  <- worst" if outcome.index == worst.index else ""
        lines.append(f"  {outcome.index:>3}  {outcome.description:<40}{outcome.pnl:>20,.4f}{marker}")
    return "\n".join(lines) + "\n"


def render_derive_pm2(args: argparse.Namespace) -> str:
    case = load_pm2_case(args.case)
    result = evaluate_pm2(case)
    render = pm2_report_text if args.format == "text" else pm2_report_json
    return render(case, result, args.case)


def _run_derive_pm2(args: argparse.Namespace) -> str:
    try:
        return render_derive_pm2(args)
    except VenueInputError as e:
        for line in e.lines:
            print(f"error: {line}", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT) from None


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    venue_margin = subparsers.add_parser(
        "venue-margin", help="a venue's own margin from the venue's own input layout"
    )
    venues = venue_margin.add_subparsers(dest="venue", required=True)
    derive_pm2 = venues.add_parser(
        "derive-pm2", help="Derive PM2 portfolio margin of a case {Scenario, Parameters} in Derive's layout"
    )
    derive_pm2.add_argument("case", help="path of the case JSON")
    derive_pm2.add_argument("--format", choices=("json", "text"), default="json")
    derive_pm2.set_defaults(run=_run_derive_pm2)
    return venue_margin


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="venue-margin-cli", description="venue parity margins")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    sys.stdout.write(args.run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
