"""Market snapshot benchmark: surface fits of the real Deribit chains, and whole snapshots for BTC, ETH and SOL
built from the local venue servers (Pyth Hermes, Deribit, Derive, Hyperliquid on 127.0.0.1).

    .venv/bin/python benchmarks/bench_snapshot.py [--repeat 7] [--validate] [--fits-only] [--baseline DIR]

Fits: each currency of both recorded Deribit files, timed alone (median of --repeat runs), beside a floor measured
in the same run: the forwards and implied vols of the same quotes (what any surface from these quotes computes
first), and the fit's ratio to it; with --baseline, the same fit by the sources in DIR (another commit), in a child
process of the same run, and the ratio to it. Snapshots: the whole
`fetch_market_snapshot` (all HTTP requests concurrently, JSON parsing into strict models, aggregation, the surface
fits of BTC and ETH in worker threads) against servers that run in the same process and event loop, so the figure
includes the servers' own work. By default the servers do not re-validate each response against the OpenAPI
specs (the tests do; it costs the servers, not the client); --validate turns that on.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import asyncio  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from datetime import timedelta  # noqa: E402
from pathlib import Path  # noqa: E402

import aiohttp  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from oracles.snapshot import SnapshotBuild, SnapshotSources, fetch_market_snapshot  # noqa: E402
from oracles.surface import (  # noqa: E402
    OptionQuote,
    VenueChain,
    compute_forward,
    compute_otm_quotes,
    compute_surface,
)
from venue_servers.pyth import FEED_IDS  # noqa: E402
from venue_servers.runner import run_venue_servers  # noqa: E402
from venue_servers.scenario import CALM_DAY, SELL_OFF_DAY, load_deribit_file  # noqa: E402

ASSETS = ("BTC", "ETH", "SOL")


def chain_of(file: str, currency: str) -> VenueChain:
    data = load_deribit_file(file)
    rows = data.for_currency(currency)
    quotes = tuple(
        OptionQuote(venue="deribit", instrument=r.instrument, expiry=r.expiry, strike=r.strike, is_call=r.is_call,
                    bid=r.bid, ask=r.ask, mark=r.mark, underlying_price=r.underlying, inverse=True)
        for r in rows
    )
    futures = {r.expiry: r.futures_price for r in rows if not r.futures_name.startswith("SYN.")}
    return VenueChain(venue="deribit", asset=currency, as_of=data.as_of, quotes=quotes, futures=futures)


def implied_vols_only(chain: VenueChain) -> None:
    """The floor: each expiry's forward and its quotes' implied vols, no fit."""
    by_expiry: dict[object, list[OptionQuote]] = {}
    for q in chain.quotes:
        by_expiry.setdefault(q.expiry, []).append(q)
    for expiry, quotes in by_expiry.items():
        years = (expiry - chain.as_of).total_seconds() / (365.0 * 86400.0)
        fwd = compute_forward(quotes, expiry=expiry, future=chain.futures.get(expiry), venue=chain.venue)
        if fwd is not None and years > 0:
            compute_otm_quotes(quotes, forward=fwd.forward, years=years)


# run in a child process on another checkout's sources: its fit of one chain, median CPU seconds of `repeat` runs
_BASELINE_CHILD = """
import statistics, sys, time
sys.path[:0] = [{root!r}, {root!r} + "/benchmarks"]
import bench_snapshot as b
from oracles.surface import compute_surface
chain = b.chain_of(getattr(b, {day!r}), {cur!r})
compute_surface([chain], asset={cur!r}, as_of=chain.as_of)
cpu = []
for _ in range({repeat}):
    c0 = time.process_time()
    compute_surface([chain], asset={cur!r}, as_of=chain.as_of)
    cpu.append(time.process_time() - c0)
