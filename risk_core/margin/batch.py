"""Margin of many wallets on one instrument table, block by block: the figures `compute_margin` gives each wallet
alone, for a wallet or for millions.

The instruments are those of the caller's pricing context (risk_core.margin.instruments): resolved and revalued
once at size 1, by the same resolver as any book. Holdings say which instrument each position holds, in what
size, and its groups: venue-account, chain and wallet. A group's scenario P&L is its holdings times the
instruments' P&L rows (one sparse product per underlying), a chain's is the sum of its accounts', a wallet's the
sum of its chains'; losses, cross-underlying credits, offsets across levels and contingencies are
risk_core.margin.risk_arrays' functions. Memory is bounded by the block: a caller streams wallets in blocks and
nothing is kept between them but the instrument table.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import scipy.sparse as sp
from numpy.typing import ArrayLike, NDArray

from risk_core.errors import InputError
from risk_core.margin.context import PricingContext, pricing_context
from risk_core.margin.instruments import INSTRUMENT_READERS, PricedInstruments
from risk_core.margin.issues import PricingIssue
from risk_core.margin.risk_arrays import (
    combine_levels,
    combine_underlyings,
    contingency_charge,
    credited_pairs,
    scenario_loss,
)
from risk_core.schema.holdings import ParsedHoldings, as_holdings_table, parse_holdings, wallet_runs
from risk_core.schema.market import MarketSnapshot
from risk_core.schema.params import RiskParams
from risk_core.schema.positions import Position

Array = NDArray[np.float64]
IntArray = NDArray[np.intp]
BLOCK_POSITIONS = 200_000  # positions per block when a caller hands many wallets at once


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


def holdings_of(table: PricedInstruments, wallets: Sequence[Sequence[Position]]) -> Holdings:
    """Holdings of position objects, wallet by wallet, their instruments added to `table`."""
    positions = [p for wallet in wallets for p in wallet]
    readers = [INSTRUMENT_READERS[p.__class__] for p in positions]
    chains: dict[str, int] = {}
    accounts: dict[tuple[str, str, str], int] = {}
    return group_holdings(
        instrument=table.ids(positions),
        size=[size_of(p) for p, (_, size_of, _) in zip(positions, readers, strict=True)],
        entry_price=[
            (getattr(p, "entry_price", None) or np.nan) if has_entry else np.nan
            for p, (_, _, has_entry) in zip(positions, readers, strict=True)
        ],
        wallet=np.repeat(np.arange(len(wallets)), [len(w) for w in wallets]),
        chain=[chains.setdefault(p.chain, len(chains)) for p in positions],
        venue_account=[accounts.setdefault(p.venue_account, len(accounts)) for p in positions],
        n_wallets=len(wallets),
    )


@dataclass(frozen=True)
class BatchMarginResult:
    """Per wallet, the figures `compute_margin` reports for that wallet alone (USD), and its issues."""

    equity_usd: Array
    collateral_usd: Array  # after haircuts
    risk_usd: Array  # combined scenario risk, before contingencies
    contingency_usd: Array
    maintenance_margin_usd: Array  # risk + contingency
    initial_margin_usd: Array  # maintenance x im_factor
    left_out: NDArray[np.int64]  # positions not priced (the wallet's report would be incomplete)
    issues: list[tuple[int, PricingIssue]]  # (wallet, issue naming the position's index in it), in wallet order

    @property
    def complete(self) -> NDArray[np.bool_]:
        return self.left_out == 0


def margin_holdings(table: PricedInstruments, h: Holdings) -> BatchMarginResult:
    """The figures of each wallet of `h`, on `table` (which holds every instrument of `h`).

    Raises:
        InputError: params.model is not the grid (the batch path sums per-underlying worst losses, and the
            liquidity add-on is not applied).
    """
    params = table.params
    if params.model != "grid":
        raise InputError("params.model", f"the batch path margins with the grid only, not {params.model}")
    n_w, n_acc, n_chain = h.n_wallets, h.account_chain.size, h.chain_wallet.size
    wallet = h.wallet
    unit_value, unit_haircut, mark, rate, side, priced = table.unit_figures()
    inst, size = h.instrument, h.size
    value = size * unit_value[inst]
    has_entry = ~np.isnan(h.entry_price)
    value[has_entry] += size[has_entry] * (mark[inst[has_entry]] - h.entry_price[has_entry])
    equity = _sum_by(wallet, value, n_w)
    haircut = _sum_by(wallet, np.maximum(size, 0.0) * unit_haircut[inst], n_w)

    # scenario losses per group level and underlying; chains and wallets add their accounts' P&L
    to_chain, to_wallet = _adder(h.account_chain, n_chain), _adder(h.chain_wallet, n_w)
    levels = ("account", "chain", "wallet")
    losses: dict[str, dict[str, Array]] = {level: {} for level in levels}
    deltas: dict[str, dict[str, Array]] = {level: {} for level in levels}
    pairs = credited_pairs(table.assets, params)
    paired = {a for a, _, _ in pairs} | {b for _, b, _ in pairs}
    for asset in table.assets:
        row_of, pnl, delta, scenarios = table.asset_rows(asset)
        row = row_of[inst]
        mine = row >= 0
        holding = sp.csr_array((size[mine], (h.account[mine], row[mine])), shape=(n_acc, pnl.shape[0]))
        for level, p in zip(levels, _up_levels(holding @ (pnl * scenarios.damp), to_chain, to_wallet), strict=True):
            losses[level][asset] = scenario_loss(p)
        if asset in paired:  # needed for cross-underlying credits only
            for level, d in zip(levels, _up_levels(holding @ delta, to_chain, to_wallet), strict=True):
                deltas[level][asset] = d
    risk = {
        level: combine_underlyings(losses[level], deltas[level], pairs, shape=(count,))
        for level, count in zip(levels, (n_acc, n_chain, n_w), strict=True)
    }
    account_wallet = h.chain_wallet[h.account_chain]
    combined = combine_levels(
        everything=risk["wallet"],
        siloed_by_chain=_sum_by(h.chain_wallet, risk["chain"], n_w),
        siloed_by_account=_sum_by(account_wallet, risk["account"], n_w),
        offsets=params.offset_credit,
    )
    contingency = np.zeros(n_w)
    charged = np.flatnonzero(~np.isnan(rate[inst]))
    if params.contingencies_enabled and charged.size:
        # a contingency nets within a venue-account and instrument
        code = h.account[charged] * (int(inst.max()) + 1) + inst[charged]
        keys, first, key_of = np.unique(code, return_index=True, return_inverse=True)
        net = _sum_by(key_of.reshape(-1), size[charged], keys.size)
        key_inst = inst[charged[first]]
        charge = contingency_charge(net, side[key_inst]) * rate[key_inst]
        contingency = _sum_by(account_wallet[h.account[charged[first]]], charge, n_w)
    maintenance = combined + contingency
    return BatchMarginResult(
        equity_usd=equity,
        collateral_usd=equity - haircut,
        risk_usd=combined,
        contingency_usd=contingency,
        maintenance_margin_usd=maintenance,
        initial_margin_usd=maintenance * params.im_factor,
        left_out=np.bincount(wallet, ~priced[inst], minlength=n_w).astype(np.int64),
        issues=_issues(table, h, wallet),
    )


def _sum_by(label: IntArray, weights: Array, n_labels: int) -> Array:
    """Sum of `weights` per label 0..n_labels-1."""
    return np.asarray(np.bincount(label, weights=weights, minlength=n_labels), dtype=np.float64)


def _adder(owner: IntArray, n_owners: int) -> sp.csr_array:
    """n_owners x rows matrix of ones that adds the rows of each owner; `owner` is sorted."""
    indptr = np.searchsorted(owner, np.arange(n_owners + 1))
    return sp.csr_array((np.ones(owner.size), np.arange(owner.size), indptr), shape=(n_owners, owner.size))


def _up_levels(by_account: Array, to_chain: sp.csr_array, to_wallet: sp.csr_array) -> tuple[Array, Array, Array]:
    by_chain = np.asarray(to_chain @ by_account)
    return np.asarray(by_account), by_chain, np.asarray(to_wallet @ by_chain)


def _issues(table: PricedInstruments, h: Holdings, wallet: IntArray) -> list[tuple[int, PricingIssue]]:
    """Each wallet's issues as its own report says them: a position's own naming its index, an asset's once."""
    out: list[tuple[int, PricingIssue]] = []
    at = np.flatnonzero(table.has_issues[h.instrument])
    at = at[np.lexsort((h.origin[at], wallet[at]))]  # in wallet order, positions in their given order
    said: set[tuple[int, str, str]] = set()
    for i, w, index in zip(at.tolist(), wallet[at].tolist(), h.origin[at].tolist(), strict=True):
        for issue in table.issues_of(int(h.instrument[i])):
            if issue.index is not None:
                out.append((w, issue.at(index)))
            elif (w, *issue.subject) not in said:
                said.add((w, *issue.subject))
                out.append((w, issue))
    return out


