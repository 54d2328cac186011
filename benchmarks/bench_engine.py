"""Margin engine benchmark: one wallet (steady, cold, full report) beside a plain numpy floor, the liquidation plan
of a 1,000-option liquidatable book, and the batch path over millions of wallets (generated, or from Parquet).

    .venv/bin/python benchmarks/bench_engine.py single [--repo DIR] [--wallets 200]
    .venv/bin/python benchmarks/bench_engine.py plan [--repo DIR] [--options 1000]
    .venv/bin/python benchmarks/bench_engine.py million [--wallets 1000000]
    .venv/bin/python benchmarks/bench_engine.py parquet [--wallets 100000] [--dir /tmp]
    .venv/bin/python benchmarks/bench_engine.py compare --old DIR [--cpu] [--wallets 100]  # old and new in turn

`--repo` runs against another checkout of the project (e.g. `git worktree add /tmp/old 333227e`): the single
wallet and plan figures only use `compute_margin` and the parts every version has. Books come from
bench_margin's generators (a Deribit-like market on BTC/ETH/SOL, wallets of 100 mixed positions).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # see bench_margin.py

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

HERE = Path(__file__).resolve()


def _use_repo(repo: str | None) -> None:
    sys.path.insert(0, str(HERE.parent))  # bench_margin's generators, whichever engine is measured
    sys.path.insert(0, str(Path(repo).resolve() if repo else HERE.parents[1]))


_CLOCK = time.perf_counter  # --cpu: time.thread_time, this thread's CPU time (steadier on a shared machine)


def _median_ms(fn: Callable[[int], object], n: int, budget_s: float) -> float:
    times: list[float] = []
    spent, i = 0.0, 0
    while i < 3000 and (spent < budget_s or i < 30):
        t0 = _CLOCK()
        fn(i)
        dt = _CLOCK() - t0
        times.append(dt)
        spent += dt
        i += 1
    return statistics.median(times) * 1e3


def _books(n_wallets: int) -> tuple[Any, Any, list[Any], Any, Any]:
    import bench_margin as bm

    from risk_core.schema.params import default_params

    expiries = bm._expiries()  # noqa: SLF001
    market = bm.build_market(expiries)
    options = bm.option_universe(market, expiries)
    return market, default_params(), bm.make_wallets(n_wallets, market, options, expiries, 7), options, expiries


def single(n_wallets: int) -> dict[str, float]:
    """Per wallet (ms, median): the margin figure with the snapshot's instruments valued, the full report, the
    same cold (nothing valued yet), and the numpy floor."""
    import numpy as np

    from risk_core.margin.engine import compute_margin
    from risk_core.margin.risk_arrays import RiskArrays

    market, params, wallets, _, _ = _books(n_wallets)
    ones = [np.ones((1, len(w))) for w in wallets]
    try:  # this branch: the caller keeps a pricing context
        from risk_core.margin.context import pricing_context

        context = pricing_context(market, params)

        def report(i: int) -> object:
            return compute_margin(wallets[i % n_wallets], market, params, context=context)

        def figure(i: int) -> object:
            book = context.instruments.book(wallets[i % n_wallets])
            arrays = RiskArrays(book, params)
            arrays.position_values()
            return arrays.margin(ones[i % n_wallets])

        def cold(i: int) -> object:
            return compute_margin(wallets[i % n_wallets], market, params)

        table = context.instruments
    except ImportError:  # before: a module-level cache keyed on the snapshot object
        from risk_core.margin.instruments import priced_instruments, resolve_book_cached

        def report(i: int) -> object:
            return compute_margin(wallets[i % n_wallets], market, params)

        def figure(i: int) -> object:
            book = resolve_book_cached(wallets[i % n_wallets], market, params, max_rise=10.0)
            arrays = RiskArrays(book, params)
            arrays.position_values()
            return arrays.margin(ones[i % n_wallets])

        def cold(i: int) -> object:
            return compute_margin(wallets[i % n_wallets], market.model_copy(), params)

        table = priced_instruments(market, params, 10.0)
    for i in range(n_wallets):
        report(i)  # warm-up: every instrument of the wallets valued
    figures = {"steady margin figure": _median_ms(figure, n_wallets, 4.0),
               "full report": _median_ms(report, n_wallets, 4.0),
               "cold full report": _median_ms(cold, n_wallets, 4.0)}
    figures["numpy floor"] = _numpy_floor(wallets, table)
    return figures


def _numpy_floor(wallets: Sequence[Sequence[Any]], table: Any) -> float:
    """Key lookup, gather, one matmul, worst scenario per underlying: the least a steady margin figure can do in
    numpy, on the same instruments' scenario P&L."""
    import numpy as np

    from risk_core.margin.instruments import instrument_key

    tables = getattr(table, "tables", None) or table._tables  # noqa: SLF001 - before: private
    assets = sorted(tables)
    widths = [tables[a].pnl.shape[1] for a in assets]
    n_inst = tables[assets[0]].row_of.size
    pnl = np.zeros((n_inst, sum(widths)))
    for a, start in zip(assets, np.cumsum([0, *widths[:-1]]).tolist(), strict=True):
        t = tables[a]
        own = np.flatnonzero(t.row_of >= 0)
        pnl[own, start : start + t.pnl.shape[1]] = t.pnl[t.row_of[own]]
    index = {key: int(i) for key, i in table._index.items() if i >= 0}  # noqa: SLF001
    starts = np.cumsum([0, *widths[:-1]])
    size_of = [np.array([getattr(p, "liquidity", None) or p.quantity for p in w]) for w in wallets]

    def floor(i: int) -> float:
        w = wallets[i % len(wallets)]
        ids = [index[instrument_key(p)] for p in w]
        total = size_of[i % len(wallets)] @ pnl[ids]
        return float(np.maximum(-np.minimum.reduceat(total, starts), 0.0).sum())

    return _median_ms(floor, len(wallets), 3.0)


