"""What-if margin over HTTP: an open-loop load generator against `metarisk serve` in another process.

    .venv/bin/python benchmarks/bench_api.py [--rate 500] [--duration 20] [--positions 100]

The server runs as a subprocess (`python -m api.cli serve`) on 127.0.0.1; this process is the load generator.
Requests are sent at fixed intended times (constant rate, open loop: a slow answer does not delay the next
request), and each latency is measured from its intended send time, so time a request spent waiting for a free
connection or for the generator itself counts against the server rather than disappearing (no coordinated
omission). Requests are generated from seeds: --books distinct books (64 by default) of 100 positions on BTC and
ETH (options on four expiries, perps, spot, Uniswap v3 ranges, stablecoin balances), sent in turn, all with the
same market (SVI surfaces, forwards), as clients of one desk or of the service's published snapshot send it. The
server validates that market once (its MarketCache) and values each listed instrument on it once
(risk_core.margin.instruments); every book is still parsed, validated, margined in full and serialized per request.

Three runs at the same rate: the bare route /health (the floor of the HTTP stack here), POST /v1/margin, and
POST /v1/margin on a server whose engine call is replaced by the request's precomputed report (everything else
per request: HTTP, key, rate limit, parse, validate, serialize, metrics), which isolates the API's own cost.
Each prints the rate achieved, latency p50/p99/max, errors (non-200 or no answer within the timeout), and CPU
per request of the server process and of the generator. Before the load, the margin route's steps are timed
in this process.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import math
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from api.http.metrics import ApiMetrics  # noqa: E402
from api.http.what_if import MarketCache, compute_what_if, parse_json_body  # noqa: E402
from risk_core.margin.engine import compute_margin_request  # noqa: E402
from risk_core.schema.report import MarginReport  # noqa: E402
from risk_core.schema.request import MarginRequest  # noqa: E402

BENCH_KEY = "bench-key"
MAX_CONNECTIONS = 512
AS_OF = datetime(2026, 11, 25, 8, tzinfo=UTC)
SPOT = {"BTC": 93_000.0, "ETH": 3_000.0, "USDC": 1.0}
ATM_VOL = {"BTC": 0.50, "ETH": 0.65}
CARRY = 0.05  # annualised basis of the forwards
CONTRACT = {"BTC": 1.0, "ETH": 10.0}  # a typical position size, in coin


def _iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def what_if_request(positions: int, seed: int = 7) -> dict[str, Any]:
    """A deterministic book: per 10 positions, 6 options, 1 perp, 1 coin balance, 1 LP range, 1 USDC balance."""
    rng = random.Random(seed)
    expiries = [AS_OF + timedelta(days=d) for d in (7, 30, 63, 120)]
    book: list[dict[str, Any]] = []
    for i in range(positions):
        coin = "BTC" if i % 2 else "ETH"
        spot, size = SPOT[coin], CONTRACT[coin]
        wallet = {"venue": "wallet", "chain": "arbitrum", "account": "0xbench"}
        slot = i % 10
        if slot < 6:
            book.append({
                "id": f"opt-{i}", "kind": "option", "venue": "deribit", "chain": "offchain", "account": "sub-1",
                "underlying": coin, "quantity": rng.choice([-2, -1, 1, 2]) * size,
                "option_type": rng.choice(["call", "put"]),
                "strike": round(spot * math.exp(rng.gauss(0, 0.15)), -2 if coin == "BTC" else 0),
                "expiry": _iso(rng.choice(expiries)), "settlement": rng.choice(["inverse", "linear"]),
            })
        elif slot == 6:
            book.append({
                "id": f"perp-{i}", "kind": "perp", "venue": "hyperliquid", "chain": "hyperliquid",
                "account": "0xbench", "underlying": coin, "quantity": round(rng.uniform(-3, 3) * size, 3),
                "entry_price": round(spot * rng.uniform(0.95, 1.05), 2),
            })
        elif slot == 7:
            book.append({"id": f"spot-{i}", "kind": "spot", **wallet, "asset": coin,
                         "quantity": round(rng.uniform(0.1, 2) * size, 4)})
        elif slot == 8:
            width = rng.uniform(0.05, 0.2)
            book.append({
                "id": f"lp-{i}", "kind": "lp", "venue": "uniswap-v3", "chain": "arbitrum", "account": "0xbench",
                "token0": coin, "token1": "USDC", "liquidity": round(rng.uniform(50, 500) / math.sqrt(spot), 4),
                "price_lower": round(spot * (1 - width), 2), "price_upper": round(spot * (1 + width), 2),
            })
        else:
            book.append({"id": f"usdc-{i}", "kind": "spot", **wallet, "asset": "USDC", "quantity": 20_000})
    years = [(e - AS_OF).days / 365 for e in expiries]
    vol = {
        coin: {"svi": [{"expiry": _iso(e), "a": 0.8 * ATM_VOL[coin] ** 2 * t, "b": 0.2 * math.sqrt(t),
                        "rho": -0.3, "m": 0.0, "sigma": 0.3} for e, t in zip(expiries, years, strict=True)]}
        for coin in ("BTC", "ETH")
    }
    forwards = {
        coin: {_iso(e): round(SPOT[coin] * math.exp(CARRY * t), 2) for e, t in zip(expiries, years, strict=True)}
        for coin in ("BTC", "ETH")
    }
    return {"positions": book, "market": {"as_of": _iso(AS_OF), "spot": SPOT, "forwards": forwards, "vol": vol}}


def _median_ms(step: Callable[[], object], runs: int) -> float:
    for _ in range(min(50, runs)):
        step()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def server_work_per_request(bodies: list[bytes], runs: int) -> dict[str, float]:
    """Median ms of each step the margin route takes, in this process (garbage collection off), cycling through
    the books as the server does: the market found in the route's MarketCache, its instruments already valued."""
    markets, metrics = MarketCache(), ApiMetrics()
    for body in bodies:  # warm: the market cached, every book's instruments valued
        _route_step(body, metrics, markets)
    requests = [MarginRequest.model_validate(_with_known_market(body, markets)) for body in bodies]
    reports = [compute_margin_request(r) for r in requests]
    turn = itertools.count()

    def cycle(items: list[Any]) -> Any:
        return items[next(turn) % len(items)]

    gc.disable()
    try:
        return {
            "parse + validate (market cached)": _median_ms(
                lambda: MarginRequest.model_validate(_with_known_market(cycle(bodies), markets)), runs
            ),
            "compute_margin_request (instruments valued)": _median_ms(
                lambda: compute_margin_request(cycle(requests)), runs
            ),
            "serialize report (model_dump_json)": _median_ms(lambda: cycle(reports).model_dump_json(), runs),
            "the route's work (parse .. serialize)": _median_ms(
                lambda: _route_step(cycle(bodies), metrics, markets).model_dump_json(), runs
            ),
        }
    finally:
        gc.enable()


