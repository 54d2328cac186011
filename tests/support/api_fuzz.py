"""Schemathesis's own runner (`st run`, a subprocess: generating cases is most of the cost, and there it runs in
its own process beside the server) over a live app: the CI's fuzz test and benchmarks/fuzz_api.py share it.

REST: every operation of /openapi.json, with data that fits the document and data that breaks it; GraphQL: every
query field with generated arguments and selections (the JSON scalar from support.graphql_fuzz_hooks). The check
is schemathesis's `not_a_server_error`. Cases are counted by the server itself (its /metrics), so only cases it
answered count, and so are its 5xx.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing import forkserver
from pathlib import Path
from typing import Any

import requests
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

TESTS = Path(__file__).resolve().parents[1]


def _serve_forever(make_app: Callable[[], web.Application], ports: Any) -> None:
    _own_forkserver()
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(make_app())
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    ports.put(runner.addresses[0][1])
    loop.run_forever()


def _own_forkserver() -> None:
    """A forked child inherits the parent's handle on its forkserver (started by an earlier test's engine pool),
    lock and all, which is not the child's to use: the app's engine pool starts a forkserver of the child's own."""
    fresh = forkserver.ForkServer()
    forkserver._forkserver = fresh  # type: ignore[attr-defined]
    forkserver.ensure_running = fresh.ensure_running
    forkserver.get_inherited_fds = fresh.get_inherited_fds
    forkserver.connect_to_new_process = fresh.connect_to_new_process
    forkserver.set_forkserver_preload = fresh.set_forkserver_preload


@contextmanager
def serving_in_a_child(make_app: Callable[[], web.Application]) -> Iterator[str]:
    """The app served by a forked child process."""
    context = multiprocessing.get_context("fork")
    ports = context.Queue()
    # not a daemon: the app's engine pool starts worker processes of its own (terminated with it below)
    child = context.Process(target=_serve_forever, args=(make_app, ports))
    child.start()
    try:
        yield f"http://127.0.0.1:{ports.get(timeout=60)}"
    finally:
        child.terminate()
        child.join(timeout=10)


def answered(base_url: str) -> dict[tuple[str, int], float]:
    """(route, status) -> requests the server answered, from its own counters."""
    text = requests.get(f"{base_url}/metrics", timeout=30).text
    counts: dict[tuple[str, int], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "metarisk_http_requests_total":
                key = (sample.labels["route"], int(sample.labels["status"]))
                counts[key] = counts.get(key, 0.0) + sample.value
    return counts


@dataclass(frozen=True)
class FuzzRun:
    exit_code: int
    output: str
    seconds: float


def run_schemathesis(
    schema_url: str, headers: dict[str, str], *, examples: int, seed: int, hooks: str | None = None, workers: int = 1
) -> FuzzRun:
    """`st run` over the schema at `schema_url` (an OpenAPI document, or a GraphQL endpoint), `examples` cases per
    operation and generation mode, no shrinking (a failure is reported, not minimised), no example database. One
    worker by default: with two, hypothesis's lambda descriptions compiled in threads at once now and then hit
    CPython 3.11's "AST constructor recursion depth mismatch", an error of the fuzzer's, not of the server's."""
    command = [
        sys.executable, "-c", "from schemathesis.cli import schemathesis; schemathesis()", "run", schema_url,
        "--max-examples", str(examples), "--seed", str(seed), "--checks", "not_a_server_error",
        "--phases", "fuzzing", "--no-shrink", "--generation-database", "none", "--workers", str(workers),
        *[f"--header={name}: {value}" for name, value in headers.items()],
    ]
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS.parent), str(TESTS)])}
    if hooks is not None:
        environment["SCHEMATHESIS_HOOKS"] = hooks
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:  # schemathesis writes a cache in its working directory
        done = subprocess.run(command, capture_output=True, text=True, env=environment, cwd=scratch, check=False)
    return FuzzRun(done.returncode, done.stdout + done.stderr, time.perf_counter() - start)
