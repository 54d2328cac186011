"""The margin backtest: at each date, margin each book with only what was known then, revalue it at the horizon's
prices and vols, and compare its loss with the maintenance margin.

The market at a date D (00:00 UTC) holds each asset's last price at or before D, its last ATM vol as a flat
surface (the model's own skew scenarios apply to it), and, for the fhs model, the daily history, which the model
reads only up to D. The horizon's market is the same read at D + horizon. A row's P&L is the change of the book's
value (the margin report's equity) with its positions fixed at D: a loss is negative, an exception a loss above
the margin.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np
from numpy.typing import NDArray

from research.books import Book, BooksFile
from research.errors import BacktestInputError
from research.series import DAY, SeriesTable, daily_history
from research.stats import CoverageTests, coverage_tests
from risk_core.errors import InputError
from risk_core.margin.dated import DatedBook, DatedMarket, DatedRisk, NotDatable
from risk_core.margin.fhs import FilteredHistory, long_enough
from risk_core.margin.instruments import resolve_book
from risk_core.margin.risk_arrays import RiskArrays
from risk_core.schema.market import MarketHistory, MarketSnapshot
from risk_core.schema.params import RiskParams
from risk_core.schema.positions import FuturePosition, LPPosition, OptionPosition, Position

Array = NDArray[np.float64]
# the 99% of CPMI-IOSCO's Principles for FMIs (principle 6) and EMIR art. 41 for margin over the close-out horizon
BACKTEST_COVERAGE = 0.99
_EPOCH = date(1970, 1, 1)
_VOL_PILLAR_DAYS = 365  # the one expiry of a flat surface: a single slice is flat in time both sides


@dataclass(frozen=True)
class BookBacktest:
    name: str
    rebalance: str
    dates: list[date]
    mm_usd: Array
    pnl_usd: Array
    liquidity_addon_usd: Array

    @property
    def exceptions(self) -> NDArray[np.bool_]:
        return -self.pnl_usd > self.mm_usd

    @property
    def days(self) -> int:
        return len(self.dates)

    def since(self, first: date) -> BookBacktest:
        """The rows from `first` on."""
        return self.between(first, date.max)

    def between(self, first: date, last: date) -> BookBacktest:
        """The rows from `first` to `last`, both included."""
        keep = np.array([first <= d <= last for d in self.dates], dtype=bool).reshape(len(self.dates))
        return BookBacktest(
            name=self.name, rebalance=self.rebalance, dates=[d for d in self.dates if first <= d <= last],
            mm_usd=self.mm_usd[keep], pnl_usd=self.pnl_usd[keep], liquidity_addon_usd=self.liquidity_addon_usd[keep],
        )

    def tests(self) -> CoverageTests:
        return coverage_tests(self.exceptions, BACKTEST_COVERAGE)

    def largest_exception(self) -> tuple[float, float | None]:
        """(the largest shortfall of margin, loss - margin, in USD; the largest loss in units of its margin, None
        when a loss came on a zero margin), 0 without exceptions."""
        hit = self.exceptions
        if not hit.any():
            return 0.0, 0.0
        loss, mm = -self.pnl_usd[hit], self.mm_usd[hit]
        return float(np.max(loss - mm)), float(np.max(loss / mm)) if np.all(mm > 0) else None

    def largest_rise(self, days: int) -> float:
        """Procyclicality: the largest relative rise of the margin over `days` rows (0 when it never rises)."""
        mm = self.mm_usd
        if mm.size <= days:
            return 0.0
        before, after = mm[:-days], mm[days:]
        positive = before > 0
        return float(max(np.max(after[positive] / before[positive] - 1.0, initial=0.0), 0.0))


@dataclass(frozen=True)
class MarketTape:
    """The inputs every date's market is read from."""

    prices: SeriesTable
    vols: SeriesTable | None

    def snapshot(self, day: int, assets: Sequence[str], history: MarketHistory | None) -> MarketSnapshot | None:
        """The market at 00:00 UTC of `day`; None when an asset has no price yet."""
        t = np.array([day * DAY], dtype=np.int64)
        spot = {}
        for asset in assets:
            price = float(self.prices.at(asset, t)[0])
            if not np.isfinite(price):
                return None
            spot[asset] = price
        as_of = datetime.combine(_EPOCH + timedelta(days=day), datetime.min.time(), UTC)
        pillar = as_of + timedelta(days=_VOL_PILLAR_DAYS)
        vol = {}
        if self.vols is not None:
            for asset in assets:
                iv = float(self.vols.at(asset, t)[0])
                if np.isfinite(iv):
                    vol[asset] = {"points": [{"expiry": pillar, "strike": spot[asset], "iv": iv}]}
        snapshot = MarketSnapshot.model_validate({"as_of": as_of, "spot": {**spot, "USDC": 1.0}, "vol": vol})
        # the history was validated once, when built: placed without validating its thousands of dates again
        return snapshot if history is None else snapshot.model_copy(update={"history": history})


