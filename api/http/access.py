"""API keys (header X-API-Key) on the routes that compute or sign, and a token bucket per key."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from api.http.problems import Problem
from api.http.settings import RateLimit

API_KEY_HEADER = "X-API-Key"
Clock = Callable[[], float]


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Token buckets keyed by API key. Only known keys get a bucket, so the table stays as small as the key list."""

    def __init__(self, limit: RateLimit, clock: Clock) -> None:
        self._limit = limit
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def retry_after(self, key: str) -> float:
        """Takes one token for `key` and returns 0, or returns the seconds until one is available."""
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(tokens=float(self._limit.burst), updated=now)
        refill = (now - bucket.updated) * self._limit.per_second
        bucket.tokens = min(float(self._limit.burst), bucket.tokens + refill)
        bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self._limit.per_second


def access_middleware(
    keyed_routes: frozenset[tuple[str, str]], api_keys: frozenset[str], limiter: RateLimiter
) -> Middleware:
    """`keyed_routes` holds (method, route template) pairs that need a key; others pass untouched."""

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        resource = request.match_info.route.resource
        if resource is None or (request.method, resource.canonical) not in keyed_routes:
            return await handler(request)
        key = request.headers.get(API_KEY_HEADER)
        if key is None or key not in api_keys:
            raise Problem(
                401,
                "unauthorized",
                "Unauthorized",
                f"this route needs a valid API key in the {API_KEY_HEADER} header",
                headers={"WWW-Authenticate": API_KEY_HEADER},
            )
        wait = limiter.retry_after(key)
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            raise Problem(
                429,
                "rate-limited",
                "Too many requests",
                f"the rate limit of this API key is exceeded; retry in {seconds} s",
                headers={"Retry-After": str(seconds)},
            )
        return await handler(request)

    return check
