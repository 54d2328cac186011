"""Cascade benchmarks (docs/benchmarks.md, "Contagion cascades"):

    .venv/bin/python benchmarks/bench_cascade.py cascade --wallets 1000000 --workers 2
    .venv/bin/python benchmarks/bench_cascade.py sweep --wallets 100000 --shocks 50

`cascade`: a synthetic population (written once, reused from /tmp), a 30% BTC and 35% ETH shock, up to 20 rounds,
on a LocalCluster of --workers processes; prints wall time (load + rounds), rounds, and each worker's peak RSS.
The in-process floor on the same file (--workers 0) is printed beside it when --compare is given.
`sweep`: --shocks shocks from -5% to -50% on BTC and ETH over one population, in process.
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

from api.cascade_cli import default_prices
from research.contagion import simulate
from research.contagion.accounts import AssetIndex
from research.contagion.cascade import InProcessRunner, sweep
from research.contagion.params import load_cascade_params
from research.contagion.population import write_synthetic_population
from research.contagion.sweep import grid_shocks, summarise


def population(wallets: int) -> Path:
    path = Path(f"/tmp/metarisk-bench-population-{wallets}.parquet")
    if not path.exists():
        started = time.perf_counter()
        rows = write_synthetic_population(path, wallets, seed=1, prices=default_prices())
        print(f"population: {wallets:,} wallets, {rows:,} positions written in {time.perf_counter() - started:.1f} s")
    return path


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_cascade(wallets: int, workers: int, compare: bool) -> None:
    path = population(wallets)
    prices = default_prices()
    shock = {"BTC": -0.30, "ETH": -0.35}
    runs = [workers, 0] if compare and workers else [workers]
    for count in runs:
        started = time.perf_counter()
        if count == 0:
            result = simulate(path, prices, shock, workers=0)
            worker_rss = [peak_rss_mb()]
        else:
            from research.contagion.cascade import run_cascade
            from research.contagion.dask_runner import DaskRunner, connect

            assets = AssetIndex(tuple(sorted(prices)))
            with connect(None, count) as client:
                runner = DaskRunner.from_file(client, path, assets)
                result = run_cascade(runner, assets, prices, shock, load_cascade_params())
                worker_rss = sorted(client.run(peak_rss_mb).values())
        elapsed = time.perf_counter() - started
        print(f"cascade {wallets:,} wallets, workers={count}: {elapsed:.1f} s, {result.rounds} rounds, "
              f"{result.liquidated_usd / 1e9:,.2f} bn USD liquidated, peak RSS per process (MB): "
              + ", ".join(f"{rss:,.0f}" for rss in worker_rss))


def bench_sweep(wallets: int, shocks: int) -> None:
    path = population(wallets)
    prices = default_prices()
    assets = AssetIndex(tuple(sorted(prices)))
    started = time.perf_counter()
    results = sweep(lambda: InProcessRunner.from_file(path, assets), assets, prices,
                    grid_shocks(["BTC", "ETH"], -0.05, -0.5, shocks), load_cascade_params())
    summary = summarise(results)
    print(f"sweep of {shocks} shocks on {wallets:,} wallets: {time.perf_counter() - started:.1f} s; "
          f"VaR95 {summary.var_95_usd / 1e6:,.1f}m, LaR95 {summary.lar_95_usd / 1e6:,.1f}m USD; "
          f"peak RSS {peak_rss_mb():,.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    cascade = commands.add_parser("cascade")
    cascade.add_argument("--wallets", type=int, default=1_000_000)
    cascade.add_argument("--workers", type=int, default=2)
    cascade.add_argument("--compare", action="store_true", help="also run in-process on the same file")
    sweep_parser = commands.add_parser("sweep")
    sweep_parser.add_argument("--wallets", type=int, default=100_000)
    sweep_parser.add_argument("--shocks", type=int, default=50)
    args = parser.parse_args()
    if args.command == "cascade":
        bench_cascade(args.wallets, args.workers, args.compare)
    else:
        bench_sweep(args.wallets, args.shocks)


if __name__ == "__main__":
    main()
