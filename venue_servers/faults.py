"""Per-route failure injection for the local venues: the ways a real venue goes wrong."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Literal

from aiohttp import web

Fault = Literal["http-500", "hang", "malformed-json", "rename-field"]


@dataclass
class Faults:
    """Route (or Hyperliquid info type, Derive method) -> fault. `hang` holds the request until `release()`
    (or until the client gives up), so a test of a client timeout needs no sleep on its side."""

    by_route: dict[str, Fault] = field(default_factory=dict)
    hits: dict[str, int] = field(default_factory=dict)
    _released: asyncio.Event = field(default_factory=asyncio.Event)

    def set(self, route: str, fault: Fault) -> None:
        self.by_route[route] = fault

    def clear(self) -> None:
        self.by_route.clear()

    def release(self) -> None:
        self._released.set()

    async def intercept(self, route: str) -> web.Response | None:
        """The faulty response for `route`, or None to serve it normally ('rename-field' is served by the route)."""
        self.hits[route] = self.hits.get(route, 0) + 1
        fault = self.by_route.get(route)
        if fault == "http-500":
            return web.Response(status=500, text="Internal Server Error")
        if fault == "malformed-json":
            return web.Response(status=200, text='{"result": [{"instrument_name": "BTC-PERP',
                                content_type="application/json")
        if fault == "hang":
            await self._released.wait()
            return web.Response(status=504, text="released")
        return None

    def renames(self, route: str) -> bool:
        return self.by_route.get(route) == "rename-field"


def rename_key(body: object, old: str, new: str) -> object:
    """`body` with every `old` key renamed `new`: a venue renaming a field."""
    if isinstance(body, dict):
        return {(new if k == old else k): rename_key(v, old, new) for k, v in body.items()}
    if isinstance(body, list):
        return [rename_key(v, old, new) for v in body]
    return body
