"""Prometheus metrics of one app: requests and latency per route, margin computations."""

from __future__ import annotations

import os
import time

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

# from a bare route (~0.1 ms) to a slow aggregator refresh (seconds)
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
UNMATCHED_ROUTE = "(unmatched)"  # every 404 and 405 shares one label, so random paths cannot grow the series
MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"  # set when several workers serve one port
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class ApiMetrics:
    """Each app has its own registry: two apps in one process (tests) never share counts."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "metarisk_http_requests",
            "HTTP requests answered, per route template, method and status",
            ("route", "method", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "metarisk_http_request_duration_seconds",
            "Time from the request's arrival at the app to its response, per route template and method",
            ("route", "method"),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.margin_computations = Counter(
            "metarisk_margin_computations",
            "Margin reports computed from what-if requests, per outcome (ok, invalid)",
            ("outcome",),
            registry=self.registry,
        )
        self.margin_duration = Histogram(
            "metarisk_margin_compute_seconds",
            "Time validating a what-if request and computing its report",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

    def exposition(self) -> bytes:
        if os.environ.get(MULTIPROCESS_DIR):  # several workers (api.http.server): every worker's counts, summed
            merged = CollectorRegistry()
            MultiProcessCollector(merged)
            return generate_latest(merged)
        return generate_latest(self.registry)


METRICS_CONTENT_TYPE = CONTENT_TYPE_LATEST


def metrics_middleware(metrics: ApiMetrics) -> Middleware:
    @web.middleware
    async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
        start = time.perf_counter()
        response = await handler(request)
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else UNMATCHED_ROUTE
        method = request.method if request.method in KNOWN_METHODS else "other"
        metrics.latency.labels(route, method).observe(time.perf_counter() - start)
        metrics.requests.labels(route, method, str(response.status)).inc()
        return response

    return record
