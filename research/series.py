"""Price and vol series for backtests: the long CSV formats, read into per-asset arrays.

Prices: `timestamp,asset,price` (USD). Vols: `timestamp,asset,atm_iv` (at-the-money implied vol, decimal, such as
Deribit's DVOL / 100). `timestamp` is ISO 8601: a date (00:00 UTC) or a time with a timezone. Rows may come in any
order; a repeated (timestamp, asset) keeps the last. The value at a time is the last one at or before it.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from research.errors import BacktestInputError
from risk_core.schema.market import MarketHistory

Array = NDArray[np.float64]
DAY = 86_400


@dataclass(frozen=True)
class Series:
    """One asset's observations: times (seconds since the epoch, increasing) and values."""

    times: NDArray[np.int64]
    values: Array

    def at(self, times: NDArray[np.int64]) -> Array:
        """The last value at or before each time; NaN before the first."""
        index = np.searchsorted(self.times, times, side="right") - 1
        return np.where(index >= 0, self.values[np.maximum(index, 0)], np.nan)

    @property
    def first_day(self) -> int:
        return int(-(-self.times[0] // DAY))  # the first 00:00 UTC at or after the first observation


@dataclass(frozen=True)
class SeriesTable:
    """Per asset: its series."""

    series: dict[str, Series]
    column: str  # the value column's name: price or atm_iv

    def at(self, asset: str, times: NDArray[np.int64]) -> Array:
        found = self.series.get(asset)
        return found.at(times) if found is not None else np.full(times.shape, np.nan)

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[int, str, float]], column: str) -> SeriesTable:
        by_asset: dict[str, dict[int, float]] = {}
        for t, asset, value in rows:
            by_asset.setdefault(asset, {})[t] = value
        series = {}
        for asset, points in by_asset.items():
            times = np.array(sorted(points), dtype=np.int64)
            series[asset] = Series(times, np.array([points[int(t)] for t in times], dtype=np.float64))
        return cls(series, column)


def parse_timestamp(text: str) -> int:
    """Seconds since the epoch of an ISO 8601 date (00:00 UTC) or datetime with a timezone."""
    text = text.strip()
    try:
        if len(text) == 10:
            return int(datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC).timestamp())
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as e:
        raise ValueError(f"not an ISO 8601 date or time: {text!r}") from e
    if moment.tzinfo is None:
        raise ValueError(f"a time needs a timezone (e.g. Z): {text!r}")
    return int(moment.timestamp())


def read_series_csv(path: Path, column: str, *, upper: float = math.inf) -> SeriesTable:
    """A long CSV `timestamp,asset,<column>`. Raises BacktestInputError naming the file, line and field."""
    try:
        handle = path.open(newline="", encoding="utf-8")
    except OSError as e:
        raise BacktestInputError(str(path), f"cannot read: {e.strerror}") from e
    rows = []
    with handle:
        reader = csv.DictReader(handle)
        expected = ["timestamp", "asset", column]
        if reader.fieldnames is None or [f.strip() for f in reader.fieldnames] != expected:
            raise BacktestInputError(f"{path}: line 1", f"the header must be {','.join(expected)}")
        for line, row in enumerate(reader, start=2):
            where = f"{path}: line {line}"
            try:
                t = parse_timestamp(row["timestamp"] or "")
            except ValueError as e:
                raise BacktestInputError(f"{where}: timestamp", str(e)) from e
            asset = (row["asset"] or "").strip()
            if not asset:
                raise BacktestInputError(f"{where}: asset", "empty")
            try:
                value = float(row[column] or "")
            except ValueError as e:
                raise BacktestInputError(f"{where}: {column}", f"not a number: {row[column]!r}") from e
            if not (0 < value <= upper):
                raise BacktestInputError(f"{where}: {column}", f"{value} is not in (0, {upper}]")
            rows.append((t, asset.upper(), value))
    if not rows:
        raise BacktestInputError(str(path), "no rows")
    return SeriesTable.from_rows(rows, column)


def write_series_csv(path: Path, table: SeriesTable) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(["timestamp", "asset", table.column])
        for asset, s in sorted(table.series.items()):
            for t, v in zip(s.times.tolist(), s.values.tolist(), strict=True):
                out.writerow([datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), asset, repr(v)])


def daily_history(prices: SeriesTable, vols: SeriesTable | None, assets: Sequence[str], last_day: int) -> MarketHistory:
    """The MarketHistory of `assets` on every 00:00 UTC from the first day all have a price to `last_day` (days since
    the epoch): each close the last price at or before that time."""
    first = max(prices.series[a].first_day for a in assets)
    days = np.arange(first, last_day + 1, dtype=np.int64)
    times = days * DAY
    close = {a: prices.at(a, times).tolist() for a in assets}
    atm_iv: dict[str, list[float | None]] = {}
    if vols is not None:
        for a in assets:
            if a in vols.series:
                iv = vols.at(a, times)
                atm_iv[a] = [None if math.isnan(v) else v for v in iv.tolist()]
    dates = np.array(days, dtype="datetime64[D]").astype(object).tolist()
    return MarketHistory.model_validate({"dates": dates, "close": close, "atm_iv": atm_iv})