def liquidation_book(n_options: int) -> tuple[Any, Any, list[Any]]:
    """`n_options` options drawn from the listed universe (mostly short), with too little USDC to cover them."""
    import numpy as np

    from risk_core.margin.engine import compute_margin
    from risk_core.schema.positions import OptionPosition, SpotPosition

    market, params, _, options, _ = _books(1)
    rng = np.random.default_rng(11)
    pop = np.array([o.popularity for o in options])
    book: list[Any] = []
    for j in rng.choice(len(options), size=n_options, replace=False, p=pop / pop.sum()).tolist():
        o = options[j]
        venue, chain = ("deribit", "offchain") if o.settlement == "inverse" else ("derive", "derive")
        quantity = round(float(rng.lognormal(-1.0, 0.6)) * (-1.0 if rng.random() < 0.7 else 1.0), 2) or -0.1
        book.append(OptionPosition(kind="option", venue=venue, chain=chain, account="a", underlying=o.underlying,
                                   quantity=quantity, option_type="call" if o.call else "put", strike=o.strike,
                                   expiry=o.expiry, settlement=o.settlement))
    mm = compute_margin(book, market, params).maintenance_margin_usd
    book.append(SpotPosition(kind="spot", venue="deribit", chain="offchain", account="a", asset="USDC",
                             quantity=round(0.6 * mm, 2)))
    return market, params, book


