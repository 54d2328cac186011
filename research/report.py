"""The backtest's results: the JSON document scripts rely on, its text form, and its files (JSON, Parquet rows,
one PNG plot per book)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from research.backtest import BACKTEST_COVERAGE, BookBacktest

PROCYCLICALITY_DAYS = (5, 30)


def book_document(result: BookBacktest) -> dict[str, Any]:
    """One book's figures. The keys of issue 15 first; then the largest exception in units of margin, the
    procyclicality figures (largest relative rise of the margin over 5 and 30 days) and the rebalancing."""
    tests = result.tests()
    days, exceptions = result.days, int(result.exceptions.sum())
    largest_usd, largest_margins = result.largest_exception()
    return {
        "name": result.name,
        "days": days,
        "exceptions": exceptions,
        "coverage": 1.0 - exceptions / days if days else None,
        "kupiec_pof_p": tests.kupiec_pof_p if days else None,
        "christoffersen_independence_p": tests.christoffersen_independence_p if days else None,
        "christoffersen_cc_p": tests.christoffersen_cc_p if days else None,
        "traffic_light": tests.traffic_light if days else None,
        "largest_exception_usd": largest_usd,
        "mean_mm_usd": float(result.mm_usd.mean()) if days else None,
        "rows": [
            {"date": d.isoformat(), "mm_usd": mm, "pnl_usd": pnl, "exception": hit}
            for d, mm, pnl, hit in zip(
                result.dates, result.mm_usd.tolist(), result.pnl_usd.tolist(), result.exceptions.tolist(), strict=True
            )
        ],
        "largest_exception_in_margins": largest_margins,
        **{f"largest_mm_rise_{n}d": result.largest_rise(n) for n in PROCYCLICALITY_DAYS},
        "mean_liquidity_addon_usd": float(result.liquidity_addon_usd.mean()) if days else None,
        "rebalance": result.rebalance,
    }


def backtest_document(results: list[BookBacktest], *, model: str, horizon_days: int) -> dict[str, Any]:
    return {
        "model": model,
        "horizon_days": horizon_days,
        "coverage_target": BACKTEST_COVERAGE,
        "books": [book_document(r) for r in results],
    }


def render_text(document: dict[str, Any]) -> str:
    lines = [f"margin backtest: model {document['model']}, horizon {document['horizon_days']} day(s), target "
             f"coverage {document['coverage_target']:.0%}"]
    header = f"{'book':<28} {'days':>5} {'exc':>4} {'coverage':>9} {'kupiec p':>9} {'ind p':>7} {'cc p':>7} " \
             f"{'zone':<7} {'mean MM':>12} {'worst exc':>11} {'x MM':>6} {'rise 5d':>8} {'rise 30d':>8}"
    lines.append(header)
    for b in document["books"]:
        if not b["days"]:
            lines.append(f"{b['name']:<28} {0:>5}  (no date with data)")
            continue
        lines.append(
            f"{b['name'][:28]:<28} {b['days']:>5} {b['exceptions']:>4} {b['coverage']:>9.4f} {b['kupiec_pof_p']:>9.3f} "
            f"{b['christoffersen_independence_p']:>7.3f} {b['christoffersen_cc_p']:>7.3f} {b['traffic_light']:<7} "
            f"{b['mean_mm_usd']:>12,.0f} {b['largest_exception_usd']:>11,.0f} "
            f"{_times(b['largest_exception_in_margins'])} "
            f"{b['largest_mm_rise_5d']:>8.1%} {b['largest_mm_rise_30d']:>8.1%}"
        )
    return "\n".join(lines) + "\n"


def _times(margins: float | None) -> str:
    return f"{'-':>6}" if margins is None else f"{margins:>6.2f}"


def write_files(document: dict[str, Any], results: list[BookBacktest], out: Path, *, tag: str = "") -> list[Path]:
    """backtest{tag}.json, rows{tag}.parquet and {book}{tag}.png under `out`."""
    out.mkdir(parents=True, exist_ok=True)
    written = [out / f"backtest{tag}.json", out / f"rows{tag}.parquet"]
    written[0].write_text(json.dumps(document, indent=1, allow_nan=False) + "\n")
    table = pa.table({
        "book": [r.name for r in results for _ in r.dates],
        "date": [d for r in results for d in r.dates],
        "mm_usd": [x for r in results for x in r.mm_usd.tolist()],
        "pnl_usd": [x for r in results for x in r.pnl_usd.tolist()],
        "exception": [x for r in results for x in r.exceptions.tolist()],
    })
    pq.write_table(table, written[1])
    for r in results:
        if r.days:
            written.append(plot_book(r, out / f"{slug(r.name)}{tag}.png", title=f"{r.name} ({document['model']})"))
    return written


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-") or "book"


def plot_book(result: BookBacktest, path: Path, *, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4), dpi=90)
    dates = np.array(result.dates, dtype="datetime64[D]")
    ax.plot(dates, -result.mm_usd, color="tab:red", linewidth=0.8, label="- maintenance margin")
    ax.plot(dates, result.pnl_usd, color="tab:blue", linewidth=0.5, alpha=0.7, label="realised P&L")
    hit = result.exceptions
    if hit.any():
        ax.scatter(dates[hit], result.pnl_usd[hit], color="black", marker="x", s=18, zorder=3, label="exception")
    ax.set_title(title)
    ax.set_ylabel("USD")
    ax.legend(loc="lower left", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
