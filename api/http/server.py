"""Running the app: `metarisk serve`, in one process or in several workers sharing one listening socket."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
import sys
from types import FrameType

from aiohttp import web

from api.http.app import SHUTDOWN_TIMEOUT_S, create_app
from api.http.metrics import MULTIPROCESS_DIR
from api.http.service import RiskService
from api.http.settings import ApiSettings


async def _freeze_startup_objects(app: web.Application) -> None:
    # everything built at start-up lives as long as the server: moving it out of the collector's generations
    # keeps full collections short (p99 of a GraphQL route fell from ~70 to ~6 ms; PERFORMANCE_NOTES.md)
    gc.collect()
    gc.freeze()


def _run(*, host: str, port: int, service: RiskService | None, sock: socket.socket | None = None) -> None:
    app = create_app(service=service, settings=ApiSettings.from_env(os.environ))
    app.on_startup.append(_freeze_startup_objects)
    web.run_app(app, host=None if sock else host, port=None if sock else port, sock=sock, access_log=None,
                print=lambda line: logging.info(line.strip()), loop=_event_loop(), shutdown_timeout=SHUTDOWN_TIMEOUT_S)


def _event_loop() -> asyncio.AbstractEventLoop:
    """uvloop where it installs (not on Windows): the HTTP stack's own cost per request is its event loop's."""
    try:
        import uvloop  # noqa: PLC0415 - optional by platform
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def serve(*, host: str, port: int, service: RiskService | None = None, workers: int = 1) -> None:
    """Blocks serving until interrupted; keys and limits come from the environment (ApiSettings.from_env).

    With `workers` > 1 the what-if API runs in that many processes (the engine is CPU-bound and Python runs one
    thread at a time): this process binds the socket and forks the workers, which accept from it in turn, and
    stops them on SIGINT or SIGTERM. Each worker keeps its own caches and rate-limit buckets (a key may reach
    `workers` times its limit); /metrics adds up every worker's counts (prometheus_client's multiprocess mode).
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if workers == 1:
        _run(host=host, port=port, service=service)
        return
    if service is not None:
        raise ValueError("the aggregator service runs in one process: its scheduler and cache are not shared")
    if MULTIPROCESS_DIR not in os.environ:
        # set before any metric exists (prometheus_client picks its value store from the environment)
        raise ValueError(f"{MULTIPROCESS_DIR} must name a directory before the metrics module is imported")
    listening = socket.create_server((host, port), backlog=1024)
    children: list[int] = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:  # a worker: serve until signalled, never return into the parent's code
            status = 0
            try:
                _run(host=host, port=port, service=None, sock=listening)
            except BaseException:  # noqa: BLE001 - reported, and the worker must not fall back into the parent
                logging.exception("worker %d failed", os.getpid())
                status = 1
            finally:
                os._exit(status)
        children.append(pid)
    listening.close()
    logging.info("serving on http://%s:%d with %d workers", host, port, workers)

    def stop(signum: int, _frame: FrameType | None) -> None:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    failed = 0
    for child in children:
        _, status = os.waitpid(child, 0)
        failed += os.waitstatus_to_exitcode(status) not in (0, -signal.SIGTERM)
    if failed:
        sys.exit(1)
