"""Write docs/backtests.md: the standard books over the repository's whole recorded history, for both models.

    .venv/bin/python -m research.publish [DOCS_DIR]

Plots go to DOCS_DIR/backtests/ (one per book and model). The recommendation is drawn from the figures: the model
whose every standard book meets the targets (coverage >= 99% and Kupiec p > 0.05) over 2017-2025; of two that do,
the one needing less margin. When no model meets both on every book, the one covering 99% on more books (ties:
the one needing less margin).
"""

from __future__ import annotations

import json
import pickle
import sys
import time
from datetime import date
from functools import cache
from importlib import resources
from multiprocessing import Pool
from pathlib import Path
from typing import Any

import numpy as np

from research.backtest import BACKTEST_COVERAGE, BookBacktest, MarketTape, run_book
from research.books import BooksFile
from research.reference import describe, shipped_prices, shipped_vols
from research.report import book_document, plot_book, slug
from risk_core.schema.params import default_params

MODELS = ("grid", "fhs")
TARGET_FROM = date(2017, 1, 1)
KUPIEC_MIN_P = 0.05
COMMAND = ".venv/bin/python -m research.publish"
WORKERS = 2
# The evidence's sensitivity (issue 15): the standard books again with one change each, every change a choice of
# CCP practice rather than a fit to these backtests. The margin does not depend on the backtest's horizon; its
# exceptions do.
VARIANTS: tuple[tuple[str, str, int, dict[str, Any]], ...] = (
    ("grid, 2-day horizon", "grid", 2, {}),
    ("fhs, 2-day horizon (its margin period of risk)", "fhs", 2, {}),
    ("fhs, no stressed floor (stress_weight 0)", "fhs", 1, {"fhs": {"stress_weight": 0.0}}),
    ("fhs, 1-day margin period of risk", "fhs", 1, {"fhs": {"margin_period_days": 1}}),
    ("fhs, EWMA lambda 0.97", "fhs", 1, {"fhs": {"ewma_lambda": 0.97}}),
    ("fhs, EWMA lambda 0.99", "fhs", 1, {"fhs": {"ewma_lambda": 0.99}}),
    ("fhs, ES at 97.5% (FRTB's match of a 99% VaR), 2-day horizon", "fhs", 2, {"fhs": {"confidence": 0.975}}),
)


def standard_books() -> BooksFile:
    text = resources.files("research").joinpath("standard_books.json").read_text()
    return BooksFile.model_validate(json.loads(text))


@cache
def _tape() -> MarketTape:
    prices = shipped_prices()
    return MarketTape(prices, shipped_vols(prices))


def _run_one(task: tuple[str, int, str, int]) -> tuple[BookBacktest, float]:
    """One (model, horizon, parameter overrides as JSON, book index): its backtest and the seconds it took."""
    model, horizon, overrides, index = task
    params = default_params().with_overrides({"model": model, **json.loads(overrides)})
    book = standard_books().books[index]
    started = time.perf_counter()
    result = run_book(book, _tape(), params, horizon_days=horizon, first=None, last=None, where=book.name)
    return result, time.perf_counter() - started


