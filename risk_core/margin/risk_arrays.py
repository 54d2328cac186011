"""Portfolio risk as a function of position weights: the heart of the grid margin model.

Every margin figure of the report is `maintenance_margin(W)` for some weights: W = 1 for the book, the
identity for standalone margins, indicator rows for venue and chain breakdowns, fractions for a liquidation
plan. P&L is linear in position size, so one matrix product per underlying serves any batch of weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from risk_core.margin.book import ResolvedBook
from risk_core.schema.params import RiskParams

Array = NDArray[np.float64]


@dataclass(frozen=True)
class MarginFigures:
    """Per weight row: combined scenario risk, contingencies, and their sum, the maintenance margin."""

    risk: Array
    contingency: Array

    @property
    def maintenance(self) -> Array:
        return self.risk + self.contingency


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
        self.row_delta: dict[str, Array] = {}
        for asset, rows in book.underlyings.items():
            base, cut = rows.base()
            raw = rows.scenario_values() - base
            self.raw_pnl[asset] = raw
            self.pnl[asset] = raw * rows.scenarios.damp[None, :]
            self.base_value[asset] = base[:, 0]
            self.base_haircut[asset] = cut[:, 0]
            self.row_delta[asset] = rows.greeks()[0]
        venue_accounts = sorted({p.venue_account for p in book.positions})
        chains = sorted({p.chain for p in book.positions})
        self.n_chains = len(chains)
        groups = np.zeros((1 + len(chains) + len(venue_accounts), n))
        groups[0] = 1.0
        chain_index = {c: 1 + j for j, c in enumerate(chains)}
        account_index = {va: 1 + len(chains) + j for j, va in enumerate(venue_accounts)}
        for i, p in enumerate(book.positions):
            groups[chain_index[p.chain], i] = 1.0
            groups[account_index[p.venue_account], i] = 1.0
        self.groups = groups
        self.pairs = [
            (a, b, params.pair_credit(a, b))
            for j, a in enumerate(self.assets)
            for b in self.assets[j + 1 :]
            if params.pair_credit(a, b) > 0
        ]

    def margin(self, weights: Array, *, offsets_across_accounts: bool = True) -> MarginFigures:
        """Margin figures for each row of `weights` (rows x positions).

        With `offsets_across_accounts` false every row is taken as one venue-account (standalone margins),
        which skips the chain and venue levels.
        """
        w = np.atleast_2d(weights)
        groups = self.groups if offsets_across_accounts else self.groups[:1]
        k, g = w.shape[0], groups.shape[0]
        risk = np.zeros((k, g))
        per_asset: dict[str, tuple[Array, Array]] = {}
        for asset, rows in self.book.underlyings.items():
            members = rows.members
            mix = (w[:, None, members] * groups[None, :, members]).reshape(k * g, members.size)
            worst = (mix @ self.pnl[asset]).min(axis=1).reshape(k, g)
            loss = np.maximum(-worst, 0.0)
            risk += loss
            if self.pairs:
                per_asset[asset] = (loss, (mix @ self.row_delta[asset]).reshape(k, g))
        for a, b, credit in self.pairs:
            (loss_a, delta_a), (loss_b, delta_b) = per_asset[a], per_asset[b]
            risk -= credit * np.minimum(loss_a, loss_b) * (delta_a * delta_b < 0)
        if offsets_across_accounts:
            everything = risk[:, 0]
            siloed_by_chain = risk[:, 1 : 1 + self.n_chains].sum(axis=1)
            siloed_by_account = risk[:, 1 + self.n_chains :].sum(axis=1)
            offsets = self.params.offset_credit
            combined = (
                everything
                + (1.0 - offsets.cross_chain) * (siloed_by_chain - everything)
                + (1.0 - offsets.cross_venue) * (siloed_by_account - siloed_by_chain)
            )
        else:
            combined = risk[:, 0]
        return MarginFigures(risk=combined, contingency=self.contingency(w))

    def contingency(self, weights: Array) -> Array:
        keys = self.book.contingency
        if not self.params.contingencies_enabled or keys.rate.size == 0:
            return np.zeros(weights.shape[0])
        net = weights @ keys.quantity.T
        charged = np.where(keys.short_only[None, :], np.maximum(-net, 0.0), np.abs(net))
        return charged @ keys.rate