def plan(n_options: int) -> dict[str, float]:
    from risk_core.margin import engine
    from risk_core.margin.engine import compute_margin

    market, params, book = liquidation_book(n_options)
    report = compute_margin(book, market, params)
    assert report.status == "liquidatable" and report.liquidation_plan is not None
    steps = len(report.liquidation_plan.steps)
    times = []
    search_cpu: list[float] = []  # the greedy search alone, CPU time (engine.liquidation_plan, wrapped)
    search = engine.liquidation_plan

    def timed(*args: Any, **kwargs: Any) -> Any:
        c0 = time.process_time()
        found = search(*args, **kwargs)
        search_cpu.append(time.process_time() - c0)
        return found

    engine.liquidation_plan = timed  # type: ignore[assignment]
    for _ in range(3):
        t0 = time.perf_counter()
        compute_margin(book, market, params)
        times.append(time.perf_counter() - t0)
    engine.liquidation_plan = search  # type: ignore[assignment]
    funded = [*book[:-1], book[-1].model_copy(update={"quantity": book[-1].quantity * 20})]
    without = [time.perf_counter()]
    report_only = compute_margin(funded, market, params)  # the same options, healthy: no plan searched
    without.append(time.perf_counter())
    assert report_only.liquidation_plan is None
    return {"report with plan (ms)": statistics.median(times) * 1e3, "plan steps": float(steps),
            "plan search CPU (ms)": statistics.median(search_cpu) * 1e3,
            "report without plan (ms)": (without[1] - without[0]) * 1e3}


def million(n_wallets: int, block_wallets: int) -> dict[str, float]:
    """The batch path over `n_wallets` wallets of 10-100 positions on ~2,000 listed instruments, generated as
    columns block by block (never as Position objects) and margined block by block on one instrument table."""
    import numpy as np

    from risk_core.margin.batch import margin_wallets
    from risk_core.margin.context import pricing_context
    from risk_core.margin.risk_arrays import group_holdings

    market, params, _, options, expiries = _books(1)
    instruments, venue_of, chain_of, popularity = _universe(market, options, expiries)
    context = pricing_context(market, params)
    t0 = time.perf_counter()
    ids = context.instruments.ids(instruments)
    t_table = time.perf_counter() - t0
    rng = np.random.default_rng(3)
    p = popularity / popularity.sum()
    positions = 0
    checksum = 0.0
    generating, grouping, margining = 0.0, 0.0, 0.0
    t0 = time.perf_counter()
    batch_cpu = 0.0  # CPU seconds in group_holdings and margin_wallets: what a loaded machine's wall time hides
    for start in range(0, n_wallets, block_wallets):
        t_block = time.perf_counter()
        n = min(block_wallets, n_wallets - start)
        counts = rng.integers(10, 101, size=n)
        total = int(counts.sum())
        inst = rng.choice(len(instruments), size=total, p=p)
        size = rng.lognormal(0.0, 0.7, size=total) * np.where(rng.random(total) < 0.5, -1.0, 1.0)
        size = np.where(np.isin(inst, _POSITIVE_ONLY), np.abs(size), size)
        entry = np.full(total, np.nan)
        wallet = np.repeat(np.arange(n), counts)
        t_group, cpu_group = time.perf_counter(), time.process_time()
        holdings = group_holdings(ids[inst], size, entry, wallet, chain_of[inst], venue_of[inst], n)
        t_margin = time.perf_counter()
        result = margin_wallets(context.instruments, holdings)
        batch_cpu += time.process_time() - cpu_group
        generating += t_group - t_block
        grouping += t_margin - t_group
        margining += time.perf_counter() - t_margin
        checksum += float(result.maintenance_margin_usd.sum())
        positions += total
    elapsed = time.perf_counter() - t0
    return {"wallets": float(n_wallets), "positions": float(positions), "instruments": float(len(instruments)),
            "table build (s)": t_table, "total (s)": elapsed, "generating input (s)": generating,
            "group_holdings (s)": grouping, "margin_holdings (s)": margining, "batch CPU (s)": batch_cpu,
            "peak RSS (MB)": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "checksum": checksum}


_POSITIVE_ONLY: Any = None  # instrument indexes of lend and borrow (set by _universe): sizes > 0