def main(argv: list[str]) -> int:
    """argv: [DOCS_DIR [RESULTS.pickle]]: with a results file, its backtests are reused when it exists (to render
    again without rerunning), else written there."""
    docs = Path(argv[0]) if argv else Path("docs")
    saved = Path(argv[1]) if len(argv) > 1 else None
    plots = docs / "backtests"
    if saved is not None and saved.exists():
        results, seconds, variants = pickle.loads(saved.read_bytes())
    else:
        n_books = len(standard_books().books)
        runs: list[tuple[str, str, int, dict[str, Any]]] = [(m, m, 1, {}) for m in MODELS] + list(VARIANTS)
        tasks = [(model, horizon, json.dumps(overrides), j) for _, model, horizon, overrides in runs
                 for j in range(n_books)]
        with Pool(WORKERS) as pool:  # the books are independent: one process per core
            done = pool.map(_run_one, tasks, chunksize=1)
        by_run: dict[str, list[BookBacktest]] = {label: [] for label, _, _, _ in runs}
        seconds = dict.fromkeys(MODELS, 0.0)
        for k, (result, took) in enumerate(done):
            label = runs[k // n_books][0]
            by_run[label].append(result)
            if label in seconds:
                seconds[label] += took
        results = {m: by_run[m] for m in MODELS}
        variants = {label: by_run[label] for label, _, _, _ in VARIANTS}
        if saved is not None:
            saved.write_bytes(pickle.dumps((results, seconds, variants)))
    plots.mkdir(parents=True, exist_ok=True)
    for model in MODELS:
        for r in results[model]:
            if r.days:
                plot_book(r, plots / f"{slug(r.name)}-{model}.png", title=f"{r.name} ({model})")
    tape = _tape()
    text = render(results, seconds, describe(tape.prices), describe(tape.vols) if tape.vols else "none", variants)
    (docs / "backtests.md").write_text(text)
    return 0


def _row(r: BookBacktest) -> str:
    b = book_document(r)
    if not b["days"]:
        return f"| {r.name} | - | 0 | | | | | | | | | |"
    times_mm = b["largest_exception_in_margins"]
    return (
        f"| {r.name} | {r.dates[0]}..{r.dates[-1]} | {b['days']} | {b['exceptions']} | {b['coverage']:.4f} | "
        f"{b['kupiec_pof_p']:.3f} | {b['christoffersen_independence_p']:.3f} | {b['christoffersen_cc_p']:.3f} | "
        f"{b['traffic_light']} | {b['mean_mm_usd']:,.0f} | {b['largest_exception_usd']:,.0f} "
        f"({'-' if times_mm is None else f'{times_mm:.2f}'}x) | {b['largest_mm_rise_5d']:.0%} / "
        f"{b['largest_mm_rise_30d']:.0%} |"
    )


_HEADER = (
    "| book | dates | days | exceptions | coverage | Kupiec p | Christoffersen ind. p | cond. cov. p | zone | "
    "mean MM (USD) | largest exception (USD, x MM) | MM rise 5d / 30d |\n|" + "---|" * 12
)


def meets_targets(r: BookBacktest) -> bool:
    if not r.days:
        return False
    exceptions = int(r.exceptions.sum())
    return 1.0 - exceptions / r.days >= BACKTEST_COVERAGE and r.tests().kupiec_pof_p > KUPIEC_MIN_P


def margin_ratio(grid: BookBacktest, other: BookBacktest) -> tuple[float, int] | None:
    """(mean margin of `other` / the grid's on their common dates, how many), None without common dates."""
    common = np.array(sorted(set(grid.dates) & set(other.dates)), dtype="datetime64[D]")
    if not common.size:
        return None
    gi = np.isin(np.array(grid.dates, dtype="datetime64[D]"), common)
    oi = np.isin(np.array(other.dates, dtype="datetime64[D]"), common)
    return float(other.mm_usd[oi].mean() / grid.mm_usd[gi].mean()), int(common.size)


def render(
    results: dict[str, list[BookBacktest]], seconds: dict[str, float], prices: str, vols: str,
    variants: dict[str, list[BookBacktest]] | None = None,
) -> str:
    recent = {m: [r.since(TARGET_FROM) for r in rs] for m, rs in results.items()}
    passing = {m: [meets_targets(r) for r in rs] for m, rs in recent.items()}
    ratios = []
    for g, f in zip(recent["grid"], recent["fhs"], strict=True):
        found = margin_ratio(g, f)
        if found is not None:
            ratios.append((g.name, *found))
    covered = {m: [r.days > 0 and 1.0 - int(r.exceptions.sum()) / r.days >= BACKTEST_COVERAGE for r in rs]
               for m, rs in recent.items()}
    over = {m: sum(1 for r in rs if r.days and int(r.exceptions.sum()) < (1.0 - BACKTEST_COVERAGE) * r.days
                   and r.tests().kupiec_pof_p <= KUPIEC_MIN_P) for m, rs in recent.items()}
    mean_ratio = float(np.mean([ratio for _, ratio, _ in ratios])) if ratios else float("nan")
    cheaper_fhs = sum(1 for _, ratio, _ in ratios if ratio < 1.0)
    if all(covered["grid"]) and all(covered["fhs"]):
        recommended = "fhs" if mean_ratio < 1.0 else "grid"
        why = (f"both models cover at least {BACKTEST_COVERAGE:.0%} of days on every standard book over 2017-2025; "
               f"the {recommended} model does it with less margin (FHS / grid mean margin {mean_ratio:.2f} on "
               f"average over the books, FHS lower on {cheaper_fhs} of {len(ratios)})")
    else:
        recommended = max(MODELS, key=lambda m: (sum(covered[m]), -mean_ratio if m == "fhs" else -1.0))
        why = (f"it covers at least {BACKTEST_COVERAGE:.0%} of days on more standard books over 2017-2025 "
               f"({sum(covered[recommended])} of {len(covered[recommended])})")
    kupiec_note = "" if not over["grid"] + over["fhs"] else (
        f"Kupiec's test rejects {over['grid']} grid and {over['fhs']} fhs books of 10 with p <= {KUPIEC_MIN_P} for "
        "too *few* exceptions: on those books the model over-covers a one-day horizon (the fhs margin is sized for "
        "a 2-day margin period of risk; the grid's fixed range is wide for one day in most regimes), so there the "
        "margin is conservative rather than short, and the target 'Kupiec p > 0.05' is not met."
    )
    params = default_params()
    out = [
        "# Margin backtests",
        "",
        f"Generated by `{COMMAND}` (parameters {params.version}; the books' backtests took grid "
        f"{seconds['grid']:.0f} s, fhs {seconds['fhs']:.0f} s, summed over books, on the machine that wrote it, "
        "shared with other work). Do not edit by hand.",
        "",
        "Each standard book (research/standard_books.json, $1M notional, legs rebuilt every day at constant "
        "maturity and notional) is margined at 00:00 UTC of every day of the repository's recorded history with "
        "only what was known then, and revalued one day later; an exception is a loss above the maintenance "
        "margin. Targets (issue 15): coverage >= 99% and Kupiec p > 0.05 over 2017-2025.",
        "",
        f"- Prices: {prices} (reference_data/market/prices; WSTETH = ETH x Chainlink stETH/ETH where recorded).",
        f"- ATM vols: {vols}: Deribit BTC DVOL from 2022-11; elsewhere (BTC before, ETH, SOL) a proxy, the 30-day "
        "realised vol of the closes before the day. Options books before 2022-11 are therefore priced on a "
        "realised-vol proxy, not on recorded implied vols.",
        "- The liquidity add-on is zero for these $1M books (below every asset's depth).",
        "",
        f"## Recommendation: **{recommended}**",
        "",
        f"Because {why}. The parameter file's default is `model = \"{params.model}\"`"
        + (" and stays so." if recommended == params.model else f"; the evidence favours `{recommended}`."),
        "",
        kupiec_note,
        "",
        "Over 2017-2025: coverage >= 99%, and both targets (coverage >= 99% and Kupiec p > 0.05) met:",
        "",
        "| book | grid: coverage / both | fhs: coverage / both | FHS / grid mean margin (common dates) |",
        "|---|---|---|---|",
    ]
    ratio_of = {name: (ratio, n) for name, ratio, n in ratios}
    for j, r in enumerate(recent["grid"]):
        ratio, n = ratio_of.get(r.name, (float("nan"), 0))
        cells = [f"{'yes' if covered[m][j] else 'no'} / {'yes' if passing[m][j] else 'no'}" for m in MODELS]
        out.append(f"| {r.name} | {cells[0]} | {cells[1]} | {ratio:.2f} ({n} days) |")
    out += _by_year(recent)
    out += _sensitivity(recent, variants or {})
    for label, chosen in (("2017-2025", recent), ("whole history", results)):
        for model in MODELS:
            out += ["", f"## {model}, {label}", "", _HEADER]
            out += [_row(r) for r in chosen[model]]
    out += ["", "## Plots (whole history: the negated margin in red, realised one-day P&L in blue, exceptions x)", ""]
    for r in results["grid"]:
        out.append(f"### {r.name}")
        out.append("")
        for model in MODELS:
            out.append(f"![{r.name}, {model}](backtests/{slug(r.name)}-{model}.png)")
        out.append("")
    return "\n".join(out) + "\n"


def _by_year(recent: dict[str, list[BookBacktest]]) -> list[str]:
    """FHS / grid mean margin per book and calendar year (common dates): what the lookback holds moves it."""
    years = sorted({d.year for r in recent["grid"] for d in r.dates})
    out = [
        "",
        "## FHS / grid mean margin by year",
        "",
        "The fhs margin follows what its 2,500-day lookback holds. Through 2022 the lookback still reaches back "
        "to 2016 or before: BTC's early swings and ETH's first, thin year, with large moves of one asset alone "
        "that a spread or a hedge does not offset, so the fhs model asks more than the grid of every book but the "
        "calendar (and SOL, whose own record starts in 2020), the spread included. With those years out of the "
        "lookback it asks less of the hedged books (the spread, the calendar) and 0.8-1.3x the grid's of the rest. The "
        "stressed floor adds to every year.",
        "",
        "| book | " + " | ".join(str(y) for y in years) + " |",
        "|---|" + "---|" * len(years),
    ]
    for g, f in zip(recent["grid"], recent["fhs"], strict=True):
        cells = []
        for year in years:
            found = margin_ratio(g.between(date(year, 1, 1), date(year, 12, 31)),
                                 f.between(date(year, 1, 1), date(year, 12, 31)))
            cells.append("" if found is None else f"{found[0]:.2f}")
        out.append(f"| {g.name} | " + " | ".join(cells) + " |")
    return out


def _sensitivity(recent: dict[str, list[BookBacktest]], variants: dict[str, list[BookBacktest]]) -> list[str]:
    """The table of VARIANTS over 2017-2025, beside the shipped models, and what it shows."""
    if not variants:
        return []
    horizon = {label: h for label, _, h, _ in VARIANTS}
    rows = [(f"{m} as shipped", 1, recent[m]) for m in MODELS]
    rows += [(label, horizon[label], [r.since(TARGET_FROM) for r in rs]) for label, rs in variants.items()]
    out = [
        "",
        "## Sensitivity (2017-2025): why the targets are not met, and what moves the figures",
        "",
        "The standard books again, with one change each: a choice of CCP practice, not a fit to these backtests "
        "(the shipped parameters are unchanged). A margin does not depend on the backtest's horizon, its "
        "exceptions do: a 2-day horizon compares each margin with the 2-day loss, the close-out period the fhs "
        "margin is sized for. Exceptions per book in the order of the tables below; Kupiec's test accepts "
        f"(p > {KUPIEC_MIN_P}) about 0.65-1.4% exceptions over these spans, and coverage >= 99% allows at most 1%.",
        "",
        "| variant | horizon (days) | exceptions per book | books covering 99% | books meeting both targets | "
        "mean margin / grid's |",
        "|---|---|---|---|---|---|",
    ]
    for label, days, books in rows:
        found = [margin_ratio(g, b) for g, b in zip(recent["grid"], books, strict=True)]
        ratio = float(np.mean([f[0] for f in found if f is not None])) if any(found) else float("nan")
        hits = ", ".join(str(int(b.exceptions.sum())) for b in books)
        covered = sum(1 for b in books if b.days and 1.0 - int(b.exceptions.sum()) / b.days >= BACKTEST_COVERAGE)
        both = sum(1 for b in books if meets_targets(b))
        out.append(f"| {label} | {days} | {hits} | {covered} / {len(books)} | {both} / {len(books)} | {ratio:.2f} |")
    out += [
        "",
        "What the table shows: both models over-cover. Over ~3,000 days a calibrated 99% margin has ~30 exceptions; "
        "the grid has a handful on most books (its fixed +/-16% or 25% range is a several-sigma day in most "
        "regimes, and short of one in the worst), the fhs model fewer still, because its margin is the expected "
        "shortfall at 99% (the mean of the worst 1%: a 99.6% quantile for a normal law, beyond it for fatter "
        "tails) of a 2-day "
        "move, floored by a quarter of the stressed window's, and backtested against 1-day moves. Kupiec's test "
        "then rejects both for too few exceptions: the coverage target is met, the calibration target is not, by "
        "being conservative. Removing the stressed floor or shortening the margin period of risk lowers the fhs "
        "margin but leaves it above a 99% quantile; lambda changes little. Backtesting over the 2-day margin "
        "period of risk (what the fhs margin promises) raises the exceptions of both models; the grid's fixed "
        "range then falls short on the most volatile books while still over-covering the rest.",
    ]
    return out


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