def run_book(
    book: Book, tape: MarketTape, params: RiskParams, *, horizon_days: int, first: date | None, last: date | None,
    where: str = "book",
) -> BookBacktest:
    """The backtest of one book over the days from `first` to `last` (inclusive, when data allow): on the date axis
    (risk_core.margin.dated, every date at once) where the book allows, else date by date (`run_book_by_date`).
    The rows are the same either way, to rounding."""
    try:
        return _run_dated(book, tape, params, horizon_days=horizon_days, first=first, last=last, where=where)
    except NotDatable:
        return run_book_by_date(book, tape, params, horizon_days=horizon_days, first=first, last=last, where=where)


@dataclass(frozen=True)
class _Span:
    assets: list[str]  # every priced asset, with the underlyings tracked tokens move with
    underlyings: list[str]
    start: int  # first and last candidate day (days since the epoch)
    stop: int
    optioned: set[str]


def _span(book: Book, tape: MarketTape, params: RiskParams, horizon_days: int, first: date | None,
          last: date | None, where: str) -> _Span:
    assets = sorted(book.assets() - _stable(params))
    underlyings = sorted({params.tracking[a].underlying if a in params.tracking else a for a in assets})
    assets = sorted(set(assets) | set(underlyings))  # a tracked token moves with its underlying's price
    missing = [a for a in assets if a not in tape.prices.series]
    if missing:
        raise BacktestInputError(f"{where}", f"no prices for {missing[0]}")
    start = max(tape.prices.series[a].first_day for a in assets)
    stop = min(int(tape.prices.series[a].times[-1] // DAY) for a in assets) - horizon_days
    if first is not None:
        start = max(start, (first - _EPOCH).days)
    if last is not None:
        stop = min(stop, (last - _EPOCH).days)
    optioned = {leg.asset for leg in book.legs if leg.kind == "option"} | {
        p.underlying for p in book.positions if isinstance(p, OptionPosition)
    }
    return _Span(assets, underlyings, start, stop, optioned)


def run_book_by_date(
    book: Book, tape: MarketTape, params: RiskParams, *, horizon_days: int, first: date | None, last: date | None,
    where: str = "book",
) -> BookBacktest:
    """The backtest of one book, date by date: at each date the engine's own path (resolve_book and RiskArrays on
    the date's snapshot). The reference the date axis is tested against, and the path of books it cannot take."""
    span = _span(book, tape, params, horizon_days, first, last, where)
    assets, start, stop, optioned = span.assets, span.start, span.stop, span.optioned
    history = None
    if params.model == "fhs" and stop >= start:
        history = daily_history(tape.prices, tape.vols, span.underlyings, stop)
    valuation = valuation_params(params, assets)
    held: list[Position] | None = None
    dates: list[date] = []
    mm: list[float] = []
    pnl: list[float] = []
    liquidity: list[float] = []
    for day in range(start, stop + 1):
        market = tape.snapshot(day, assets, history)
        later = tape.snapshot(day + horizon_days, assets, None)
        if market is None or later is None or not optioned <= market.vol.keys():
            continue  # before every asset has a price, and every optioned one a vol: the book starts later
        if held is None or book.rebalance == "daily":
            try:
                built = [leg.position(market.as_of, market.spot[leg.asset], _atm(market, leg.asset))
                         for leg in book.legs]
            except ValueError as e:  # a leg whose terms give no valid position at this date
                raise BacktestInputError(f"{where} on {_EPOCH + timedelta(days=day)}", str(e)) from e
            positions = [*book.positions, *built]
            if book.rebalance == "static":
                held = positions
        else:
            positions = held
        if any(isinstance(p, OptionPosition) and p.expiry <= later.as_of for p in positions):
            if book.rebalance == "static":
                break
            continue
        try:
            margin, value, addon = margin_and_value(positions, market, params)
            _, value_later, _ = margin_and_value(positions, later, valuation, margined=False)
        except InputError as e:
            if e.field == "market.history" and not dates:
                continue  # the fhs model's history is too short yet: the book starts when it is long enough
            raise BacktestInputError(f"{where} on {_EPOCH + timedelta(days=day)}", str(e)) from e
        dates.append(_EPOCH + timedelta(days=day))
        mm.append(margin)
        pnl.append(value_later - value)
        liquidity.append(addon)
    return BookBacktest(
        name=book.name, rebalance=book.rebalance, dates=dates, mm_usd=np.array(mm), pnl_usd=np.array(pnl),
        liquidity_addon_usd=np.array(liquidity),
    )


def _run_dated(
    book: Book, tape: MarketTape, params: RiskParams, *, horizon_days: int, first: date | None, last: date | None,
    where: str,
) -> BookBacktest:
    """`run_book_by_date`'s rows, every date at once. Raises NotDatable for a book the date axis cannot take."""
    if any(isinstance(p, LPPosition) for p in book.positions):
        raise NotDatable("an LP range is margined date by date")
    span = _span(book, tape, params, horizon_days, first, last, where)
    empty = BookBacktest(name=book.name, rebalance=book.rebalance, dates=[], mm_usd=np.zeros(0),
                         pnl_usd=np.zeros(0), liquidity_addon_usd=np.zeros(0))
    days = np.arange(span.start, span.stop + 1, dtype=np.int64)
    now, later = _tape_arrays(tape, span.assets, days), _tape_arrays(tape, span.assets, days + horizon_days)
    priced = np.ones(days.size, dtype=bool)  # every asset has a price, and every optioned one a vol
    for a in span.assets:
        priced &= np.isfinite(now.spot[a]) & np.isfinite(later.spot[a])
    for a in span.optioned:
        priced &= np.isfinite(now.atm_iv[a])
    at = np.flatnonzero(priced)
    if not at.size:
        return empty
    now, later, days = _select(now, at), _select(later, at), days[at]
    dated = _dated_book(book, now, where)
    # an option expiring within the horizon: a daily book skips the date, a static one ends
    expiring = np.any(dated.book.expiry[:, dated.is_option] <= later.as_of[:, None], axis=1)
    keep = ~expiring if book.rebalance == "daily" else np.arange(days.size) < int(np.argmax(np.append(expiring, True)))
    history = None
    if params.model == "fhs":
        history = daily_history(tape.prices, tape.vols, span.underlyings, span.stop)
        keep &= np.array([long_enough(history, params, d) for d in days.tolist()], dtype=bool).reshape(days.size)
    chosen = np.flatnonzero(keep)
    if not chosen.size:
        return empty
    now, later, days = _select(now, chosen), _select(later, chosen), days[chosen]
    # a daily book is made of its first chosen date's positions; a static one keeps those of its first date
    dated = _dated_book(book, now, where) if book.rebalance == "daily" else dated.select(chosen)
    is_future = np.array([isinstance(p, FuturePosition) for p in dated.book.positions], dtype=bool)
    if np.any(dated.book.expiry[:, is_future] <= later.as_of[:, None]):
        raise NotDatable("a future expires within the backtest: the engine leaves it out, date by date")
    if any(not np.isfinite(later.atm_iv[a]).all() for a in span.optioned):
        raise NotDatable("an option's vol is missing at the horizon: the engine leaves it out, date by date")
    snapshot = tape.snapshot(int(days[0]), span.assets, None)
    assert snapshot is not None
    risk = DatedRisk(dated.book, snapshot, params)
    filtered = None
    if history is not None:
        try:
            filtered = FilteredHistory(history, risk.assets, params, last_day=int(days[-1]))
        except InputError as e:
            raise BacktestInputError(f"{where} on {_EPOCH + timedelta(days=int(days[0]))}", str(e)) from e
    mm, value, addon = risk.margin(now, filtered)
    value_later = risk.value(later)
    return BookBacktest(
        name=book.name, rebalance=book.rebalance, dates=[_EPOCH + timedelta(days=int(d)) for d in days.tolist()],
        mm_usd=mm, pnl_usd=value_later - value, liquidity_addon_usd=addon,
    )


@dataclass(frozen=True)
class _DatedLegs:
    """A book's positions on each date, and which of them are options."""

    book: DatedBook
    is_option: NDArray[np.bool_]

    def select(self, at: NDArray[np.intp]) -> _DatedLegs:
        b = self.book
        return _DatedLegs(
            DatedBook(b.positions, b.quantity[at], b.strike[at], b.expiry[at], b.entry_price[at]), self.is_option
        )


def _dated_book(book: Book, market: DatedMarket, where: str) -> _DatedLegs:
    """The book's positions on each date of `market`: held as given, and its legs built at each date (daily) or
    at the first and held (static), by `Leg.position`'s rules."""
    n = market.as_of.size
    as_of = datetime.fromtimestamp(int(market.as_of[0]), UTC)
    try:
        built = [leg.position(as_of, float(market.spot[leg.asset][0]), _iv(market, leg.asset, 0))
                 for leg in book.legs]
    except ValueError as e:
        raise BacktestInputError(f"{where} on {as_of.date()}", str(e)) from e
    positions: list[Position] = [*book.positions, *built]
    columns: list[tuple[Array, Array, Array, Array]] = [_held(p, n) for p in positions]
    if book.rebalance == "daily":
        for j, leg in enumerate(book.legs, start=len(book.positions)):
            spot = market.spot[leg.asset]
            quantity = leg.notional_usd / spot
            strike = expiry = entry = np.full(n, np.nan)
            if leg.tenor_days is not None:
                expiry = market.as_of + timedelta(days=leg.tenor_days).total_seconds()
            if leg.kind in ("perp", "future"):
                entry = spot
            if leg.kind == "option":
                iv = market.atm_iv[leg.asset]
                strike = np.array([leg.strike(s, None if np.isnan(v) else v) for s, v in
                                   zip(spot.tolist(), iv.tolist(), strict=True)])
            columns[j] = (quantity, strike, expiry, entry)
    quantity, strike, expiry, entry = (np.stack([np.asarray(c[k]) for c in columns], axis=1) for k in range(4))
    is_option = np.array([isinstance(p, OptionPosition) for p in positions], dtype=bool)
    return _DatedLegs(DatedBook(positions, quantity, strike, expiry, entry), is_option)


def _held(p: Position, n: int) -> tuple[Array, Array, Array, Array]:
    """(quantity, strike, expiry, entry price) of a position held on n dates."""
    expiry = getattr(p, "expiry", None)
    entry = getattr(p, "entry_price", None)
    strike = getattr(p, "strike", None)
    return (
        np.full(n, float(getattr(p, "quantity", np.nan))),
        np.full(n, np.nan if strike is None else float(strike)),
        np.full(n, np.nan if expiry is None else expiry.timestamp()),
        np.full(n, np.nan if entry is None else float(entry)),
    )


def _tape_arrays(tape: MarketTape, assets: Sequence[str], days: NDArray[np.int64]) -> DatedMarket:
    """The tape read at 00:00 UTC of each day (prices NaN before an asset's first; USDC at 1)."""
    t = days * DAY
    spot = {a: tape.prices.at(a, t) for a in assets}
    spot["USDC"] = np.ones(days.size)
    vols = {a: tape.vols.at(a, t) if tape.vols is not None else np.full(days.size, np.nan) for a in assets}
    return DatedMarket(as_of=t, spot=spot, atm_iv=vols)


def _select(market: DatedMarket, at: NDArray[np.intp]) -> DatedMarket:
    return DatedMarket(
        as_of=market.as_of[at], spot={a: v[at] for a, v in market.spot.items()},
        atm_iv={a: v[at] for a, v in market.atm_iv.items()},
    )


def _iv(market: DatedMarket, asset: str, j: int) -> float | None:
    v = float(market.atm_iv[asset][j]) if asset in market.atm_iv else math.nan
    return None if math.isnan(v) else v


def run_backtest(
    books: BooksFile, tape: MarketTape, params: RiskParams, *, horizon_days: int, first: date | None = None,
    last: date | None = None,
) -> list[BookBacktest]:
    return [
        run_book(b, tape, params, horizon_days=horizon_days, first=first, last=last, where=f"books[{i}] ({b.name})")
        for i, b in enumerate(books.books)
    ]


def margin_and_value(
    positions: Sequence[Position], market: MarketSnapshot, params: RiskParams, *, margined: bool = True
) -> tuple[float, float, float]:
    """(maintenance margin, value, liquidity add-on) of a book: the margin report's maintenance_margin_usd,
    equity_usd and liquidity_addon_usd without the rest of the report (greeks, liquidation, breakdowns)."""
    arrays = RiskArrays(resolve_book(positions, market, params), params)
    value = float(arrays.position_values()[0].sum())
    if not margined:
        return 0.0, value, 0.0
    figures = arrays.margin(np.ones((1, len(positions))))
    return float(figures.maintenance[0]), value, float(figures.liquidity[0])


def valuation_params(params: RiskParams, assets: Sequence[str]) -> RiskParams:
    """`params` reduced to what a value needs: the grid with one unshocked scenario per asset, no add-on (the
    valuation revalues every scenario and computes the add-on's deltas; a value needs neither)."""
    still = {"spot_shocks": [0.0], "vol_shocks": [0.0], "extreme_shocks": [], "skew_enabled": False}
    return params.with_overrides(
        {"model": "grid", "liquidity": {"enabled": False}, "scenarios": {asset: still for asset in assets}}
    )


def _stable(params: RiskParams) -> set[str]:
    return {asset for asset, cls in params.assets.items() if cls == "stablecoin"}


def _atm(market: MarketSnapshot, asset: str) -> float | None:
    surface = market.vol.get(asset)
    if surface is None or not hasattr(surface, "points"):
        return None
    return float(surface.points[0].iv)
