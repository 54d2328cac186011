"""Margin engine benchmark: one wallet, a batch of wallets, and QuantLib's per-option pricing as the peer.

    .venv/bin/python benchmarks/bench_margin.py [--wallets 10000] [--seed 7]

Everything is generated from a seed: a market snapshot on BTC, ETH and SOL (forwards and SVI surfaces on a
Deribit-like expiry calendar), a universe of instruments (a few thousand options on realistic strike grids,
coin- and USD-settled; perps; dated futures; spot, lend and borrow; Uniswap v3 ranges) and wallets of 100
mixed positions drawn from it, strikes near the money drawn more often, as users trade them.
"""

from __future__ import annotations

import os

# One BLAS thread unless told otherwise, set before numpy loads: the engine's matrix products are small, and on a
# 2-core machine OpenBLAS's spinning worker threads contend with the main thread (p99 latency 5-10x worse when
# another process is busy). A latency-sensitive service should run the same way.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import gc  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from risk_core.margin.batch import collect_holdings, compute_holdings_margin  # noqa: E402
from risk_core.margin.book import RevaluedBook, resolve_book  # noqa: E402
from risk_core.margin.engine import compute_margin  # noqa: E402
from risk_core.margin.instruments import UNIT_PLACE  # noqa: E402
from risk_core.margin.risk_arrays import RiskArrays  # noqa: E402
from risk_core.pricing.black76 import black76_price  # noqa: E402
from risk_core.pricing.vol_surface import year_fraction  # noqa: E402
from risk_core.schema.market import MarketSnapshot, SVISlice, SVISurface  # noqa: E402
from risk_core.schema.params import RiskParams, default_params  # noqa: E402
from risk_core.schema.positions import (  # noqa: E402
    FuturePosition,
    LPPosition,
    OptionPosition,
    PerpPosition,
    Position,
    PositionAdapter,
    SpotPosition,
)

AS_OF = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
SPOT = {"BTC": 93_000.0, "ETH": 3_000.0, "SOL": 140.0, "USDC": 1.0}
ATM_VOL = {"BTC": 0.50, "ETH": 0.65, "SOL": 0.85}
CARRY = {"BTC": 0.06, "ETH": 0.05, "SOL": 0.04}  # annualised basis of the futures curve
TYPICAL_SIZE = {"BTC": 1.0, "ETH": 15.0, "SOL": 300.0}  # a contract count of a retail/pro book, in coin
WALLET_MIX = {"option": 60, "perp": 8, "future": 4, "spot": 8, "lend": 6, "borrow": 5, "lp": 9}


def _expiries() -> list[datetime]:
    """Deribit-like: three dailies, four Friday weeklies, last Fridays of the next months and two quarterlies."""
    at_eight = AS_OF.replace(hour=8, minute=0, second=0, microsecond=0)
    out = {at_eight + timedelta(days=d) for d in (1, 2, 3)}
    friday = at_eight + timedelta(days=(4 - at_eight.weekday()) % 7 or 7)
    out |= {friday + timedelta(weeks=w) for w in range(4)}
    for months_ahead in (1, 2, 3, 4, 7, 10):
        year, month = AS_OF.year + (AS_OF.month + months_ahead - 1) // 12, (AS_OF.month + months_ahead - 1) % 12 + 1
        nxt = datetime(year + (month == 12), month % 12 + 1, 1, 8, tzinfo=UTC)
        last = nxt - timedelta(days=1)
        out.add(last - timedelta(days=(last.weekday() - 4) % 7))
    return sorted(out)


def build_market(expiries: Sequence[datetime]) -> MarketSnapshot:
    forwards: dict[str, dict[datetime, float]] = {}
    vol: dict[str, SVISurface] = {}
    for asset, atm in ATM_VOL.items():
        forwards[asset] = {e: SPOT[asset] * math.exp(CARRY[asset] * year_fraction(AS_OF, e)) for e in expiries}
        slices = []
        for e in expiries:
            t = year_fraction(AS_OF, e)
            level = atm * (1.0 + 0.25 * math.exp(-t * 12.0))  # inverted term structure at the front
            w_atm = level**2 * t
            b, rho, sig = 0.9 * level * math.sqrt(t), -0.25, 0.15
            a = w_atm - b * (math.sqrt(sig * sig))  # w(0) = a + b sig with m = 0
            slices.append(SVISlice(expiry=e, a=a, b=b, rho=rho, m=0.0, sigma=sig))
        vol[asset] = SVISurface(svi=slices)
    return MarketSnapshot(as_of=AS_OF, spot=SPOT, forwards=forwards, vol=vol)