def _universe(market: Any, options: Sequence[Any], expiries: Sequence[Any]) -> tuple[list[Any], Any, Any, Any]:
    """~2,000 unit instruments: the most traded listed options, perps, futures, tokens, loans and LP ranges, with
    each one's venue and chain codes and popularity."""
    import bench_margin as bm
    import numpy as np

    from risk_core.schema.positions import PositionAdapter

    global _POSITIVE_ONLY  # noqa: PLW0603
    venues = {"deribit": 0, "derive": 1, "hyperliquid": 2, "aave-v3": 3, "wallet": 4, "uniswap-v3": 5}
    chains = {"offchain": 0, "derive": 1, "hyperliquid": 2, "ethereum": 3, "arbitrum": 4}
    rows: list[tuple[dict[str, Any], str, str, float]] = []
    ranked = sorted(options, key=lambda o: -o.popularity)[:1800]
    for o in ranked:
        venue, chain = ("deribit", "offchain") if o.settlement == "inverse" else ("derive", "derive")
        rows.append(({"kind": "option", "underlying": o.underlying, "option_type": "call" if o.call else "put",
                      "strike": o.strike, "expiry": o.expiry, "settlement": o.settlement}, venue, chain,
                     o.popularity))
    weight = float(np.mean([o.popularity for o in ranked])) * 20
    for a in ("BTC", "ETH", "SOL"):
        rows.append(({"kind": "perp", "underlying": a}, "hyperliquid", "hyperliquid", weight))
        for e in [e for e in expiries if e in market.forwards[a]][-2:]:
            rows.append(({"kind": "future", "underlying": a, "expiry": e}, "deribit", "offchain", weight / 4))
    for a in ("BTC", "ETH", "SOL", "USDC"):
        rows.append(({"kind": "spot", "asset": a}, "wallet", "ethereum", weight))
        rows.append(({"kind": "lend", "asset": a}, "aave-v3", "arbitrum", weight / 2))
    for a in ("USDC", "ETH"):
        rows.append(({"kind": "borrow", "asset": a}, "aave-v3", "arbitrum", weight / 3))
    price = bm.SPOT["ETH"]
    for lo, hi in ((0.9, 1.1), (0.8, 1.25), (0.95, 1.05)):
        rows.append(({"kind": "lp", "token0": "ETH", "token1": "USDC", "price_lower": price * lo,
                      "price_upper": price * hi}, "uniswap-v3", "ethereum", weight / 3))
    instruments = []
    for fields, _, _, _ in rows:
        size = "liquidity" if fields["kind"] == "lp" else "quantity"
        instruments.append(PositionAdapter.validate_python(
            {**fields, size: 1.0, "venue": "unit", "chain": "unit", "account": "unit"}))
    _POSITIVE_ONLY = np.array([i for i, p in enumerate(instruments) if p.kind in ("lend", "borrow")])
    return (instruments, np.array([venues[v] for _, v, _, _ in rows]), np.array([chains[c] for _, _, c, _ in rows]),
            np.array([w for _, _, _, w in rows]))


