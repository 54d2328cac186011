"""The event loop's own lag as a Prometheus metric: how late a timer fires is how long every request waited behind
whatever held the loop (a long computation, a blocking call)."""

from __future__ import annotations

import asyncio
import contextlib
import time

from aiohttp import web
from prometheus_client import Gauge, Histogram

from api.http.metrics import ApiMetrics

TICK_S = 0.05
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


async def _measure(histogram: Histogram, last: Gauge) -> None:
    while True:
        expected = time.perf_counter() + TICK_S
        await asyncio.sleep(TICK_S)
        lag = max(0.0, time.perf_counter() - expected)
        histogram.observe(lag)
        last.set(lag)


def track_event_loop_lag(app: web.Application, metrics: ApiMetrics) -> None:
    """Adds `metarisk_event_loop_lag_seconds` (a histogram of timer delays, sampled every 50 ms) and
    `metarisk_event_loop_lag_last_seconds` to the app's metrics, measured while the app runs."""
    histogram = Histogram(
        "metarisk_event_loop_lag_seconds",
        f"How late a {TICK_S * 1000:.0f} ms timer of the event loop fired: the wait every request had meanwhile",
        buckets=LAG_BUCKETS,
        registry=metrics.registry,
    )
    last = Gauge("metarisk_event_loop_lag_last_seconds", "The latest event loop lag sample", registry=metrics.registry,
                 multiprocess_mode="max")

    async def run(_: web.Application):  # type: ignore[no-untyped-def]
        task = asyncio.get_running_loop().create_task(_measure(histogram, last))
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app.cleanup_ctx.append(run)
