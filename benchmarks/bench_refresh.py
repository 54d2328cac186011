"""Demo-wallet refresh benchmark: every on-chain adapter over the devnet's three chains, one Multicall3 batch per
chain, measured end to end (HTTP, anvil's execution, decoding, positions).

    .venv/bin/python benchmarks/bench_refresh.py [--refreshes 300] [--cold-build]

Reports the warm start of the devnet from its cache (and with --cold-build, a build from scratch into a temporary
cache), the first refresh of a new wallet (discovery rounds included), then median and p99 of steady refreshes and
the HTTP requests each chain received per refresh.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adapters import ONCHAIN_ADAPTERS  # noqa: E402
from adapters.onchain import DiscoveryCache, fetch_wallet_refresh  # noqa: E402
from chains.client import make_chain_clients  # noqa: E402
from devnet.run import RunningDevnet, start_devnet  # noqa: E402

REFRESH_TIMEOUT_SECONDS = 10.0


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def bench(devnet: RunningDevnet, refreshes: int) -> None:
    requests: Counter[str] = Counter()

    async def count(_: aiohttp.ClientSession, __: SimpleNamespace, params: aiohttp.TraceRequestStartParams) -> None:
        requests[str(params.url)] += 1

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(count)
    clients = await make_chain_clients(devnet.chains, trace_configs=[trace])
    account = devnet.manifest.demo_account
    cache = DiscoveryCache()
    try:
        started = time.perf_counter()
        first = await fetch_wallet_refresh(
            list(clients.values()),
            ONCHAIN_ADAPTERS,
            account=account,
            cache=cache,
            timeout_seconds=REFRESH_TIMEOUT_SECONDS,
        )
        cold_ms = (time.perf_counter() - started) * 1e3
        assert first.complete, first.failed_sources
        cold_requests = dict(requests)
        positions = sum(len(result.positions) for result in first.results)
        requests.clear()
        samples = []
        for _ in range(refreshes):
            started = time.perf_counter()
            outcome = await fetch_wallet_refresh(
                list(clients.values()),
                ONCHAIN_ADAPTERS,
                account=account,
                cache=cache,
                timeout_seconds=REFRESH_TIMEOUT_SECONDS,
            )
            samples.append((time.perf_counter() - started) * 1e3)
            assert outcome.complete, outcome.failed_sources
    finally:
        for client in clients.values():
            await client.close()
    names = {node.url: name for name, node in devnet.nodes.items()}
    print(
        f"first refresh (new wallet, discovery): {cold_ms:.1f} ms, requests per chain "
        f"{ {names[url.rstrip('/')]: n for url, n in cold_requests.items()} }"
    )
    print(
        f"steady refresh of {positions} positions on 3 chains, {refreshes} runs: "
        f"median {statistics.median(samples):.2f} ms, p99 {percentile(samples, 0.99):.2f} ms, "
        f"min {min(samples):.2f} ms, max {max(samples):.2f} ms"
    )
    print(
        f"requests per chain per steady refresh: { {names[u.rstrip('/')]: n / refreshes for u, n in requests.items()} }"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--refreshes", type=int, default=300)
    parser.add_argument("--cold-build", action="store_true", help="also time a devnet build from scratch")
    args = parser.parse_args()
    print(f"python {platform.python_version()} on {platform.machine()}, {platform.processor() or 'cpu'}")
    if args.cold_build:
        with tempfile.TemporaryDirectory() as scratch:
            started = time.perf_counter()
            start_devnet(cache_root=Path(scratch)).stop()
            print(f"devnet cold build (compile, deploy, seed, dump 3 chains): {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    devnet = start_devnet()
    print(
        f"devnet warm start from cache (3 anvil --load-state, feeds republished): {time.perf_counter() - started:.2f} s"
    )
    try:
        asyncio.run(bench(devnet, args.refreshes))
    finally:
        devnet.stop()


if __name__ == "__main__":
    main()
