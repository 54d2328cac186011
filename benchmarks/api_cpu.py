"""Server CPU per request: what one what-if (and one /health) costs the server, in CPU time, not wall time.

    .venv/bin/python benchmarks/api_cpu.py [--requests 400] [--repo PATH]

Starts `metarisk serve` (the what-if API: event loop plus engine pool) from this checkout, or from `--repo` (an
older checkout, e.g. a `git worktree` of the commit before a change, for a before/after in the same minutes), sends
requests one at a time after a warm-up, and reads the CPU time (user + system) of the server process and of every
process under it (the engine pool's forkserver and workers) before and after. CPU time is what a request costs
whatever else the machine runs; wall times on a shared machine are not. The what-if is the demo request
(examples/demo_request.json: 8 positions, its own market) and a 100-position book on the same market.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
KEY = "metarisk-demo-key"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def tree_cpu_s(server: psutil.Process) -> tuple[float, float]:
    """(the server process's CPU seconds, its descendants' CPU seconds)."""
    own = server.cpu_times()
    below = 0.0
    for child in server.children(recursive=True):
        try:
            times = child.cpu_times()
            below += times.user + times.system
        except psutil.NoSuchProcess:
            continue
    return own.user + own.system, below


def post(url: str, body: bytes) -> int:
    request = urllib.request.Request(url, data=body, headers={"X-API-Key": KEY, "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        response.read()
        return int(response.status)


def get(url: str) -> int:
    with urllib.request.urlopen(url, timeout=60) as response:
        response.read()
        return int(response.status)


def hundred_positions(demo: dict[str, Any]) -> dict[str, Any]:
    """The demo request's positions repeated to 100: options at ten strikes each, every size scaled differently."""
    book = []
    for i in range(100):
        position = dict(demo["positions"][i % len(demo["positions"])], id=f"position-{i}")
        size = "liquidity" if position["kind"] == "lp" else "quantity"
        position[size] = position[size] * (1 + i / 100)
        if position["kind"] == "option":
            position["strike"] = position["strike"] * (1 + (i % 10 - 5) / 100)
        book.append(position)
    return {**demo, "positions": book}


def measure(url: str, server: psutil.Process, send: object, n: int) -> dict[str, float]:
    own0, below0 = tree_cpu_s(server)
    started = time.perf_counter()
    for _ in range(n):
        status = send()  # type: ignore[operator]
        if status != 200:
            raise RuntimeError(f"{url}: status {status}")
    wall = time.perf_counter() - started
    own1, below1 = tree_cpu_s(server)
    return {"server_loop_cpu_ms": 1e3 * (own1 - own0) / n, "engine_cpu_ms": 1e3 * (below1 - below0) / n,
            "total_cpu_ms": 1e3 * (own1 - own0 + below1 - below0) / n, "wall_ms": 1e3 * wall / n}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--repo", type=Path, default=ROOT, help="the checkout whose server is measured")
    args = parser.parse_args()
    repo = args.repo.resolve()
    port = free_port()
    # no rate limit in the way of a measurement sending requests back to back
    env = {**os.environ, "PYTHONPATH": str(repo), "OPENBLAS_NUM_THREADS": "1",
           "METARISK_RATE_PER_SECOND": "1000000", "METARISK_RATE_BURST": "1000000"}
    process = subprocess.Popen([sys.executable, "-m", "api.cli", "serve", "--port", str(port)], cwd=repo, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                get(f"{base}/health")
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("the server did not start") from None
                time.sleep(0.2)
        server = psutil.Process(process.pid)
        demo = json.loads((ROOT / "examples" / "demo_request.json").read_text())
        bodies = {"what-if, demo request": json.dumps(demo).encode(),
                  "what-if, 100 positions": json.dumps(hundred_positions(demo)).encode()}
        results: dict[str, dict[str, float]] = {}
        for name, body in bodies.items():
            send = lambda body=body: post(f"{base}/v1/margin", body)  # noqa: E731
            for _ in range(50):  # warm-up: imports, caches, the workers' first market
                send()
            results[name] = measure(base, server, send, args.requests)
        results["/health"] = measure(base, server, lambda: get(f"{base}/health"), args.requests)
        load = os.getloadavg()
        print(json.dumps({"repo": str(repo), "requests": args.requests, "load_average": load, "routes": results},
                         indent=2))
    finally:
        process.terminate()
        process.wait(timeout=30)


if __name__ == "__main__":
    main()
