"""Pyth over Hermes: GET /v2/updates/price/latest?ids[]=... -> one observation per feed (price and conf share expo)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

import aiohttp
from pydantic import Field

from oracles.observations import PriceObservation, observation_from_pyth
from venue_http import VenueModel, parse, request_json

HEARTBEAT_S = 60.0  # Hermes publishes every ~400 ms; a minute-old price is stale for a risk snapshot
IntStr = Annotated[str, Field(pattern=r"^-?[0-9]+$")]


class HermesPrice(VenueModel):
    price: IntStr
    conf: IntStr
    expo: int
    publish_time: int


class HermesParsed(VenueModel):
    id: str
    price: HermesPrice


class HermesLatest(VenueModel):
    parsed: list[HermesParsed]


async def fetch_pyth_observations(
    session: aiohttp.ClientSession, base_url: str, feeds: Mapping[str, str], *, timeout_s: float = 5.0,
    source: str = "pyth",
) -> list[PriceObservation]:
    """feeds: asset -> Pyth feed id (hex). Raises: SourceError."""
    params = [("ids[]", feed) for feed in feeds.values()]
    data = await request_json(session, "GET", f"{base_url}/v2/updates/price/latest", params=params,
                              timeout_s=timeout_s)
    latest = parse(HermesLatest, data, what="Hermes price/latest")
    by_id = {p.id.removeprefix("0x").lower(): p.price for p in latest.parsed}
    out = []
    for asset, feed in feeds.items():
        p = by_id.get(feed.removeprefix("0x").lower())
        if p is None:
            continue
        out.append(observation_from_pyth(source=source, asset=asset, price=int(p.price), conf=int(p.conf),
                                         expo=p.expo, publish_time=p.publish_time, heartbeat_s=HEARTBEAT_S))
    return out
