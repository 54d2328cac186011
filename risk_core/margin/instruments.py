"""Instruments resolved and valued once per market snapshot, shared by every book margined on it.

A service margins many books against one snapshot, and books hold listed instruments: the same option, perp or
range recurs across wallets and requests. Each instrument is resolved (forward, vol, scenario vols) and revalued
under every scenario, and on the liquidation search's coarse grid, once, as a position of size 1, by the same
`resolve_book` as any book. A book is then its instruments' rows gathered and scaled by its sizes: value,
scenario P&L and greeks are linear in size, only a long holding earns a haircut, and a perp's or future's entry
price shifts its mark value, never its P&L. The figures are those of resolving the book directly, to rounding.

An instrument that cannot be priced on its own (unpriced asset, expired option ...), or draws a warning about an
asset or the market (unknown asset class, price sources in disagreement), is not kept: a book holding one is
resolved directly, so that its messages come once, in its own order, naming its own positions. A warning about
the position itself (an LP range of two risky assets) is kept with the instrument and names the book's index.
Each cache is bounded (_MAX_INSTRUMENTS) and lives as long as its snapshot and parameters objects.
"""

from __future__ import annotations

import re
import threading
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from operator import attrgetter
from typing import Any

import numpy as np
from numpy.typing import NDArray

from risk_core.errors import InputError
from risk_core.margin.book import (
    ROW_FIELDS,
    BookValuation,
    ContingencyKeys,
    Places,
    ResolvedBook,
    RowParams,
    UnderlyingRows,
    resolve_book,
)
from risk_core.margin.liquidation import coarse_grid
from risk_core.margin.scenarios import ScenarioSet
from risk_core.schema.market import MarketSnapshot
from risk_core.schema.params import RiskParams
from risk_core.schema.positions import (
    BorrowPosition,
    FuturePosition,
    LendPosition,
    LPPosition,
    OptionPosition,
    PerpPosition,
    Position,
    SpotPosition,
)

Array = NDArray[np.float64]
IntArray = NDArray[np.intp]

# Per position type: the fields that make the instrument, and the field holding the position's size.
INSTRUMENT_FIELDS: dict[type, tuple[tuple[str, ...], str]] = {
    SpotPosition: (("kind", "asset"), "quantity"),
    LendPosition: (("kind", "asset"), "quantity"),
    BorrowPosition: (("kind", "asset"), "quantity"),
    PerpPosition: (("kind", "underlying"), "quantity"),
    FuturePosition: (("kind", "underlying", "expiry"), "quantity"),
    OptionPosition: (("kind", "underlying", "option_type", "strike", "expiry", "settlement"), "quantity"),
    LPPosition: (("kind", "token0", "token1", "price_lower", "price_upper"), "liquidity"),
}
UNIT_PLACE = "unit"  # venue, chain and account of a unit instrument
# per snapshot: beyond it new instruments are resolved with their book, not kept. A row costs about 2 kB
# (scenario P&L, greeks, the liquidation grid): 20,000 instruments (every listed option of BTC, ETH and SOL is
# about 10,000) bound a snapshot's cache at about 40 MB, whatever clients send.
_MAX_INSTRUMENTS = 20_000
_LIN, _OPT, _LP = 0, 1, 2  # row blocks, in the order UnderlyingRows keeps them


@dataclass(frozen=True)
class _Spec:
    key: Callable[[Any], tuple[Any, ...]]
    size: Callable[[Any], float]
    size_field: str
    has_entry: bool


_SPECS = {
    cls: _Spec(attrgetter(*fields), attrgetter(size_field), size_field, cls in (PerpPosition, FuturePosition))
    for cls, (fields, size_field) in INSTRUMENT_FIELDS.items()
}
# Per position type, as plain tuples for per-position loops: (its instrument key, its size, has an entry price).
INSTRUMENT_READERS = {cls: (spec.key, spec.size, spec.has_entry) for cls, spec in _SPECS.items()}
_PLACE = attrgetter("venue", "chain", "account")
_ENTRY = attrgetter("entry_price")


def unit_instrument(p: Position) -> Position:
    """The instrument a position holds: size 1, no place, no entry price, no id or provenance."""
    if is_unit_instrument(p):
        return p
    spec = _SPECS[p.__class__]
    update: dict[str, Any] = {spec.size_field: 1.0, "venue": UNIT_PLACE, "chain": UNIT_PLACE,
                              "account": UNIT_PLACE, "id": None, "provenance": None}
    if spec.has_entry:
        update["entry_price"] = None
    return p.model_copy(update=update)


