"""What an operator configures: API keys, per-key rate limits, body and GraphQL limits (from the environment)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aggregator.engine_pool import EngineBudget

DEMO_API_KEY = "metarisk-demo-key"
"""The one key accepted when METARISK_API_KEYS is unset, so the local demo works without set-up."""


@dataclass(frozen=True)
class RateLimit:
    """A token bucket per API key: `per_second` tokens refill continuously, up to `burst` requests at once."""

    per_second: float = 20.0
    burst: int = 40


@dataclass(frozen=True)
class ApiSettings:
    api_keys: frozenset[str] = frozenset({DEMO_API_KEY})
    rate_limit: RateLimit = RateLimit()
    # the wallet reads open without a key: a bucket per client address, and live reads in flight bounded
    client_rate_limit: RateLimit = RateLimit(per_second=1.0, burst=10)
    max_limited_clients: int = 10_000  # client addresses with a bucket; the least recently seen is dropped first
    live_reads_per_client: int = 4
    live_reads_total: int = 32
    # a 10,000-position request (the engine's own limit) is about 2 MB of JSON
    client_max_size: int = 4 * 1024 * 1024
    graphql_max_depth: int = 8
    graphql_max_tokens: int = 2_000
    graphql_max_aliases: int = 15
    engine: EngineBudget = EngineBudget()  # what-ifs and refresh margining: worker processes, time and memory
    # field selections once fragments are expanded; the standard introspection query is 220
    graphql_max_fields: int = 1_000
    # the schema is public in the demo (GraphiQL needs it); a production service switches it off
    graphql_introspection: bool = True

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> ApiSettings:
        """METARISK_API_KEYS (comma-separated), METARISK_RATE_PER_SECOND, METARISK_RATE_BURST (per key),
        METARISK_CLIENT_RATE_PER_SECOND, METARISK_CLIENT_RATE_BURST (per client address, wallet reads without a key),
        METARISK_LIVE_READS_PER_CLIENT, METARISK_LIVE_READS_TOTAL, METARISK_MAX_BODY_BYTES,
        METARISK_GRAPHQL_INTROSPECTION (true or false); anything unset keeps its default.

        Raises:
            ValueError: a variable is set to something that is not a number, or no key is left.
        """
        defaults = cls()
        keys = environ.get("METARISK_API_KEYS")
        api_keys = frozenset(k.strip() for k in keys.split(",") if k.strip()) if keys is not None else defaults.api_keys
        if not api_keys:
            raise ValueError("METARISK_API_KEYS is set but names no key")
        rate = RateLimit(
            per_second=float(environ.get("METARISK_RATE_PER_SECOND", defaults.rate_limit.per_second)),
            burst=int(environ.get("METARISK_RATE_BURST", defaults.rate_limit.burst)),
        )
        if rate.per_second <= 0 or rate.burst < 1:
            raise ValueError("METARISK_RATE_PER_SECOND must be > 0 and METARISK_RATE_BURST >= 1")
        client_rate = RateLimit(
            per_second=float(environ.get("METARISK_CLIENT_RATE_PER_SECOND", defaults.client_rate_limit.per_second)),
            burst=int(environ.get("METARISK_CLIENT_RATE_BURST", defaults.client_rate_limit.burst)),
        )
        if client_rate.per_second <= 0 or client_rate.burst < 1:
            raise ValueError("METARISK_CLIENT_RATE_PER_SECOND must be > 0 and METARISK_CLIENT_RATE_BURST >= 1")
        per_client = int(environ.get("METARISK_LIVE_READS_PER_CLIENT", defaults.live_reads_per_client))
        total = int(environ.get("METARISK_LIVE_READS_TOTAL", defaults.live_reads_total))
        if per_client < 1 or total < per_client:
            raise ValueError("METARISK_LIVE_READS_PER_CLIENT must be >= 1 and METARISK_LIVE_READS_TOTAL >= it")
        return cls(
            api_keys=api_keys,
            rate_limit=rate,
            client_rate_limit=client_rate,
            live_reads_per_client=per_client,
            live_reads_total=total,
            client_max_size=int(environ.get("METARISK_MAX_BODY_BYTES", defaults.client_max_size)),
            engine=engine_budget_from_env(environ),
            graphql_introspection=_flag(environ, "METARISK_GRAPHQL_INTROSPECTION", defaults.graphql_introspection),
        )


def engine_budget_from_env(environ: Mapping[str, str]) -> EngineBudget:
    """METARISK_ENGINE_WORKERS, METARISK_ENGINE_TIME_S (per call) and METARISK_ENGINE_MEMORY_MB (per call, above
    a worker's own footprint); anything unset keeps its default.

    Raises:
        ValueError: a variable is not a number, or not positive.
    """
    default = EngineBudget()
    budget = EngineBudget(
        workers=int(environ.get("METARISK_ENGINE_WORKERS", default.workers)),
        time_s=float(environ.get("METARISK_ENGINE_TIME_S", default.time_s)),
        memory_bytes=int(float(environ.get("METARISK_ENGINE_MEMORY_MB", default.memory_bytes / 2**20)) * 2**20),
    )
    if budget.workers < 1 or budget.time_s <= 0 or budget.memory_bytes <= 0:
        raise ValueError("METARISK_ENGINE_WORKERS, METARISK_ENGINE_TIME_S and METARISK_ENGINE_MEMORY_MB must be > 0")
    return budget


def _flag(environ: Mapping[str, str], name: str, default: bool) -> bool:
    value = environ.get(name)
    if value is None:
        return default
    if value.strip().lower() not in {"true", "false", "1", "0"}:
        raise ValueError(f"{name} must be true or false, not {value!r}")
    return value.strip().lower() in {"true", "1"}