def _nice_step(x: float) -> float:
    magnitude = 10.0 ** math.floor(math.log10(x))
    return min((m * magnitude for m in (1.0, 2.0, 2.5, 5.0, 10.0)), key=lambda s: abs(s - x))


@dataclass(frozen=True)
class OptionSpec:
    underlying: str
    expiry: datetime
    strike: float
    call: bool
    settlement: str
    forward: float
    years: float
    popularity: float


def option_universe(market: MarketSnapshot, expiries: Sequence[datetime]) -> list[OptionSpec]:
    """Strike grids per (asset, expiry): about +-3.5 standard deviations, ~20-40 strikes each, nice steps.

    Deribit lists BTC and ETH coin-settled options on every expiry; the USD-settled venue lists BTC, ETH and SOL
    on the weeklies and monthlies only.
    """
    specs: list[OptionSpec] = []
    for asset, atm in ATM_VOL.items():
        for e in expiries:
            t = year_fraction(AS_OF, e)
            fwd = market.forwards[asset][e]
            sd = atm * math.sqrt(t)
            step = _nice_step(fwd * sd / 6.0)
            lo, hi = fwd * math.exp(-3.5 * sd), fwd * math.exp(3.5 * sd)
            strikes = np.arange(math.ceil(lo / step), math.floor(hi / step) + 1) * step
            settlements = []
            if asset in ("BTC", "ETH"):
                settlements.append("inverse")
            if t > 3.5 / 365:
                settlements.append("linear")
            for settlement in settlements:
                for k in strikes:
                    z = math.log(k / fwd) / sd
                    for call in (True, False):
                        otm = (z > 0) == call
                        popularity = math.exp(-0.5 * z * z) * (1.0 if otm else 0.35) / (1.0 + 20.0 * t)
                        specs.append(OptionSpec(asset, e, float(k), call, settlement, fwd, t, popularity))
    return specs


def _with(template: Position, **update: Any) -> Position:
    """`template.model_copy(update=...)` without its overhead (model_copy costs ~10 us; this ~1.5 us): a
    validated template with new values of the same types. Checked against validation in `main`."""
    clone = template.__class__.__new__(template.__class__)
    values = template.__dict__.copy()
    values.update(update)
    object.__setattr__(clone, "__dict__", values)
    object.__setattr__(clone, "__pydantic_fields_set__", template.__pydantic_fields_set__ | update.keys())
    object.__setattr__(clone, "__pydantic_extra__", None)
    object.__setattr__(clone, "__pydantic_private__", None)
    return clone


def _account(w: int) -> str:
    return f"0x{w:040x}"


