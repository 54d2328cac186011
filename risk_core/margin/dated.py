"""A book on many dates at once: the date axis of a margin backtest (research.backtest).

Margined date by date, each date resolves the book against its own snapshot and builds its risk arrays: ~15 ms a
date, nearly all of it numpy and pydantic call overhead on arrays of a few rows. Here the book's rows on every
date are built as arrays with a date axis, revalued under each date's scenarios by one call of the engine's own
revaluation (`RowParams.revalue_blocks`: the same Black-76) over (dates x rows) x scenarios, and combined by the
book's `RiskArrays` (`on_dates`: the same worst losses or expected shortfall, cross-underlying credits, offsets
across levels and liquidity add-on as `margin`). The book's structure (its rows per underlying, groups,
contingency keys, credited pairs) is read from the book's instrument table (`resolve_book`) at its first date.
The figures are those of margining each date alone, to rounding (tests/research/test_dated.py).

The market of a date is a backtest's (research.backtest.MarketTape): spot prices and one ATM vol per asset as a
flat surface, no forwards, rates or price dispersion. An option's forward is therefore the spot, its discount 1
and its vol the ATM vol at every strike and tenor. Positions: spot, lend, borrow, perp, future and option, with
their terms on every date as arrays (a book rebuilt daily in relative terms has new quantities, strikes and
expiries each day); the caller margins anything else (an LP range, whose rows follow its pool's curve) date by date.
Memory is bounded: dates are revalued in chunks of at most `_CHUNK_CELLS` (date, row, scenario) cells.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from risk_core.margin.fhs import FilteredHistory
from risk_core.margin.instruments import ROW_FIELDS, RowParams, resolve_book, tenor_scale
from risk_core.margin.risk_arrays import RiskArrays, contingency_charge
from risk_core.margin.scenarios import ScenarioSet, shocked_vols
from risk_core.pricing.vol_surface import SECONDS_PER_YEAR
from risk_core.schema.market import MarketSnapshot
from risk_core.schema.params import RiskParams
from risk_core.schema.positions import (
    BorrowPosition,
    FuturePosition,
    LendPosition,
    OptionPosition,
    PerpPosition,
    Position,
    SpotPosition,
)

Array = NDArray[np.float64]
IntArray = NDArray[np.intp]
DAY = 86_400
_CHUNK_CELLS = 2_000_000  # (date, row, scenario) cells revalued at once: ~16 MB an array
_HOLDING, _BORROW, _MARKED = 0, 1, 2  # linear rows: a holding, a debt, a perp or future (value against its entry)


class NotDatable(ValueError):
    """The book cannot be margined on the date axis (an LP range, a position the first date cannot price, or
    contingency keys that net differently on some date): the caller margins it date by date."""


@dataclass(frozen=True)
class DatedMarket:
    """The market on each of many dates."""

    as_of: NDArray[np.int64]  # per date: seconds since the epoch
    spot: dict[str, Array]  # per asset: USD price on each date
    atm_iv: dict[str, Array]  # per asset: the ATM vol on each date (a flat surface), NaN where none

    @property
    def days(self) -> NDArray[np.int64]:
        return self.as_of // DAY


@dataclass(frozen=True)
class DatedBook:
    """A book on each of many dates: made of `positions` (its first date's: kinds, assets, places, option types)
    with each date's terms."""

    positions: Sequence[Position]
    quantity: Array  # dates x positions
    strike: Array  # dates x positions: an option's strike, NaN elsewhere
    expiry: Array  # dates x positions: an option's or future's expiry, seconds since the epoch, NaN elsewhere
    entry_price: Array  # dates x positions: a perp's or future's entry price, NaN where none


class DatedRisk:
    """A book's structure, resolved once on `snapshot` (its first date's market), to margin and value it on many
    dates. Raises NotDatable when the book is not for the date axis."""

    def __init__(self, book: DatedBook, snapshot: MarketSnapshot, params: RiskParams) -> None:
        if any(not isinstance(p, _KINDS) for p in book.positions):
            raise NotDatable("an LP range is margined date by date")
        grid = params if params.model == "grid" else params.model_copy(update={"model": "grid"})
        resolved = resolve_book(book.positions, snapshot, grid)
        if not resolved.priced.all():
            raise NotDatable("a position is not priced on the first date")
        self.book, self.params = book, params
        self.arrays = RiskArrays(resolved, params)
        held = resolved.held  # per underlying its rows, linear then options: the stacked rows of `arrays`
        self.assets = list(held)
        self.grid_sets = {asset: h.table.scenarios for asset, h in held.items()}
        positions = book.positions
        lin: list[int] = []
        opt: list[int] = []
        lin_under: list[int] = []
        opt_under: list[int] = []
        order: list[tuple[int, int]] = []  # per stacked row: (block, index in block)
        for u, h in enumerate(held.values()):
            n_lin, n_opt, _ = h.blocks
            for i in h.members[:n_lin].tolist():
                order.append((0, len(lin)))
                lin.append(i)
                lin_under.append(u)
            for i in h.members[n_lin : n_lin + n_opt].tolist():
                order.append((1, len(opt)))
                opt.append(i)
                opt_under.append(u)
        self.lin, self.opt = np.array(lin, dtype=np.intp), np.array(opt, dtype=np.intp)
        self.lin_under, self.opt_under = np.array(lin_under, dtype=np.intp), np.array(opt_under, dtype=np.intp)
        # stacked row -> its index in the revalued blocks (linear rows, then options)
        self.perm = np.array([j if block == 0 else len(lin) + j for block, j in order], dtype=np.intp)
        self.row_under = np.concatenate([self.lin_under, self.opt_under])[self.perm]
        self.row_position = np.concatenate([self.lin, self.opt])[self.perm]
        # linear rows: what each is, the asset it is priced in, and its collateral haircut rate
        self.lin_kind = np.array([_lin_kind(positions[i]) for i in lin], dtype=np.intp)
        self.lin_priced_in = [_priced_in(positions[i]) for i in lin]
        self.lin_haircut = np.array([
            0.0 if isinstance(positions[i], BorrowPosition | PerpPosition | FuturePosition)
            else params.class_params(_priced_in(positions[i])).haircut for i in lin
        ])
        options = [p for i in opt if isinstance(p := positions[i], OptionPosition)]
        self.opt_call = np.array([p.option_type == "call" for p in options], dtype=np.bool_)
        self.opt_inverse = np.array([p.settlement == "inverse" for p in options], dtype=np.bool_)
        in_rows = set(lin) | set(opt)
        self.fixed = np.array([i for i in range(len(positions)) if i not in in_rows], dtype=np.intp)
        self.fixed_sign = np.array([-1.0 if isinstance(positions[i], BorrowPosition) else 1.0 for i in self.fixed])
        # contingency keys: a key's rate is its asset's price times a fixed rate (see the instrument table)
        keys = self.arrays.keys
        first = np.unique(keys.key, return_index=True)[1]
        self.key_asset = [_priced_in(positions[int(keys.position[j])]) for j in first]
        self.key_unit_rate = keys.rate / np.array([snapshot.spot[a] for a in self.key_asset]).reshape(-1)
        self._check_keys()

    def _check_keys(self) -> None:
        """Two options (or futures) of one place net into one contingency key on a date when their terms agree:
        the keys read at the first date must hold on every date."""
        keys, book = self.arrays.keys, self.book
        dated = [j for j, i in enumerate(keys.position.tolist()) if isinstance(book.positions[i], OptionPosition |
                                                                                FuturePosition)]
        for a in range(len(dated)):
            for b in range(a + 1, len(dated)):
                i, j = int(keys.position[dated[a]]), int(keys.position[dated[b]])
                same = (book.strike[:, i] == book.strike[:, j]) | (np.isnan(book.strike[:, i])
                                                                   & np.isnan(book.strike[:, j]))
                same &= book.expiry[:, i] == book.expiry[:, j]
                together = keys.key[dated[a]] == keys.key[dated[b]]
                if (together and not same.all()) or (not together and same.any() and _alike(book, i, j)):
                    raise NotDatable("contingency keys net differently on some dates")

    # ----------------------------------------------------------------------------------------------- figures

    def margin(self, market: DatedMarket, history: FilteredHistory | None) -> tuple[Array, Array, Array]:
        """(maintenance margin, value, liquidity add-on) on each date of `market` (the book's dates): under the
        fhs model (`history` given, filtered through the last date) each date's scenarios are its own."""
        n_dates = market.as_of.size
        risk, addon, value = np.zeros(n_dates), np.zeros(n_dates), np.zeros(n_dates)
        if not self.assets:
            history = None  # nothing moves: no scenarios
        widest = [self._width(market.days[d], history) for d in range(n_dates)] if history is not None else None
        for chunk in self._chunks(n_dates, widest):
            sets = (
                [history.scenario_sets(int(day)) for day in market.days[chunk].tolist()] if history is not None
                else None
            )
            values, delta, spot = self._revalue(market, chunk, sets)
            value[chunk] = self._position_values(values[:, :, 0], market, chunk).sum(axis=1)
            pnl = values[:, :, 1:] - values[:, :, :1]
            pnl *= self._damp(chunk, sets, pnl.shape[2])[:, self.row_under, :]
            if sets is None:
                risk[chunk], addon[chunk] = self.arrays.on_dates(pnl, delta, spot, None)
                continue
            # dates whose scenario sets have the same layout are combined together
            first = [s[self.assets[0]] for s in sets]
            signature = [(s.history.n_filtered if s.history else 0, s.size) for s in first]
            for key in dict.fromkeys(signature):
                group = np.array([j for j, sig in enumerate(signature) if sig == key], dtype=np.intp)
                layout = first[int(group[0])].history
                at = chunk[group]
                risk[at], addon[at] = self.arrays.on_dates(pnl[group][:, :, : key[1]], delta[group], spot[group],
                                                           layout)
        contingency = self._contingency(market)
        return risk + contingency + addon, value, addon

    def value(self, market: DatedMarket) -> Array:
        """The book's value on each date of `market`: each date's book at that date's market (which may be later
        than the date the book was built on)."""
        n_dates = market.as_of.size
        value = np.zeros(n_dates)
        for chunk in self._chunks(n_dates, None, width=1):
            values, _, _ = self._revalue(market, chunk, None, base_only=True)
            value[chunk] = self._position_values(values[:, :, 0], market, chunk).sum(axis=1)
        return value

    # ---------------------------------------------------------------------------------------------- the rows

    def _width(self, day: int, history: FilteredHistory) -> int:
        return 1 + history.scenario_count(int(day))

    def _chunks(self, n_dates: int, widest: list[int] | None, width: int | None = None) -> list[IntArray]:
        rows = max(1, self.row_position.size)
        if width is None:
            width = 1 + max((s.size for s in self.grid_sets.values()), default=0) if widest is None else max(widest)
        per_chunk = max(1, _CHUNK_CELLS // (rows * width))
        return [np.arange(a, min(a + per_chunk, n_dates)) for a in range(0, n_dates, per_chunk)]

    def _revalue(
        self, market: DatedMarket, chunk: IntArray, sets: list[dict[str, ScenarioSet]] | None, *,
        base_only: bool = False,
    ) -> tuple[Array, Array, Array]:
        """(values: dates x stacked rows x (base, then each scenario), deltas: dates x stacked rows, spot: dates x
        underlyings) of the chunk's dates."""
        book, params = self.book, self.params
        n_d = chunk.size
        spot = _columns([market.spot[a][chunk] for a in self.assets], n_d)
        # linear rows (resolve_book's arithmetic): a holding's value, a debt's, a perp's or future's against entry
        q = book.quantity[chunk][:, self.lin]
        price = _columns([market.spot[a][chunk] for a in self.lin_priced_in], n_d)
        held = np.where(self.lin_kind == _BORROW, -q, q) * price
        entry = book.entry_price[chunk][:, self.lin]
        marked = self.lin_kind == _MARKED
        lin_base = np.where(marked, np.where(np.isnan(entry), 0.0, q * (price - entry)), held)
        lin_slope = np.where(marked, q * price, held)
        lin_cut = self.lin_haircut * np.maximum(held, 0.0)
        # options: forward = spot (no forward curve), discount 1 (no rates), vol the flat ATM vol
        i = self.opt
        forward = spot[:, self.opt_under]
        strike = book.strike[chunk][:, i]
        years = (book.expiry[chunk][:, i] - market.as_of[chunk, None]) / SECONDS_PER_YEAR
        sigma = _columns([market.atm_iv[self.assets[u]][chunk] for u in self.opt_under.tolist()], n_d)
        inverse = np.where(self.opt_inverse, spot[:, self.opt_under] / forward, 1.0)
        log_moneyness = np.log(strike / forward)
        tenor = tenor_scale(years, params.vol_shock)
        rows = RowParams(
            lin_base=lin_base.ravel(), lin_slope=lin_slope.ravel(), lin_haircut=lin_cut.ravel(),
            opt_quantity=(book.quantity[chunk][:, i] * inverse).ravel(), opt_forward=forward.ravel(),
            opt_strike=strike.ravel(), opt_years=years.ravel(), opt_sigma=sigma.ravel(),
            opt_call=np.broadcast_to(self.opt_call, (n_d, i.size)).ravel(), opt_discount=np.ones(n_d * i.size),
            opt_tenor_scale=tenor.ravel(), opt_log_moneyness=log_moneyness.ravel(),
            **{name: np.zeros(0, dtype=bool if name == "lp_on_token0" else np.float64) for name in _LP_FIELDS},
        )
        moves, vols = self._scenarios(sets, chunk, rows, spot.shape, base_only)
        # a historical scenario whose vol move is recorded has the same vol in every vol column: when every
        # scenario of the chunk's dates does, each is revalued once (the same inputs, the same values)
        step = repeated_vol_columns(sets) if sets is not None and i.size else 1
        if step > 1:
            compact = np.concatenate([[0], 1 + np.arange(0, moves.shape[2] - 1, step)])
            moves, vols = moves[:, :, compact], vols[:, compact]
        width = moves.shape[2]
        lin_moves = moves[:, self.lin_under, :].reshape(n_d * self.lin.size, width)
        opt_moves = moves[:, self.opt_under, :].reshape(n_d * i.size, width)
        lin_value, _, opt_value, _, _ = rows.revalue_blocks(np.concatenate([lin_moves, opt_moves]), vols)
        values = np.concatenate(
            [lin_value.reshape(n_d, self.lin.size, width), opt_value.reshape(n_d, i.size, width)], axis=1
        )[:, self.perm, :]
        if step > 1:
            values = np.concatenate([values[:, :, :1], np.repeat(values[:, :, 1:], step, axis=2)], axis=2)
        if base_only:
            return values, np.zeros((n_d, 0)), spot
        opt_delta = rows.option_greeks(spot[:, self.opt_under].ravel())[0].reshape(n_d, i.size)
        lin_delta = lin_slope / spot[:, self.lin_under]
        delta = np.concatenate([lin_delta, opt_delta], axis=1)[:, self.perm]
        return values, delta, spot

    def _scenarios(
        self, sets: list[dict[str, ScenarioSet]] | None, chunk: IntArray, rows: RowParams, shape: tuple[int, ...],
        base_only: bool,
    ) -> tuple[Array, Array]:
        """(relative spot moves: dates x underlyings x (0, then each scenario), the options' vols: (dates x
        options) x the same columns). Sets narrower than the widest are padded with unshocked columns (zero P&L)."""
        n_d, n_under = shape
        n_opt = self.opt.size
        sigma = rows.opt_sigma
        if base_only:
            return np.zeros((n_d, n_under, 1)), sigma.reshape(-1, 1).copy()
        per_date = sets if sets is not None else [self.grid_sets]
        width = 1 + max(s.size for date_sets in per_date for s in date_sets.values())
        moves = np.zeros((n_d, n_under, width))
        vols = np.repeat(sigma[:, None], width, axis=1)
        opt_rows = np.arange(n_d * n_opt).reshape(n_d, n_opt)
        for u, asset in enumerate(self.assets):
            spec = self.params.scenarios_for(asset)
            mine = self.opt_under == u
            if sets is None:  # the grid: one scenario set on every date
                s = self.grid_sets[asset]
                moves[:, u, 1 : 1 + s.size] = s.spot_shock
                at = opt_rows[:, mine].ravel()
                if at.size:
                    vols[at, 1 : 1 + s.size] = shocked_vols(
                        sigma[at], rows.opt_tenor_scale[at], rows.opt_log_moneyness[at], s,
                        min_vol_up=spec.min_vol_up, skew=self.params.skew,
                    )
                continue
            for d, date_sets in enumerate(sets):
                s = date_sets[asset]
                moves[d, u, 1 : 1 + s.size] = s.spot_shock
                at = opt_rows[d, mine]
                if at.size:
                    vols[at, 1 : 1 + s.size] = shocked_vols(
                        sigma[at], rows.opt_tenor_scale[at], rows.opt_log_moneyness[at], s,
                        min_vol_up=spec.min_vol_up, skew=self.params.skew,
                    )
        return moves, vols

    def _damp(self, chunk: IntArray, sets: list[dict[str, ScenarioSet]] | None, width: int) -> Array:
        """Tail cover per date, underlying and scenario (1 in padded columns)."""
        damp = np.ones((chunk.size, len(self.assets), width))
        for u, asset in enumerate(self.assets):
            if sets is None:
                s = self.grid_sets[asset]
                damp[:, u, : s.size] = s.damp
            else:
                for d, date_sets in enumerate(sets):
                    s = date_sets[asset]
                    damp[d, u, : s.size] = s.damp
        return damp

    def _position_values(self, base: Array, market: DatedMarket, chunk: IntArray) -> Array:
        """Each position's value (dates x positions): its row's base value, or a stablecoin holding's."""
        out = np.zeros((chunk.size, len(self.book.positions)))
        out[:, self.row_position] = base
        for j, i in enumerate(self.fixed.tolist()):
            asset = _priced_in(self.book.positions[i])
            price = market.spot[asset][chunk] if asset in market.spot else self.params.class_params(asset).peg
            out[:, i] = self.fixed_sign[j] * self.book.quantity[chunk, i] * price
        return out

    def _contingency(self, market: DatedMarket) -> Array:
        keys = self.arrays.keys
        if not self.params.contingencies_enabled or keys.rate.size == 0:
            return np.zeros(market.as_of.size)
        net = np.zeros((market.as_of.size, keys.rate.size))
        np.add.at(net.T, keys.key, self.book.quantity[:, keys.position].T)
        rate = _columns([market.spot[a] for a in self.key_asset], market.as_of.size) * self.key_unit_rate
        return np.sum(contingency_charge(net, keys.side[None, :]) * rate, axis=1)


_KINDS = (SpotPosition, LendPosition, BorrowPosition, PerpPosition, FuturePosition, OptionPosition)
_LP_FIELDS = ROW_FIELDS[2]  # an LP range's: none on the date axis


def repeated_vol_columns(sets: list[dict[str, ScenarioSet]]) -> int:
    """n_vol when every scenario of every date has one vol move for all its vol columns, else 1."""
    n_vol = 1
    for date_sets in sets:
        for s in date_sets.values():
            if s.history is None:
                return 1
            n_vol = s.history.n_vol
            by_vol = s.vol_shock.reshape(-1, n_vol)
            if not np.array_equal(by_vol, np.broadcast_to(by_vol[:, :1], by_vol.shape)):
                return 1
    return n_vol


def _columns(columns: list[Array], n_dates: int) -> Array:
    """dates x len(columns)."""
    return np.stack(columns, axis=1) if columns else np.zeros((n_dates, 0))


def _lin_kind(p: Position) -> int:
    return _MARKED if isinstance(p, PerpPosition | FuturePosition) else _BORROW if isinstance(p, BorrowPosition) \
        else _HOLDING


def _priced_in(p: Position) -> str:
    """The asset whose price values the position: a holding's own, a derivative's underlying."""
    return p.asset if isinstance(p, SpotPosition | LendPosition | BorrowPosition) else p.underlying  # type: ignore[union-attr]


def _alike(book: DatedBook, i: int, j: int) -> bool:
    """Whether two dated positions share everything of a contingency key but their strike and expiry."""
    a, b = book.positions[i], book.positions[j]
    fields = ("venue", "chain", "account", "kind", "underlying", "option_type", "settlement")
    return all(getattr(a, f, None) == getattr(b, f, None) for f in fields)
