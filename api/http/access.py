"""Who may call what: API keys (header X-API-Key), a token bucket per key, a token bucket per client address for
the routes open without a key, and bounded concurrent live reads.

Every route of the app is classed in one table by (method, route template). HEAD is read as GET (aiohttp answers
HEAD with the GET handler), and a method the table does not name on a known route (OPTIONS, or one added later)
needs a key: nothing reaches a handler by a method nobody classed.
"""

from __future__ import annotations

import ipaddress
import math
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from api.http.problems import Problem
from api.http.settings import ApiSettings, RateLimit

API_KEY_HEADER = "X-API-Key"
Clock = Callable[[], float]
_IPV6_CLIENT_PREFIX = 64  # one subscriber's IPv6 network: rotating addresses inside it is still one client


class KeyRule(Enum):
    NONE = "none"  # open: no key, no limit
    REQUIRED = "required"  # a valid key, limited per key
    OR_CLIENT_LIMIT = "or-client-limit"  # a valid key (limited per key), or none and limited per client address


@dataclass(frozen=True)
class Access:
    key: KeyRule
    live_read: bool = False  # reads chains and venues on demand: holds one of the bounded live-read slots


OPEN = Access(KeyRule.NONE)
KEYED = Access(KeyRule.REQUIRED)
RouteTable = Mapping[tuple[str, str], Access]


def access_of(table: RouteTable, method: str, route: str) -> Access:
    """The access rule of `method` on the route template `route`: HEAD as GET, an unclassed method keyed."""
    return table.get(("GET" if method == "HEAD" else method, route), KEYED)


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Token buckets by client (an API key, or a client address). At most `capacity` buckets are kept, the least
    recently used dropped first, so clients the table has never seen cannot grow it."""

    def __init__(self, limit: RateLimit, clock: Clock, *, capacity: int = 10_000) -> None:
        self._limit = limit
        self._clock = clock
        self._capacity = capacity
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def retry_after(self, client: str) -> float:
        """Takes one token for `client` and returns 0, or returns the seconds until one is available."""
        now = self._clock()
        bucket = self._buckets.get(client)
        if bucket is None:
            bucket = self._buckets[client] = _Bucket(tokens=float(self._limit.burst), updated=now)
            while len(self._buckets) > self._capacity:
                self._buckets.popitem(last=False)
        self._buckets.move_to_end(client)
        refill = (now - bucket.updated) * self._limit.per_second
        bucket.tokens = min(float(self._limit.burst), bucket.tokens + refill)
        bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self._limit.per_second


class LiveReadSlots:
    """At most `per_client` live reads in flight per client and `total` in all; past either, the request is
    refused at once (429 for the client's own excess, 503 when the server as a whole is full) rather than queued:
    a queue of live reads is what starved the market refresh."""

    def __init__(self, *, per_client: int, total: int) -> None:
        self._per_client = per_client
        self._total = total
        self._in_flight: dict[str, int] = {}
        self._all = 0

    def acquire(self, client: str) -> None:
        """Takes a slot for `client`; give it back with `release`. Raises Problem 429 or 503 with Retry-After
        when none is free."""
        held = self._in_flight.get(client, 0)
        if held >= self._per_client:
            raise _busy(429, f"at most {self._per_client} live wallet reads at once per client")
        if self._all >= self._total:
            raise _busy(503, f"the server is running its maximum of {self._total} live wallet reads")
        self._in_flight[client] = held + 1
        self._all += 1

    def release(self, client: str) -> None:
        self._all -= 1
        if self._in_flight[client] == 1:
            del self._in_flight[client]
        else:
            self._in_flight[client] -= 1

    @contextmanager
    def hold(self, client: str) -> Iterator[None]:
        self.acquire(client)
        try:
            yield
        finally:
            self.release(client)

    def in_flight(self) -> int:
        return self._all


def _busy(status: int, detail: str) -> Problem:
    slug, title = ("rate-limited", "Too many requests") if status == 429 else ("busy", "Service busy")
    return Problem(status, slug, title, f"{detail}; retry in 1 s", headers={"Retry-After": "1"})


def client_address(request: web.Request) -> str:
    """The peer's address (an IPv6 one as its /64). Forwarding headers are not read: anyone can write them."""
    remote = request.remote or "unknown"
    try:
        address = ipaddress.ip_address(remote)
    except ValueError:
        return remote
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/{_IPV6_CLIENT_PREFIX}", strict=False))
    return str(address)


async def _route_template(request: web.Request) -> str | None:
    """The matched route's template; for a method the route does not allow (405), the template of that route."""
    resource = request.match_info.route.resource
    if resource is not None:
        return resource.canonical
    for candidate in request.app.router.resources():
        matched, allowed = await candidate.resolve(request)
        if matched is None and allowed:
            return candidate.canonical
    return None


def access_middleware(
    table: RouteTable, settings: ApiSettings, clock: Clock, slots: LiveReadSlots
) -> Middleware:
    key_limiter = RateLimiter(settings.rate_limit, clock, capacity=max(1, len(settings.api_keys)))
    client_limiter = RateLimiter(settings.client_rate_limit, clock, capacity=settings.max_limited_clients)

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        route = await _route_template(request)
        if route is None:  # no such path: aiohttp answers 404
            return await handler(request)
        access = access_of(table, request.method, route)
        if access.key is KeyRule.NONE:
            return await handler(request)
        key = request.headers.get(API_KEY_HEADER)
        if key is not None or access.key is KeyRule.REQUIRED:
            if key is None or key not in settings.api_keys:
                raise Problem(
                    401,
                    "unauthorized",
                    "Unauthorized",
                    f"this route needs a valid API key in the {API_KEY_HEADER} header",
                    headers={"WWW-Authenticate": API_KEY_HEADER},
                )
            client, wait, whose = f"key:{key}", key_limiter.retry_after(key), "this API key"
        else:
            address = client_address(request)
            client, wait, whose = f"address:{address}", client_limiter.retry_after(address), "your address"
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            raise Problem(
                429,
                "rate-limited",
                "Too many requests",
                f"the rate limit of {whose} is exceeded; retry in {seconds} s",
                headers={"Retry-After": str(seconds)},
            )
        if not access.live_read:
            return await handler(request)
        with slots.hold(client):
            return await handler(request)

    return check
