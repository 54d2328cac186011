"""The margin function: the figures of holdings on an instrument table, for one wallet or for millions.

Holdings say which instrument each position holds (risk_core.margin.instruments), in what size, and its groups:
venue-account, chain and wallet. A group's scenario P&L is its positions' sizes times their instruments' P&L rows
(tail cover applied), summed position by position into venue-accounts, accounts into chains, chains into
wallets; a group's risk is its worst scenario per underlying (less cross-underlying credits) or, under the fhs
model, the historical loss of its joint P&L; offsets across levels, contingencies netted per venue-account and
instrument, and the liquidity add-on on each wallet's net delta follow. Every margin figure of a report is this
function of some holdings: the book is one wallet, its venue and chain breakdowns and its positions alone are
wallets of their own, a liquidation trial is the book at other sizes (RiskArrays.margin). Memory is one call's:
a caller streams wallets in blocks (risk_core.margin.batch) and nothing is kept but the table.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import sparse

from risk_core.margin.fhs import HistoricalLayout, historical_loss
from risk_core.margin.instruments import Book, InstrumentTable, holding_values
from risk_core.margin.liquidity import Depth
from risk_core.margin.liquidity import addon as addon_of
from risk_core.schema.params import OffsetCredit, RiskParams

Array = NDArray[np.float64]
IntArray = NDArray[np.intp]


@dataclass(frozen=True)
class Holdings:
    """Wallets' positions on an instrument table, with their groups numbered wallet by wallet, chain by chain."""

    instrument: IntArray  # per position: its id in the table
    size: Array  # signed quantity (liquidity for LP ranges)
    entry_price: Array  # a perp's or future's entry price, NaN where none
    account: IntArray  # per position: its (wallet, venue-account) group
    account_chain: IntArray  # per account group: its (wallet, chain) group, non-decreasing
    chain_wallet: IntArray  # per chain group: its wallet, non-decreasing
    n_wallets: int
    origin: IntArray  # per position: its index within its wallet as given (for issues)

    @property
    def wallet(self) -> IntArray:
        return self.chain_wallet[self.account_chain[self.account]]