def compute_batch_margin(
    wallets: Sequence[Sequence[Position]],
    market: MarketSnapshot,
    params: RiskParams,
    *,
    context: PricingContext | None = None,
) -> BatchMarginResult:
    """Margin figures of each wallet, as if each were sent alone to `compute_margin`, in blocks of wallets."""
    context = context or pricing_context(market, params)
    blocks, start, count = [], 0, 0
    for end in range(1, len(wallets) + 1):
        count += len(wallets[end - 1])
        if count >= BLOCK_POSITIONS or end == len(wallets):
            blocks.append(wallets[start:end])
            start, count = end, 0
    parts = margin_blocks(context.instruments, (holdings_of(context.instruments, block) for block in blocks))
    return concatenate(list(parts), [len(block) for block in blocks])


def margin_blocks(table: PricedInstruments, blocks: Iterable[Holdings]) -> Iterator[BatchMarginResult]:
    """The figures of each block of wallets in turn: memory is one block's, whatever the number of wallets."""
    for holdings in blocks:
        yield margin_holdings(table, holdings)


def concatenate(parts: Sequence[BatchMarginResult], n_wallets: Sequence[int]) -> BatchMarginResult:
    """Consecutive blocks' results as one, wallets numbered across blocks."""
    first_wallet = np.cumsum([0, *n_wallets[:-1]]).tolist()
    columns = ("equity_usd", "collateral_usd", "risk_usd", "contingency_usd", "maintenance_margin_usd",
               "initial_margin_usd", "left_out")
    joined: dict[str, Any] = {
        name: np.concatenate([getattr(part, name) for part in parts]) if parts else np.zeros(0) for name in columns
    }
    issues = [(first + w, issue) for part, first in zip(parts, first_wallet, strict=True) for w, issue in part.issues]
    return BatchMarginResult(**joined, issues=issues)


