"""`metarisk backtest`: margin backtests of books over a price (and vol) history (research.backtest).

    metarisk backtest BOOKS.json --prices PRICES.csv [--vols VOLS.csv] [--model grid|fhs] [--horizon-days 1]
                      [--from D] [--to D] [--format json|text] [--out DIR]

Bad input (unreadable or invalid files, a field with a bad value, a book that cannot be priced) prints one line
per problem naming the file and field, and exits 2.
"""

from __future__ import annotations

import argparse
import json
from datetime import date
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from api.errors import describe_validation_error
from research.backtest import MarketTape, run_backtest
from research.books import BooksFile
from research.errors import BacktestInputError
from research.report import backtest_document, render_text, write_files
from research.series import read_series_csv
from risk_core.schema.params import default_params


class _BadInput(Exception):
    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


def add_parser(commands: Any, bad_input: type[Exception]) -> None:
    """Register `backtest` on the CLI's subparsers; `bad_input(lines)` is the CLI's exit-2 exception."""
    parser = commands.add_parser("backtest", help="margin backtest of books over a price history")
    parser.add_argument("books", help="BOOKS.json: {\"books\": [{name, rebalance, positions, legs}]}")
    parser.add_argument("--prices", required=True, help="long CSV timestamp,asset,price")
    parser.add_argument("--vols", help="long CSV timestamp,asset,atm_iv (decimal)")
    parser.add_argument("--model", choices=("grid", "fhs"), default=None, help="default: the parameter file's")
    parser.add_argument("--horizon-days", type=int, default=1)
    parser.add_argument("--from", dest="first", help="first date, YYYY-MM-DD")
    parser.add_argument("--to", dest="last", help="last date, YYYY-MM-DD")
    parser.add_argument("--format", choices=("json", "text"), default="json")
    parser.add_argument("--out", help="folder for backtest.json, rows.parquet and a PNG per book")

    def run(args: argparse.Namespace) -> str:
        try:
            return _run(args)
        except _BadInput as e:
            raise bad_input(e.lines) from e

    parser.set_defaults(run=run)


def _date(text: str | None, flag: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError as e:
        raise _BadInput([f"{flag}: not a date YYYY-MM-DD: {text!r}"]) from e


def _run(args: argparse.Namespace) -> str:
    if not 1 <= args.horizon_days <= 365:
        raise _BadInput([f"--horizon-days: {args.horizon_days} is not in 1..365"])
    first, last = _date(args.first, "--from"), _date(args.last, "--to")
    if first and last and last < first:
        raise _BadInput(["--to: before --from"])
    try:
        raw = json.loads(Path(args.books).read_text(encoding="utf-8"))
    except OSError as e:
        raise _BadInput([f"{args.books}: cannot read: {e.strerror}"]) from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise _BadInput([f"{args.books}: invalid JSON: {e}"]) from e
    try:
        books = BooksFile.model_validate(raw)
    except ValidationError as e:
        raise _BadInput([f"{args.books}: {line}" for line in describe_validation_error(e)]) from e
    params = default_params()
    if args.model is not None:
        params = params.model_copy(update={"model": args.model})
    try:
        prices = read_series_csv(Path(args.prices), "price")
        vols = read_series_csv(Path(args.vols), "atm_iv", upper=20.0) if args.vols else None
        results = run_backtest(
            books, MarketTape(prices, vols), params, horizon_days=args.horizon_days, first=first, last=last
        )
    except BacktestInputError as e:
        raise _BadInput([str(e)]) from e
    document = backtest_document(results, model=params.model, horizon_days=args.horizon_days)
    if args.out:
        write_files(document, results, Path(args.out))
    if args.format == "text":
        return render_text(document)
    return json.dumps(document, indent=1, allow_nan=False) + "\n"