print(statistics.median(cpu))
"""


def baseline_cpu(root: str, day: str, cur: str, repeat: int) -> float:
    """The same fit from the sources at `root` (e.g. `git archive <commit> | tar -x -C root`), in a child process."""
    code = _BASELINE_CHILD.format(root=root, day=day, cur=cur, repeat=repeat)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONPATH": root})
    return float(done.stdout.split()[-1])


def bench_fits(repeat: int, baseline: str | None = None) -> None:
    print("surface fit of one currency's full Deribit chain (median of", repeat, "runs)")
    print(f"  {'file':<12} {'ccy':<4} {'options':>7} {'expiries':>8} {'fitted':>6} {'wall ms':>8} {'cpu ms':>8} "
          f"{'floor cpu':>9} {'ratio':>6}" + (f" {'baseline cpu':>12} {'/ baseline':>10}" if baseline else ""))
    for label, day, file in (("calm", "CALM_DAY", CALM_DAY), ("sell-off", "SELL_OFF_DAY", SELL_OFF_DAY)):
        for cur in ("BTC", "ETH"):
            base = baseline_cpu(baseline, day, cur, repeat) if baseline else None
            chain = chain_of(file, cur)
            times, cpu, floor = [], [], []
            fit = None
            for _ in range(repeat):
                t0, c0 = time.perf_counter(), time.process_time()
                fit = compute_surface([chain], asset=cur, as_of=chain.as_of)
                times.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
                c0 = time.process_time()
                implied_vols_only(chain)
                floor.append(time.process_time() - c0)
            assert fit is not None
            fitted = sum(1 for s in fit.slices if s.status == "fitted")
            fit_cpu, floor_cpu = statistics.median(cpu), statistics.median(floor)
            print(f"  {label:<12} {cur:<4} {len(chain.quotes):>7} {len(fit.slices):>8} {fitted:>6} "
                  f"{1000 * statistics.median(times):>8.1f} {1000 * fit_cpu:>8.1f} {1000 * floor_cpu:>9.1f} "
                  f"{fit_cpu / floor_cpu:>6.1f}"
                  + (f" {1000 * base:>12.1f} {fit_cpu / base:>10.2f}" if base is not None else ""))


async def bench_snapshots(repeat: int, validate: bool) -> None:
    async with run_venue_servers(validate=validate) as venues, aiohttp.ClientSession() as session:
        sources = SnapshotSources(pyth_url=venues.urls["pyth"], deribit_url=venues.urls["deribit"],
                                  derive_url=venues.urls["derive"], hyperliquid_url=venues.urls["hyperliquid"],
                                  pyth_feeds=FEED_IDS, timeout_s=60.0)
        now = venues.scenario.as_of + timedelta(seconds=2)
        builds: list[tuple[float, SnapshotBuild]] = []
        cpu = []
        for _ in range(repeat + 1):
            t0, c0 = time.perf_counter(), time.process_time()
            b = await fetch_market_snapshot(session, sources, assets=ASSETS, now=now)
            builds.append((time.perf_counter() - t0, b))
            cpu.append(time.process_time() - c0)
        builds, cpu = builds[1:], cpu[1:]  # the first build warms connections and caches
        total = [t for t, _ in builds]
        fetch = [b.timings_s["fetch"] for _, b in builds]
        fits = [b.timings_s["surfaces"] for _, b in builds]
        last = builds[-1][1]
        quotes = sum(len(s.slices) for s in last.surfaces.values())
        print(f"\nSnapshot for {', '.join(ASSETS)} from the local venues (median of {repeat}; servers validate "
              f"responses: {validate})")
        print(f"  whole build      {1000 * statistics.median(total):8.1f} ms  (min {1000 * min(total):.1f}; "
              f"process CPU, servers included: {1000 * statistics.median(cpu):.1f} ms)")
        print(f"  fetch (all)      {1000 * statistics.median(fetch):8.1f} ms")
        print(f"  surface fits     {1000 * statistics.median(fits):8.1f} ms  (BTC and ETH in worker threads)")
        per_source = sorted(k for k in last.timings_s if k.startswith("fetch:"))
        for k in per_source:
            print(f"    {k:<18} {1000 * statistics.median(b.timings_s[k] for _, b in builds):8.1f} ms")
        print(f"  spot: { {a: round(p, 2) for a, p in last.snapshot.spot.items()} }")
        print(f"  expiries: {quotes}; sources in the snapshot: {len(last.snapshot.sources)}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--validate", action="store_true")
    parser.add_argument("--fits-only", action="store_true", help="only the surface fits, not the whole snapshots")
    parser.add_argument("--baseline", metavar="DIR", help="also time the fits of the sources in DIR (another "
                        "commit, `git archive COMMIT | tar -x -C DIR`), each in a child process of the same run")
    args = parser.parse_args()
    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores")
    bench_fits(args.repeat, args.baseline)
    if not args.fits_only:
        asyncio.run(bench_snapshots(args.repeat, args.validate))


if __name__ == "__main__":
    main()
