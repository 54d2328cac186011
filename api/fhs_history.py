"""The fhs model's history for API and CLI requests that send none: the repository's recorded daily closes (and
BTC's DVOL) of the request's underlyings, up to its as_of (research.reference). The recorded history ends in
2024-2025; a request may send its own `market.history`."""

from __future__ import annotations

from datetime import date
from functools import lru_cache

from research.reference import shipped_prices, shipped_vols
from research.series import DAY, SeriesTable, daily_history
from risk_core.schema.market import MarketHistory
from risk_core.schema.params import default_params
from risk_core.schema.request import MarginRequest

_EPOCH = date(1970, 1, 1)
_HELD = ("asset", "underlying", "token0", "token1")


def with_recorded_history(request: MarginRequest) -> MarginRequest:
    """`request` with the recorded history in its market when it asks for the fhs model and sends none."""
    model = (request.params or {}).get("model", default_params().model)
    market = request.market
    if model != "fhs" or market is None or market.history is not None:
        return request
    tracking = default_params().tracking
    held = {getattr(p, name) for p in request.positions for name in _HELD if hasattr(p, name)}
    underlyings = {tracking[a].underlying if a in tracking else a for a in held}
    prices, _ = _recorded()
    assets = tuple(sorted(a for a in underlyings if a in prices.series))
    if not assets:
        return request
    last_day = min((market.as_of.date() - _EPOCH).days, *(int(prices.series[a].times[-1] // DAY) for a in assets))
    history = _history(assets, last_day)
    return request.model_copy(update={"market": market.model_copy(update={"history": history})})


@lru_cache(maxsize=1)
def _recorded() -> tuple[SeriesTable, SeriesTable]:
    prices = shipped_prices()
    return prices, shipped_vols(prices)


@lru_cache(maxsize=32)
def _history(assets: tuple[str, ...], last_day: int) -> MarketHistory:
    prices, vols = _recorded()
    return daily_history(prices, vols, assets, last_day)
