"""Margin backtest benchmark: the ten standard books, daily, over the recorded history, for both models.

    .venv/bin/python benchmarks/bench_backtest.py [--years 10] [--end 2024-09-30]

Target (issue 15): a 10-year daily backtest of 10 books in under 60 s on the 2-core machine. The peer, timed in the
same run on the same dates: the full margin report (`compute_margin`, what `metarisk margin` computes) of the
long-BTC book, one call per date; the backtest's cost per book-date is reported as a ratio to it. Printed: the
command, the load average before and after (the machine is shared), seconds per model, book-dates, ms per
book-date, and the 10-year x 10-book figure it implies when --years is smaller.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as bench_margin.py: small products, no spinning threads

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from datetime import date, timedelta  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from research.backtest import MarketTape, run_backtest  # noqa: E402
from research.publish import standard_books  # noqa: E402
from research.reference import shipped_prices, shipped_vols  # noqa: E402
from risk_core.margin.engine import compute_margin  # noqa: E402
from risk_core.schema.params import default_params  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--years", type=float, default=10.0)
    parser.add_argument("--end", default="2024-09-30", help="last date (ETH's record ends 2024-10-09)")
    args = parser.parse_args()
    last = date.fromisoformat(args.end)
    first = last - timedelta(days=round(365.25 * args.years))
    print(f"command: .venv/bin/python benchmarks/bench_backtest.py --years {args.years} --end {args.end}")
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    prices = shipped_prices()
    tape = MarketTape(prices, shipped_vols(prices))
    books = standard_books()
    per_book_date = {}
    for model in ("grid", "fhs"):
        params = default_params().model_copy(update={"model": model})
        started = time.perf_counter()
        results = run_backtest(books, tape, params, horizon_days=1, first=first, last=last)
        took = time.perf_counter() - started
        book_dates = sum(r.days for r in results)
        per_book_date[model] = took / book_dates
        implied = per_book_date[model] * 10 * 3652
        print(f"{model}: {took:.1f} s for {book_dates} book-dates ({len(results)} books, {first}..{last}): "
              f"{1e3 * per_book_date[model]:.2f} ms per book-date; 10 years x 10 books: {implied:.0f} s")
    # the peer: the full report of the long-BTC book on a sample of the same dates
    sample = [first + timedelta(days=d) for d in range(0, (last - first).days, 7)][:200]
    leg = books.books[0].legs[0]
    grid = default_params()
    started = time.perf_counter()
    for day in sample:
        market = tape.snapshot((day - date(1970, 1, 1)).days, ["BTC"], None)
        assert market is not None
        compute_margin([leg.position(market.as_of, market.spot["BTC"], None)], market, grid)
    report_cost = (time.perf_counter() - started) / len(sample)
    print(f"peer: full margin report of one book, one date: {1e3 * report_cost:.2f} ms")
    for model, cost in per_book_date.items():
        print(f"{model}: one backtest book-date (margin at D, value at D + 1) = {cost / report_cost:.2f} x one report")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