def is_unit_instrument(p: Position) -> bool:
    fields = p.__dict__  # not getattr: a missing attribute costs a pydantic __getattr__
    return (fields[_SPECS[p.__class__].size_field] == 1.0
            and fields["venue"] == fields["chain"] == fields["account"] == UNIT_PLACE
            and fields["id"] is None and fields["provenance"] is None and fields.get("entry_price") is None)


def instrument_key(p: Position) -> tuple[Any, ...]:
    """What makes the instrument a position holds (see INSTRUMENT_FIELDS). Raises KeyError for a non-position."""
    return _SPECS[p.__class__].key(p)


@dataclass
class _AssetTable:
    """One underlying's rows of unit instruments, in the order they were added. Per row: its block and its row in
    that block's parameter table (shared by all underlyings), base value and haircut, scenario P&L, greeks, and
    the change of value and haircut on the liquidation search's coarse grid."""

    spot: float
    scenarios: ScenarioSet
    row_of: IntArray  # per instrument: its row here, -1 where it has none
    block: NDArray[np.int8]
    block_row: IntArray
    base_value: Array
    base_haircut: Array
    pnl: Array  # rows x scenarios, undampened
    greeks: Array  # rows x (delta, gamma, vega, theta)
    grid_value: Array  # rows x coarse moves: value less base value
    grid_haircut: Array  # rows x coarse moves: haircut less base haircut


@dataclass(frozen=True)
class _Held:
    """A book's rows in one underlying: positions, table rows (in block order), sizes, and block sizes."""

    table: _AssetTable
    row: IntArray
    size: Array
    long: Array
    shift: Array
    blocks: tuple[int, int, int]


class CachedValuation(BookValuation):
    """A gathered book's values, P&L and greeks, taken from its instruments' rows rather than revalued; its greeks,
    liquidation grid and rows' revaluation inputs are gathered on first use (a margin check needs none of them)."""

    def __init__(
        self,
        assets: list[str],
        held: list[_Held],
        block_tables: tuple[Array, Array, Array],
        base: dict[str, tuple[Array, Array]],
        pnl: dict[str, Array],
        max_rise: float,
    ) -> None:
        super().__init__([h.blocks for h in held])
        self._assets, self._held, self._block_tables = assets, held, block_tables
        self._base, self._pnl, self._max_rise = base, pnl, max_rise

    @cached_property
    def stacked(self) -> RowParams:
        """Unit rows scaled by size: quantity, liquidity and the linear rows' value, slope and haircut (with the
        entry price's shift of a perp's or future's value, and haircuts on long holdings only)."""
        columns: dict[str, Any] = {}
        for block, (fields, table) in enumerate(zip(ROW_FIELDS, self._block_tables, strict=True)):
            pieces, sizes, longs, shifts = [], [], [], []
            for h in self._held:
                start = sum(h.blocks[:block])
                span = slice(start, start + h.blocks[block])
                pieces.append(h.table.block_row[h.row[span]])
                sizes.append(h.size[span])
                longs.append(h.long[span])
                shifts.append(h.shift[span])
            unit = table[np.concatenate(pieces)]
            size = np.concatenate(sizes)
            for j, name in enumerate(fields):
                columns[name] = unit[:, j]
            if block == _LIN:
                columns["lin_base"] = size * unit[:, 0] + np.concatenate(shifts)
                columns["lin_slope"] = size * unit[:, 1]
                columns["lin_haircut"] = np.concatenate(longs) * unit[:, 2]
            elif block == _OPT:
                columns["opt_quantity"] = size * unit[:, 0]
                columns["opt_call"] = unit[:, 5] > 0
            else:
                columns["lp_liquidity"] = size * unit[:, 0]
                columns["lp_on_token0"] = unit[:, 4] > 0
        return RowParams(**columns)

    def base(self, asset: str) -> tuple[Array, Array]:
        return self._base[asset]

    def scenario_pnl(self, asset: str) -> Array:
        return self._pnl[asset]

    def scenario_values(self, asset: str) -> Array:
        return self._base[asset][0] + self._pnl[asset]

    @cached_property
    def greeks(self) -> dict[str, tuple[Array, Array, Array, Array]]:
        out = {}
        for asset, h in zip(self._assets, self._held, strict=True):
            g = h.size[:, None] * h.table.greeks[h.row]
            out[asset] = (g[:, 0], g[:, 1], g[:, 2], g[:, 3])
        return out

    def row_delta(self, asset: str) -> Array:
        if "greeks" in self.__dict__:  # already gathered
            return self.greeks[asset][0]
        h = self._held[self._assets.index(asset)]
        return h.size * h.table.greeks[h.row, 0]

    def coarse_change(self, max_rise: float) -> Array | None:
        if max_rise != self._max_rise:
            return None
        change = [h.size @ h.table.grid_value[h.row] - h.long @ h.table.grid_haircut[h.row] for h in self._held]
        return np.array(change).reshape(2 * len(change), -1)


