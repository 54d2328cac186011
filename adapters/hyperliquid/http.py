"""HTTP for the off-chain adapters (Hyperliquid, Deribit and Derive share it): every venue failure is a
`VenueError` whose message is the reason reported."""

from __future__ import annotations

import json
from typing import Any, TypeVar

import aiohttp
from pydantic import BaseModel, ConfigDict, ValidationError

T = TypeVar("T", bound=BaseModel)


class VenueError(Exception):
    """The venue could not give a usable answer; str(e) is the reason."""


class VenueModel(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)


async def request_json(session: aiohttp.ClientSession, method: str, url: str, *, timeout_s: float,
                       **kwargs: Any) -> Any:
    """Raises: VenueError on any transport, HTTP or JSON failure."""
    try:
        async with session.request(method, url, timeout=aiohttp.ClientTimeout(total=timeout_s), **kwargs) as resp:
            text = await resp.text()
            if resp.status != 200:
                raise VenueError(f"HTTP {resp.status} from {url}: {text[:200]}")
    except TimeoutError as e:
        raise VenueError(f"timeout after {timeout_s:g} s from {url}") from e
    except aiohttp.ClientError as e:
        raise VenueError(f"{type(e).__name__} from {url}: {e}") from e
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise VenueError(f"malformed JSON from {url}: {e}") from e


def parse(model: type[T], data: Any, *, what: str) -> T:
    """Raises: VenueError naming the fields that do not match."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors()[:3])
        raise VenueError(f"unexpected {what} response: {problems}") from e


def decimal_str(value: object) -> float:
    if not isinstance(value, str):
        raise ValueError(f"expected a decimal string, got {type(value).__name__}")
    return float(value)
