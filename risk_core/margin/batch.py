"""Margin of many wallets at once: every distinct instrument priced once per scenario, wallets aggregated by
sparse holdings matrices.

Wallets share instruments (10,000 wallets of 100 positions hold a few thousand distinct options), and a
position's value and scenario P&L are linear in its size. So the instruments are deduplicated across wallets,
resolved once as a book of unit positions by the same `resolve_book` and `RiskArrays` as a single request, and
the P&L of every group the model margins (each venue-account of a wallet, each chain of a wallet, the wallet) is
a sparse holdings matrix times the instruments' P&L array. The figures are those of `compute_margin` run on each
wallet alone (to rounding): the same scenario losses, cross-underlying credits, partial credit for offsets across
venue-accounts and chains, and contingencies on what is left after netting in each venue-account.

What an instrument is: the position with size 1 and no account, i.e. the fields that price it (kind; asset or
underlying; option type, strike, expiry, settlement; LP tokens and range). A perp's or future's entry price is
not part of it: it only shifts the position's mark value by size x (mark - entry), never its scenario P&L, and
keeping it would make every perp position an instrument of its own.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike, NDArray

from risk_core.errors import InputError
from risk_core.margin.book import ResolvedBook, resolve_book
from risk_core.margin.instruments import INSTRUMENT_FIELDS, INSTRUMENT_READERS, instrument_key, unit_instrument
from risk_core.margin.risk_arrays import (
    RiskArrays,
    combine_levels,
    combine_underlyings,
    contingency_charge,
    scenario_loss,
)
from risk_core.schema.market import MarketSnapshot
from risk_core.schema.params import RiskParams
from risk_core.schema.positions import (
    BorrowPosition,
    FuturePosition,
    LendPosition,
    PerpPosition,
    Position,
)

Array = NDArray[np.float64]
IntArray = NDArray[np.intp]

@dataclass(frozen=True)
class Holdings:
    """Wallets as coordinates on deduplicated instruments: one entry per position, in wallet order.

    Account groups (a wallet's venue-accounts) are numbered wallet by wallet and, within a wallet, chain by chain,
    so that a wallet's account groups, and a chain's, are contiguous; chain groups likewise.
    """

    instruments: list[Position]  # unit positions: size 1, venue/chain/account "batch", no entry price
    holders: list[tuple[int, int]]  # per instrument: the first (wallet, position) holding it, for messages
    n_wallets: int
    wallet: IntArray  # per position
    instrument: IntArray  # per position
    size: Array  # per position: signed quantity (liquidity for LP ranges)
    entry_price: Array  # per position: perp/future entry price, NaN where none
    account_group: IntArray  # per position: its (wallet, venue-account) group
    account_chain: IntArray  # per account group: its (wallet, chain) group
    chain_wallet: IntArray  # per chain group: its wallet

    @property
    def n_positions(self) -> int:
        return int(self.wallet.size)


@dataclass(frozen=True)
class BatchMarginResult:
    """Per wallet, the figures `compute_margin` reports for that wallet alone (USD)."""

    equity_usd: Array
    collateral_usd: Array  # after haircuts
    risk_usd: Array  # combined scenario risk, before contingencies
    contingency_usd: Array
    maintenance_margin_usd: Array  # risk + contingency
    initial_margin_usd: Array  # maintenance x im_factor
    n_instruments: int
    n_positions: int
    position_scenarios: int  # position x scenario revaluations the figures stand for
    instrument_scenarios: int  # instrument-row x scenario revaluations actually computed
    warnings: list[str]  # once per instrument, naming the first position that holds it


def compute_batch_margin(
    wallets: Sequence[Sequence[Position]], market: MarketSnapshot, params: RiskParams
) -> BatchMarginResult:
    """Margin figures of each wallet, as if each were sent alone to `compute_margin`.

    Raises:
        InputError: a position cannot be priced; the field is named as `wallets[w][j].<field>`.
    """
    return compute_holdings_margin(collect_holdings(wallets), market, params)


def collect_holdings(wallets: Sequence[Sequence[Position]]) -> Holdings:
    """Deduplicate the wallets' instruments and number their venue-account and chain groups (pure Python, one
    pass over the positions; the only per-position loop of the batch path)."""
    place_of = attrgetter("venue", "chain", "account")
    entry_of = attrgetter("entry_price")
    index: dict[tuple[Any, ...], int] = {}
    instruments: list[Position] = []
    holders: list[tuple[int, int]] = []
    instrument: list[int] = []
    size: list[float] = []
    entries: list[tuple[int, float]] = []  # (position, entry price) where there is one
    group: list[int] = []  # per position: account group, numbered in order of appearance
    group_chain: list[int] = []  # per account group: chain group, numbered in order of appearance
    n_chains: list[int] = []  # per wallet
    first_chain = 0
    for w, wallet in enumerate(wallets):
        accounts: dict[tuple[str, str, str], int] = {}
        chains: dict[str, int] = {}
        for j, p in enumerate(wallet):
            spec = INSTRUMENT_READERS.get(p.__class__)
            if spec is None:
                raise InputError(f"wallets[{w}][{j}]", f"not a position: {type(p).__name__}")
            key_of, size_of, has_entry = spec
            key = key_of(p)
            i = index.get(key)
            if i is None:
                i = index[key] = len(instruments)
                instruments.append(unit_instrument(p))
                holders.append((w, j))
            place = place_of(p)
            g = accounts.get(place)
            if g is None:
                g = accounts[place] = len(group_chain)
                c = chains.get(place[1])
                if c is None:
                    c = chains[place[1]] = first_chain + len(chains)
                group_chain.append(c)
            if has_entry and (entry := entry_of(p)) is not None:
                entries.append((len(instrument), entry))
            instrument.append(i)
            size.append(size_of(p))
            group.append(g)
        n_chains.append(len(chains))
        first_chain += len(chains)
    # renumber account groups chain by chain (chain groups already run wallet by wallet)
    account_chain = np.array(group_chain, dtype=np.intp)
    order = np.argsort(account_chain, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    n = len(instrument)
    entry_price = np.full(n, np.nan)
    if entries:
        at, price = zip(*entries, strict=True)
        entry_price[list(at)] = price
    return Holdings(
        instruments=instruments,
        holders=holders,
        n_wallets=len(wallets),
        wallet=np.repeat(np.arange(len(wallets), dtype=np.intp), [len(wallet) for wallet in wallets]),
        instrument=np.array(instrument, dtype=np.intp).reshape(n),
        size=np.array(size, dtype=np.float64).reshape(n),
        entry_price=entry_price,
        account_group=rank[np.array(group, dtype=np.intp).reshape(n)],
        account_chain=account_chain[order],
        chain_wallet=np.repeat(np.arange(len(wallets), dtype=np.intp), n_chains),
    )


def holdings_from_columns(
    instruments: Sequence[Position],
    wallet: ArrayLike,
    instrument: ArrayLike,
    size: ArrayLike,
    entry_price: ArrayLike,
    venue_account: ArrayLike,
    chain: ArrayLike,
    *,
    n_wallets: int | None = None,
) -> Holdings:
    """`Holdings` from a table of positions, one row per position, with numpy only (no per-position Python).

    For batch input that arrives as columns (Parquet, a database) rather than as Position objects; the margin
    figures of `compute_holdings_margin` are those of `compute_batch_margin` on the same positions as wallets.

    Args:
        instruments: the instruments the `instrument` column indexes. Only the fields that make an instrument are
            read (see the module docstring); size, venue, chain, account, id and entry price are ignored, so a
            unit position or any position of the instrument will do. Instruments no row holds are dropped, and
            instruments listed twice are merged.
        wallet: per position, its wallet 0..n_wallets-1; sorted ascending (a wallet's rows together).
        instrument: per position, its index in `instruments`.
        size: per position, the signed quantity (liquidity for LP ranges); > 0 for lend and borrow.
        entry_price: per position, a perp's or future's entry price, NaN where there is none (always NaN for
            other kinds).
        venue_account: per position, an integer code of its (venue, chain, account): positions of a wallet with
            the same code and chain are one venue-account. The codes are labels only (any integers, in any order);
            a code of (venue, account) alone is enough, since groups are also split by chain.
        chain: per position, an integer code of its chain label (any integers).
        n_wallets: the number of wallets (wallets with no rows are margined as empty); by default one more than
            the largest wallet index, 0 for no rows.

    Returns:
        Holdings as `collect_holdings` makes them, with account groups numbered wallet by wallet, chain by chain
        (chains and venue-accounts in order of their codes within a wallet). A position named in messages as
        `wallets[w][j]` is wallet w's j-th row.

    Raises:
        InputError: a column is not one-dimensional, not of the length of `wallet`, not of integers (indexes and
            codes), not finite (sizes), out of range, or `wallet` is not sorted; an instrument is not a position;
            named by the column (e.g. `instrument[12]`) or `instruments[i]`.
    """
    wallet_ = _int_column("wallet", wallet)
    n = wallet_.size
    instrument_ = _int_column("instrument", instrument, n)
    va_ = _int_column("venue_account", venue_account, n)
    chain_ = _int_column("chain", chain, n)
    size_ = _float_column("size", size, n)
    entry_ = _float_column("entry_price", entry_price, n)
    unsorted = np.flatnonzero(wallet_[1:] < wallet_[:-1])
    if unsorted.size:
        k = int(unsorted[0]) + 1
        raise InputError(f"wallet[{k}]", f"not sorted ascending: {int(wallet_[k])} after {int(wallet_[k - 1])}")
    if n_wallets is None:
        n_wallets = max(int(wallet_[-1]) + 1, 0) if n else 0
    if n_wallets < 0:
        raise InputError("n_wallets", f"must be >= 0, got {n_wallets}")
    if n and (wallet_[0] < 0 or wallet_[-1] >= n_wallets):  # sorted: the ends are the extremes
        _check_range("wallet", wallet_, n_wallets)
    _check_range("instrument", instrument_, len(instruments))

    # instruments: keep those held, merge repeats, make them units; their first holder names them in messages
    first = np.full(len(instruments), n, dtype=np.intp)
    np.minimum.at(first, instrument_, np.arange(n, dtype=np.intp))
    index: dict[tuple[Any, ...], int] = {}
    units: list[Position] = []
    remap = np.full(len(instruments), -1, dtype=np.intp)
    for i in np.flatnonzero(first < n).tolist():
        p = instruments[i]
        if p.__class__ not in INSTRUMENT_FIELDS:
            raise InputError(f"instruments[{i}]", f"not a position: {type(p).__name__}")
        key = instrument_key(p)
        u = index.get(key)
        if u is None:
            u = index[key] = len(units)
            units.append(unit_instrument(p))
        remap[i] = u
    if remap.size and not np.array_equal(remap, np.arange(remap.size)):
        instrument_ = remap[instrument_]
        held = remap >= 0
        first_held = np.full(len(units), n, dtype=np.intp)
        np.minimum.at(first_held, remap[held], first[held])
        first = first_held
    takes_entry = np.array([u.__class__ in (PerpPosition, FuturePosition) for u in units], dtype=bool)
    positive = np.array([u.__class__ in (LendPosition, BorrowPosition) for u in units], dtype=bool)

    # values the Position models would refuse
    bad = np.flatnonzero(~np.isfinite(size_))
    if bad.size:
        raise InputError(f"size[{int(bad[0])}]", f"not finite: {float(size_[bad[0]])}")
    bad = np.flatnonzero(positive[instrument_] & (size_ <= 0.0))
    if bad.size:
        raise InputError(f"size[{int(bad[0])}]", f"a lend or borrow quantity must be > 0, got {float(size_[bad[0]])}")
    has_entry = ~np.isnan(entry_)
    bad = np.flatnonzero(has_entry & ~takes_entry[instrument_])
    if bad.size:
        raise InputError(f"entry_price[{int(bad[0])}]", "only perps and futures take an entry price (NaN for none)")
    bad = np.flatnonzero(has_entry & ~((entry_ > 0.0) & np.isfinite(entry_)))
    if bad.size:
        raise InputError(f"entry_price[{int(bad[0])}]", f"must be > 0 and finite, got {float(entry_[bad[0]])}")

    # groups: sort the rows by (wallet, chain, venue-account); a change of (wallet, chain) starts a chain group,
    # a change of any of the three an account group, so groups come out wallet by wallet, chain by chain
    chain_d, n_chain_codes = _dense(chain_)
    va_d, n_va_codes = _dense(va_)
    place, n_places = _pair(chain_d, n_chain_codes, va_d, n_va_codes)
    key_, _ = _pair(wallet_, n_wallets, place, n_places)
    order = np.argsort(key_)
    sorted_key, sorted_wallet, sorted_chain = key_[order], wallet_[order], chain_d[order]
    new_account = np.ones(n, dtype=bool)
    new_account[1:] = sorted_key[1:] != sorted_key[:-1]
    new_chain = np.ones(n, dtype=bool)
    new_chain[1:] = (sorted_wallet[1:] != sorted_wallet[:-1]) | (sorted_chain[1:] != sorted_chain[:-1])
    account_group = np.empty(n, dtype=np.intp)
    account_group[order] = np.cumsum(new_account) - 1
    chain_of_row = np.cumsum(new_chain) - 1
    starts = np.flatnonzero(new_account)
    wallet_start = np.searchsorted(wallet_, np.arange(n_wallets, dtype=np.intp))
    first_wallet = wallet_[first]
    return Holdings(
        instruments=units,
        holders=list(zip(first_wallet.tolist(), (first - wallet_start[first_wallet]).tolist(), strict=True)),
        n_wallets=n_wallets,
        wallet=wallet_,
        instrument=instrument_,
        size=size_,
        entry_price=entry_,
        account_group=account_group,
        account_chain=chain_of_row[starts].astype(np.intp),
        chain_wallet=sorted_wallet[new_chain],
    )


def _int_column(name: str, values: ArrayLike, n: int | None = None) -> IntArray:
    column = np.asarray(values)
    if column.ndim != 1:
        raise InputError(name, f"must be one-dimensional, got shape {column.shape}")
    if n is not None and column.size != n:
        raise InputError(name, f"length {column.size} differs from the wallet column's {n}")
    if column.size and column.dtype.kind not in "iu":
        raise InputError(name, f"must hold integers, got {column.dtype}")
    if column.dtype.kind == "u" and column.size and int(column.max()) > np.iinfo(np.intp).max:
        raise InputError(name, "values beyond the signed 64-bit range")
    return column.astype(np.intp, copy=False)


def _float_column(name: str, values: ArrayLike, n: int) -> Array:
    column = np.asarray(values)
    if column.ndim != 1:
        raise InputError(name, f"must be one-dimensional, got shape {column.shape}")
    if column.size != n:
        raise InputError(name, f"length {column.size} differs from the wallet column's {n}")
    if column.size and column.dtype.kind not in "iuf":
        raise InputError(name, f"must hold numbers, got {column.dtype}")
    return column.astype(np.float64, copy=False)


def _check_range(name: str, column: IntArray, n: int) -> None:
    bad = np.flatnonzero((column < 0) | (column >= n))
    if bad.size:
        k = int(bad[0])
        raise InputError(f"{name}[{k}]", f"{int(column[k])} is out of range 0..{n - 1}")


def _dense(codes: IntArray) -> tuple[IntArray, int]:
    """Codes as 0..m-1 in the same order, and m: shifted when their range is small, ranked otherwise."""
    if codes.size == 0:
        return codes, 1
    low, high = int(codes.min()), int(codes.max())
    if high - low <= 4 * codes.size:
        return codes - low, high - low + 1
    distinct, rank = np.unique(codes, return_inverse=True)
    return rank.astype(np.intp).reshape(codes.size), int(distinct.size)


def _pair(major: IntArray, n_major: int, minor: IntArray, n_minor: int) -> tuple[IntArray, int]:
    """One code per (major, minor), in the order of major then minor, and the number of codes: `major x n_minor +
    minor` when that fits in 63 bits, the pair's rank among the distinct pairs otherwise."""
    if n_major * n_minor <= 2**62:
        return major * n_minor + minor, n_major * n_minor
    distinct, rank = np.unique(np.stack([major, minor], axis=1), axis=0, return_inverse=True)
    return rank.astype(np.intp).reshape(major.size), int(distinct.shape[0])


def compute_holdings_margin(holdings: Holdings, market: MarketSnapshot, params: RiskParams) -> BatchMarginResult:
    """Margin figures per wallet of `holdings` (see `compute_batch_margin`).

    Raises:
        InputError: an instrument cannot be priced; named by the first position holding it; or params.model is
            not the grid (the batch path sums per-underlying worst losses; the liquidity add-on is not applied).
    """
    if params.model != "grid":
        raise InputError("params.model", f"the batch path margins with the grid only, not {params.model}")
    h = holdings
    book = _resolve_instruments(h, market, params)
    arrays = RiskArrays(book, params)
    n_w, n_acc, n_chain = h.n_wallets, h.account_chain.size, h.chain_wallet.size
    n_inst = len(h.instruments)
    account_wallet = h.chain_wallet[h.account_chain]

    # values and haircuts: linear in size, except that only a long holding earns a haircut (a short spot
    # balance or short LP range holds nothing to haircut), and an entry price shifts a perp's or future's mark
    unit_value, unit_haircut = arrays.position_values()
    mark = np.zeros(n_inst)
    lin_slope = book.valuation.stacked.lin_slope
    for rows, (lin, _, _) in zip(book.underlyings.values(), book.valuation.block_bounds(), strict=True):
        mark[rows.members[: rows.blocks[0]]] = lin_slope[lin]  # a unit perp's or future's slope is its mark
    has_entry = ~np.isnan(h.entry_price)
    value = h.size * unit_value[h.instrument]
    value[has_entry] += h.size[has_entry] * (mark[h.instrument[has_entry]] - h.entry_price[has_entry])
    equity = _sum_by(h.wallet, value, n_w)
    haircut = _sum_by(h.wallet, np.maximum(h.size, 0.0) * unit_haircut[h.instrument], n_w)

    # scenario risk per group, per underlying: account groups from the positions' holdings, then chains and
    # wallets by adding the rows of their accounts (contiguous by construction)
    held = np.bincount(h.chain_wallet, minlength=n_w) > 0  # wallets with at least one position
    to_chain = _adder(h.account_chain, n_chain)
    to_wallet = _adder(h.chain_wallet, n_w)[held]
    levels = ("account", "chain", "wallet")
    losses: dict[str, dict[str, Array]] = {level: {} for level in levels}
    deltas: dict[str, dict[str, Array]] = {level: {} for level in levels}
    position_scenarios = 0
    instrument_scenarios = 0
    for asset, rows in book.underlyings.items():
        row_of = np.full(n_inst, -1, dtype=np.intp)
        row_of[rows.members] = np.arange(rows.n_rows)
        row = row_of[h.instrument]
        mine = row >= 0
        holding = sp.csr_array((h.size[mine], (h.account_group[mine], row[mine])), shape=(n_acc, rows.n_rows))
        position_scenarios += int(mine.sum()) * rows.scenarios.size
        instrument_scenarios += rows.n_rows * rows.scenarios.size
        pnl = [np.asarray(holding @ arrays.pnl[asset])]
        for adder in (to_chain, to_wallet):
            pnl.append(np.asarray(adder @ pnl[-1]))
        for level, p in zip(levels, pnl, strict=True):
            losses[level][asset] = scenario_loss(p)
        if asset in arrays.row_delta:  # needed for cross-underlying credits only
            delta = [np.asarray(holding @ arrays.row_delta[asset])]
            for adder in (to_chain, to_wallet):
                delta.append(np.asarray(adder @ delta[-1]))
            for level, d in zip(levels, delta, strict=True):
                deltas[level][asset] = d
    risk = {
        level: combine_underlyings(losses[level], deltas[level], arrays.pairs, shape=(size,))
        for level, size in zip(levels, (n_acc, n_chain, int(held.sum())), strict=True)
    }
    everything = np.zeros(n_w)
    everything[held] = risk["wallet"]
    combined = combine_levels(
        everything=everything,
        siloed_by_chain=_sum_by(h.chain_wallet, risk["chain"], n_w),
        siloed_by_account=_sum_by(account_wallet, risk["account"], n_w),
        offsets=params.offset_credit,
    )
    contingency = _contingency(h, book, params, account_wallet)
    maintenance = combined + contingency
    return BatchMarginResult(
        equity_usd=equity,
        collateral_usd=equity - haircut,
        risk_usd=combined,
        contingency_usd=contingency,
        maintenance_margin_usd=maintenance,
        initial_margin_usd=maintenance * params.im_factor,
        n_instruments=n_inst,
        n_positions=h.n_positions,
        position_scenarios=position_scenarios,
        instrument_scenarios=instrument_scenarios,
        warnings=_name_holders(book.warnings, h),
    )


def _sum_by(label: IntArray, weights: Array, n_labels: int) -> Array:
    """Sum of `weights` per label 0..n_labels-1."""
    return np.asarray(np.bincount(label, weights=weights, minlength=n_labels), dtype=np.float64)


def _adder(owner: IntArray, n_owners: int) -> sp.csr_array:
    """n_owners x rows matrix of ones that adds the rows of each owner; `owner` is sorted."""
    indptr = np.searchsorted(owner, np.arange(n_owners + 1))
    return sp.csr_array((np.ones(owner.size), np.arange(owner.size), indptr), shape=(n_owners, owner.size))


def _contingency(h: Holdings, book: ResolvedBook, params: RiskParams, account_wallet: IntArray) -> Array:
    """Per wallet: contingencies on the net quantity of each contingency key in each of its venue-accounts."""
    keys = book.contingency
    n_w = h.n_wallets
    if not params.contingencies_enabled or keys.rate.size == 0:
        return np.zeros(n_w)
    key_of = np.full(len(h.instruments), -1, dtype=np.intp)
    key_of[keys.position] = keys.key
    key = key_of[h.instrument]
    mine = key >= 0
    net = sp.csr_array(
        (h.size[mine], (h.account_group[mine], key[mine])), shape=(h.account_chain.size, keys.rate.size)
    )
    net.sum_duplicates()
    charge = contingency_charge(net.data, keys.side[net.indices]) * keys.rate[net.indices]
    account = np.repeat(np.arange(net.shape[0]), np.diff(net.indptr))
    return _sum_by(account_wallet[account], charge, n_w)


_POSITION_REF = re.compile(r"positions\[(\d+)\]")


def _held_at(h: Holdings, match: re.Match[str]) -> str:
    w, j = h.holders[int(match.group(1))]
    return f"wallets[{w}][{j}]"


def _name_holders(messages: list[str], h: Holdings) -> list[str]:
    return [_POSITION_REF.sub(lambda m: _held_at(h, m), message) for message in messages]


def _resolve_instruments(h: Holdings, market: MarketSnapshot, params: RiskParams) -> ResolvedBook:
    try:
        return resolve_book(h.instruments, market, params)
    except InputError as e:
        raise InputError(_POSITION_REF.sub(lambda m: _held_at(h, m), e.field, count=1), e.reason) from e
