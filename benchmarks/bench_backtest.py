"""Margin backtest benchmark: the ten standard books, daily, over the recorded history, for both models.

    .venv/bin/python benchmarks/bench_backtest.py [--years 10] [--end 2024-09-30] [--by-date-years 0.5]

Target (issue 15): a 10-year daily backtest of 10 books in under 60 s on the 2-core machine. Timed: the backtest
as `metarisk backtest` runs it (on the date axis, risk_core.margin.dated) over --years, per model; and the peer in
the same run, the old path (`run_book_by_date`: the engine's resolve_book + RiskArrays on each date's snapshot) on
the last --by-date-years of the same span, compared per book-date (CPU seconds of this process, so the other work
on a shared machine weighs less). Printed: the command, the load average before and after, seconds (wall and CPU)
per model and path, book-dates, ms per book-date, and the ratio of the old path to the date axis.
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

from research.backtest import MarketTape, run_book, run_book_by_date  # noqa: E402
from research.publish import standard_books  # noqa: E402
from research.reference import shipped_prices, shipped_vols  # noqa: E402
from risk_core.schema.params import default_params  # noqa: E402


def timed(
    run: object, books: object, tape: MarketTape, model: str, first: date, last: date
) -> tuple[float, float, int]:
    """(wall s, CPU s, book-dates) of the ten books with `run` (run_book or run_book_by_date)."""
    params = default_params().model_copy(update={"model": model})
    wall, cpu = time.perf_counter(), time.process_time()
    days = sum(run(b, tape, params, horizon_days=1, first=first, last=last).days for b in books.books)  # type: ignore[operator, attr-defined]
    return time.perf_counter() - wall, time.process_time() - cpu, days


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--years", type=float, default=10.0)
    parser.add_argument("--end", default="2024-09-30", help="last date (ETH's record ends 2024-10-09)")
    parser.add_argument("--by-date-years", type=float, default=0.5, help="span of the old path, the peer")
    parser.add_argument("--models", nargs="+", default=["grid", "fhs"])
    args = parser.parse_args()
    last = date.fromisoformat(args.end)
    first = last - timedelta(days=round(365.25 * args.years))
    peer_first = last - timedelta(days=round(365.25 * args.by_date_years))
    print(f"command: .venv/bin/python benchmarks/bench_backtest.py --years {args.years} --end {args.end} "
          f"--by-date-years {args.by_date_years} --models {' '.join(args.models)}")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    prices = shipped_prices()
    tape = MarketTape(prices, shipped_vols(prices))
    books = standard_books()
    for model in args.models:
        wall, cpu, days = timed(run_book, books, tape, model, first, last)
        print(f"{model}, date axis: {wall:.1f} s wall, {cpu:.1f} s CPU for {days} book-dates ({len(books.books)} "
              f"books, {first}..{last}): {1e3 * cpu / days:.3f} ms CPU per book-date")
        peer_wall, peer_cpu, peer_days = timed(run_book_by_date, books, tape, model, peer_first, last)
        axis_wall, axis_cpu, axis_days = timed(run_book, books, tape, model, peer_first, last)
        print(f"{model}, date by date (peer): {peer_wall:.1f} s wall, {peer_cpu:.1f} s CPU for {peer_days} "
              f"book-dates ({peer_first}..{last}): {1e3 * peer_cpu / peer_days:.2f} ms CPU per book-date; the date "
              f"axis on the same span: {axis_cpu:.2f} s CPU ({1e3 * axis_cpu / axis_days:.3f} ms per book-date); "
              f"per book-date the old path costs {(peer_cpu / peer_days) / (cpu / days):.0f}x the date axis over "
              f"{args.years:g} years, {peer_cpu / axis_cpu:.0f}x on the same span")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