def _route_step(body: bytes, metrics: ApiMetrics, markets: MarketCache) -> MarginReport:
    document, strict = parse_json_body(body)
    return compute_what_if(document, markets, strict=strict)


def _with_known_market(body: bytes, markets: MarketCache) -> Any:
    document, strict = parse_json_body(body)
    key = markets.key(document, strict=strict)
    known = markets.get(key) if key is not None else None
    return {**document, "market": known} if known is not None and isinstance(document, dict) else document


@dataclass
class LoadResult:
    route: str
    rate: float
    sent: int
    ok: int
    errors: int
    achieved: float
    latencies_ms: list[float]
    server_cpu_ms: float = math.nan  # the server process's CPU time per answered request
    generator_cpu_ms: float = math.nan  # this process's CPU time per request sent

    def percentile(self, q: float) -> float:
        if not self.latencies_ms:
            return math.nan
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection, one request at a time. A bare protocol rather than aiohttp's client,
    which costs the generator about 0.5 ms of CPU per request here: on two cores the generator must stay light."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.answer: asyncio.Future[int] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        head_end = self.buffer.find(b"\r\n\r\n")
        if head_end < 0 or self.answer is None or self.answer.done():
            return
        head = bytes(self.buffer[:head_end]).lower()
        length_at = head.find(b"content-length:")
        length = int(head[length_at + 15 : head.find(b"\r\n", length_at)]) if length_at >= 0 else 0
        if len(self.buffer) >= head_end + 4 + length:
            del self.buffer[: head_end + 4 + length]
            self.answer.set_result(int(head[9:12]))

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.answer is not None and not self.answer.done():
            self.answer.set_exception(ConnectionError("connection closed"))

    async def exchange(self, raw_request: bytes) -> int:
        """Sends a whole request and returns the response status once the whole body has arrived."""
        assert self.transport is not None
        self.answer = asyncio.get_running_loop().create_future()
        self.transport.write(raw_request)
        return await self.answer


