"""The repository's recorded market history (reference_data/market) as backtest series.

BTC: Bitstamp then Coinbase daily candles since 2011-08 (a candle's close is the price at the next 00:00 UTC).
ETH since 2015-08, SOL since 2020-04: CoinGecko daily snapshots (`snapped_at` 00:00 UTC, the previous day's close).
WSTETH: ETH times Chainlink's stETH/ETH rate where recorded (2022-2024; 1 elsewhere), so the staked-ETH loop
sees the 2022 depeg; the token's staking accrual is left out. Vols: Deribit's BTC DVOL (2022-11 on); where no
implied vol was recorded, a proxy: the 30-day realised volatility of the closes before the day (annualised x
sqrt(365)), said so in the published results.
"""

from __future__ import annotations

import csv
import json
import math
from datetime import UTC, datetime

import numpy as np

import reference_data
from research.series import DAY, Series, SeriesTable, parse_timestamp

PROXY_WINDOW_DAYS = 30


def _rows(*parts: str) -> list[dict[str, str]]:
    with reference_data.path(*parts).open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def shipped_prices() -> SeriesTable:
    rows: list[tuple[int, str, float]] = []
    for r in _rows("market", "prices", "bitstamp_coinbase_BTCUSD_1d_candles_2011-2025.csv"):
        rows.append((parse_timestamp(r["timestamp"][:10]) + DAY, "BTC", float(r["close"])))
    for asset in ("eth", "sol"):
        for r in _rows("market", "prices", f"coingecko_{asset}-usd-max.csv"):
            rows.append((parse_timestamp(r["snapped_at"][:10]), asset.upper(), float(r["price"])))
    table = SeriesTable.from_rows(rows, "price")
    eth = table.series["ETH"]
    steth = _steth_per_eth()
    ratio = steth.at(eth.times)
    wsteth = eth.values * np.where(np.isnan(ratio), 1.0, ratio)
    rows += [(int(t), "WSTETH", float(v)) for t, v in zip(eth.times, wsteth, strict=True)]
    return SeriesTable.from_rows(rows, "price")


def _steth_per_eth() -> Series:
    name = "chainlink_steth_eth_mainnet_0x86392dC19c0b719886221c78AB11eb8Cf5c52812.csv"
    rows = [(int(r["update"]), "STETH", int(r["answer"]) / 1e18) for r in _rows("market", "chainlink", name)]
    return SeriesTable.from_rows(rows, "ratio").series["STETH"]


def shipped_vols(prices: SeriesTable) -> SeriesTable:
    """DVOL where recorded, the realised-vol proxy elsewhere (every asset of `prices`, daily at 00:00 UTC)."""
    dvol = json.loads(reference_data.path("market", "dvol", "deribit_dvol_btc_daily.json").read_text())
    recorded = {"BTC": {int(ms // 1000): close / 100.0 for ms, close in dvol}}
    rows: list[tuple[int, str, float]] = []
    for asset, s in prices.series.items():
        days = np.arange(s.first_day, int(s.times[-1] // DAY) + 1, dtype=np.int64)
        returns = np.diff(np.log(s.at(days * DAY)))  # returns[i - 1]: from day i - 1 to day i, known on day i
        squares = np.concatenate([[0.0], np.cumsum(returns**2)])
        # on day i (i >= window): the window's returns ending on day i
        realised = np.sqrt((squares[PROXY_WINDOW_DAYS:] - squares[:-PROXY_WINDOW_DAYS]) / PROXY_WINDOW_DAYS * 365.0)
        first_recorded = min(recorded.get(asset, {}), default=math.inf)
        for day, vol in zip(days[PROXY_WINDOW_DAYS:].tolist(), realised.tolist(), strict=True):
            if day * DAY < first_recorded and vol > 0:
                rows.append((day * DAY, asset, vol))
        rows += [(t, asset, v) for t, v in recorded.get(asset, {}).items()]
    return SeriesTable.from_rows(rows, "atm_iv")


def describe(table: SeriesTable) -> str:
    def day(t: int) -> str:
        return f"{datetime.fromtimestamp(t, UTC):%Y-%m-%d}"

    return ", ".join(f"{a} {day(int(s.times[0]))}..{day(int(s.times[-1]))}" for a, s in sorted(table.series.items()))
