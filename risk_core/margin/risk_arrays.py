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
    chain_key = wallet_ * n_chains + chain_
    account_key = chain_key * n_accounts + account_
    account_group, n_account_groups = _rank(account_key, n_wallets * n_chains * n_accounts)
    chain_group, n_chain_groups = _rank(chain_key, n_wallets * n_chains)
    account_chain = np.zeros(n_account_groups, dtype=np.intp)
    account_chain[account_group] = chain_group
    chain_wallet = np.zeros(n_chain_groups, dtype=np.intp)
    chain_wallet[chain_group] = wallet_
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


def _rank(key: IntArray, n_keys: int) -> tuple[IntArray, int]:
    """Each key's rank among the keys present (0..n-1, in key order), and n: counted over the key space when it
    is small beside the keys (no sort), else by sorting."""
    if n_keys > 8 * key.size + 1024:
        distinct, rank_of = np.unique(key, return_inverse=True)
        return rank_of.reshape(key.size).astype(np.intp), int(distinct.size)
    present = np.bincount(key, minlength=n_keys) > 0
    rank = np.cumsum(present) - 1
    return rank[key].astype(np.intp), int(present.sum())


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

    # positions by venue-account; a chain's P&L is the sum of its accounts', a wallet's of its chains'
    order = np.argsort(h.account, kind="stable")
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
    charged = np.flatnonzero(~np.isnan(table.rate[inst]))
    if params.contingencies_enabled and charged.size:
        # a contingency nets within a venue-account and instrument
        key, first = net_keys(h.account[charged], inst[charged])
        key_inst = inst[charged[first]]
        charge = contingency_charge(_sum_by(key, size[charged], first.size), table.side[key_inst])
        contingency = _sum_by(wallet[charged[first]], charge * table.rate[key_inst], n_w)
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
        new_weight[c]. Only the changed position's groups and contingency key are recomputed (the liquidation
        plan's trials: a step costs trials x scenarios, not trials x positions x scenarios)."""
        self._prepare()
        k, n_groups, n_under = position.size, self.groups.shape[0], len(self.assets)
        if self.layout is not None:
            # the fhs model's joint losses depend on every underlying at once: the trials are margined in full
            trials = np.repeat(weights[None, :], k, axis=0)
            trials[np.arange(k), position] = new_weight
            return self.margin(trials)
        mix = weights[self._members] * self._row_groups  # (underlying, group) x rows
        pnl_now, delta_now = mix @ self._pnl, mix @ self._delta
        loss = np.repeat(scenario_loss(pnl_now)[None, :], k, axis=0)  # trials x (underlying, group)
        delta = np.repeat(delta_now[None, :], k, axis=0)
        change = new_weight - weights[position]
        # every (trial, row) pair whose row is the trial's position, and the row's three (underlying, group) slots
        order, members = self._rows_by_position
        first = np.searchsorted(members, position)
        count = np.searchsorted(members, position, side="right") - first
        trial = np.repeat(np.arange(k), count)
        row = order[np.repeat(first - np.cumsum(count) + count, count) + np.arange(int(count.sum()))]
        slots = self._row_slots[row]  # pairs x 3
        moved = pnl_now[slots] + (change[trial][:, None, None] * self._pnl[row][:, None, :])
        loss[trial[:, None], slots] = scenario_loss(moved)
        delta[trial[:, None], slots] = delta_now[slots] + change[trial][:, None] * self._delta[row][:, None]
        loss_, delta_ = loss.reshape(k, n_under, n_groups), delta.reshape(k, n_under, n_groups)
        losses = {asset: loss_[:, u, :] for u, asset in enumerate(self.assets)}
        deltas = {asset: delta_[:, u, :] for u, asset in enumerate(self.assets) if asset in self.row_delta}
        risk = combine_underlyings(losses, deltas, self.pairs, shape=(k, n_groups))
        combined = combine_levels(
            everything=risk[:, 0],
            siloed_by_chain=risk[:, 1 : 1 + self.n_chains].sum(axis=1),
            siloed_by_account=risk[:, 1 + self.n_chains :].sum(axis=1),
            offsets=self.params.offset_credit,
        )
        contingency = self._contingency_changes(weights, position, change)
        liquidity = self._liquidity_changes(weights, position, change)
        return MarginFigures(risk=combined, contingency=contingency, liquidity=liquidity, levels=risk)

    def _contingency_changes(self, weights: Array, position: IntArray, change: Array) -> Array:
        keys = self.keys
        if not self.params.contingencies_enabled or keys.rate.size == 0:
            return np.zeros(position.size)
        net = np.asarray(
            np.bincount(keys.key, weights[keys.position] * keys.entry_quantity, minlength=keys.rate.size), np.float64
        )
        charge = contingency_charge(net, keys.side) * keys.rate
        key_of = np.full(keys.n_positions, -1, dtype=np.intp)
        key_of[keys.position] = keys.key  # a position has one entry at most
        quantity_of = np.zeros(keys.n_positions)
        quantity_of[keys.position] = keys.entry_quantity
        key = key_of[position]
        held = key >= 0
        k = key[held]
        out = np.full(position.size, float(charge.sum()))
        moved_net = net[k] + change[held] * quantity_of[position[held]]
        out[held] += contingency_charge(moved_net, keys.side[k]) * keys.rate[k] - charge[k]
        return out

    def _liquidity_changes(self, weights: Array, position: IntArray, change: Array) -> Array:
        """`liquidity` of `weights` with position[c]'s weight moved by change[c]: each underlying's net delta moves
        by the change times that position's own delta in it."""
        addon = np.zeros(position.size)
        n = len(self.book.positions)
        for span, spot, curve in self._liquid:
            members = self._members[span]
            own_delta = np.bincount(members, self._row_delta_all[span], minlength=n)
            net = (float(weights[members] @ self._row_delta_all[span]) + change * own_delta[position]) * spot
            addon += addon_of(net, curve)
        return addon


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