class PricedInstruments:
    """The instruments met so far on one (market snapshot, parameters), resolved and valued at size 1."""

    def __init__(self, market: MarketSnapshot, params: RiskParams, max_rise: float) -> None:
        # weakly: the cache of a snapshot must not keep it alive (its entry goes when the snapshot does)
        self._market, self._params, self.max_rise = weakref.ref(market), weakref.ref(params), max_rise
        self._grid = coarse_grid(max_rise).reshape(-1)  # down moves, then up moves
        self._lock = threading.Lock()
        self._index: dict[tuple[Any, ...], int] = {}  # instrument key -> id; -1: resolved with its book only
        self._count = 0
        self._primary = np.zeros(0, dtype=np.intp)  # per instrument: index into _assets, -1 for none
        self._fixed_value = np.zeros(0)
        self._fixed_haircut = np.zeros(0)
        self._notional = np.zeros(0)
        self._mark = np.zeros(0)  # a perp's or future's mark: what its entry price is measured against
        self._rate = np.zeros(0)  # contingency USD per unit, NaN where none
        self._side = np.zeros(0)
        self._warns = np.zeros(0, dtype=bool)  # per instrument: whether a book holding it warns about it
        self._warnings: dict[int, list[str]] = {}  # those warnings, naming the instrument `positions[0]`
        self._assets: list[str] = []
        self._tables: dict[str, _AssetTable] = {}
        # unit rows' revaluation inputs by block, every underlying's rows together (RowParams' fields as columns)
        lin, opt, lp = (np.zeros((0, len(fields))) for fields in ROW_FIELDS)
        self._block_tables: tuple[Array, Array, Array] = (lin, opt, lp)

    @property
    def size(self) -> int:
        return self._count

    def book(self, positions: Sequence[Position]) -> ResolvedBook | None:
        """The book of `positions` gathered from its instruments (resolving new ones), or None when one of
        them is not kept (the caller resolves the book directly)."""
        index_of = self._index.get
        ids: list[int] = []
        sizes: list[float] = []
        entries: list[tuple[int, float]] = []
        places: dict[tuple[str, str, str], int] = {}
        place_of: list[int] = []
        missing: dict[tuple[Any, ...], list[int]] = {}  # new instruments: the positions holding them
        readers = INSTRUMENT_READERS
        for i, p in enumerate(positions):
            key_of, size_of, has_entry = readers[p.__class__]
            key = key_of(p)
            k = index_of(key)
            if k is None:
                missing.setdefault(key, []).append(i)
                k = -1
            ids.append(k)
            sizes.append(size_of(p))
            if has_entry and (entry := _ENTRY(p)) is not None:
                entries.append((i, entry))
            place_of.append(places.setdefault(_PLACE(p), len(places)))
        if missing:
            self._add({key: positions[at[0]] for key, at in missing.items()})
            for key, at in missing.items():
                for i in at:
                    ids[i] = self._index[key]
        held = np.array(ids, dtype=np.intp).reshape(len(ids))
        if held.size and held.min() < 0:
            return None
        n = held.size
        return self._gather(positions, held, np.array(sizes, dtype=np.float64).reshape(n), entries,
                            Places(list(places), np.array(place_of, dtype=np.intp).reshape(n)))

    # ------------------------------------------------------------------------------------------ gathering

    def _gather(
        self,
        positions: Sequence[Position],
        ids: IntArray,
        size: Array,
        entries: list[tuple[int, float]],
        places: Places,
    ) -> ResolvedBook:
        long = np.maximum(size, 0.0)
        # a perp's or future's value moves from size x (mark - 0) to size x (mark - entry): a constant shift
        shift = np.zeros(size.size)
        if entries:
            at = np.array([i for i, _ in entries], dtype=np.intp)
            shift[at] = size[at] * (self._mark[ids[at]] - np.array([e for _, e in entries]))
        primary_code = self._primary[ids]
        assets = self._assets
        base: dict[str, tuple[Array, Array]] = {}
        pnl: dict[str, Array] = {}
        held: list[_Held] = []
        frozen: list[tuple[str, _AssetTable, IntArray, tuple[int, int, int]]] = []
        for asset in sorted(self._tables):
            table = self._tables[asset]
            rows = table.row_of[ids]
            mine = np.flatnonzero(rows >= 0)
            if not mine.size:
                continue
            row = rows[mine]
            block = table.block[row]
            order = np.argsort(block, kind="stable")
            mine, row = mine[order], row[order]
            n_lin, n_opt, n_lp = np.bincount(block, minlength=3).tolist()
            s, lg, sh = size[mine], long[mine], shift[mine]
            base[asset] = ((s * table.base_value[row] + sh)[:, None], (lg * table.base_haircut[row])[:, None])
            pnl[asset] = s[:, None] * table.pnl[row]
            blocks = (n_lin, n_opt, n_lp)
            held.append(_Held(table, row, s, lg, sh, blocks))
            frozen.append((asset, table, mine, blocks))
        valuation = CachedValuation([f[0] for f in frozen], held, self._block_tables, base, pnl, self.max_rise)
        underlyings = {
            asset: UnderlyingRows(asset, table.spot, table.scenarios, mine, blocks, valuation)
            for asset, table, mine, blocks in frozen
        }

        rate = self._rate[ids]
        charged = np.flatnonzero(~np.isnan(rate))
        # a contingency nets within a venue-account and instrument
        key, key_instrument = _net_keys(places.of_position[charged], ids[charged])
        return ResolvedBook(
            positions=positions,
            underlyings=underlyings,
            primary=[assets[c] if c >= 0 else None for c in primary_code.tolist()],
            fixed_value=size * self._fixed_value[ids],
            fixed_haircut=long * self._fixed_haircut[ids],
            priced=np.ones(size.size, dtype=bool),
            contingency=ContingencyKeys(
                key=key,
                position=charged,
                entry_quantity=size[charged],
                n_positions=size.size,
                rate=self._rate[key_instrument],
                side=self._side[key_instrument],
            ),
            notional=np.abs(size) * self._notional[ids],
            warnings=[
                message.replace("positions[0]", f"positions[{i}]", 1)
                for i in np.flatnonzero(self._warns[ids]).tolist()
                for message in self._warnings[int(ids[i])]
            ],
            valuation=valuation,
            places=places,
        )

    # ------------------------------------------------------------------------------------------- adding

    def _add(self, new: dict[tuple[Any, ...], Position]) -> None:
        with self._lock:
            new = {key: p for key, p in new.items() if key not in self._index}
            if not new:
                return
            if self._count + len(new) > _MAX_INSTRUMENTS:
                for key in new:
                    self._index.setdefault(key, -1)
                return
            units = {key: unit_instrument(p) for key, p in new.items()}
            market, params = self._live()
            resolved = _kept(list(units.values()), market, params)
            if resolved is None:  # some unit cannot be kept: find which, one by one (rare)
                kept = {key: u for key, u in units.items() if _kept([u], market, params) is not None}
                for key in units.keys() - kept.keys():
                    self._index[key] = -1
                units = kept
                resolved = _kept(list(units.values()), market, params) if units else None
            if resolved is not None:
                self._append(list(units), *resolved)

    def _live(self) -> tuple[MarketSnapshot, RiskParams]:
        market, params = self._market(), self._params()
        if market is None or params is None:  # cannot happen: `book` is called with both in hand
            raise RuntimeError("instruments resolved after their snapshot or parameters were released")
        return market, params

    def serves(self, market: MarketSnapshot, params: RiskParams, max_rise: float) -> bool:
        return self._market() is market and self._params() is params and self.max_rise == max_rise

    def _append(self, keys: list[tuple[Any, ...]], book: ResolvedBook, about: dict[int, list[str]]) -> None:
        first, n_new = self._count, len(keys)
        for unit, messages in about.items():
            self._warnings[first + unit] = messages
        warns = np.zeros(n_new, dtype=bool)
        warns[list(about)] = True
        self._warns = np.concatenate([self._warns, warns])
        total = first + n_new
        for asset in book.underlyings:
            if asset not in self._assets:
                self._assets.append(asset)
        code = {asset: j for j, asset in enumerate(self._assets)}
        primary = np.array([code[a] if a is not None else -1 for a in book.primary], dtype=np.intp)
        valuation = book.valuation
        bounds = valuation.block_bounds()
        stacked = valuation.stacked
        mark = np.full(n_new, np.nan)
        for rows, (lin, _, _) in zip(book.underlyings.values(), bounds, strict=True):
            mark[rows.members[: rows.blocks[0]]] = stacked.lin_slope[lin]  # a unit perp's or future's slope: its mark
        # the value of a unit with no risky asset is fixed; the others' values live in their underlyings' rows
        value, haircut = book.fixed_value, book.fixed_haircut
        keys_ = book.contingency
        rate = np.full(n_new, np.nan)
        side = np.zeros(n_new)
        rate[keys_.position] = keys_.rate[keys_.key]
        side[keys_.position] = keys_.side[keys_.key]

        self._primary = np.concatenate([self._primary, primary])
        self._fixed_value = np.concatenate([self._fixed_value, value])
        self._fixed_haircut = np.concatenate([self._fixed_haircut, haircut])
        self._notional = np.concatenate([self._notional, book.notional])
        self._mark = np.concatenate([self._mark, mark])
        self._rate = np.concatenate([self._rate, rate])
        self._side = np.concatenate([self._side, side])

        # the new rows' revaluation inputs, appended block by block to the shared tables
        first_block_row = [table.shape[0] for table in self._block_tables]
        lin_table, opt_table, lp_table = (
            np.concatenate([table, np.column_stack([getattr(stacked, name) for name in fields])
                            .reshape(-1, len(fields)).astype(np.float64)])
            for table, fields in zip(self._block_tables, ROW_FIELDS, strict=True)
        )
        self._block_tables = (lin_table, opt_table, lp_table)
        grid_moves = np.tile(self._grid, (len(book.underlyings), 1))
        sigma = valuation.option_sigma[:, None]
        on_grid = valuation.revalue(grid_moves, np.broadcast_to(sigma, (sigma.size, self._grid.size)))
        for (asset, rows), spans, (grid_value, grid_cut) in zip(book.underlyings.items(), bounds, on_grid, strict=True):
            base_value, base_cut = rows.base()
            block_row = np.concatenate(
                [np.arange(span.start, span.stop) + first for span, first in zip(spans, first_block_row, strict=True)]
            )
            added = _AssetTable(
                spot=rows.spot,
                scenarios=rows.scenarios,
                row_of=np.zeros(0, dtype=np.intp),
                block=np.repeat(np.array([_LIN, _OPT, _LP], dtype=np.int8), rows.blocks),
                block_row=block_row.astype(np.intp),
                base_value=base_value[:, 0],
                base_haircut=base_cut[:, 0],
                pnl=rows.scenario_pnl(),
                greeks=np.column_stack(rows.greeks()).reshape(rows.n_rows, 4),
                grid_value=grid_value - grid_value[:, :1],
                grid_haircut=grid_cut - grid_cut[:, :1],
            )
            self._tables[asset] = _merged(self._tables.get(asset), added, rows.members + first, total)
        for table in self._tables.values():  # every table indexes every instrument
            if table.row_of.size < total:
                table.row_of = np.concatenate([table.row_of, np.full(total - table.row_of.size, -1, np.intp)])
        for j, key in enumerate(keys):
            self._index[key] = first + j
        self._count = total


