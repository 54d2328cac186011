"""A recorded price path for the replayed market to move along, so the demo's prices, ratios and alerts move.

Each asset's path is its finest recorded history in reference_data/market: the real mainnet Chainlink rounds for
BTC/USD and ETH/USD (2023-04..2024-01, a round on every 0.5% move or hourly heartbeat), CoinGecko's daily closes
for SOL (no finer SOL record). All start at one common recorded instant, and a path is read as the ratio of the
price to its starting price: the scenario multiplies its recorded spot by it, so the path starts at the chain's
spot and the assets keep their recorded co-movement. Between two records the price is interpolated linearly.

The replay runs `speed` recorded seconds per second of the replay clock: the recorded path is hours long per
hour of demo at speed 1, where Chainlink's rounds barely move; the default plays a recorded hour per minute.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache

import numpy as np
from numpy.typing import NDArray

import reference_data

DEFAULT_SPEED = 60.0  # recorded seconds per replay second: an hour of recorded path per minute of demo
CHAINLINK_FILES = {
    "BTC": "chainlink_btc_usd_mainnet_0xF4030086522a5bEEa4988F8cA5B36dbC97BeE88c.csv",
    "ETH": "chainlink_eth_usd_mainnet_0x5f4eC3Df9cbd43714FE2740f5E3616155c5b8419.csv",
}
DAILY_FILES = {"SOL": "coingecko_sol-usd-max.csv"}


@dataclass(frozen=True)
class RecordedSeries:
    """Unix seconds and USD prices, ascending in time."""

    times: NDArray[np.float64]
    prices: NDArray[np.float64]


@dataclass(frozen=True)
class PricePath:
    series: dict[str, RecordedSeries]
    start: float  # the recorded instant the path starts at (unix seconds)
    speed: float = DEFAULT_SPEED

    def ratio(self, asset: str, elapsed_seconds: float) -> float:
        """Price / starting price of `asset`, `elapsed_seconds` of replay after the start; 1 for an asset without
        a recorded path, and held at the last record once the recording ends."""
        recorded = self.series.get(asset)
        if recorded is None:
            return 1.0
        at = self.start + max(elapsed_seconds, 0.0) * self.speed
        return float(np.interp(at, recorded.times, recorded.prices) / np.interp(self.start, recorded.times,
                                                                                 recorded.prices))


@cache
def chainlink_series(asset: str) -> RecordedSeries:
    """The valid rounds of a recorded Chainlink USD feed (8 decimals; the file's all-zero round dropped)."""
    with reference_data.path("market", "chainlink", CHAINLINK_FILES[asset]).open(newline="") as f:
        rounds = sorted((int(r["update"]), int(r["answer"])) for r in csv.DictReader(f) if int(r["answer"]) > 0)
    return RecordedSeries(times=np.array([t for t, _ in rounds], dtype=np.float64),
                          prices=np.array([a / 1e8 for _, a in rounds]))


@cache
def daily_series(asset: str) -> RecordedSeries:
    with reference_data.path("market", "prices", DAILY_FILES[asset]).open(newline="") as f:
        rows = [(datetime.strptime(r["snapped_at"], "%Y-%m-%d %H:%M:%S UTC").replace(tzinfo=UTC).timestamp(),
                 float(r["price"]))
                for r in csv.DictReader(f)]
    return RecordedSeries(times=np.array([t for t, _ in rows]), prices=np.array([p for _, p in rows]))


def recorded_price_path(speed: float = DEFAULT_SPEED) -> PricePath:
    """BTC and ETH along their Chainlink rounds, SOL along its daily closes, from the first instant all three
    are recorded."""
    series = {asset: chainlink_series(asset) for asset in CHAINLINK_FILES}
    series |= {asset: daily_series(asset) for asset in DAILY_FILES}
    return PricePath(series=series, start=max(float(s.times[0]) for s in series.values()), speed=speed)
