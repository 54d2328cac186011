"""Soak: the demo service (aggregator, engine pool, devnet, local venues) under a constant mixed load for minutes.

    .venv/bin/python benchmarks/soak.py [--minutes 10] [--rate 300] [--port 8093]

The service runs as a subprocess (`python -m api.cli demo`); this process is an open-loop load generator: request
i is sent at t0 + i / rate whatever the answers before it, and its latency is measured from that intended time
(no coordinated omission). Routes are mixed in fixed proportions: /health, POST /v1/margin (a what-if of the demo
request, in the engine pool), GET /v1/accounts/demo/risk, GET /v1/markets/ETH, POST /graphql (the what-if), and
/metrics. Reported: per route and overall p50 / p99 / max latency and errors (status >= 500, or no answer within
10 s; a 4xx is the route's own answer), the event loop's lag (its Prometheus histogram: samples over 10 and 50 ms
and the largest sample seen), and the resident memory of the service and its engine workers every 10 s, with the
growth from the end of warm-up (the first fifth of the run) to the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
DEMO_KEY = "metarisk-demo-key"
DEMO_REQUEST = json.loads((ROOT / "examples" / "demo_request.json").read_text())
MIX = (  # route name, method, path, body, weight
    ("health", "GET", "/health", None, 3),
    ("what-if", "POST", "/v1/margin", DEMO_REQUEST, 3),
    ("account", "GET", "/v1/accounts/demo/risk", None, 2),
    ("market", "GET", "/v1/markets/ETH", None, 1),
    ("graphql", "POST", "/graphql", {"query": "query M($r: JSON!) { margin(request: $r) { status equityUsd } }",
                                     "variables": {"r": DEMO_REQUEST}}, 1),
    ("metrics", "GET", "/metrics", None, 0),  # read by the sampler below, not in the mix
)
TIMEOUT_S = 10.0


@dataclass
class Route:
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0  # status >= 500, or no answer
    unanswered: int = 0
    statuses: dict[int, int] = field(default_factory=dict)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def rss_mb(pid: int) -> float:
    """Resident memory of the process and its descendants (the engine pool's forkserver and workers)."""
    total = 0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            with open(f"/proc/{current}/status") as status:
                total += next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
            with open(f"/proc/{current}/task/{current}/children") as children:
                pending += [int(child) for child in children.read().split()]
        except (FileNotFoundError, StopIteration, ProcessLookupError):
            continue
    return total / 1024


def lag_summary(exposition: str) -> tuple[float, float, float]:
    """(samples, share over 10 ms, share over 50 ms) of the event loop lag histogram."""
    buckets: dict[str, float] = {}
    count = 0.0
    for line in exposition.splitlines():
        if line.startswith("metarisk_event_loop_lag_seconds_bucket"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            buckets[le] = float(line.rsplit(" ", 1)[1])
        elif line.startswith("metarisk_event_loop_lag_seconds_count"):
            count = float(line.rsplit(" ", 1)[1])
    if not count:
        return 0.0, 0.0, 0.0
    return count, 1 - buckets.get("0.01", count) / count, 1 - buckets.get("0.05", count) / count


async def wait_until_up(base: str, server: subprocess.Popen[bytes], deadline_s: float = 300.0) -> None:
    started = time.monotonic()
    async with aiohttp.ClientSession() as session:
        while time.monotonic() - started < deadline_s:
            if server.poll() is not None:
                raise RuntimeError(f"the demo exited with {server.returncode}")
            try:
                async with session.get(f"{base}/v1/accounts/demo/risk") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.5)
    raise RuntimeError(f"the demo did not answer within {deadline_s:.0f} s")


async def soak(base: str, server_pid: int, *, minutes: float, rate: float) -> dict[str, object]:
    routes = {name: Route() for name, *_ in MIX}
    schedule = [entry for entry in MIX for _ in range(entry[4])]
    total = int(minutes * 60 * rate)
    rss: list[tuple[float, float]] = []
    max_lag = 0.0
    connector = aiohttp.TCPConnector(limit=512)
    headers = {"X-API-Key": DEMO_KEY, "Content-Type": "application/json"}
    bodies = {name: json.dumps(body).encode() if body is not None else None for name, _, _, body, _ in MIX}
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=TIMEOUT_S)) as session:

        async def one(i: int, intended: float) -> None:
            name, method, path, _, _ = schedule[i % len(schedule)]
            route = routes[name]
            try:
                async with session.request(method, base + path, data=bodies[name], headers=headers) as response:
                    await response.read()
                    route.statuses[response.status] = route.statuses.get(response.status, 0) + 1
                    if response.status >= 500:
                        route.errors += 1
            except (aiohttp.ClientError, TimeoutError):
                route.errors += 1
                route.unanswered += 1
                return
            route.latencies_ms.append((time.perf_counter() - intended) * 1000)

        async def sample() -> None:
            nonlocal max_lag
            while True:
                rss.append((time.perf_counter() - t0, rss_mb(server_pid)))
                try:
                    async with session.get(base + "/metrics") as response:
                        text = await response.text()
                    last = [line for line in text.splitlines()
                            if line.startswith("metarisk_event_loop_lag_last_seconds ")]
                    if last:
                        max_lag = max(max_lag, float(last[0].split()[1]))
                except (aiohttp.ClientError, TimeoutError):
                    pass
                await asyncio.sleep(10)

        t0 = time.perf_counter()
        sampler = asyncio.ensure_future(sample())
        tasks = set()
        for i in range(total):
            intended = t0 + i / rate
            delay = intended - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.ensure_future(one(i, intended))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - t0
        sampler.cancel()
        async with session.get(base + "/metrics") as response:
            exposition = await response.text()
        rss.append((elapsed, rss_mb(server_pid)))
    warm = next((mb for at, mb in rss if at >= elapsed / 5), rss[0][1])
    samples, over_10ms, over_50ms = lag_summary(exposition)
    everything = [ms for r in routes.values() for ms in r.latencies_ms]
    return {
        "rate": rate, "minutes": minutes, "requests": total, "achieved_per_s": total / elapsed,
        "routes": {name: {"n": sum(r.statuses.values()) + r.unanswered, "p50_ms": percentile(r.latencies_ms, 0.5),
                          "p99_ms": percentile(r.latencies_ms, 0.99), "max_ms": max(r.latencies_ms, default=0.0),
                          "errors": r.errors, "statuses": r.statuses}
                   for name, r in routes.items() if r.latencies_ms or r.errors},
        "all": {"p50_ms": percentile(everything, 0.5), "p99_ms": percentile(everything, 0.99),
                "errors": sum(r.errors for r in routes.values())},
        "loop_lag": {"samples": samples, "over_10ms": over_10ms, "over_50ms": over_50ms, "max_s": max_lag},
        "rss_mb": {"start": rss[0][1], "after_warm_up": warm, "end": rss[-1][1],
                   "growth_after_warm_up": rss[-1][1] - warm},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=300.0, help="requests per second, all routes together")
    parser.add_argument("--port", type=int, default=8093)
    args = parser.parse_args()
    env = {**os.environ, "METARISK_RATE_PER_SECOND": "1000000", "METARISK_RATE_BURST": "1000000",
           "METARISK_DATA_DIR": str(Path(os.environ.get("TMPDIR", "/tmp")) / f"metarisk-soak-{args.port}")}
    server = subprocess.Popen([sys.executable, "-m", "api.cli", "demo", "--port", str(args.port)], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{args.port}"
    try:
        asyncio.run(wait_until_up(base, server))
        result = asyncio.run(soak(base, server.pid, minutes=args.minutes, rate=args.rate))
    finally:
        server.send_signal(signal.SIGTERM)
        stopped = time.monotonic()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        result_stop = time.monotonic() - stopped
    result["sigterm_to_exit_s"] = result_stop
    result["command"] = " ".join([".venv/bin/python benchmarks/soak.py", f"--minutes {args.minutes:g}",
                                  f"--rate {args.rate:g}"])
    result["machine"] = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()}"
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
