"""The market the local venues serve: one moment of real data from reference_data/market.

Default: the calm-day Deribit snapshot (2026-01-05 15:33:29 UTC). BTC and ETH spot are Deribit's index in the
file's first row of each currency; SOL (no Deribit SOL chain in reference_data/) is CoinGecko's last SOL close in
the recorded prices, a different date: the demo's SOL level, not a fact about 2026-01-05. Pyth confidences take the
median confidence / price of the real Pyth BTC sample (2025-02-18).
"""

from __future__ import annotations

import csv
import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import cache, lru_cache
from pathlib import Path

import numpy as np

import reference_data
from risk_core.pricing.black76 import black76_price
from risk_core.pricing.vol_surface import year_fraction
from venue_servers.price_path import PricePath

CALM_DAY = "deribit_options_snapshot_20260105T153329Z.csv"
SELL_OFF_DAY = "deribit_options_snapshot_20260205T212937Z.csv"


@dataclass(frozen=True)
class DeribitRow:
    instrument: str
    currency: str
    underlying: float
    underlying_name: str
    is_call: bool
    strike: float
    expiry: datetime
    bid: float | None
    ask: float | None
    mark: float
    futures_price: float
    futures_name: str
    iv: float
    delta: float
    vega: float
    open_interest: float
    volume: float
    index: float


@dataclass(frozen=True)
class DeribitFile:
    as_of: datetime
    rows: tuple[DeribitRow, ...]

    def for_currency(self, currency: str) -> tuple[DeribitRow, ...]:
        return tuple(r for r in self.rows if r.currency == currency)


def _opt(text: str) -> float | None:
    return float(text) if text not in ("", None) and float(text) > 0 else None


@cache
def load_deribit_file(name: str = CALM_DAY) -> DeribitFile:
    path: Path = reference_data.path("market", "deribit", name)
    with path.open(newline="") as f:
        raw = list(csv.DictReader(f))
    rows = tuple(
        DeribitRow(
            instrument=r["instrument_name"], currency=r["currency"], underlying=float(r["underlying"]),
            underlying_name=r["underlying_name"], is_call=r["option_type"] == "call", strike=float(r["strike"]),
            expiry=datetime.fromisoformat(r["expiry_datetime"]), bid=_opt(r["bid_price"]), ask=_opt(r["ask_price"]),
            mark=float(r["mark_price"]), futures_price=float(r["futures_price"]),
            futures_name=r["futures_instrument_name"], iv=float(r["implied_volatility"]), delta=float(r["delta"]),
            vega=float(r["vega"]), open_interest=float(r["open_interest"] or 0), volume=float(r["volume"] or 0),
            index=float(r["index_price"]),
        )
        for r in raw
    )
    return DeribitFile(as_of=datetime.fromisoformat(raw[0]["timestamp"]), rows=rows)


@cache
def pyth_confidence_ratio() -> float:
    with reference_data.path("market", "pyth", "pyth_btc_usd_1sec_sample_20250218.csv").open(newline="") as f:
        return statistics.median(float(r["conf"]) / float(r["price"]) for r in csv.DictReader(f))


@cache
def last_close(asset: str) -> float:
    with reference_data.path("market", "prices", f"coingecko_{asset.lower()}-usd-max.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    return float(rows[-1]["price"])


@dataclass(frozen=True)
class MarketScenario:
    as_of: datetime
    spot: dict[str, float]
    deribit_file: str = CALM_DAY
    # relative offsets of each venue's price from spot (a realistic few basis points, so medians are not trivial)
    offsets: dict[str, float] = field(
        default_factory=lambda: {"pyth": 2e-4, "hyperliquid-mark": 3e-4, "hyperliquid-oracle": -1e-4,
                                 "derive-index": 1e-4, "deribit-index": 0.0, "chainlink": -2e-4}
    )

    # a replay (the demo) moves the venues' clock on from `as_of` with the service's; tests keep it at `as_of`
    clock: Callable[[], datetime] | None = field(default=None, compare=False)
    # and moves the market along a recorded price path as that clock runs (None: the recorded moment, frozen)
    path: PricePath | None = field(default=None, compare=False)

    def move(self, asset: str) -> float:
        """Price now / recorded price of `asset`: 1 at `as_of`, or without a path."""
        if self.path is None:
            return 1.0
        # whole seconds of replay: every venue answering within one second quotes the same market
        return self.path.ratio(asset, math.floor((self.now() - self.as_of).total_seconds()))

    def price(self, venue: str, asset: str) -> float:
        return self.spot[asset] * self.move(asset) * (1.0 + self.offsets.get(venue, 0.0))

    def deribit_data(self) -> DeribitFile:
        """The recorded option chain as it stands now: moved with its currency's price (see `moved_chain`)."""
        recorded = load_deribit_file(self.deribit_file)
        moves = tuple(sorted((currency, self.move(currency)) for currency in {r.currency for r in recorded.rows}))
        return recorded if all(m == 1.0 for _, m in moves) else _moved_file(self.deribit_file, moves)

    def now(self) -> datetime:
        """The moment the venues stamp on their quotes: the recording's, or the replay clock's."""
        return self.as_of if self.clock is None else self.clock()


@lru_cache(maxsize=4)
def _moved_file(name: str, moves: tuple[tuple[str, float], ...]) -> DeribitFile:
    return moved_chain(load_deribit_file(name), dict(moves))


def moved_chain(recorded: DeribitFile, moves: dict[str, float]) -> DeribitFile:
    """The chain with each currency's prices (underlying, future, index) times its move, every option keeping its
    recorded implied vol and time to expiry: its coin mark (and bid and ask with it) scaled by the Black-76 price
    ratio at the moved forward, divided by the move (a coin price). Exact on the recorded marks at a move of 1."""
    rows = recorded.rows
    m = np.array([moves.get(r.currency, 1.0) for r in rows])
    forward = np.array([r.underlying for r in rows])
    strike, is_call = np.array([r.strike for r in rows]), np.array([r.is_call for r in rows])
    years = np.array([year_fraction(recorded.as_of, r.expiry) for r in rows])
    vol = np.array([r.iv for r in rows])
    before = black76_price(forward, strike, years, vol, is_call)
    after = black76_price(forward * m, strike, years, vol, is_call)
    # an option worth nothing in the model (deep out of the money) keeps its recorded coin price
    scale = np.where(before > 0, after / np.where(before > 0, before, 1.0), 1.0) / m

    def scaled(x: float | None, k: float) -> float | None:
        return None if x is None else x * k

    return DeribitFile(as_of=recorded.as_of, rows=tuple(
        replace(r, underlying=r.underlying * mi, futures_price=r.futures_price * mi, index=r.index * mi,
                mark=r.mark * k, bid=scaled(r.bid, k), ask=scaled(r.ask, k))
        for r, mi, k in zip(rows, m.tolist(), scale.tolist(), strict=True)
    ))


def default_scenario(deribit_file: str = CALM_DAY) -> MarketScenario:
    data = load_deribit_file(deribit_file)
    btc = data.for_currency("BTC")[0].index
    eth = data.for_currency("ETH")[0].index
    return MarketScenario(as_of=data.as_of, spot={"BTC": btc, "ETH": eth, "SOL": last_close("SOL")},
                          deribit_file=deribit_file)