def parquet(n_wallets: int, directory: str) -> dict[str, float]:
    """`metarisk batch` on a Parquet file of `n_wallets` wallets (written first, untimed)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from api.batch_cli import run_batch
    from risk_core.schema.holdings import HOLDINGS_ARROW_SCHEMA

    market, params, _, options, expiries = _books(1)
    instruments, _, _, popularity = _universe(market, options, expiries)
    names = {0: "deribit", 1: "derive", 2: "hyperliquid", 3: "aave-v3", 4: "wallet", 5: "uniswap-v3"}
    _, venue_of, chain_of, _ = _universe(market, options, expiries)
    chain_names = {0: "offchain", 1: "derive", 2: "hyperliquid", 3: "ethereum", 4: "arbitrum"}
    unit_rows = []
    for p, v, c in zip(instruments, venue_of.tolist(), chain_of.tolist(), strict=True):
        fields = p.model_dump(exclude={"id", "provenance", "quantity", "liquidity", "venue", "chain", "account"})
        unit_rows.append({**fields, "venue": names[v], "chain": chain_names[c]})
    columns = [f.name for f in HOLDINGS_ARROW_SCHEMA if f.name not in ("wallet", "account", "size", "entry_price")]
    units = pa.Table.from_pylist([{k: r.get(k) for k in columns} for r in unit_rows],
                                 schema=pa.schema([HOLDINGS_ARROW_SCHEMA.field(k) for k in columns]))
    path = Path(directory) / f"holdings-{n_wallets}.parquet"
    rng = np.random.default_rng(5)
    p = popularity / popularity.sum()
    t0 = time.perf_counter()
    with pq.ParquetWriter(path, HOLDINGS_ARROW_SCHEMA) as writer:
        for start in range(0, n_wallets, 20_000):
            n = min(20_000, n_wallets - start)
            counts = rng.integers(10, 101, size=n)
            inst = rng.choice(len(instruments), size=int(counts.sum()), p=p)
            size = rng.lognormal(0.0, 0.7, size=inst.size) * np.where(rng.random(inst.size) < 0.5, -1.0, 1.0)
            size = np.where(np.isin(inst, _POSITIVE_ONLY), np.abs(size), size)
            label = pc.utf8_lpad(pc.cast(pa.array(np.repeat(np.arange(start, start + n), counts)), pa.string()),
                                 width=10, padding="0")
            block = units.take(pa.array(inst))
            table = pa.table({"wallet": label, "account": label, "size": size,
                              "entry_price": pa.nulls(inst.size, pa.float64()),
                              **{k: block.column(k) for k in columns}})
            writer.write_table(table.select(HOLDINGS_ARROW_SCHEMA.names).cast(HOLDINGS_ARROW_SCHEMA))
    written = time.perf_counter() - t0
    market_path = Path(directory) / "bench-market.json"
    market_path.write_text(market.model_dump_json())
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    run_batch(str(path), str(market_path), None, str(Path(directory) / f"margins-{n_wallets}.parquet"),
              block=200_000)
    elapsed = time.perf_counter() - t0
    rows = pq.ParquetFile(path).metadata.num_rows
    return {"wallets": float(n_wallets), "positions": float(rows), "file (MB)": path.stat().st_size / 1e6,
            "write (s)": written, "batch (s)": elapsed, "peak RSS (MB)": resource.getrusage(
                resource.RUSAGE_SELF).ru_maxrss / 1024, "RSS before batch (MB)": rss_before}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("what", choices=("single", "plan", "million", "parquet", "compare"))
    parser.add_argument("--repo")
    parser.add_argument("--old")
    parser.add_argument("--wallets", type=int)
    parser.add_argument("--options", type=int, default=1000)
    parser.add_argument("--block", type=int, default=20_000, help="wallets per block (million)")
    parser.add_argument("--dir", default="/tmp")
    parser.add_argument("--cpu", action="store_true", help="single: CPU time of the thread, not wall time")
    args = parser.parse_args(argv)
    if args.cpu:
        global _CLOCK  # noqa: PLW0603
        _CLOCK = time.thread_time
    if args.what == "compare":
        for what in ("single", "plan"):
            for label, repo in (("before", args.old), ("after", None), ("before", args.old), ("after", None)):
                command = [sys.executable, str(HERE), what, *(["--repo", repo] if repo else [])]
                if what == "single":
                    command += [*(["--cpu"] if args.cpu else []), *(["--wallets", str(args.wallets)]
                                                                      if args.wallets else [])]
                if what == "plan":
                    command += ["--options", str(args.options)]
                out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
                print(f"{what} {label}: {out.strip()}", flush=True)
        return 0
    _use_repo(args.repo)
    if args.what == "single":
        figures = single(args.wallets or 200)
    elif args.what == "plan":
        figures = plan(args.options)
    elif args.what == "million":
        figures = million(args.wallets or 1_000_000, args.block)
    else:
        figures = parquet(args.wallets or 100_000, args.dir)
    print(json.dumps({k: round(v, 4) for k, v in figures.items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
