"""HTTP to off-chain venues, shared by the market-data clients (oracles) and the position adapters: one exception,
strict parsing, and failures a snapshot or a position source can name.

Every way a venue goes wrong (refused connection, HTTP error, timeout, a body that is not JSON, a JSON-RPC error, a
body that does not parse into the strict model) raises a `SourceError` whose message is the reason shown in the
snapshot's per-source status.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, TypeVar

import aiohttp
from pydantic import BaseModel, ConfigDict, ValidationError

from transport_errors import describe_failure

T = TypeVar("T", bound=BaseModel)
DEFAULT_TIMEOUT_S = 5.0


class SourceError(Exception):
    """A source could not give a usable answer; str(e) is the reason."""


class VenueModel(BaseModel):
    """A venue's response: unknown fields are tolerated (venues add fields); a missing field, or one of another JSON
    type (a string where a number is due), fails."""

    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)


async def request_json(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    params: Any = None,
    json_body: Any = None,
    headers: dict[str, str] | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> Any:
    """Raises: SourceError on any transport, HTTP or JSON failure."""
    try:
        async with session.request(
            method, url, params=params, json=json_body, headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout_s),
        ) as resp:
            text = await resp.text()
            if resp.status != 200:
                raise SourceError(f"HTTP {resp.status} from {url}: {text[:200]}")
    except TimeoutError as e:
        raise SourceError(f"timeout after {timeout_s:g} s from {url}") from e
    except asyncio.CancelledError:
        raise
    except aiohttp.ClientError as e:
        raise SourceError(f"{url}: {describe_failure(e)}") from e
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise SourceError(f"malformed JSON from {url}: {e}") from e


def parse(model: type[T], data: Any, *, what: str) -> T:
    """Raises: SourceError naming the first fields that do not match the model."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors()[:3])
        raise SourceError(f"unexpected {what} response: {problems}") from e


def decimal_str(value: object) -> float:
    """A venue's decimal string (Hyperliquid, Derive): a string of digits, never a bare number or an empty value."""
    if not isinstance(value, str):
        raise ValueError(f"expected a decimal string, got {type(value).__name__}")
    try:
        return float(value)
    except ValueError as e:
        raise ValueError(f"not a decimal: {value!r}") from e