# ------------------------------------------------------------------------------------------- columnar input


def holdings_of_rows(table: PricedInstruments, parsed: ParsedHoldings) -> Holdings:
    """Holdings of parsed rows (risk_core.schema.holdings), their instruments added to `table`."""
    ids = table.ids(parsed.instruments)
    return group_holdings(ids[parsed.instrument], parsed.size, parsed.entry_price, parsed.wallet, parsed.chain,
                          parsed.venue_account, len(parsed.wallets))


RESULT_COLUMNS = ("equity_usd", "collateral_usd", "risk_usd", "contingency_usd", "maintenance_margin_usd",
                  "initial_margin_usd")
_ISSUE_TYPE = pa.struct([("index", pa.int64()), ("field", pa.string()), ("code", pa.string()),
                         ("severity", pa.string())])


def margin_rows(table: PricedInstruments, rows: pa.Table, *, first_row: int = 0) -> pa.Table:
    """Per wallet of `rows` (HOLDINGS_ARROW_SCHEMA, whole wallets): its label, figures, whether its report would be
    complete, how many positions are left out, and its issues (index within the wallet, field, code, severity).

    Raises:
        InputError: a row is invalid, named `rows[i].field` with i counted from `first_row`.
    """
    parsed = parse_holdings(rows, first_row=first_row)
    result = margin_holdings(table, holdings_of_rows(table, parsed))
    issues: list[list[dict[str, object]]] = [[] for _ in parsed.wallets]
    for w, issue in result.issues:
        issues[w].append({"index": issue.index, "field": issue.path, "code": issue.code, "severity": issue.severity})
    return pa.table({
        "wallet": pa.array(parsed.wallets, pa.string()),
        **{name: getattr(result, name) for name in RESULT_COLUMNS},
        "complete": result.complete,
        "left_out": result.left_out,
        "issues": pa.array(issues, pa.list_(_ISSUE_TYPE)),
    })


def compute_batch_margin_table(
    holdings: pa.Table | Mapping[str, Sequence[object]],
    market: MarketSnapshot,
    params: RiskParams,
    *,
    context: PricingContext | None = None,
) -> pa.Table:
    """`margin_rows` of a whole table or of columns (a mapping of column name to values), in blocks of wallets.

    Raises:
        InputError: a column or a row is invalid (named `rows[i].field`, or the column).
    """
    context = context or pricing_context(market, params)
    rows = as_holdings_table(holdings)
    starts = wallet_runs(rows.column("wallet"))
    cuts = [0]
    for start in starts.tolist():
        if start - cuts[-1] >= BLOCK_POSITIONS:
            cuts.append(start)
    cuts.append(rows.num_rows)
    blocks = [margin_rows(context.instruments, rows.slice(a, b - a), first_row=a)
              for a, b in zip(cuts[:-1], cuts[1:], strict=True) if b > a]
    return pa.concat_tables(blocks) if blocks else margin_rows(context.instruments, rows)