_POSITION_REF = re.compile(r"positions\[(\d+)\]")


def _kept(
    units: list[Position], market: MarketSnapshot, params: RiskParams
) -> tuple[ResolvedBook, dict[int, list[str]]] | None:
    """The book of `units` and, per unit, the warnings about it alone (naming it `positions[0]`), when every
    unit can be kept: it resolves and is priced, and each warning is about one unit (an LP range of two risky
    assets) rather than about an asset or the market, which a book must say once in its own order."""
    try:
        book = resolve_book(units, market, params)
    except InputError:
        return None
    if not book.priced.all():
        return None
    about: dict[int, list[str]] = {}
    for message in book.warnings:
        named = _POSITION_REF.findall(message)
        if len(named) != 1 or not message.startswith(f"positions[{named[0]}]"):
            return None
        about.setdefault(int(named[0]), []).append(message.replace(f"positions[{named[0]}]", "positions[0]", 1))
    return book, about


def _net_keys(place: IntArray, instrument: IntArray) -> tuple[IntArray, IntArray]:
    """Number the distinct (place, instrument) pairs: (each entry's key, each key's instrument). A sort and a
    difference rather than np.unique, whose own overhead is most of the time at a hundred entries."""
    code = place * (int(instrument.max(initial=0)) + 1) + instrument
    order = np.argsort(code, kind="stable")
    ordered = code[order]
    first = np.ones(ordered.size, dtype=bool)
    first[1:] = ordered[1:] != ordered[:-1]
    key = np.empty(ordered.size, dtype=np.intp)
    key[order] = np.cumsum(first) - 1
    return key, instrument[order[first]]