def raw_request(method: str, path: str, port: int, body: bytes | None) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-API-Key: {BENCH_KEY}\r\n"
    if body is None:
        return (head + "\r\n").encode()
    return (head + f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body


async def open_loop(
    port: int, method: str, path: str, bodies: list[bytes] | None, rate: float, duration: float, timeout: float
) -> LoadResult:
    """`rate` requests per second for `duration` seconds at fixed intended times, whatever the answers do, the
    bodies sent in turn. A request finding no idle connection opens one (up to MAX_CONNECTIONS), so a slow answer
    does not hold back the next send."""
    loop = asyncio.get_running_loop()
    requests = [raw_request(method, path, port, body) for body in bodies] if bodies else [
        raw_request(method, path, port, None)
    ]
    total = int(rate * duration)
    idle: list[_Connection] = []
    # beyond this many connections a request waits for an idle one, and the wait counts in its latency
    connections = asyncio.Semaphore(MAX_CONNECTIONS)
    latencies: list[float] = []
    errors = 0

    async def one(intended: float, request: bytes) -> None:
        """Counts an error when there is no answer `timeout` seconds after the intended send time."""
        nonlocal errors
        connection: _Connection | None = None
        try:
            async with asyncio.timeout_at(intended + timeout), connections:
                connection = idle.pop() if idle else (await loop.create_connection(_Connection, "127.0.0.1", port))[1]
                status = await connection.exchange(request)
        except (OSError, TimeoutError):  # OSError: refused or timed out connecting; ConnectionError: closed
            errors += 1
            if connection is not None and connection.transport is not None:
                connection.transport.close()  # a late answer must not be read as the next request's
            return
        idle.append(connection)
        if status != 200:
            errors += 1
            return
        latencies.append((loop.time() - intended) * 1e3)

    tasks = []
    start = loop.time() + 0.05
    for i in range(total):
        intended = start + i / rate
        delay = intended - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(intended, requests[i % len(requests)])))
    await asyncio.gather(*tasks)
    elapsed = loop.time() - start
    for connection in idle:
        if connection.transport is not None:
            connection.transport.close()
    return LoadResult(path.lstrip("/"), rate, total, len(latencies), errors, len(latencies) / elapsed, latencies)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def serve_without_engine(port: int, positions: int) -> None:
    """The real server with the engine call replaced by the report of the benchmark's request, computed once:
    every other step (HTTP, auth, parse, validate, serialize, metrics) still runs per request."""
    import api.http.what_if as what_if  # noqa: PLC0415  (patched only in this benchmark process)
    from api.http.server import serve  # noqa: PLC0415

    report = compute_margin_request(MarginRequest.model_validate(what_if_request(positions)))
    what_if.compute_margin_request = lambda request: report  # type: ignore[assignment]

    async def in_this_process(pool: Any, request: Any, snapshot: Any) -> Any:
        # the engine pool's workers would import the module unpatched: the stubbed call runs here instead
        return what_if.what_if_in_worker(request, snapshot)

    what_if._run = in_this_process  # type: ignore[assignment]  # noqa: SLF001
    serve(host="127.0.0.1", port=port)