def make_wallets(
    n_wallets: int, market: MarketSnapshot, options: Sequence[OptionSpec], expiries: Sequence[datetime], seed: int
) -> list[list[Position]]:
    """Wallets of 100 positions (WALLET_MIX). Random draws are made for all wallets at once; each position is a
    copy of a validated template of its instrument and place with its own size and account."""
    rng = np.random.default_rng(seed)
    n = n_wallets
    pop = np.array([o.popularity for o in options])
    assets = ["BTC", "ETH", "SOL"]
    quarterlies = [e for e in expiries if year_fraction(AS_OF, e) > 0.1]
    perp_venues = [("hyperliquid", "hyperliquid"), ("deribit", "offchain"), ("gmx", "arbitrum")]
    lp_pools = [("ETH", "USDC"), ("BTC", "USDC"), ("SOL", "USDC"), ("ETH", "BTC")]
    chains = ["ethereum", "arbitrum"]
    templates: dict[tuple[Any, ...], Position] = {}  # a validated position per instrument and place

    def option(j: int) -> Position:
        o = options[j]
        venue, chain = ("deribit", "offchain") if o.settlement == "inverse" else ("derive", "derive")
        return OptionPosition(kind="option", venue=venue, chain=chain, account="-", underlying=o.underlying,
                              quantity=1.0, option_type="call" if o.call else "put", strike=o.strike,
                              expiry=o.expiry, settlement=o.settlement)  # type: ignore[arg-type]

    mix = WALLET_MIX
    opt_j = rng.choice(len(options), size=(n, mix["option"]), p=pop / pop.sum())
    opt_q = rng.lognormal(-1.0, 0.8, size=opt_j.shape) * np.where(rng.random(opt_j.shape) < 0.55, -1.0, 1.0)
    perp_a = rng.choice(3, size=(n, mix["perp"]), p=[0.45, 0.4, 0.15])
    perp_v = rng.integers(3, size=perp_a.shape)
    perp_q = rng.normal(0.0, 1.5, size=perp_a.shape)
    perp_e = rng.normal(0.0, 0.08, size=perp_a.shape)
    fut_a = rng.integers(2, size=(n, mix["future"]))
    fut_x = rng.integers(len(quarterlies), size=fut_a.shape)
    fut_q = rng.normal(0.0, 1.0, size=fut_a.shape)
    fut_e = rng.normal(0.0, 0.05, size=fut_a.shape)
    spot_a = rng.integers(4, size=(n, mix["spot"]))
    spot_c = rng.integers(2, size=spot_a.shape)
    spot_q = rng.lognormal(0.0, 0.7, size=spot_a.shape)
    lend_a = rng.integers(4, size=(n, mix["lend"]))
    lend_c = rng.integers(2, size=lend_a.shape)
    lend_q = rng.lognormal(0.0, 0.5, size=lend_a.shape)
    borrow_a = rng.integers(2, size=(n, mix["borrow"]))
    borrow_c = rng.integers(2, size=borrow_a.shape)
    borrow_q = rng.lognormal(0.0, 0.5, size=borrow_a.shape)
    lp_p = rng.choice(len(lp_pools), size=(n, mix["lp"]), p=[0.55, 0.25, 0.12, 0.08])
    lp_lo = rng.integers(-8, 0, size=lp_p.shape)
    lp_hi = rng.integers(1, 9, size=lp_p.shape)
    lp_c = rng.integers(2, size=lp_p.shape)
    lp_q = rng.lognormal(0.0, 0.6, size=lp_p.shape)
    tick = 1.02  # LP ranges on a 2% tick lattice around the pool price

    wallets: list[list[Position]] = []
    for w in range(n):
        acct = _account(w)
        book: list[Position] = []
        for j, q in zip(opt_j[w].tolist(), opt_q[w].tolist(), strict=True):
            t = templates.get(("option", j)) or templates.setdefault(("option", j), option(j))
            size = round(q * TYPICAL_SIZE[options[j].underlying], 2) or 0.01
            book.append(_with(t, quantity=size, account=acct))
        for a_i, v_i, q, e in zip(*(x[w].tolist() for x in (perp_a, perp_v, perp_q, perp_e)), strict=True):
            a = assets[a_i]
            venue, chain = perp_venues[v_i]
            t = templates.get(("perp", a, venue)) or templates.setdefault(("perp", a, venue), PerpPosition(
                kind="perp", venue=venue, chain=chain, account="-", underlying=a, quantity=1.0))
            book.append(_with(t, quantity=round(float(q) * TYPICAL_SIZE[a], 3) or 0.1,
                                             account=acct, entry_price=round(SPOT[a] * math.exp(e), 2)))
        for a_i, x_i, q, e in zip(*(x[w].tolist() for x in (fut_a, fut_x, fut_q, fut_e)), strict=True):
            a, x = assets[a_i], quarterlies[x_i]
            t = templates.get(("future", a, x)) or templates.setdefault(("future", a, x), FuturePosition(
                kind="future", venue="deribit", chain="offchain", account="-", underlying=a, quantity=1.0, expiry=x))
            entry = round(market.forwards[a][x] * math.exp(e), 2)
            book.append(_with(t, quantity=round(float(q) * TYPICAL_SIZE[a], 3) or 0.1,
                                             account=acct, entry_price=entry))
        for k, (a_i, c_i, q) in enumerate(zip(*(x[w].tolist() for x in (spot_a, spot_c, spot_q)), strict=True)):
            a = "USDC" if k == 0 else ["BTC", "ETH", "SOL", "USDC"][a_i]
            chain = "solana" if a == "SOL" else chains[c_i]
            t = templates.get(("spot", a, chain)) or templates.setdefault(("spot", a, chain), SpotPosition(
                kind="spot", venue="wallet", chain=chain, account="-", asset=a, quantity=1.0))
            size = 400_000.0 if k == 0 else round(float(q) * TYPICAL_SIZE.get(a, 20_000.0), 4)
            book.append(_with(t, quantity=size, account=acct))
        for kind, pool, a_row, c_row, q_row, scale in (
            ("lend", ["ETH", "BTC", "USDC", "SOL"], lend_a[w].tolist(), lend_c[w].tolist(), lend_q[w].tolist(), 1.0),
            ("borrow", ["USDC", "ETH"], borrow_a[w].tolist(), borrow_c[w].tolist(), borrow_q[w].tolist(), 0.3),
        ):
            for a_i, c_i, q in zip(a_row, c_row, q_row, strict=True):
                a, chain = pool[a_i], chains[c_i]
                fields = {"kind": kind, "venue": "aave-v3", "chain": chain, "account": "-", "asset": a, "quantity": 1.0}
                t = templates.get((kind, a, chain)) or templates.setdefault(
                    (kind, a, chain), PositionAdapter.validate_python(fields))
                size = round(float(q) * scale * TYPICAL_SIZE.get(a, 20_000.0), 4)
                book.append(_with(t, quantity=size, account=acct))
        for p_i, lo, hi, c_i, q in zip(*(x[w].tolist() for x in (lp_p, lp_lo, lp_hi, lp_c, lp_q)), strict=True):
            t0, t1 = lp_pools[p_i]
            price = SPOT[t0] / SPOT[t1]
            key = ("lp", p_i, lo, hi, c_i)
            t = templates.get(key) or templates.setdefault(key, LPPosition(
                kind="lp", venue="uniswap-v3", chain=chains[c_i], account="-", token0=t0, token1=t1, liquidity=1.0,
                price_lower=price * tick**lo, price_upper=price * tick**hi))
            unit = math.sqrt(price) * (tick ** (hi / 2) - tick ** (lo / 2)) * SPOT[t1]  # USD value of L = 1
            book.append(_with(t, liquidity=round(float(q) * 20_000.0 / unit, 3), account=acct))
        wallets.append(book)
    return wallets