def _merged(old: _AssetTable | None, added: _AssetTable, instrument: IntArray, total: int) -> _AssetTable:
    """`old` with the rows of `added` appended; `instrument` gives the instrument id of each added row."""
    n_old = 0 if old is None else old.block.size
    row_of = np.full(total, -1, dtype=np.intp)
    if old is not None:
        row_of[: old.row_of.size] = old.row_of
    row_of[instrument] = n_old + np.arange(added.block.size)
    if old is None:
        return _AssetTable(**{**added.__dict__, "row_of": row_of})
    return _AssetTable(
        spot=old.spot,
        scenarios=old.scenarios,
        row_of=row_of,
        **{
            name: np.concatenate([getattr(old, name), value])
            for name, value in added.__dict__.items()
            if name not in ("spot", "scenarios", "row_of")
        },
    )


# One PricedInstruments per live (market, parameters) pair, by the objects' ids: per market, per parameters. Each
# object gets one finalizer, however many pairs it is in: a market's entries go with it, and a parameters object's
# entries go from every market with it (a long-lived snapshot margined with many parameter sets, or the shipped
# parameters over many snapshots, must not gather finalizers).
_PRICED: dict[int, dict[int, PricedInstruments]] = {}
_WATCHED: set[int] = set()  # ids of the parameters objects with a finalizer
# reentrant: a finalizer (`_forget_params`) can run inside the locked block of the same thread, when an allocation
# there sets off a garbage collection
_PRICED_LOCK = threading.RLock()


