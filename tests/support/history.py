"""A synthetic daily market history for the fhs model and backtests: fat-tailed joint random walks, seeded."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import numpy as np

from research.series import DAY, SeriesTable

START = date(2024, 1, 1)


def closes(days: int, *, seed: int = 7, assets: dict[str, float] | None = None) -> dict[str, list[float]]:
    """Per asset, `days` daily closes from its start price: correlated Student-t(4) moves with ~3% daily vol."""
    assets = assets or {"BTC": 100_000.0, "ETH": 3_000.0}
    rng = np.random.default_rng(seed)
    common = rng.standard_t(4, days - 1)
    out = {}
    for j, (asset, start) in enumerate(assets.items()):
        own = rng.standard_t(4, days - 1)
        moves = 0.02 * (0.8 * common + 0.6 * own) * (1.0 + 0.5 * j)
        out[asset] = (start * np.exp(np.concatenate([[0.0], np.cumsum(moves)]))).tolist()
    return out


def history(days: int, last: date, **kw: Any) -> dict[str, Any]:
    """A MarketHistory document of `days` closes ending on `last`."""
    dates = [(last - timedelta(days=days - 1 - i)).isoformat() for i in range(days)]
    return {"dates": dates, "close": closes(days, **kw)}


def tape(days: int, **kw: Any) -> SeriesTable:
    """The same closes as a price table from START, one a day at 00:00 UTC."""
    first = (START - date(1970, 1, 1)).days
    rows = [
        ((first + i) * DAY, asset, price)
        for asset, series in closes(days, **kw).items()
        for i, price in enumerate(series)
    ]
    return SeriesTable.from_rows(rows, "price")