# --------------------------------------------------------------------------------------------------- timing


def _timings(fn: Callable[[], object], *, repeat: int, budget_s: float) -> list[float]:
    """Wall times (s) of up to `repeat` calls, stopping once `budget_s` is spent (at least 5 calls)."""
    times: list[float] = []
    spent = 0.0
    while len(times) < repeat and (spent < budget_s or len(times) < 5):
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        times.append(dt)
        spent += dt
    return times


def _median_p99(times: Sequence[float]) -> tuple[float, float]:
    ordered = sorted(times)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)]


@dataclass
class Row:
    what: str
    figure: str
    note: str = ""


def bench_single(wallets: Sequence[Sequence[Position]], market: MarketSnapshot, params: RiskParams) -> list[Row]:
    """One wallet at a time, cycling through `wallets` (different books, as a service sees them).

    The steady state of a service: the snapshot's instruments are already valued (risk_core.margin.instruments;
    after the warm-up every listed instrument the 200 wallets hold is), so a book is gathered from them. The
    stages of compute_margin are timed one after the other; then the whole report, and the cold path (every
    instrument resolved and revalued with the book, as on the first request after a new snapshot). Wall time
    and this thread's CPU time: on a shared machine the wall p99 is mostly time spent descheduled."""
    from risk_core.margin.instruments import priced_instruments, resolve_book_cached
    from risk_core.margin.liquidation import liquidation_moves

    names = ("gather", "arrays", "figure", "standalone", "liquidation")
    wall: dict[str, list[float]] = {k: [] for k in (*names, "margin figure", "full", "cold figure", "cold full")}
    cpu: dict[str, list[float]] = {k: [] for k in wall}
    clocks = (time.perf_counter, time.thread_time)
    for wallet in wallets:  # warm-up: every instrument of these wallets valued on the snapshot
        compute_margin(wallet, market, params)

    def cold_report(wallet: Sequence[Position]) -> None:
        # the engine on a fresh copy of the snapshot: nothing valued on it yet (the copy's cache dies with it)
        compute_margin(wallet, market.model_copy(), params)

    def cold_figure(wallet: Sequence[Position]) -> None:
        book = resolve_book(wallet, market, params)
        arrays = RiskArrays(book, params)
        arrays.position_values()
        arrays.margin(np.ones((1, len(wallet))))

    # each regime timed in its own loop, so that one regime's allocations do not cool the caches of another's
    spent, i = 0.0, 0
    while i < 2000 and (spent < 5.0 or i < 50):
        wallet = wallets[i % len(wallets)]
        marks = [tuple(c() for c in clocks)]
        book = resolve_book_cached(wallet, market, params, max_rise=10.0)
        marks.append(tuple(c() for c in clocks))
        arrays = RiskArrays(book, params)
        marks.append(tuple(c() for c in clocks))
        arrays.position_values()
        mm = float(arrays.margin(np.ones((1, len(wallet)))).maintenance[0])
        marks.append(tuple(c() for c in clocks))
        arrays.standalone_margins()
        marks.append(tuple(c() for c in clocks))
        liquidation_moves(book, 2.0 * mm, mm, max_rise=10.0)
        marks.append(tuple(c() for c in clocks))
        for name, k in zip(names, range(5), strict=True):
            wall[name].append(marks[k + 1][0] - marks[k][0])
            cpu[name].append(marks[k + 1][1] - marks[k][1])
        wall["margin figure"].append(marks[3][0] - marks[0][0])
        cpu["margin figure"].append(marks[3][1] - marks[0][1])
        spent += marks[-1][0] - marks[0][0]
        i += 1
    for name, step, budget in (("full", lambda w: compute_margin(w, market, params), 5.0),
                               ("cold figure", cold_figure, 3.0), ("cold full", cold_report, 3.0)):
        spent, j = 0.0, 0
        while j < 2000 and (spent < budget or j < 50):
            start = tuple(c() for c in clocks)
            step(wallets[j % len(wallets)])
            end = tuple(c() for c in clocks)
            wall[name].append(end[0] - start[0])
            cpu[name].append(end[1] - start[1])
            spent += end[0] - start[0]
            j += 1

    def fmt(name: str) -> str:
        med, p99 = _median_p99(wall[name])
        return (f"{med * 1e3:.3f} ms median, {p99 * 1e3:.3f} ms p99, {min(wall[name]) * 1e3:.3f} ms min "
                f"(CPU median {statistics.median(cpu[name]) * 1e3:.3f} ms)")

    book = resolve_book(wallets[0], market, params)
    n_scen = sorted({r.scenarios.size for r in book.underlyings.values()})
    valued = priced_instruments(market, params, 10.0).size
    return [
        Row("single wallet", f"{len(wallets[0])} positions, {len(book.underlyings)} underlyings, "
            f"{'/'.join(map(str, n_scen))} scenarios each", f"{i} staged calls over {len(wallets)} wallets"),
        Row("  1. gather the book (instruments valued once)", fmt("gather"),
            f"{valued:,} instruments valued on the snapshot"),
        Row("  2. RiskArrays (P&L, deltas, groups)", fmt("arrays"), "the risk-array part"),
        Row("  3. margin(W=1) + position values", fmt("figure"), ""),
        Row("margin figure (1 + 2 + 3)", fmt("margin figure"), "what the batch path gives per wallet"),
        Row("  standalone margins", fmt("standalone"), "report only"),
        Row("  liquidation distances (all underlyings)", fmt("liquidation"), "report only"),
        Row("compute_margin: full MarginReport", fmt("full"),
            "adds greeks, grids, standalone, breakdowns, liquidation distances"),
        Row("cold: margin figure, book resolved and revalued", fmt("cold figure"),
            "resolve_book + RiskArrays + margin: a snapshot's first look at these instruments"),
        Row("cold: full MarginReport on a new snapshot", fmt("cold full"), "values the book's instruments first"),
    ]