def resolve_book_cached(
    positions: Sequence[Position], market: MarketSnapshot, params: RiskParams, *, max_rise: float
) -> ResolvedBook:
    """`resolve_book`, gathered from the instruments already valued on this snapshot when all of them are kept.
    `max_rise` is the liquidation search's upward range (its coarse grid is valued with the instruments).

    Raises:
        InputError: a position cannot be priced (raised by `resolve_book` on the book itself).
    """
    book = priced_instruments(market, params, max_rise).book(positions)
    return resolve_book(positions, market, params) if book is None else book


def priced_instruments(market: MarketSnapshot, params: RiskParams, max_rise: float) -> PricedInstruments:
    """The instruments valued so far on (market, params), kept while both objects live."""
    per_market = _PRICED.get(id(market))
    found = None if per_market is None else per_market.get(id(params))
    if found is not None and found.serves(market, params, max_rise):
        return found
    with _PRICED_LOCK:
        if per_market is None:
            per_market = _PRICED[id(market)] = {}
            weakref.finalize(market, _PRICED.pop, id(market), None)
        if id(params) not in _WATCHED:
            _WATCHED.add(id(params))
            weakref.finalize(params, _forget_params, id(params))
        found = per_market[id(params)] = PricedInstruments(market, params, max_rise)
    return found


def _forget_params(params_id: int) -> None:
    with _PRICED_LOCK:
        _WATCHED.discard(params_id)
        for per_market in list(_PRICED.values()):  # a market's finalizer may drop an entry meanwhile
            per_market.pop(params_id, None)
