"""What an operator configures: API keys, per-key rate limits, body and GraphQL limits (from the environment)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

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
    # a 10,000-position request (the engine's own limit) is about 2 MB of JSON
    client_max_size: int = 4 * 1024 * 1024
    graphql_max_depth: int = 8
    graphql_max_tokens: int = 2_000
    graphql_max_aliases: int = 15
    # field selections once fragments are expanded; the standard introspection query is 220
    graphql_max_fields: int = 1_000
    # the schema is public in the demo (GraphiQL needs it); a production service switches it off
    graphql_introspection: bool = True

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> ApiSettings:
        """METARISK_API_KEYS (comma-separated), METARISK_RATE_PER_SECOND, METARISK_RATE_BURST,
        METARISK_MAX_BODY_BYTES, METARISK_GRAPHQL_INTROSPECTION (true or false); anything unset keeps its
        default.

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
        return cls(
            api_keys=api_keys,
            rate_limit=rate,
            client_max_size=int(environ.get("METARISK_MAX_BODY_BYTES", defaults.client_max_size)),
            graphql_introspection=_flag(environ, "METARISK_GRAPHQL_INTROSPECTION", defaults.graphql_introspection),
        )


def _flag(environ: Mapping[str, str], name: str, default: bool) -> bool:
    value = environ.get(name)
    if value is None:
        return default
    if value.strip().lower() not in {"true", "false", "1", "0"}:
        raise ValueError(f"{name} must be true or false, not {value!r}")
    return value.strip().lower() in {"true", "1"}
