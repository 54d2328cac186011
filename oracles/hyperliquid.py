"""Hyperliquid public market data: POST /info {"type": "metaAndAssetCtxs"} -> oracle and mark prices per perp."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated

import aiohttp
from pydantic import BeforeValidator

from oracles.observations import PriceObservation
from venue_http import SourceError, VenueModel, decimal_str, parse, request_json

Dec = Annotated[float, BeforeValidator(decimal_str)]
HEARTBEAT_S = 60.0  # validators publish oracle prices every ~3 s


class UniverseAsset(VenueModel):
    name: str
    szDecimals: int
    maxLeverage: int


class Meta(VenueModel):
    universe: list[UniverseAsset]


class AssetCtx(VenueModel):
    markPx: Dec
    oraclePx: Dec
    funding: Dec
    openInterest: Dec


async def fetch_hyperliquid_observations(
    session: aiohttp.ClientSession, base_url: str, assets: Sequence[str], *, now: datetime, dex: str = "",
    timeout_s: float = 5.0,
) -> list[PriceObservation]:
    """The oracle price of each asset (the validators' weighted median of CEX spot prices). The response carries no
    timestamp: it is taken as of `now`, the time it was received. Raises: SourceError."""
    data = await request_json(session, "POST", f"{base_url}/info",
                              json_body={"type": "metaAndAssetCtxs", "dex": dex}, timeout_s=timeout_s)
    if not isinstance(data, list) or len(data) != 2:
        raise SourceError("unexpected metaAndAssetCtxs response: not a [meta, assetCtxs] pair")
    meta = parse(Meta, data[0], what="metaAndAssetCtxs meta")
    if not isinstance(data[1], list) or len(data[1]) != len(meta.universe):
        raise SourceError("unexpected metaAndAssetCtxs response: contexts do not match the universe")
    # HIP-3 dexes name their coins "DEX:COIN"; the asset is COIN
    ctxs = {u.name.split(":", 1)[-1]: parse(AssetCtx, c, what=f"metaAndAssetCtxs {u.name}")
            for u, c in zip(meta.universe, data[1], strict=True)}
    source = "hyperliquid-oracle" if dex == "" else f"hyperliquid-{dex}-oracle"
    return [
        PriceObservation(source=source, asset=a, price=ctxs[a].oraclePx, published_at=now,
                         heartbeat_s=HEARTBEAT_S, raw={"markPx": str(ctxs[a].markPx)})
        for a in assets if a in ctxs
    ]