def group_holdings(
    instrument: ArrayLike,
    size: ArrayLike,
    entry_price: ArrayLike,
    wallet: ArrayLike,
    chain: ArrayLike,
    venue_account: ArrayLike,
    n_wallets: int,
) -> Holdings:
    """Holdings from columns, one row per position: the table id of its instrument, size, entry price (NaN for
    none), wallet 0..n_wallets-1 (a wallet's rows together, wallets ascending), and integer codes of its chain and
    venue-account (labels only: positions of a wallet with equal codes share the group). Groups are numbered by
    (wallet, chain, venue-account) without sorting the rows: a wallet holds few places, so a group's number is
    its rank among the (wallet, place) pairs present."""
    wallet_ = np.asarray(wallet, dtype=np.intp)
    chain_, n_chains = _dense(np.asarray(chain, dtype=np.intp))
    account_, n_accounts = _dense(np.asarray(venue_account, dtype=np.intp))
    account_key = (wallet_ * n_chains + chain_) * n_accounts + account_
    account_group, keys = _rank(account_key, n_wallets * n_chains * n_accounts)
    # the account groups' (wallet, chain) keys, ascending with the groups: a chain group is a run of them
    chain_key = keys // n_accounts
    new_chain = np.ones(chain_key.size, dtype=bool)
    new_chain[1:] = chain_key[1:] != chain_key[:-1]
    account_chain = (np.cumsum(new_chain) - 1).astype(np.intp)
    chain_wallet = (chain_key[new_chain] // n_chains).astype(np.intp)
    starts = np.searchsorted(wallet_, np.arange(n_wallets))  # each wallet's first row
    return Holdings(
        instrument=np.asarray(instrument, dtype=np.intp),
        size=np.asarray(size, dtype=np.float64),
        entry_price=np.asarray(entry_price, dtype=np.float64),
        account=account_group,
        account_chain=account_chain,
        chain_wallet=chain_wallet,
        n_wallets=n_wallets,
        origin=np.arange(wallet_.size) - starts[wallet_],
    )


def _dense(codes: IntArray) -> tuple[IntArray, int]:
    """Codes renumbered 0..k-1 (in their order), and k: by their offset from the least when they span little
    more than their count (the usual small codes), else by sorting."""
    if codes.size == 0:
        return codes, 1
    low, high = int(codes.min()), int(codes.max())
    if high - low <= 4 * codes.size:
        return codes - low, high - low + 1
    distinct, dense = np.unique(codes, return_inverse=True)
    return dense.reshape(codes.size).astype(np.intp), max(int(distinct.size), 1)


def _rank(key: IntArray, n_keys: int) -> tuple[IntArray, IntArray]:
    """Each key's rank among the keys present (0..n-1, in key order), and the keys present, ascending: counted
    over the key space when it is small beside the keys (no sort), else by sorting."""
    if n_keys > 8 * key.size + 1024:
        distinct, rank_of = np.unique(key, return_inverse=True)
        return rank_of.reshape(key.size).astype(np.intp), distinct.astype(np.intp)
    present = np.bincount(key, minlength=n_keys) > 0
    rank = np.cumsum(present) - 1
    return rank[key].astype(np.intp, copy=False), np.flatnonzero(present)


@dataclass(frozen=True)
class GroupFigures:
    """Per wallet: equity, haircuts, combined scenario risk, contingencies and the liquidity add-on (USD), how many
    positions were left out (not priced); and the scenario risk of each netting level's groups."""

    equity: Array
    haircut: Array
    risk: Array
    contingency: Array
    liquidity: Array
    left_out: NDArray[np.int64]
    everything: Array  # per wallet: its positions netted together
    chain_risk: Array  # per chain group
    account_risk: Array  # per venue-account group

    @property
    def maintenance(self) -> Array:
        return self.risk + self.contingency + self.liquidity


def margin_holdings(table: InstrumentTable, h: Holdings) -> GroupFigures:
    """The figures of each wallet of `h`, on `table` (which holds every instrument of `h`)."""
    params = table.params
    n_w, n_acc, n_chain = h.n_wallets, h.account_chain.size, h.chain_wallet.size
    inst, size = h.instrument, h.size
    account_wallet = h.chain_wallet[h.account_chain]
    wallet = account_wallet[h.account]
    value, haircut = holding_values(table, inst, size, h.entry_price)
    equity, haircut = _sum_by(wallet, value, n_w), _sum_by(wallet, haircut, n_w)

    # positions by (venue-account, instrument), one sort: a venue-account is a run, and so is a contingency key
    # (an instrument netted within a venue-account); a chain's P&L is the sum of its accounts', a wallet's of its
    # chains'
    code = h.account * (int(inst.max(initial=0)) + 1) + inst
    order = np.argsort(code, kind="stable")
    account, inst_o, size_o = h.account[order], inst[order], size[order]
    chain_first, wallet_first = _firsts(h.account_chain), _firsts(h.chain_wallet)
    wallet_held = h.chain_wallet[wallet_first]

    def up(by_account: Array) -> Array:
        """Every level's groups: venue-accounts, then chains, then wallets (rows)."""
        out = np.zeros((n_acc + n_chain + n_w, *by_account.shape[1:]))
        out[:n_acc] = by_account
        if n_acc:
            out[n_acc : n_acc + n_chain] = _sum_runs(by_account, chain_first)
            out[n_acc + n_chain :][wallet_held] = _sum_runs(out[n_acc : n_acc + n_chain], wallet_first)
        return out

    # each underlying's P&L (tail cover applied) and delta per venue-account, side by side
    held: list[str] = []
    pnl_parts: list[Array] = []
    delta_parts: list[Array] = []
    for asset in sorted(table.tables):
        t = table.tables[asset]
        row = t.row_of[inst_o]
        mine = np.flatnonzero(row >= 0)
        if not mine.size:
            continue
        held.append(asset)
        r, acc, s = row[mine], account[mine], size_o[mine]
        pnl_parts.append(_by_account(acc, r, s, t.pnl, n_acc))
        delta_parts.append(_by_account(acc, r, s, t.greeks[:, 0], n_acc))
    widths = [p.shape[1] for p in pnl_parts]
    pnl = up(np.concatenate([np.zeros((n_acc, 0)), *pnl_parts], axis=1))
    delta = up(np.column_stack([np.zeros(n_acc), *delta_parts])[:, 1:])
    layout = table.tables[held[0]].scenarios.history if held else None
    if layout is not None:  # the fhs model's scenarios are joint: losses are taken on the underlyings' sum
        risk = historical_loss(pnl.reshape(pnl.shape[0], len(held), -1).sum(axis=1), layout)
    else:
        loss = scenario_loss(pnl, np.cumsum([0, *widths[:-1]], dtype=np.intp)) if held else pnl
        risk = combine_underlyings({a: loss[:, u] for u, a in enumerate(held)},
                                   {a: delta[:, u] for u, a in enumerate(held)}, credited_pairs(held, params),
                                   shape=(pnl.shape[0],))
    by_account, by_chain, everything = risk[:n_acc], risk[n_acc : n_acc + n_chain], risk[n_acc + n_chain :]
    combined = combine_levels(
        everything=everything,
        siloed_by_chain=_sum_by(h.chain_wallet, by_chain, n_w),
        siloed_by_account=_sum_by(account_wallet, by_account, n_w),
        offsets=params.offset_credit,
    )
    contingency = np.zeros(n_w)
    charged = np.flatnonzero(~np.isnan(table.rate[inst_o]))
    if params.contingencies_enabled and charged.size:
        # a contingency nets within a venue-account and instrument: a run of equal codes
        charged_code = code[order[charged]]
        new_key = np.ones(charged.size, dtype=bool)
        new_key[1:] = charged_code[1:] != charged_code[:-1]
        first = charged[new_key]
        key_inst = inst_o[first]
        net = _sum_by(np.cumsum(new_key) - 1, size_o[charged], first.size)
        contingency = _sum_by(account_wallet[account[first]], contingency_charge(net, table.side[key_inst])
                              * table.rate[key_inst], n_w)
    liquidity = np.zeros(n_w)
    for u, asset in enumerate(held):
        depth = table.depth(asset)
        if depth is not None:
            liquidity += addon_of(delta[n_acc + n_chain :, u] * table.tables[asset].spot, depth)
    return GroupFigures(
        equity=equity,
        haircut=haircut,
        risk=combined,
        contingency=contingency,
        liquidity=liquidity,
        left_out=np.bincount(wallet, ~table.priced[inst], minlength=n_w).astype(np.int64),
        everything=everything,
        chain_risk=by_chain,
        account_risk=by_account,
    )


_SPARSE_FROM = 4_096  # positions: from here a block's sums per venue-account are one sparse product


def _by_account(account: IntArray, row: IntArray, size: Array, table: Array, n_acc: int) -> Array:
    """Sum of size x the table's row, per venue-account (`account` non-decreasing): for a few positions a gather
    and a sum per run of accounts, for many one sparse product (no positions x scenarios temporary)."""
    if row.size >= _SPARSE_FROM:
        return np.asarray(sparse.csr_array((size, (account, row)), shape=(n_acc, table.shape[0])) @ table)
    starts = np.flatnonzero(np.concatenate(([True], account[1:] != account[:-1])))
    out = np.zeros((n_acc, *table.shape[1:]))
    out[account[starts]] = np.add.reduceat(size.reshape(-1, *[1] * (table.ndim - 1)) * table[row], starts, axis=0)
    return out


def _sum_runs(rows: Array, starts: IntArray) -> Array:
    """The sum of each run of rows from each start to the next: np.add.reduceat for a few runs, a sparse product
    for many (reduceat along the first axis of a wide array is slow per run)."""
    if starts.size < _SPARSE_FROM:
        return np.asarray(np.add.reduceat(rows, starts, axis=0))
    n = rows.shape[0]
    adder = sparse.csr_array((np.ones(n), np.arange(n), np.append(starts, n)), shape=(starts.size, n))
    return np.asarray(adder @ rows)


def _firsts(owner: IntArray) -> IntArray:
    """Where each run of equal values of a non-decreasing array starts."""
    return np.flatnonzero(np.concatenate(([True], owner[1:] != owner[:-1]))) if owner.size else owner


def _sum_by(label: IntArray, weights: Array, n_labels: int) -> Array:
    """Sum of `weights` per label 0..n_labels-1."""
    return np.asarray(np.bincount(label, weights=weights, minlength=n_labels), dtype=np.float64)


def net_keys(place: IntArray, instrument: IntArray) -> tuple[IntArray, IntArray]:
    """Number the distinct (place, instrument) pairs in order: (each entry's key, each key's first entry). A sort
    and a difference rather than np.unique, whose own overhead is most of the time at a hundred entries."""
    code = place * (int(instrument.max(initial=0)) + 1) + instrument
    order = np.argsort(code, kind="stable")
    ordered = code[order]
    first = np.ones(ordered.size, dtype=bool)
    first[1:] = ordered[1:] != ordered[:-1]
    key = np.empty(ordered.size, dtype=np.intp)
    key[order] = np.cumsum(first) - 1
    return key, order[first]


@dataclass(frozen=True)
class MarginFigures:
    """Per weight row: combined scenario risk, contingencies, the liquidity add-on, and their sum, the maintenance
    margin; and the scenario risk of each netting level the combination starts from (columns: the whole book,
    then each chain of `RiskArrays.chains`, then each venue-account of `RiskArrays.venue_accounts`)."""

    risk: Array
    contingency: Array
    liquidity: Array
    levels: Array

    @property
    def maintenance(self) -> Array:
        return self.risk + self.contingency + self.liquidity


@dataclass(frozen=True)
class ContingencyKeys:
    """Net quantities per (venue-account, instrument), kept as entries (key, position, signed quantity), one per
    charged position."""

    key: IntArray  # per entry: the key it nets into
    position: IntArray  # per entry: the position
    entry_quantity: Array  # per entry: the position's signed quantity
    n_positions: int
    rate: Array  # per key: USD per unit of net quantity
    side: Array  # per key: what is charged (contingency_charge)


class RiskArrays:
    """A book's margin as a function of position weights: W = 1 for the book, indicator rows for its venue and
    chain breakdowns, the identity for standalone margins, fractions for a liquidation plan. Each weight row is a
    wallet of the margin function (`margin_holdings`), holding the book's positions at weight x size."""

    def __init__(self, book: Book, params: RiskParams) -> None:
        self.book = book
        self.params = params
        places = book.places
        self.venue_accounts: list[tuple[str, str, str]] = list(places.venue_accounts)
        self.chains: list[str] = sorted({chain for _, chain, _ in self.venue_accounts})
        self.n_chains = len(self.chains)
        chain_code = {c: j for j, c in enumerate(self.chains)}
        self._place = places.of_position
        self._chain = np.array([chain_code[chain] for _, chain, _ in self.venue_accounts], dtype=np.intp).reshape(
            len(self.venue_accounts))[self._place]
        self._prepared = False
        # each held underlying's depth for the liquidity add-on: its read pools or its curve (margin.liquidity)
        self.depth: dict[str, Depth] = {
            h.asset: depth for h in book.held.values() if (depth := book.table.depth(h.asset)) is not None
        }

    @property
    def layout(self) -> HistoricalLayout | None:
        """The fhs model's joint scenario layout (None under the grid)."""
        return next((h.table.scenarios.history for h in self.book.held.values()), None)

    def position_values(self) -> tuple[Array, Array]:
        """Mark value and collateral haircut per position."""
        return self.book.values()

    def holdings(self, weights: Array, *, alone: bool = False) -> tuple[Holdings, IntArray]:
        """The weight rows as wallets of the book's positions at weight x size (zero weights left out), then, when
        `alone`, each position alone (the identity's rows, never written out); and each holding's position."""
        book = self.book
        wallet, position = np.nonzero(weights)
        weight = weights[wallet, position]
        k = weights.shape[0]
        if alone:
            n = book.ids.size
            wallet, position = np.concatenate([wallet, k + np.arange(n)]), np.concatenate([position, np.arange(n)])
            weight, k = np.concatenate([weight, np.ones(n)]), k + n
        h = group_holdings(book.ids[position], weight * book.size[position], book.entry[position], wallet,
                           self._chain[position], self._place[position], k)
        return h, position

    def margin(self, weights: Array, *, alone: bool = False) -> MarginFigures:
        """Margin figures for each row of `weights` (rows x positions), then, when `alone`, for each position
        alone (its standalone margin)."""
        w = np.atleast_2d(weights)
        h, position = self.holdings(w, alone=alone)
        f = margin_holdings(self.book.table, h)
        # each group's risk in its column of `levels`
        levels = np.zeros((h.n_wallets, 1 + self.n_chains + len(self.venue_accounts)))
        levels[:, 0] = f.everything
        chain_of, place_of = np.zeros(h.chain_wallet.size, np.intp), np.zeros(h.account_chain.size, np.intp)
        chain_of[h.account_chain[h.account]] = self._chain[position]
        place_of[h.account] = self._place[position]
        levels[h.chain_wallet, 1 + chain_of] = f.chain_risk
        levels[h.chain_wallet[h.account_chain], 1 + self.n_chains + place_of] = f.account_risk
        return MarginFigures(risk=f.risk, contingency=f.contingency, liquidity=f.liquidity, levels=levels)

    def split_levels(self, levels: Array) -> tuple[float, dict[str, float], list[tuple[tuple[str, str, str], float]]]:
        """One row of `MarginFigures.levels` by name: the risk of everything netted together, of each chain's
        positions netted together, and of each venue-account's."""
        row = levels.tolist()
        by_chain = dict(zip(self.chains, row[1 : 1 + self.n_chains], strict=True))
        by_account = list(zip(self.venue_accounts, row[1 + self.n_chains :], strict=True))
        return row[0], by_chain, by_account

    def standalone_margins(self) -> Array:
        """Maintenance margin of each position alone: the identity's weight rows."""
        return self.margin(np.zeros((0, self.book.ids.size)), alone=True).maintenance

    @cached_property
    def keys(self) -> ContingencyKeys:
        book, table = self.book, self.book.table
        charged = np.flatnonzero(~np.isnan(table.rate[book.ids]))
        key, first = net_keys(self._place[charged], book.ids[charged])
        key_inst = book.ids[charged[first]]
        return ContingencyKeys(key=key, position=charged, entry_quantity=book.size[charged],
                               n_positions=book.ids.size, rate=table.rate[key_inst], side=table.side[key_inst])

    def _prepare(self) -> None:
        """The book's rows stacked, and their groups, for `margin_changes`."""
        if self._prepared:
            return
        self._prepared = True
        book, params = self.book, self.params
        held = list(book.held.values())
        self.assets = [h.asset for h in held]
        self.pairs = credited_pairs(self.assets, params)
        paired = {a for a, _, _ in self.pairs} | {b for _, b, _ in self.pairs}
        # every underlying's rows stacked, scenarios padded with zero P&L to the widest set: a zero column never
        # changes a loss (a gain counts 0)
        spans = np.cumsum([0, *(h.members.size for h in held)])
        widest = max((h.table.pnl.shape[1] for h in held), default=1)
        self._pnl = np.zeros((int(spans[-1]), widest))
        self._delta = np.zeros(int(spans[-1]))
        self._spans = [slice(int(a), int(b)) for a, b in zip(spans[:-1], spans[1:], strict=True)]
        self.row_delta: dict[str, Array] = {}
        for h, span in zip(held, self._spans, strict=True):
            self._pnl[span, : h.table.pnl.shape[1]] = book.scaled(h.asset, "pnl")
            delta = book.size[h.members] * h.table.greeks[h.rows, 0]
            if h.asset in paired:
                self.row_delta[h.asset] = self._delta[span] = delta
        n = book.ids.size
        groups = np.zeros((1 + self.n_chains + len(self.venue_accounts), n))
        every = np.arange(n)
        groups[0] = 1.0
        groups[1 + self._chain, every] = 1.0
        groups[1 + self.n_chains + self._place, every] = 1.0
        self.groups = groups
        # (underlying, group) x stacked rows: each underlying's groups over its own rows, zero elsewhere
        self._members = np.concatenate([np.zeros(0, dtype=np.intp), *(h.members for h in held)]).astype(np.intp)
        n_groups = groups.shape[0]
        row_groups = np.zeros((len(self._spans), n_groups, self._members.size))
        for u, span in enumerate(self._spans):
            row_groups[u, :, span] = groups[:, self._members[span]]
        self._row_groups = row_groups.reshape(len(self._spans) * n_groups, self._members.size)
        self._row_underlying = np.repeat(np.arange(len(self._spans)), [span.stop - span.start for span in self._spans])
        # per position: its three groups (the book, its chain, its venue-account), as rows of `groups`
        self._position_groups = np.column_stack([np.zeros(n, dtype=np.intp), 1 + self._chain,
                                                 1 + self.n_chains + self._place]).astype(np.intp)
        order = np.argsort(self._members, kind="stable")
        self._rows_by_position = (order, self._members[order])  # rows sorted by position, and their positions
        # per row: its (underlying, group) slots, the book, its chain and its venue-account
        self._row_slots = np.sort(np.nonzero(self._row_groups.T)[1].reshape(self._members.size, 3), axis=1)
        # underlyings with a depth (read pools or a curve): (stacked rows, USD per unit of the underlying's delta,
        # depth)
        self._liquid = [(span, h.table.spot, self.depth[h.asset])
                        for h, span in zip(held, self._spans, strict=True) if h.asset in self.depth]
        self._row_delta_all = (
            np.concatenate([book.size[h.members] * h.table.greeks[h.rows, 0] for h in held]) if self._liquid
            else np.zeros(0)
        )

    def group_risk(self, pnl: Array, delta: Array | None, layout: HistoricalLayout | None) -> Array:
        """Scenario risk of each group (... x groups: the book, its chains, its venue-accounts) from the P&L of
        each (underlying, group), ... x (underlying, group) x scenarios, and its delta (needed for credited pairs
        under the grid): per underlying the worst scenario, less cross-underlying credits; under the fhs model
        the expected shortfall of the underlyings' joint P&L."""
        self._prepare()
        n_under, g = len(self.assets), self.groups.shape[0]
        lead = pnl.shape[:-2]
        if layout is not None:
            return historical_loss(pnl.reshape(*lead, n_under, g, -1).sum(axis=-3), layout)
        loss = scenario_loss(pnl).reshape(*lead, n_under, g)
        losses = {asset: loss[..., u, :] for u, asset in enumerate(self.assets)}
        deltas: dict[str, Array] = {}
        if delta is not None:
            by_asset = delta.reshape(*lead, n_under, g)
            deltas = {asset: by_asset[..., u, :] for u, asset in enumerate(self.assets) if asset in self.row_delta}
        return combine_underlyings(losses, deltas, self.pairs, shape=(*lead, g))

    def combine_levels(self, risk: Array) -> Array:
        """The book's risk from its groups' (... x groups): partial credit across chains and venue-accounts."""
        return combine_levels(
            everything=risk[..., 0],
            siloed_by_chain=risk[..., 1 : 1 + self.n_chains].sum(axis=-1),
            siloed_by_account=risk[..., 1 + self.n_chains :].sum(axis=-1),
            offsets=self.params.offset_credit,
        )

    def on_dates(
        self, pnl: Array, delta: Array, spot: Array, layout: HistoricalLayout | None
    ) -> tuple[Array, Array]:
        """(combined scenario risk, liquidity add-on) of the whole book (W = 1) on many dates, its rows revalued
        on each: `pnl` dates x stacked rows x scenarios (tail cover applied), `delta` dates x stacked rows,
        `spot` dates x underlyings (the rows and underlyings of `_prepare`). The combination of `margin`;
        contingencies, whose keys are priced per date, are the caller's (risk_core.margin.dated)."""
        self._prepare()
        risk = self.group_risk(self._row_groups @ pnl, delta @ self._row_groups.T, layout)
        addon = np.zeros(pnl.shape[0])
        for u, (span, asset) in enumerate(zip(self._spans, self.assets, strict=True)):
            depth = self.depth.get(asset)
            if depth is not None:
                addon += addon_of(delta[:, span].sum(axis=1) * spot[:, u], depth)
        return self.combine_levels(risk), addon

    def margin_changes(self, weights: Array, position: IntArray, new_weight: Array) -> MarginFigures:
        """What `margin` gives for the rows of `weights` with one position changed per row: position[c] at
        new_weight[c]. Only the changed position's groups and contingency key are recomputed (a trial costs its
        rows x scenarios, not positions x scenarios); `levels` are those of every group, as `margin` gives them."""
        self._prepare()
        k = position.size
        if self.layout is not None:
            # the fhs model's joint losses depend on every underlying at once: the trials are margined in full
            trials = np.repeat(weights[None, :], k, axis=0)
            trials[np.arange(k), position] = new_weight
            return self.margin(trials)
        state = SlotState(self, weights)
        change = new_weight - weights[position]
        # every (trial, row) pair whose row is the trial's position, and the row's three (underlying, group) slots
        order, members = self._rows_by_position
        first = np.searchsorted(members, position)
        count = np.searchsorted(members, position, side="right") - first
        trial = np.repeat(np.arange(k), count)
        row = order[np.repeat(first - np.cumsum(count) + count, count) + np.arange(int(count.sum()))]
        slots = self._row_slots[row]  # pairs x 3
        moved = state.pnl[slots] + (change[trial][:, None, None] * self._pnl[row][:, None, :])
        risk, groups = self.trial_risk(
            state, position, trial, row, scenario_loss(moved),
            state.delta[slots] + change[trial][:, None] * self._delta[row][:, None],
        )
        levels = np.repeat(state.group_risk[None, :], k, axis=0)
        levels[np.arange(k)[:, None], groups] = risk
        return MarginFigures(
            risk=state.combined(risk, groups, self.params.offset_credit),
            contingency=self._contingency_changes(weights, position, change),
            liquidity=self._liquidity_changes(weights, position, change),
            levels=levels,
        )

    def trial_risk(
        self, state: SlotState, position: IntArray, trial: IntArray, row: IntArray, loss: Array, delta: Array
    ) -> tuple[Array, IntArray]:
        """The risk of the three groups of each trial's changed position (the book, its chain, its venue-account;
        trials x 3), and those groups: every underlying's loss of the group as `state` has it, but the changed
        position's rows', given per (trial, row) pair as the loss and delta of each of the row's three slots
        (pairs x 3)."""
        n_under, n_groups = len(self.assets), self.groups.shape[0]
        groups = self._position_groups[position]  # trials x 3
        under = self._row_underlying[row]
        trial_loss = state.loss.reshape(n_under, n_groups)[:, groups]  # underlyings x trials x 3
        trial_loss[under, trial] = loss
        losses = {asset: trial_loss[u] for u, asset in enumerate(self.assets)}
        deltas: dict[str, Array] = {}
        if self.pairs:
            trial_delta = state.delta.reshape(n_under, n_groups)[:, groups]
            trial_delta[under, trial] = delta
            deltas = {asset: trial_delta[u] for u, asset in enumerate(self.assets) if asset in self.row_delta}
        return combine_underlyings(losses, deltas, self.pairs, shape=(position.size, 3)), groups

    @cached_property
    def _contingency_of_position(self) -> tuple[IntArray, Array]:
        """Per position: its contingency key (-1 for none; a position has one entry at most) and entry quantity."""
        keys = self.keys
        key_of = np.full(keys.n_positions, -1, dtype=np.intp)
        key_of[keys.position] = keys.key
        quantity_of = np.zeros(keys.n_positions)
        quantity_of[keys.position] = keys.entry_quantity
        return key_of, quantity_of

    def _contingency_changes(self, weights: Array, position: IntArray, change: Array) -> Array:
        total, extra = self.contingency_parts(weights, position, change)
        return total + extra

    def contingency_parts(self, weights: Array, position: IntArray, change: Array) -> tuple[float, Array]:
        """The contingency of `weights`, and what moving position[c]'s weight by change[c] adds to it: only the
        position's own key's charge changes."""
        keys = self.keys
        if not self.params.contingencies_enabled or keys.rate.size == 0:
            return 0.0, np.zeros(position.size)
        net = np.asarray(
            np.bincount(keys.key, weights[keys.position] * keys.entry_quantity, minlength=keys.rate.size), np.float64
        )
        charge = contingency_charge(net, keys.side) * keys.rate
        return float(charge.sum()), self.contingency_extra(net, charge, position, change)

    def contingency_extra(self, net: Array, charge: Array, position: IntArray, change: Array) -> Array:
        """What moving position[c]'s weight by change[c] adds to the contingency, at keys' `net` and `charge`."""
        keys = self.keys
        key_of, quantity_of = self._contingency_of_position
        key = key_of[position]
        held = key >= 0
        k = key[held]
        extra = np.zeros(position.size)
        moved_net = net[k] + change[held] * quantity_of[position[held]]
        extra[held] = contingency_charge(moved_net, keys.side[k]) * keys.rate[k] - charge[k]
        return extra

    @cached_property
    def _own_delta(self) -> list[Array]:
        """Per underlying with a depth: each position's own delta in it."""
        self._prepare()
        n = self.book.ids.size
        return [np.asarray(np.bincount(self._members[span], self._row_delta_all[span], minlength=n), np.float64)
                for span, _, _ in self._liquid]

    def _liquidity_changes(self, weights: Array, position: IntArray, change: Array) -> Array:
        """The liquidity add-on of `weights` with position[c]'s weight moved by change[c]: each underlying's net
        delta moves by the change times that position's own delta in it."""
        addon = np.zeros(position.size)
        for j in range(len(self._liquid)):
            addon += self.liquidity_term(j, weights, position, change)
        return addon

    def liquidity_term(self, j: int, weights: Array, position: IntArray, change: Array) -> Array:
        """The add-on of the j-th underlying with a depth, as `_liquidity_changes` adds them up."""
        span, spot, depth = self._liquid[j]
        net = float(weights[self._members[span]] @ self._row_delta_all[span]) + change * self._own_delta[j][position]
        return addon_of(net * spot, depth)

    @property
    def liquid_underlyings(self) -> list[int]:
        """The underlyings (indexes into `assets`) with a depth, in the order of the liquidity terms."""
        self._prepare()
        return [self._spans.index(span) for span, _, _ in self._liquid]


class SlotState:
    """The scenario risk of one weight vector, kept by (underlying, group) slot: each slot's P&L, delta and loss,
    and each group's risk (the book, chains, venue-accounts: `RiskArrays.groups`). Grid model only."""

    def __init__(self, arrays: RiskArrays, weights: Array) -> None:
        arrays._prepare()
        self._arrays = a = arrays
        n_under, n_groups = len(a.assets), a.groups.shape[0]
        mix = weights[a._members] * a._row_groups  # (underlying, group) x rows
        self.pnl: Array = mix @ a._pnl
        self.delta: Array = mix @ a._delta
        self.loss: Array = scenario_loss(self.pnl)
        # each underlying's groups, as views of loss and delta (updated in place)
        loss, delta = self.loss.reshape(n_under, n_groups), self.delta.reshape(n_under, n_groups)
        self._losses = {asset: loss[u] for u, asset in enumerate(a.assets)}
        self._deltas = {asset: delta[u] for u, asset in enumerate(a.assets) if asset in a.row_delta}
        self.group_risk, self.chain_total, self.account_total = self._groups()

    def _groups(self) -> tuple[Array, float, float]:
        a = self._arrays
        risk = combine_underlyings(self._losses, self._deltas, a.pairs, shape=(a.groups.shape[0],))
        return risk, float(risk[1 : 1 + a.n_chains].sum()), float(risk[1 + a.n_chains :].sum())

    def move(self, rows: IntArray, change: float) -> IntArray:
        """Rows' weight moved by `change` (one position's rows): their slots' P&L, delta and loss, and the groups'
        risk, updated. Returns the slots changed."""
        a = self._arrays
        slots = a._row_slots[rows]  # rows x 3, distinct within a row
        for r, own in zip(rows.tolist(), slots, strict=True):
            self.pnl[own] += change * a._pnl[r]
            self.delta[own] += change * a._delta[r]
        changed = slots.reshape(-1) if rows.size == 1 else np.unique(slots)
        self.loss[changed] = scenario_loss(self.pnl[changed])
        self.group_risk, self.chain_total, self.account_total = self._groups()
        return changed

    def combined(self, risk: Array, groups: IntArray, offsets: OffsetCredit) -> Array:
        """The combined scenario risk of trials that change only their three groups (`RiskArrays.trial_risk`)."""
        return combine_levels(
            everything=risk[:, 0],
            siloed_by_chain=self.chain_total + (risk[:, 1] - self.group_risk[groups[:, 1]]),
            siloed_by_account=self.account_total + (risk[:, 2] - self.group_risk[groups[:, 2]]),
            offsets=offsets,
        )


class ClosingTrials:
    """The liquidation plan's trials, kept up to date as its greedy search closes positions (grid model only):
    `maintenance(candidates)` is the maintenance margin with each candidate closed in turn, what
    `RiskArrays.margin_changes(weights, candidates, 0)` gives, and `close(i)` closes position i for good.

    Kept besides the slots' state (SlotState): per row, the loss of each of its three slots with its position
    closed; per position, what closing it adds to the contingency, and to each underlying's liquidity add-on.
    Closing a position changes its rows' slots, its contingency key and its underlyings' net deltas only, so a step
    recomputes those slots' rows' trial losses (rows x scenarios of three slots per row closed), not every
    position's; what is left is a few operations over positions x 3 x underlyings."""

    def __init__(self, arrays: RiskArrays, weights: Array) -> None:
        if arrays.layout is not None:
            raise ValueError("closing trials are kept for the grid model only")
        arrays._prepare()
        self._arrays = a = arrays
        n, n_under, n_groups = a.book.ids.size, len(a.assets), a.groups.shape[0]
        self.weights = np.array(weights, dtype=np.float64)
        self._state = state = SlotState(a, self.weights)
        slots = a._row_slots
        closing = -self.weights[a._members]  # each row's weight change when its position closes
        self._trial = scenario_loss(state.pnl[slots] + closing[:, None, None] * a._pnl[:, None, :])  # rows x 3
        self._closed_delta = (closing * a._delta)[:, None]
        # per slot: its (row, level) entries as flat indexes of _trial, and those rows' P&L when closed (scenarios
        # x rows: a worst scenario is then a minimum across rows, not a reduction along each row)
        flat = slots.reshape(-1)
        order = np.argsort(flat, kind="stable")
        cuts = np.searchsorted(flat[order], np.arange(state.pnl.shape[0] + 1)).tolist()
        self._entries = [order[start:end] for start, end in zip(cuts[:-1], cuts[1:], strict=True)]
        self._closed_pnl = [np.ascontiguousarray((closing[e // 3, None] * a._pnl[e // 3]).T) for e in self._entries]
        # a venue-account slot holding the same rows as its chain's slot (a chain of one venue-account) has the
        # same trial losses: copied, not recomputed
        self._same_as: dict[int, int] = {}
        for k, entries in enumerate(self._entries):
            if entries.size and entries[0] % 3 == 2:
                chain = int(slots[entries[0] // 3, 1])
                if np.array_equal(self._entries[chain] // 3, entries // 3):
                    self._same_as[k] = chain
        # every position's trial: the slots of its three groups in every underlying (underlyings x positions x 3),
        # its own rows' from _trial (each row's place in that array)
        self._groups = a._position_groups
        self._slot_of = (np.arange(n_under)[:, None, None] * n_groups + self._groups[None, :, :]).reshape(-1)
        self._row_at = ((a._row_underlying * n + a._members)[:, None] * 3 + np.arange(3)[None, :]).reshape(-1)
        self._trial_loss = np.empty(self._slot_of.size)
        self._trial_delta = np.empty(self._slot_of.size)
        loss, delta = self._trial_loss.reshape(n_under, n, 3), self._trial_delta.reshape(n_under, n, 3)
        self._losses = {asset: loss[u] for u, asset in enumerate(a.assets)}
        self._deltas = {asset: delta[u] for u, asset in enumerate(a.assets) if asset in a.row_delta}
        everyone, self._change = np.arange(n), -self.weights
        self._everyone = everyone
        # the contingency: each key's net and charge, their total, and what closing each position adds to it
        keys = a.keys
        self._net = np.bincount(keys.key, self.weights[keys.position] * keys.entry_quantity,
                                minlength=keys.rate.size).astype(np.float64)
        self._charge = contingency_charge(self._net, keys.side) * keys.rate
        self._charged = a.params.contingencies_enabled and keys.rate.size > 0
        self._contingency = float(self._charge.sum()) if self._charged else 0.0
        self._contingency_extra = (a.contingency_extra(self._net, self._charge, everyone, self._change)
                                   if self._charged else np.zeros(n))
        self._key_of, self._quantity_of = a._contingency_of_position
        by_key = np.argsort(self._key_of, kind="stable")
        key_cuts = np.searchsorted(self._key_of[by_key], np.arange(keys.rate.size + 1)).tolist()
        self._key_positions = [by_key[start:end] for start, end in zip(key_cuts[:-1], key_cuts[1:], strict=True)]
        self._liquid = a.liquid_underlyings
        self._liquidity = [a.liquidity_term(j, self.weights, everyone, self._change) for j in range(len(self._liquid))]
        self._mm: Array | None = None

    def maintenance(self, candidates: IntArray) -> Array:
        """Maintenance margin with each of `candidates` (open positions) closed, every other position as it is."""
        if self._mm is None:
            self._mm = self._every_maintenance()
        return self._mm[candidates]

    def _every_maintenance(self) -> Array:
        a, state = self._arrays, self._state
        np.take(state.loss, self._slot_of, out=self._trial_loss, mode="clip")
        self._trial_loss[self._row_at] = self._trial.reshape(-1)
        if a.pairs:
            np.take(state.delta, self._slot_of, out=self._trial_delta, mode="clip")
            self._trial_delta[self._row_at] = (state.delta[a._row_slots] + self._closed_delta).reshape(-1)
        risk = combine_underlyings(self._losses, self._deltas, a.pairs, shape=self._groups.shape)
        liquidity = np.zeros(self._groups.shape[0])
        for term in self._liquidity:
            liquidity += term
        return (
            state.combined(risk, self._groups, a.params.offset_credit)
            + (self._contingency + self._contingency_extra)
            + liquidity
        )

    def close(self, position: int) -> None:
        """Position `position` closed for good: its slots' trial losses, its key's charges and its underlyings'
        add-ons brought up to date."""
        a = self._arrays
        order, members = a._rows_by_position
        rows = order[np.searchsorted(members, position) : np.searchsorted(members, position, side="right")]
        change = -float(self.weights[position])
        self.weights[position] = 0.0
        self._change[position] = 0.0
        changed = self._state.move(rows, change)
        trial = self._trial.reshape(-1)
        pnl = self._state.pnl
        for k in changed.tolist():  # ascending: a chain's slot before its venue-accounts'
            chain = self._same_as.get(k)
            if chain is None:
                trial[self._entries[k]] = scenario_loss((pnl[k][:, None] + self._closed_pnl[k]).T)
            else:
                trial[self._entries[k]] = trial[self._entries[chain]]
        key = int(self._key_of[position])
        if self._charged and key >= 0:  # its key's net moved: its charge, and what closing each of its positions adds
            keys = a.keys
            self._net[key] += change * self._quantity_of[position]
            at = slice(key, key + 1)
            self._charge[at] = contingency_charge(self._net[at], keys.side[at]) * keys.rate[at]
            self._contingency = float(self._charge.sum())
            same = self._key_positions[key]
            if same.size > 1:  # what closing the key's other positions adds (the closed one's no longer counts)
                self._contingency_extra[same] = a.contingency_extra(self._net, self._charge, same, self._change[same])
        moved = a._row_underlying[rows].tolist()
        for j, u in enumerate(self._liquid):
            if u in moved:
                self._liquidity[j] = a.liquidity_term(j, self.weights, self._everyone, self._change)
        self._mm = None


# The formulas of the margin model, each written once.


def credited_pairs(assets: list[str], params: RiskParams) -> list[tuple[str, str, float]]:
    """(asset_a, asset_b, credit) for every pair of `assets` with a cross-underlying credit."""
    return [
        (a, b, params.pair_credit(a, b))
        for j, a in enumerate(assets)
        for b in assets[j + 1 :]
        if params.pair_credit(a, b) > 0
    ]


def scenario_loss(pnl: Array, starts: IntArray | None = None) -> Array:
    """Loss of each row of a P&L array (scenario axis last): its worst scenario, a gain counting as zero; with
    `starts`, of each span of columns starting there (underlyings side by side), rows x spans."""
    worst = pnl.min(axis=-1) if starts is None else np.minimum.reduceat(pnl, starts, axis=-1)
    return np.maximum(-worst, 0.0)


def combine_underlyings(
    losses: dict[str, Array],
    deltas: dict[str, Array],
    pairs: list[tuple[str, str, float]],
    *,
    shape: tuple[int, ...],
) -> Array:
    """Risk across underlyings: losses add, less each credited pair's credit x the smaller of its two losses
    where the pair's deltas oppose (SPAN's inter-commodity spread credit). `deltas` is needed for paired assets."""
    risk = np.zeros(shape)
    for loss in losses.values():
        risk += loss
    for a, b, credit in pairs:
        (loss_a, delta_a), (loss_b, delta_b) = (losses[a], deltas[a]), (losses[b], deltas[b])
        risk -= credit * np.minimum(loss_a, loss_b) * (delta_a * delta_b < 0)
    return risk


def combine_levels(
    *, everything: Array, siloed_by_chain: Array, siloed_by_account: Array, offsets: OffsetCredit
) -> Array:
    """Partial credit for offsets across venue-accounts and chains: `portfolio + (1 - credit) x (siloed -
    portfolio)`, applied from the whole book to its chains and from chains to their venue-accounts."""
    return (
        everything
        + (1.0 - offsets.cross_chain) * (siloed_by_chain - everything)
        + (1.0 - offsets.cross_venue) * (siloed_by_account - siloed_by_chain)
    )


def contingency_charge(net: Array, side: Array) -> Array:
    """Contingency units charged on each net quantity: the net short where `side` is -1 (options), the net long
    where it is +1 (a tracked token's depeg), the absolute net where 0 (perps and futures); multiply by the key's
    rate for USD."""
    return np.where(side == 0.0, np.abs(net), np.maximum(side * net, 0.0))
