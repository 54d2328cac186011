"""`surface`: the arbitrage-free eSSVI surface of one asset's option chain, beside the market's implied vols.

    surface CHAIN.csv --asset BTC [--k-grid -3:3:0.01] [--format json|text]

The chain is a CSV in the column layout of the recorded Deribit chains (`oracles.chain_csv` lists the columns).
Bad input prints one line, `error: <column or row>: <reason>`, and exits with code 2.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from risk_core.errors import InputError
from risk_core.schema.surface_report import SurfaceReport

EXIT_BAD_INPUT = 2
DEFAULT_K_GRID = "-3:3:0.01"


def surface_report(text: str, asset: str, k_grid: str) -> SurfaceReport:
    """The report of a chain's CSV text; InputError names what is wrong."""
    # imported here: the fit's scipy and oracles need not load for the CLI's other commands
    from oracles.chain_csv import parse_chain_csv
    from oracles.surface import compute_surface
    from oracles.surface_report import build_surface_report, parse_k_grid

    k = parse_k_grid(k_grid)
    chain = parse_chain_csv(text, asset)
    return build_surface_report(compute_surface([chain], asset=asset, as_of=chain.as_of), k)


def _run(args: argparse.Namespace) -> str:
    try:
        try:
            text = Path(args.chain).read_text(encoding="utf-8")
        except OSError as e:
            raise InputError(args.chain, f"cannot read: {e.strerror}") from None
        except UnicodeDecodeError:
            raise InputError(args.chain, "not UTF-8 text") from None
        report = surface_report(text, args.asset, args.k_grid)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT) from None
    if args.format == "text":
        from oracles.surface_report import render_surface_text

        return render_surface_text(report)
    return report.model_dump_json(indent=2) + "\n"


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("surface", help="the eSSVI vol surface of an option chain (Deribit CSV layout)")
    parser.add_argument("chain", help="path of the chain CSV")
    parser.add_argument("--asset", required=True, help="the chain's currency column value, e.g. BTC")
    parser.add_argument("--k-grid", default=DEFAULT_K_GRID, help="START:STOP:STEP of log-moneyness for the output")
    parser.add_argument("--format", choices=("json", "text"), default="json")
    parser.set_defaults(run=_run)
    # so that `--k-grid -3:3:0.01` reads as a value, as argparse already does for a plain negative number
    parser._negative_number_matcher = re.compile(r"^-\d+$|^-\d*\.\d+$|^-[\d.]+:")
    return parser
