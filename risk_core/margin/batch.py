"""Margin of many wallets in blocks, from position objects or columns: the figures `compute_margin` gives each
wallet alone, by the same margin function (risk_core.margin.risk_arrays.margin_holdings) on the caller's
instrument table. Memory is bounded by the block: nothing is kept between blocks but the table.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from risk_core.margin.context import PricingContext, pricing_context
from risk_core.margin.instruments import INSTRUMENT_READERS, InstrumentTable
from risk_core.margin.issues import PricingIssue
from risk_core.margin.risk_arrays import Holdings, group_holdings, margin_holdings
from risk_core.schema.holdings import ParsedHoldings, as_holdings_table, parse_holdings, wallet_runs
from risk_core.schema.market import MarketSnapshot
from risk_core.schema.params import RiskParams
from risk_core.schema.positions import Position

Array = NDArray[np.float64]
BLOCK_POSITIONS = 200_000  # positions per block when a caller hands many wallets at once


def holdings_of(table: InstrumentTable, wallets: Sequence[Sequence[Position]]) -> Holdings:
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
    maintenance_margin_usd: Array  # risk + contingency + liquidity add-on
    initial_margin_usd: Array  # maintenance x im_factor
    left_out: NDArray[np.int64]  # positions not priced (the wallet's report would be incomplete)
    issues: list[tuple[int, PricingIssue]]  # (wallet, issue naming the position's index in it), in wallet order

    @property
    def complete(self) -> NDArray[np.bool_]:
        return self.left_out == 0


def margin_wallets(table: InstrumentTable, h: Holdings) -> BatchMarginResult:
    """The figures of each wallet of `h`, on `table` (which holds every instrument of `h`), and its issues."""
    f = margin_holdings(table, h)
    maintenance = f.maintenance
    return BatchMarginResult(
        equity_usd=f.equity,
        collateral_usd=f.equity - f.haircut,
        risk_usd=f.risk,
        contingency_usd=f.contingency,
        maintenance_margin_usd=maintenance,
        initial_margin_usd=maintenance * table.params.im_factor,
        left_out=f.left_out,
        issues=table.issues_of(h.instrument, h.wallet, h.origin),
    )


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


def margin_blocks(table: InstrumentTable, blocks: Iterable[Holdings]) -> Iterator[BatchMarginResult]:
    """The figures of each block of wallets in turn: memory is one block's, whatever the number of wallets."""
    for holdings in blocks:
        yield margin_wallets(table, holdings)


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


def holdings_of_rows(table: InstrumentTable, parsed: ParsedHoldings) -> Holdings:
    """Holdings of parsed rows (risk_core.schema.holdings), their instruments added to `table`."""
    ids = table.ids(parsed.instruments)
    return group_holdings(ids[parsed.instrument], parsed.size, parsed.entry_price, parsed.wallet, parsed.chain,
                          parsed.venue_account, len(parsed.wallets))


RESULT_COLUMNS = ("equity_usd", "collateral_usd", "risk_usd", "contingency_usd", "maintenance_margin_usd",
                  "initial_margin_usd")
_ISSUE_TYPE = pa.struct([("index", pa.int64()), ("field", pa.string()), ("code", pa.string()),
                         ("severity", pa.string())])


def margin_rows(table: InstrumentTable, rows: pa.Table, *, first_row: int = 0) -> pa.Table:
    """Per wallet of `rows` (HOLDINGS_ARROW_SCHEMA, whole wallets): its label, figures, whether its report would be
    complete, how many positions are left out, and its issues (index within the wallet, field, code, severity).

    Raises:
        InputError: a row is invalid, named `rows[i].field` with i counted from `first_row`.
    """
    parsed = parse_holdings(rows, first_row=first_row)
    result = margin_wallets(table, holdings_of_rows(table, parsed))
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
