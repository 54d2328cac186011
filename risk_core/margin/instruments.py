"""Instruments resolved and valued once per market snapshot, shared by every book margined on it.

A service margins many books against one snapshot, and books hold listed instruments: the same option, perp or
range recurs across wallets and requests. Each instrument is resolved (forward, vol, scenario vols) and revalued
under every scenario, and on the liquidation search's coarse grid, once, as a position of size 1, by the same
`resolve_book` as any book. A book is then its instruments' rows gathered and scaled by its sizes: value,
scenario P&L and greeks are linear in size, only a long holding earns a haircut, and a perp's or future's entry
price shifts its mark value, never its P&L. The figures are those of resolving the book directly, to rounding.

An instrument the market cannot price (unpriced asset, expired option ...) is kept too, as unpriced, with its
issues: a book holding it leaves the position out and names it. Issues about an asset or the market (unknown
asset class, price sources in disagreement) are kept with each instrument that raised them and said once per
book. The table belongs to its caller's pricing context (risk_core.margin.context) and is bounded
(_MAX_INSTRUMENTS): past the bound a book's new instruments are valued in a table of the book's own, not kept.
A table grows on its caller's thread: a caller sharing a context between threads serializes its books.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from operator import attrgetter
from typing import Any

import numpy as np
from numpy.typing import NDArray

from risk_core.margin.book import (
    ROW_FIELDS,
    BookValuation,
    ContingencyKeys,
    Places,
    ResolvedBook,
    RowParams,
    ScenarioSets,
    UnderlyingRows,
    resolve_book,
)
from risk_core.margin.issues import PricingIssue
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

    def __init__(
        self, market: MarketSnapshot, params: RiskParams, max_rise: float, sets: ScenarioSets, *, bounded: bool = True
    ) -> None:
        self.market, self.params, self.max_rise, self._sets, self._bounded = market, params, max_rise, sets, bounded
        self._grid = coarse_grid(max_rise).reshape(-1)  # down moves, then up moves
        self._index: dict[tuple[Any, ...], int] = {}  # instrument key -> id
        self._count = 0
        self._primary = np.zeros(0, dtype=np.intp)  # per instrument: index into _assets, -1 for none
        self._fixed_value = np.zeros(0)
        self._fixed_haircut = np.zeros(0)
        self._notional = np.zeros(0)
        self._mark = np.zeros(0)  # a perp's or future's mark: what its entry price is measured against
        self._rate = np.zeros(0)  # contingency USD per unit, NaN where none
        self._side = np.zeros(0)
        self._priced = np.zeros(0, dtype=bool)
        self._has_issues = np.zeros(0, dtype=bool)
        self._issues: dict[int, list[PricingIssue]] = {}  # per instrument with any: its issues, as of a book of it
        self._assets: list[str] = []
        self._tables: dict[str, _AssetTable] = {}
        # unit rows' revaluation inputs by block, every underlying's rows together (RowParams' fields as columns)
        lin, opt, lp = (np.zeros((0, len(fields))) for fields in ROW_FIELDS)
        self._block_tables: tuple[Array, Array, Array] = (lin, opt, lp)

    @property
    def size(self) -> int:
        return self._count

    def book(self, positions: Sequence[Position]) -> ResolvedBook:
        """The book of `positions` gathered from its instruments, resolving and valuing new ones."""
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
            if self._bounded and self._count + len(missing) > _MAX_INSTRUMENTS:
                unkept = PricedInstruments(self.market, self.params, self.max_rise, self._sets, bounded=False)
                return unkept.book(positions)
            self._add({key: positions[at[0]] for key, at in missing.items()})
            for key, at in missing.items():
                for i in at:
                    ids[i] = self._index[key]
        held = np.array(ids, dtype=np.intp).reshape(len(ids))
        n = held.size
        return self._gather(positions, held, np.array(sizes, dtype=np.float64).reshape(n), entries,
                            Places(list(places), np.array(place_of, dtype=np.intp).reshape(n)))

    def ids(self, instruments: Sequence[Position]) -> IntArray:
        """The table's id of each instrument (any position holding it), resolving and valuing new ones whatever
        the bound: a batch's table holds its input's instruments."""
        keys = [instrument_key(p) for p in instruments]
        new = {key: p for key, p in zip(keys, instruments, strict=True) if key not in self._index}
        if new:
            self._add(new)
        return np.array([self._index[key] for key in keys], dtype=np.intp).reshape(len(keys))

    # The table as arrays, for margining holdings of many wallets at once (risk_core.margin.batch).

    @property
    def assets(self) -> list[str]:
        return list(self._tables)

    def asset_rows(self, asset: str) -> tuple[IntArray, Array, Array, ScenarioSet]:
        """One underlying's rows: each instrument's row (-1 for none), rows' scenario P&L (undampened) and delta
        at size 1, and the scenario set."""
        table = self._tables[asset]
        return table.row_of, table.pnl, table.greeks[:, 0], table.scenarios

    def unit_figures(self) -> tuple[Array, Array, Array, Array, Array, NDArray[np.bool_]]:
        """Per instrument at size 1: value, haircut, mark (what an entry price is measured against), contingency
        rate (NaN for none) and side, and whether it is priced."""
        value, haircut = self._fixed_value.copy(), self._fixed_haircut.copy()
        for asset, table in self._tables.items():
            own = np.flatnonzero(table.row_of >= 0)
            own = own[self._primary[own] == self._assets.index(asset)]
            value[own] = table.base_value[table.row_of[own]]
            haircut[own] = table.base_haircut[table.row_of[own]]
        return value, haircut, self._mark, self._rate, self._side, self._priced

    def issues_of(self, instrument: int) -> list[PricingIssue]:
        """The instrument's issues, as of a book holding it alone (a position's own at index 0)."""
        return self._issues.get(instrument, [])

    @property
    def has_issues(self) -> NDArray[np.bool_]:
        return self._has_issues

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

        issues, raised_by = self._book_issues(ids)
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
            priced=self._priced[ids],
            contingency=ContingencyKeys(
                key=key,
                position=charged,
                entry_quantity=size[charged],
                n_positions=size.size,
                rate=self._rate[key_instrument],
                side=self._side[key_instrument],
            ),
            notional=np.abs(size) * self._notional[ids],
            issues=issues,
            raised_by=raised_by,
            valuation=valuation,
            places=places,
        )

    def _book_issues(self, ids: IntArray) -> tuple[list[PricingIssue], list[tuple[int, ...]]]:
        """The issues of a book holding `ids`: each position's own, naming it, and each about an asset or the market
        once, in the order the positions raise them."""
        issues: list[PricingIssue] = []
        raised_by: list[list[int]] = []
        said: dict[tuple[str, str], int] = {}
        for i in np.flatnonzero(self._has_issues[ids]).tolist():
            for issue in self._issues[int(ids[i])]:
                if issue.index is not None:
                    issues.append(issue.at(i))
                    raised_by.append([i])
                    continue
                j = said.get(issue.subject)
                if j is None:
                    j = said[issue.subject] = len(issues)
                    issues.append(issue)
                    raised_by.append([])
                raised_by[j].append(i)
        return issues, [tuple(at) for at in raised_by]

    # ------------------------------------------------------------------------------------------- adding

    def _add(self, new: dict[tuple[Any, ...], Position]) -> None:
        keys = list(new)
        units = [unit_instrument(p) for p in new.values()]
        book = resolve_book(units, self.market, self.params, self._sets)
        of_unit: dict[int, list[PricingIssue]] = {}
        for issue, raised in zip(book.issues, book.raised_by, strict=True):
            for unit in raised:
                of_unit.setdefault(unit, []).append(issue)
        self._append(keys, book, of_unit)

    def _append(
        self, keys: list[tuple[Any, ...]], book: ResolvedBook, issues: dict[int, list[PricingIssue]]
    ) -> None:
        first, n_new = self._count, len(keys)
        for unit, found in issues.items():
            self._issues[first + unit] = found
        has_issues = np.zeros(n_new, dtype=bool)
        has_issues[list(issues)] = True
        self._has_issues = np.concatenate([self._has_issues, has_issues])
        self._priced = np.concatenate([self._priced, book.priced])
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
