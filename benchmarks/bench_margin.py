"""The benchmark market and wallets, and QuantLib's per-option pricing as the peer of numpy's Black-76.

    .venv/bin/python benchmarks/bench_margin.py [--wallets 2000] [--seed 7]

The engine's own figures (one wallet steady and cold, the liquidation plan, millions of wallets) are
benchmarks/bench_engine.py's, which builds its books with this module's generators.

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


def bench_quantlib(wallets: Sequence[Sequence[Position]], market: MarketSnapshot, params: RiskParams) -> list[Row]:
    """QuantLib one option at a time vs numpy Black-76 vectorized, on the wallets' distinct options."""
    import QuantLib as ql  # noqa: N813

    from risk_core.margin.instruments import block_bounds, resolve_book
    from risk_core.margin.scenarios import shocked_vols

    distinct = {(p.underlying, p.option_type, p.strike, p.expiry, p.settlement): p
                for w in wallets for p in w if isinstance(p, OptionPosition)}
    options: list[Position] = list(distinct.values())
    book = resolve_book(options, market, params)
    stacked, held = book.stacked, list(book.held.values())
    fwd, strike, years, sigma, call, disc = (
        stacked.opt_forward, stacked.opt_strike, stacked.opt_years, stacked.opt_sigma, stacked.opt_call,
        stacked.opt_discount,
    )
    n = fwd.size

    # numpy: every option under every scenario of its underlying, as the margin step does
    spans = [(h.table, opt) for h, (_, opt, _) in zip(held, block_bounds([h.blocks for h in held]), strict=True)]
    scen_f = np.concatenate([(fwd[o, None] * (1.0 + r.scenarios.spot_shock[None, :])).ravel() for r, o in spans])
    scen_v = np.concatenate([
        shocked_vols(sigma[o], stacked.opt_tenor_scale[o], stacked.opt_log_moneyness[o], r.scenarios,
                     min_vol_up=params.scenarios_for(h.asset).min_vol_up, skew=params.skew).ravel()
        for h, (r, o) in zip(held, spans, strict=True)
    ])
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
    parser.add_argument("--wallets", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=7)
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
    rows += bench_quantlib(wallets, market, params)
    width = max(len(r.what) for r in rows)
    print(f"| {'what':<{width}} | figure | note |")
    print(f"|{'-' * (width + 2)}|---|---|")
    for r in rows:
        print(f"| {r.what:<{width}} | {r.figure} | {r.note} |")
    print(f"\ntotal benchmark time {time.perf_counter() - started:.1f} s; load average {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