def start_server(port: int, *, engine: bool, positions: int, workers: int = 1) -> subprocess.Popen[bytes]:
    env = {**os.environ, "METARISK_API_KEYS": BENCH_KEY, "METARISK_RATE_PER_SECOND": "1000000",
           "METARISK_RATE_BURST": "1000000", "PYTHONPATH": str(ROOT)}
    if engine:
        command = ["-m", "api.cli", "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    else:
        command = [__file__, "--serve-without-engine", str(port), "--positions", str(positions)]
    server = subprocess.Popen([sys.executable, *command], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return server
        except OSError:
            time.sleep(0.1)
    stop(server)
    raise RuntimeError("the server did not start within 30 s")


def row(result: LoadResult) -> str:
    return (f"| {result.route:<22} | {result.rate:>6.0f} | {result.achieved:>8.1f} | {result.percentile(0.5):>8.2f} "
            f"| {result.percentile(0.99):>8.2f} | {max(result.latencies_ms, default=math.nan):>8.2f} "
            f"| {result.errors:>6} | {result.server_cpu_ms:>10.3f} | {result.generator_cpu_ms:>13.3f} |")


def cpu_model() -> str:
    """The processor's name: the machines these figures come from differ by about 2x from one session to the next."""
    try:
        names = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                 if line.startswith("model name")]
    except OSError:
        names = []
    return names[0] if names else platform.processor() or platform.machine()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc; NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measured(
    pids: list[int], port: int, path: str, bodies: list[bytes] | None, rate: float, duration: float,
    timeout: float,
) -> LoadResult:
    before, own_before = sum(map(cpu_seconds, pids)), time.process_time()
    result = await open_loop(port, "GET" if bodies is None else "POST", path, bodies, rate, duration, timeout)
    result.server_cpu_ms = (sum(map(cpu_seconds, pids)) - before) / max(result.ok, 1) * 1e3
    result.generator_cpu_ms = (time.process_time() - own_before) / max(result.sent, 1) * 1e3
    return result


async def measure(
    pids: list[int], port: int, bodies: list[bytes], rate: float, duration: float, timeout: float, *, bare: bool
) -> list[LoadResult]:
    # lazy imports, the market cached, every book's instruments valued (in every worker)
    warm_up = await open_loop(port, "POST", "/v1/margin", bodies, 50, max(2.0, 4 * len(bodies) / 50), timeout)
    if warm_up.errors:
        raise RuntimeError("the margin route fails on the benchmark's request")
    gc.collect()
    gc.freeze()
    gc.disable()  # the generator's own collections would show up as server latency
    # the bare route first: an overloaded margin run leaves a backlog the server keeps working through
    results = [await measured(pids, port, "/health", None, rate, duration, timeout)] if bare else []
    results.append(await measured(pids, port, "/v1/margin", bodies, rate, duration, timeout))
    gc.enable()
    return results


def run_load(args: argparse.Namespace, bodies: list[bytes], *, engine: bool) -> list[LoadResult]:
    port = _free_port()
    server = start_server(port, engine=engine, positions=args.positions, workers=args.workers if engine else 1)
    try:
        return asyncio.run(
            measure(server_pids(server.pid), port, bodies, args.rate, args.duration, args.timeout, bare=engine)
        )
    finally:
        stop(server)


def server_pids(pid: int) -> list[int]:
    """The server process and its workers (its children), whose CPU time is the server's."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    return [pid, *map(int, children)]


def stop(server: subprocess.Popen[bytes]) -> None:
    """SIGTERM; SIGKILL when an overloaded server is still finishing its backlog of abandoned requests."""
    server.terminate()
    try:
        server.wait(timeout=5)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=500.0, help="requests per second")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of load per route")
    parser.add_argument("--positions", type=int, default=100)
    parser.add_argument("--workers", type=int, default=1, help="server processes for the margin run")
    parser.add_argument("--books", type=int, default=64, help="distinct books sent in turn, on one market")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds before a request counts as an error")
    parser.add_argument("--runs", type=int, default=300, help="timed runs of each in-process step")
    parser.add_argument("--skip-engine-free", action="store_true", help="skip the run with the engine call stubbed")
    parser.add_argument("--serve-without-engine", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_without_engine:
        serve_without_engine(args.serve_without_engine, args.positions)
        return

    bodies = [orjson.dumps(what_if_request(args.positions, seed)) for seed in range(args.books)]
    print(f"{cpu_model()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"load average {os.getloadavg()[0]:.2f}; {args.books} books of {args.positions} positions on one market, "
          f"{statistics.mean(map(len, bodies)):,.0f} bytes a request")
    print("\nserver work per request, in-process (median ms):")
    for step, ms in server_work_per_request(bodies, args.runs).items():
        print(f"  {step:<46} {ms:8.3f}")

    results = run_load(args, bodies, engine=True)
    if not args.skip_engine_free:
        engine_free = run_load(args, bodies, engine=False)[0]
        engine_free.route = "margin, engine stubbed"
        results.append(engine_free)
    print(f"\nopen loop, {args.duration:.0f} s per route, latency from the intended send time (ms):")
    print("| route                  | rate/s | achieved |      p50 |      p99 |      max | errors | server CPU "
          "| generator CPU |")
    print("|------------------------|-------:|---------:|---------:|---------:|---------:|-------:|-----------:"
          "|--------------:|")
    for result in results:
        print(row(result))
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