def bench_batch(
    wallets: Sequence[Sequence[Position]], market: MarketSnapshot, params: RiskParams, *, runs: int
) -> tuple[list[Row], dict[str, Any]]:
    collect, core, total = [], [], []
    result = None
    holdings = None
    for _ in range(runs):
        t0 = time.perf_counter()
        holdings = collect_holdings(wallets)
        t1 = time.perf_counter()
        result = compute_holdings_margin(holdings, market, params)
        t2 = time.perf_counter()
        collect.append(t1 - t0)
        core.append(t2 - t1)
        total.append(t2 - t0)
    assert result is not None and holdings is not None
    for w in sorted({0, len(wallets) // 2, len(wallets) - 1}):  # the batch agrees with compute_margin
        report = compute_margin(wallets[w], market, params)
        for got, want in ((result.maintenance_margin_usd[w], report.maintenance_margin_usd),
                          (result.collateral_usd[w], report.collateral_usd)):
            assert abs(float(got) - want) <= 1e-9 * abs(want), (w, float(got), want)
    med_collect, med_core, med_total = (statistics.median(x) for x in (collect, core, total))
    rate_total = result.position_scenarios / med_total
    rate_core = result.position_scenarios / med_core
    n_options = sum(1 for p in holdings.instruments if p.kind == "option")

    # the same wallets as a researcher's table (Parquet, a database): one row per position, an instrument table,
    # places and chains as integer codes. Converted once, untimed, by a plain Python pass.
    from risk_core.margin.batch import holdings_from_columns

    not_instrument = {"venue", "chain", "account", "id", "provenance", "quantity", "liquidity", "entry_price"}
    instrument_index: dict[tuple[Any, ...], int] = {}
    table_instruments: list[Position] = []
    place_code: dict[tuple[str, str, str], int] = {}
    chain_code: dict[str, int] = {}
    table: dict[str, list[Any]] = {name: [] for name in ("wallet", "instrument", "size", "entry_price",
                                                         "venue_account", "chain")}
    for w, book in enumerate(wallets):
        for p in book:
            fields = p.__dict__
            key = tuple(v for k, v in fields.items() if k not in not_instrument)
            i = instrument_index.setdefault(key, len(table_instruments))
            if i == len(table_instruments):  # an instrument table holds unit instruments
                unit: dict[str, Any] = {"venue": UNIT_PLACE, "chain": UNIT_PLACE, "account": UNIT_PLACE,
                                        "liquidity" if "liquidity" in fields else "quantity": 1.0}
                if "entry_price" in fields:
                    unit["entry_price"] = None
                table_instruments.append(p.model_copy(update=unit))
            entry = fields.get("entry_price")
            table["wallet"].append(w)
            table["instrument"].append(i)
            table["size"].append(fields["liquidity"] if "liquidity" in fields else fields["quantity"])
            table["entry_price"].append(math.nan if entry is None else entry)
            table["venue_account"].append(place_code.setdefault((p.venue, p.chain, p.account), len(place_code)))
            table["chain"].append(chain_code.setdefault(p.chain, len(chain_code)))
    columns: dict[str, Any] = {
        name: np.array(values, dtype=np.float64 if name in ("size", "entry_price") else np.int64)
        for name, values in table.items()
    }
    del table
    ingest_cols, core_cols, total_cols = [], [], []
    result_cols = None
    for _ in range(runs):
        t0 = time.perf_counter()
        holdings_cols = holdings_from_columns(table_instruments, **columns, n_wallets=len(wallets))
        t1 = time.perf_counter()
        result_cols = compute_holdings_margin(holdings_cols, market, params)
        t2 = time.perf_counter()
        ingest_cols.append(t1 - t0)
        core_cols.append(t2 - t1)
        total_cols.append(t2 - t0)
    assert result_cols is not None and result_cols.n_instruments == result.n_instruments
    for name in ("equity_usd", "collateral_usd", "risk_usd", "contingency_usd", "maintenance_margin_usd"):
        got, want = getattr(result_cols, name), getattr(result, name)  # the columnar path agrees, wallet by wallet
        assert np.allclose(got, want, rtol=1e-9, atol=1e-6), (name, float(np.max(np.abs(got - want))))
    med_ingest_cols, med_core_cols, med_total_cols = (statistics.median(x) for x in (ingest_cols, core_cols,
                                                                                   total_cols))
    rows = [
        Row(f"batch of {len(wallets):,} wallets", f"{result.n_positions:,} positions, {result.n_instruments:,} "
            f"distinct instruments ({n_options:,} options), {result.position_scenarios:,} position-scenarios", ""),
        Row("  ingest: collect_holdings (dedupe, groups)", f"{med_collect:.3f} s median, {min(collect):.3f} s min",
            "one Python pass over the Position objects"),
        Row("  margin: compute_holdings_margin", f"{med_core:.3f} s median, {min(core):.3f} s min",
            f"resolve + price {result.instrument_scenarios:,} instrument-scenarios + sparse aggregation"),
        Row("  total: compute_batch_margin", f"{med_total:.3f} s median, {min(total):.3f} s min", f"{runs} runs"),
        Row("  position-scenario revaluations / s", f"{rate_total / 1e6:.1f} M/s end to end, "
            f"{rate_core / 1e6:.1f} M/s margin step", ""),
        Row("  ingest: holdings_from_columns (columnar table)",
            f"{med_ingest_cols:.3f} s median, {min(ingest_cols):.3f} s min",
            f"numpy only: {len(table_instruments):,} unit instruments + 6 columns; same figures to 1e-9"),
        Row("  margin: compute_holdings_margin (from columns)",
            f"{med_core_cols:.3f} s median, {min(core_cols):.3f} s min", ""),
        Row("  total from a columnar table", f"{med_total_cols:.3f} s median, {min(total_cols):.3f} s min",
            f"{runs} runs; {result.position_scenarios / med_total_cols / 1e6:.1f} M position-scenarios/s"),
    ]
    return rows, {"holdings": holdings, "result": result}


def bench_quantlib(holdings: Any, market: MarketSnapshot, params: RiskParams) -> list[Row]:
    """QuantLib one option at a time vs numpy Black-76 vectorized, on the batch's distinct options."""
    import QuantLib as ql  # noqa: N813

    options = [p for p in holdings.instruments if isinstance(p, OptionPosition)]
    book = resolve_book(options, market, params)
    stacked, valuation = book.valuation.stacked, book.valuation
    assert isinstance(valuation, RevaluedBook)
    fwd, strike, years, sigma, call, disc = (
        stacked.opt_forward, stacked.opt_strike, stacked.opt_years, stacked.opt_sigma, stacked.opt_call,
        stacked.opt_discount,
    )
    n = fwd.size

    # numpy: every option under every scenario of its underlying, as the margin step does
    spans = [(r, opt) for r, (_, opt, _) in zip(book.underlyings.values(), valuation.block_bounds(), strict=True)]
    scen_f = np.concatenate([(fwd[o, None] * (1.0 + r.scenarios.spot_shock[None, :])).ravel() for r, o in spans])
    scen_v = np.concatenate([valuation.scenario_vols(r.asset).ravel() for r, _ in spans])
    scen_k, scen_t, scen_c, scen_d = (
        np.concatenate([np.repeat(x[o], r.scenarios.size) for r, o in spans]) for x in (strike, years, call, disc)
    )
    np_times = _timings(lambda: black76_price(scen_f, scen_k, scen_t, scen_v, scen_c, scen_d), repeat=20,
                        budget_s=2.0)
    np_rate = scen_f.size / statistics.median(np_times)

    ql_date = ql.Date(market.as_of.day, market.as_of.month, market.as_of.year)
    ql.Settings.instance().evaluationDate = ql_date
    day_count = ql.Actual365Fixed()
    spot_q, vol_q, rate_q = ql.SimpleQuote(1.0), ql.SimpleQuote(0.5), ql.SimpleQuote(0.0)
    rate_ts = ql.YieldTermStructureHandle(ql.FlatForward(ql_date, ql.QuoteHandle(rate_q), day_count))
    vol_ts = ql.BlackVolTermStructureHandle(
        ql.BlackConstantVol(ql_date, ql.NullCalendar(), ql.QuoteHandle(vol_q), day_count))
    # Black-76 as Black-Scholes on the forward: dividend yield = rate, so the underlying drifts to F
    process = ql.BlackScholesMertonProcess(ql.QuoteHandle(spot_q), rate_ts, rate_ts, vol_ts)
    engine = ql.AnalyticEuropeanEngine(process)
    ql_expiry = [ql_date + int(round(years_i * 365.0)) for years_i in years]

    def quantlib_engine() -> list[float]:
        out = []
        for j in range(n):
            spot_q.setValue(float(fwd[j]))
            vol_q.setValue(float(sigma[j]))
            option = ql.EuropeanOption(
                ql.PlainVanillaPayoff(ql.Option.Call if call[j] else ql.Option.Put, float(strike[j])),
                ql.EuropeanExercise(ql_expiry[j]),
            )
            option.setPricingEngine(engine)
            out.append(option.NPV())
        return out

    def quantlib_black() -> list[float]:
        return [
            ql.BlackCalculator(ql.PlainVanillaPayoff(ql.Option.Call if call[j] else ql.Option.Put, float(strike[j])),
                               float(fwd[j]), float(sigma[j] * math.sqrt(years[j])), float(disc[j])).value()
            for j in range(n)
        ]

    ql_engine_times = _timings(quantlib_engine, repeat=5, budget_s=3.0)
    ql_black_times = _timings(quantlib_black, repeat=5, budget_s=2.0)
    ours = black76_price(fwd, strike, years, sigma, call, disc)
    whole_days = np.abs(years * 365.0 - np.round(years * 365.0)) < 1e-9
    diff_engine = np.max(np.abs(np.array(quantlib_engine()) - ours)[whole_days] / fwd[whole_days])
    diff_black = np.max(np.abs(np.array(quantlib_black()) - ours) / fwd)
    engine_rate = n / statistics.median(ql_engine_times)
    black_rate = n / statistics.median(ql_black_times)
    return [
        Row("peer: same distinct options", f"{n:,} options ({scen_f.size:,} option-scenarios in numpy)", ""),
        Row("  numpy Black-76 (vectorized, all scenarios)", f"{np_rate / 1e6:.2f} M options/s", "black76_price"),
        Row("  QuantLib AnalyticEuropeanEngine, one at a time", f"{engine_rate / 1e3:.1f} k options/s",
            f"largest difference from ours {diff_engine:.1e} x forward"),
        Row("  QuantLib BlackCalculator, one at a time", f"{black_rate / 1e3:.1f} k options/s",
            f"largest difference from ours {diff_black:.1e} x forward"),
        Row("  ratio numpy / QuantLib", f"{np_rate / engine_rate:,.0f}x (engine), {np_rate / black_rate:,.0f}x "
            "(BlackCalculator)", ""),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--wallets", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--batch-runs", type=int, default=3)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    params = default_params()
    expiries = _expiries()
    market = build_market(expiries)
    options = option_universe(market, expiries)
    gc.disable()  # building a million objects; collected once and frozen below, as a service does after start-up
    t0 = time.perf_counter()
    wallets = make_wallets(args.wallets, market, options, expiries, args.seed)
    generated = time.perf_counter() - t0
    gc.collect()
    gc.freeze()
    gc.enable()
    sample = [p for w in wallets[:3] for p in w]
    assert all(PositionAdapter.validate_python(p.model_dump()) == p for p in sample), "generated positions invalid"

    rows = [
        Row("machine", f"{os.cpu_count()} cores, Python {platform.python_version()}, numpy {np.__version__}",
            f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}"),
        Row("universe", f"{len(options):,} listed options on BTC/ETH/SOL over {len(expiries)} expiries, "
            "perps, futures, spot, lend/borrow, LP ranges", f"generated {args.wallets:,} wallets in {generated:.1f} s"),
    ]
    rows += bench_single(wallets[:200], market, params)
    batch_rows, batch = bench_batch(wallets, market, params, runs=args.batch_runs)
    rows += batch_rows
    rows += bench_quantlib(batch["holdings"], market, params)
    width = max(len(r.what) for r in rows)
    print(f"| {'what':<{width}} | figure | note |")
    print(f"|{'-' * (width + 2)}|---|---|")
    for r in rows:
        print(f"| {r.what:<{width}} | {r.figure} | {r.note} |")
    print(f"\ntotal benchmark time {time.perf_counter() - started:.1f} s; load average {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
