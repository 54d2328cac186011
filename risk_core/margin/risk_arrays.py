"""Portfolio risk as a function of position weights: the heart of the grid margin model.

Every margin figure of the report is `maintenance_margin(W)` for some weights: W = 1 for the book, the
identity for standalone margins, indicator rows for venue and chain breakdowns, fractions for a liquidation
plan. P&L is linear in position size, so one matrix product per underlying serves any batch of weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import sparse

from risk_core.margin.book import ResolvedBook
from risk_core.margin.fhs import HistoricalLayout, historical_loss
from risk_core.margin.liquidity import liquidity_addon
from risk_core.schema.params import OffsetCredit, RiskParams

Array = NDArray[np.float64]
IntArray = NDArray[np.intp]


@dataclass(frozen=True)
class MarginFigures:
    """Per weight row: combined scenario risk, contingencies, the liquidity add-on, and their sum, the maintenance
    margin; and the scenario risk of each netting level the combination starts from (`RiskArrays.level_names`
    names the columns)."""

    risk: Array
    contingency: Array
    liquidity: Array
    levels: Array

    @property
    def maintenance(self) -> Array:
        return self.risk + self.contingency + self.liquidity


class RiskArrays:
    def __init__(self, book: ResolvedBook, params: RiskParams) -> None:
        self.book = book
        self.params = params
        n = len(book.positions)
        self.assets = list(book.underlyings)
        self.pnl: dict[str, Array] = {}  # rows x scenarios, tail cover applied
        self.raw_pnl: dict[str, Array] = {}
        self.base_value: dict[str, Array] = {}
        self.base_haircut: dict[str, Array] = {}
        self.row_delta: dict[str, Array] = {}  # deltas of the assets in a credited pair, the only ones needed
        self.pairs = credited_pairs(self.assets, params)
        paired = {a for a, _, _ in self.pairs} | {b for _, b, _ in self.pairs}
        # every underlying's rows stacked (in the book's order), scenarios padded with zero P&L to the widest set:
        # one product per margin call for all underlyings. A zero column never changes a loss (a gain counts 0).
        spans = np.cumsum([0, *(rows.n_rows for rows in book.underlyings.values())])
        widest = max((rows.scenarios.size for rows in book.underlyings.values()), default=1)
        self._pnl = np.zeros((int(spans[-1]), widest))
        self._delta = np.zeros(int(spans[-1]))
        self._spans = [slice(int(a), int(b)) for a, b in zip(spans[:-1], spans[1:], strict=True)]
        for (asset, rows), span in zip(book.underlyings.items(), self._spans, strict=True):
            base, cut = rows.base()
            raw = rows.scenario_pnl()
            self.raw_pnl[asset] = raw
            self.pnl[asset] = np.multiply(raw, rows.scenarios.damp[None, :], out=self._pnl[span, : raw.shape[1]])
            self.base_value[asset] = base[:, 0]
            self.base_haircut[asset] = cut[:, 0]
            if asset in paired:
                self.row_delta[asset] = self._delta[span] = rows.deltas()
        venue_accounts = book.places.venue_accounts
        chains = sorted({chain for _, chain, _ in venue_accounts})
        self.n_chains = len(chains)
        self.chains: list[str] = chains
        self.venue_accounts: list[tuple[str, str, str]] = list(venue_accounts)
        groups = np.zeros((1 + len(chains) + len(venue_accounts), n))
        groups[0] = 1.0
        chain_row = {c: 1 + j for j, c in enumerate(chains)}
        # per venue-account: its row, and the row of its chain
        account_rows = np.array(
            [(1 + len(chains) + j, chain_row[chain]) for j, (_, chain, _) in enumerate(venue_accounts)], dtype=np.intp
        ).reshape(len(venue_accounts), 2)[book.places.of_position]
        every = np.arange(n)
        groups[account_rows[:, 0], every] = 1.0
        groups[account_rows[:, 1], every] = 1.0
        self.groups = groups
        # (underlying, group) x stacked rows: each underlying's groups over its own rows, zero elsewhere
        self._members = np.concatenate(
            [np.zeros(0, dtype=np.intp), *(rows.members for rows in book.underlyings.values())]
        ).astype(np.intp)
        n_groups = groups.shape[0]
        row_groups = np.zeros((len(self._spans), n_groups, self._members.size))
        for u, span in enumerate(self._spans):
            row_groups[u, :, span] = groups[:, self._members[span]]
        self._row_groups = row_groups.reshape(len(self._spans) * n_groups, self._members.size)
        order = np.argsort(self._members, kind="stable")
        self._rows_by_position = (order, self._members[order])  # rows sorted by position, and their positions
        # per row: its (underlying, group) slots, the book, its chain and its venue-account
        self._row_slots = np.sort(np.nonzero(self._row_groups.T)[1].reshape(self._members.size, 3), axis=1)
        # the fhs model's scenarios are joint across underlyings (one layout for all): losses are taken on their sum
        self.layout: HistoricalLayout | None = next(
            (rows.scenarios.history for rows in book.underlyings.values() if rows.scenarios.history is not None), None
        )
        # underlyings with a depth curve: (stacked rows, USD per unit of the underlying's delta, curve)
        liquidity = params.liquidity
        self._liquid = [
            (span, rows.spot, liquidity.depth[asset])
            for (asset, rows), span in zip(book.underlyings.items(), self._spans, strict=True)
            if liquidity.enabled and asset in liquidity.depth
        ]
        self._row_delta_all = (
            np.concatenate([rows.deltas() for rows in book.underlyings.values()]) if self._liquid else np.zeros(0)
        )

    def position_values(self) -> tuple[Array, Array]:
        """Mark value and collateral haircut per position, taken from its primary underlying's rows."""
        book = self.book
        value = book.fixed_value.copy()
        haircut = book.fixed_haircut.copy()
        for asset, rows in book.underlyings.items():
            own = book.primary_rows[asset]
            value[rows.members[own]] = self.base_value[asset][own]
            haircut[rows.members[own]] = self.base_haircut[asset][own]
        return value, haircut

    def margin(self, weights: Array) -> MarginFigures:
        """Margin figures for each row of `weights` (rows x positions)."""
        w = np.atleast_2d(weights)
        mix = w[:, None, self._members] * self._row_groups[None, :, :]  # k x (underlying, group) x rows
        delta = mix @ self._delta if self.row_delta and self.layout is None else None
        risk = self.group_risk(mix @ self._pnl, delta, self.layout)
        return self._figures(risk, self.contingency(w), self.liquidity(w))

    def group_risk(self, pnl: Array, delta: Array | None, layout: HistoricalLayout | None) -> Array:
        """Scenario risk of each group (... x groups: the book, its chains, its venue-accounts) from the P&L of
        each (underlying, group), ... x (underlying, group) x scenarios, and its delta (needed for credited pairs
        under the grid): per underlying the worst scenario, less cross-underlying credits; under the fhs model
        the expected shortfall of the underlyings' joint P&L."""
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

    def on_dates(
        self, pnl: Array, delta: Array, spot: Array, layout: HistoricalLayout | None
    ) -> tuple[Array, Array]:
        """(combined scenario risk, liquidity add-on) of the whole book (W = 1) on many dates, its rows revalued
        on each: `pnl` dates x stacked rows x scenarios (tail cover applied), `delta` dates x stacked rows,
        `spot` dates x underlyings. The combination of `margin`; contingencies, whose keys are priced per date,
        are the caller's (research.dated)."""
        risk = self.group_risk(self._row_groups @ pnl, delta @ self._row_groups.T, layout)
        combined = self.combine_levels(risk)
        addon = np.zeros(pnl.shape[0])
        for u, (span, asset) in enumerate(zip(self._spans, self.assets, strict=True)):
            curve = self.params.liquidity.depth.get(asset)
            if self.params.liquidity.enabled and curve is not None:
                addon += liquidity_addon(delta[:, span].sum(axis=1) * spot[:, u], curve)
        return combined, addon

    def combine_levels(self, risk: Array) -> Array:
        """The book's risk from its groups' (... x groups): partial credit across chains and venue-accounts."""
        return combine_levels(
            everything=risk[..., 0],
            siloed_by_chain=risk[..., 1 : 1 + self.n_chains].sum(axis=-1),
            siloed_by_account=risk[..., 1 + self.n_chains :].sum(axis=-1),
            offsets=self.params.offset_credit,
        )

    def _figures(self, risk: Array, contingency: Array, liquidity: Array) -> MarginFigures:
        """The figures of weight rows from their risk per group (weight rows x groups: book, chains, accounts)."""
        return MarginFigures(risk=self.combine_levels(risk), contingency=contingency, liquidity=liquidity, levels=risk)

    def split_levels(self, levels: Array) -> tuple[float, dict[str, float], list[tuple[tuple[str, str, str], float]]]:
        """One row of `MarginFigures.levels` by name: the risk of everything netted together, of each chain's
        positions netted together, and of each venue-account's."""
        row = levels.tolist()
        by_chain = dict(zip(self.chains, row[1 : 1 + self.n_chains], strict=True))
        by_account = list(zip(self.venue_accounts, row[1 + self.n_chains :], strict=True))
        return row[0], by_chain, by_account

    def margin_changes(self, weights: Array, position: IntArray, new_weight: Array) -> MarginFigures:
        """What `margin` gives for the rows of `weights` with one position changed per row: position[c] at
        new_weight[c]. Only the changed position's groups and contingency key are recomputed (the liquidation
        plan's trials: a step costs trials x scenarios, not trials x positions x scenarios)."""
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
        combined = self.combine_levels(risk)
        contingency = self._contingency_changes(weights, position, change)
        liquidity = self._liquidity_changes(weights, position, change)
        return MarginFigures(risk=combined, contingency=contingency, liquidity=liquidity, levels=risk)

    def _contingency_changes(self, weights: Array, position: IntArray, change: Array) -> Array:
        keys = self.book.contingency
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
            addon += liquidity_addon(net, curve)
        return addon

    def liquidity(self, weights: Array) -> Array:
        """The liquidity add-on of each weight row: per underlying, on its net delta in USD."""
        addon = np.zeros(weights.shape[0])
        for span, spot, curve in self._liquid:
            net = weights[:, self._members[span]] @ self._row_delta_all[span] * spot
            addon += liquidity_addon(net, curve)
        return addon

    def standalone_margins(self) -> Array:
        """Maintenance margin of each position alone, as one venue-account (no chain or venue levels): what
        `margin` gives for the whole book's group at identity weights, without the n x n products. An identity
        row picks out the position's own P&L row exactly (every other term is a product with 0), so its loss in
        an underlying is its row's loss, 0 where it has no row; likewise its delta."""
        n = len(self.book.positions)
        if self.layout is not None:  # a position's rows in several underlyings (an LP range) move jointly
            own = np.zeros((n, self._pnl.shape[1]))
            np.add.at(own, self._members, self._pnl)
            return historical_loss(own, self.layout) + self._standalone_contingency(n) + self._standalone_liquidity(n)
        row_loss = scenario_loss(self._pnl)
        losses: dict[str, Array] = {}
        deltas: dict[str, Array] = {}
        for asset, span in zip(self.assets, self._spans, strict=True):
            losses[asset] = np.zeros((n, 1))
            losses[asset][self._members[span], 0] = row_loss[span]
            if asset in self.row_delta:
                deltas[asset] = np.zeros((n, 1))
                deltas[asset][self._members[span], 0] = self.row_delta[asset]
        risk = combine_underlyings(losses, deltas, self.pairs, shape=(n, 1))[:, 0]
        return risk + self._standalone_contingency(n) + self._standalone_liquidity(n)

    def _standalone_liquidity(self, n: int) -> Array:
        """`liquidity(identity)`: each position's add-on on its own net delta."""
        addon = np.zeros(n)
        for span, spot, curve in self._liquid:
            net = np.zeros(n)
            np.add.at(net, self._members[span], self._row_delta_all[span] * spot)
            addon += liquidity_addon(net, curve)
        return addon

    def _standalone_contingency(self, n: int) -> Array:
        """`contingency(identity)`: each position alone nets nothing, so it pays its own entry's charge."""
        keys = self.book.contingency
        charge = np.zeros(n)
        if self.params.contingencies_enabled and keys.rate.size:
            own = contingency_charge(keys.entry_quantity, keys.side[keys.key]) * keys.rate[keys.key]
            np.add.at(charge, keys.position, own)
        return charge

    def contingency(self, weights: Array) -> Array:
        keys = self.book.contingency
        if not self.params.contingencies_enabled or keys.rate.size == 0:
            return np.zeros(weights.shape[0])
        # keys x positions is sparse (one entry per charged position): dense, a 10,000-option book's would be 800 MB
        # and each liquidation trial would cost keys x positions
        quantity = sparse.csr_array(
            (keys.entry_quantity, (keys.key, keys.position)), shape=(keys.rate.size, keys.n_positions)
        )
        net = (quantity @ weights.T).T
        return contingency_charge(net, keys.side[None, :]) @ keys.rate


# The pieces of `RiskArrays.margin` that the batch path (risk_core.margin.batch) shares.


def credited_pairs(assets: list[str], params: RiskParams) -> list[tuple[str, str, float]]:
    """(asset_a, asset_b, credit) for every pair of `assets` with a cross-underlying credit."""
    return [
        (a, b, params.pair_credit(a, b))
        for j, a in enumerate(assets)
        for b in assets[j + 1 :]
        if params.pair_credit(a, b) > 0
    ]


def scenario_loss(pnl: Array) -> Array:
    """Loss of each row of a P&L array (scenario axis last): its worst scenario, a gain counting as zero."""
    return np.maximum(-pnl.min(axis=-1), 0.0)


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
