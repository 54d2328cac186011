"""One partition of a population as arrays, and one round of every venue's liquidation rule over it (pure).

A round takes the prices of the round and each Derive perp's PM2 requirement per unit, applies each venue's own
rule to every account, and returns the partition after the liquidations with the round's aggregates: what was
liquidated, what was sold into which market, the bad debt. Accounts are rows of account-level arrays; positions
are rows of position-level arrays pointing at their account.

Rules (research.contagion.params):
- Aave v3 (risk_core.venues.aave): health factor below 1. The liquidator repays the close factor of the debt
  (50%, all of it below HF 0.95) and seizes collateral worth the repayment plus the bonus, pro rata over the
  collateral; at the round's prices it repeats until the account is healthy or emptied. Debt left without
  collateral is bad debt.
- Hyperliquid (risk_core.venues.hyperliquid): account value below the sum of maintenance margins.
- GMX v2: a position's collateral plus PnL below max(minCollateralUsd, size x minCollateralFactor).
- Derive: the PM2 maintenance balance below zero (risk_core.venues.derive_pm2; see derive_requirements).
A liquidated perp account is closed at the round's price: longs sold, shorts bought back; a negative value left
is bad debt of the venue (its insurance fund or liquidity providers).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from research.contagion.params import CascadeParams
from research.contagion.population import KINDS, VENUES, PopulationError
from risk_core.venues.aave import grouped_health_terms, health_factor
from risk_core.venues.derive_pm2 import Pm2Account, Pm2Case, Pm2Parameters, evaluate_pm2
from risk_core.venues.hyperliquid import position_maintenance_margin

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]
BoolArray = NDArray[np.bool_]

AAVE, HYPERLIQUID, DERIVE, GMX = (VENUES.index(v) for v in ("aave-v3", "hyperliquid", "derive", "gmx-v2"))
DUST_USD = 1e-6  # below this an account's debt or value is rounding, not a position


@dataclass(frozen=True)
class AssetIndex:
    """The assets of a run, in a fixed order shared by the client and every partition."""

    names: tuple[str, ...]


@dataclass(frozen=True)
class RoundTotals:
    """A round's aggregates over one partition; added across partitions on the client, in partition order."""

    liquidated_usd: FloatArray  # venues x assets: value seized (Aave collateral) or closed (perp notional)
    sold_units: FloatArray  # venues x assets: net units sold into the asset's market (bought < 0)
    bad_debt_usd: FloatArray  # venues
    accounts_liquidated: IntArray  # venues: accounts liquidated in the round
    accounts_first_liquidated: IntArray  # venues: of which liquidated for the first time

    @staticmethod
    def zero(n_assets: int) -> RoundTotals:
        n = len(VENUES)
        return RoundTotals(np.zeros((n, n_assets)), np.zeros((n, n_assets)), np.zeros(n), np.zeros(n, np.intp),
                           np.zeros(n, np.intp))

    def __add__(self, other: RoundTotals) -> RoundTotals:
        return RoundTotals(
            self.liquidated_usd + other.liquidated_usd,
            self.sold_units + other.sold_units,
            self.bad_debt_usd + other.bad_debt_usd,
            self.accounts_liquidated + other.accounts_liquidated,
            self.accounts_first_liquidated + other.accounts_first_liquidated,
        )


@dataclass(frozen=True)
class Partition:
    """Account-level and position-level arrays of one wallet-aligned slice of a population."""

    account_venue: IntArray
    account_cash: FloatArray  # USD margin balance (perp venues)
    account_liquidated: BoolArray  # liquidated in an earlier round
    position_account: IntArray
    position_asset: IntArray
    position_kind: IntArray  # KINDS' codes: 0 supply, 1 borrow, 2 perp
    position_amount: FloatArray
    position_entry: FloatArray

    @staticmethod
    def from_table(table: pa.Table, assets: AssetIndex) -> Partition:
        """From a validated population table (rows sorted by wallet, a wallet's accounts contiguous)."""
        wallet = table.column("wallet").to_numpy()
        venue = _codes(table, "venue", VENUES)
        account = table.column("account").to_numpy()
        kind = _codes(table, "kind", KINDS)
        # an account starts wherever (wallet, venue, account) changes from the row before
        starts = np.ones(wallet.size, np.bool_)
        starts[1:] = (wallet[1:] != wallet[:-1]) | (venue[1:] != venue[:-1]) | (account[1:] != account[:-1])
        account_of_row = np.cumsum(starts) - 1
        amount = table.column("amount").to_numpy()
        is_cash = kind == KINDS.index("cash")
        cash = np.asarray(np.bincount(account_of_row[is_cash], amount[is_cash], int(starts.sum())), np.float64)
        keep = ~is_cash
        entry = table.column("entry_price").to_numpy(zero_copy_only=False).astype(np.float64)
        return Partition(
            account_venue=venue[starts],
            account_cash=cash,
            account_liquidated=np.zeros(cash.size, np.bool_),
            position_account=account_of_row[keep],
            position_asset=_codes(table, "asset", assets.names)[keep],
            position_kind=kind[keep],
            position_amount=amount[keep].astype(np.float64),
            position_entry=np.nan_to_num(entry[keep], nan=0.0),
        )


def _codes(table: pa.Table, column: str, names: tuple[str, ...]) -> IntArray:
    """Each value's index in `names` (dictionary-encoded, so each distinct string is looked up once)."""
    encoded = table.column(column).combine_chunks().dictionary_encode()
    distinct = encoded.dictionary.to_pylist()
    unknown = [value for value in distinct if value not in names]
    if unknown:
        raise PopulationError(f"population.{column}: {unknown[0]!r} is not one of {', '.join(names)}")
    code_of_distinct = np.array([names.index(value) for value in distinct], dtype=np.intp)
    return code_of_distinct[encoded.indices.to_numpy(zero_copy_only=False)]


def derive_requirements(prices: FloatArray, assets: AssetIndex, perp_assets: IntArray,
                        pm2: Pm2Parameters) -> FloatArray:
    """PM2's maintenance balance of one perp unit at the round's price, long (column 0) and short (column 1), per
    asset, from Derive's own method: PM2 is positively homogeneous in the perp size and linear in cash, so an
    account's balance is cash + PnL + |size| x the unit balance of its side (tests check this against evaluate_pm2
    on whole accounts). Computed once per round on the client and shared with every partition."""
    unit = np.zeros((len(assets.names), 2))
    for code in perp_assets:
        price = float(prices[code])
        for column, size in ((0, 1.0), (1, -1.0)):
            account = Pm2Account.model_validate({
                "Cash": 0.0, "SpotPrice": price, "SpotConfidence": 1.0, "StablePrice": 1.0, "StableConfidence": 1.0,
                "NumPerps": size, "PerpPrice": price, "PerpConfidence": 1.0, "UnrealisedPerpPNL": 0.0,
                "UnrealisedFunding": 0.0,
            })
            unit[code, column] = evaluate_pm2(Pm2Case.model_validate({"Scenario": account, "Parameters": pm2})).mm
    return unit


@dataclass(frozen=True)
class RoundInputs:
    """What the client shares with every partition for one round."""

    prices: FloatArray  # per asset
    derive_unit_balance: FloatArray  # assets x (long, short)
    aave_threshold: FloatArray  # per asset (0: not Aave collateral)
    aave_bonus: FloatArray  # per asset
    hyperliquid_max_leverage: FloatArray  # per asset (inf: not listed)
    params: CascadeParams


def liquidate_round(part: Partition, inputs: RoundInputs) -> tuple[Partition, RoundTotals]:
    """One round of every venue's rule over the partition."""
    totals = RoundTotals.zero(inputs.prices.size)
    aave_part, aave_liquidated, totals = _aave_round(part, inputs, totals)
    perp_part, perp_liquidated, totals = _perp_round(aave_part, inputs, totals)
    liquidated = aave_liquidated | perp_liquidated
    first = liquidated & ~part.account_liquidated
    totals = replace(totals, accounts_first_liquidated=np.bincount(
        part.account_venue[first], minlength=len(VENUES)).astype(np.intp))
    return replace(perp_part, account_liquidated=part.account_liquidated | liquidated), totals


def _aave_round(
    part: Partition, inputs: RoundInputs, totals: RoundTotals
) -> tuple[Partition, BoolArray, RoundTotals]:
    rule = inputs.params.aave
    n_accounts = part.account_venue.size
    on_aave = part.account_venue[part.position_account] == AAVE
    rows = np.flatnonzero(on_aave)
    account, asset = part.position_account[rows], part.position_asset[rows]
    supply = part.position_kind[rows] == 0
    amount = part.position_amount[rows].copy()
    price = inputs.prices[asset]
    threshold = inputs.aave_threshold[asset]
    ever_liquidated = np.zeros(n_accounts, np.bool_)
    liquidated = totals.liquidated_usd.copy()
    sold = totals.sold_units.copy()
    for _ in range(rule.max_liquidations_per_round):
        supplied = np.where(supply, amount, 0.0)
        borrowed = np.where(supply, 0.0, amount)
        weighted, collateral, debt = grouped_health_terms(
            supplied, borrowed, price, threshold, supply & (threshold > 0), account, n_accounts
        )
        health = health_factor(weighted, debt)
        under = (debt > DUST_USD) & (health < 1.0) & (collateral > DUST_USD)
        if not under.any():
            break
        ever_liquidated |= under
        close_factor = np.where(health < rule.full_close_factor_below_health, 1.0, rule.close_factor)
        collateral_value = np.where(supply & (threshold > 0), supplied * price, 0.0)
        bonus_weighted = np.asarray(
            np.bincount(account, collateral_value * inputs.aave_bonus[asset], n_accounts), np.float64
        )
        bonus = _safe_ratio(bonus_weighted, collateral)
        repay = close_factor * debt
        seize = np.minimum(repay * (1.0 + bonus), collateral)
        repay = np.where(under, seize / (1.0 + bonus), 0.0)
        seize = np.where(under, seize, 0.0)
        seized_fraction = _safe_ratio(seize, collateral)[account]
        repaid_fraction = _safe_ratio(repay, debt)[account]
        seized_units = np.where(supply & (threshold > 0), amount * seized_fraction, 0.0)
        repaid_units = np.where(supply, 0.0, amount * repaid_fraction)
        liquidated[AAVE] += np.bincount(asset, seized_units * price, inputs.prices.size)
        sold[AAVE] += np.bincount(asset, seized_units - repaid_units, inputs.prices.size)  # collateral out, debt in
        amount -= seized_units + repaid_units
    # debt left with no collateral behind it is written off: the protocol's bad debt
    supplied = np.where(supply, amount, 0.0)
    borrowed = np.where(supply, 0.0, amount)
    _, collateral, debt = grouped_health_terms(
        supplied, borrowed, price, threshold, supply & (threshold > 0), account, n_accounts
    )
    insolvent = (debt > DUST_USD) & (collateral <= DUST_USD) & ever_liquidated
    amount = np.where(~supply & insolvent[account], 0.0, amount)
    position_amount = part.position_amount.copy()
    position_amount[rows] = amount
    totals = replace(
        totals,
        liquidated_usd=liquidated,
        sold_units=sold,
        bad_debt_usd=totals.bad_debt_usd + np.eye(len(VENUES))[AAVE] * float(debt[insolvent].sum()),
        accounts_liquidated=totals.accounts_liquidated + np.eye(len(VENUES), dtype=np.intp)[AAVE]
        * int(ever_liquidated.sum()),
    )
    return replace(part, position_amount=position_amount), ever_liquidated, totals


def _perp_round(
    part: Partition, inputs: RoundInputs, totals: RoundTotals
) -> tuple[Partition, BoolArray, RoundTotals]:
    n_accounts = part.account_venue.size
    perp = (part.position_kind == 2) & (part.position_amount != 0.0)
    rows = np.flatnonzero(perp)
    account, asset = part.position_account[rows], part.position_asset[rows]
    size, entry = part.position_amount[rows], part.position_entry[rows]
    price = inputs.prices[asset]
    venue = part.account_venue[account]
    notional = np.abs(size) * price
    value = part.account_cash + np.bincount(account, size * (price - entry), n_accounts)

    requirement_of_row = np.zeros(rows.size)
    on_hyperliquid, on_derive = venue == HYPERLIQUID, venue == DERIVE
    requirement_of_row[on_hyperliquid] = position_maintenance_margin(
        size[on_hyperliquid], price[on_hyperliquid], inputs.hyperliquid_max_leverage[asset[on_hyperliquid]]
    )
    derive_size = size[on_derive]
    requirement_of_row[on_derive] = -np.abs(derive_size) * inputs.derive_unit_balance[
        asset[on_derive], (derive_size < 0).astype(np.intp)
    ]
    requirement = np.bincount(account, requirement_of_row, n_accounts)
    gmx = inputs.params.gmx
    gmx_requirement = np.maximum(gmx.min_collateral_usd, np.bincount(account, notional, n_accounts)
                                 * gmx.min_collateral_factor)
    requirement = np.where(part.account_venue == GMX, gmx_requirement, requirement)
    has_perps = np.bincount(account, minlength=n_accounts) > 0
    under = has_perps & (value < requirement)

    closed = under[account]
    liquidated = totals.liquidated_usd.copy()
    sold = totals.sold_units.copy()
    cell = venue[closed] * inputs.prices.size + asset[closed]
    liquidated += np.bincount(cell, notional[closed], liquidated.size).reshape(liquidated.shape)
    sold += np.bincount(cell, size[closed], sold.size).reshape(sold.shape)
    bad_debt = np.bincount(part.account_venue[under], np.maximum(-value[under], 0.0), len(VENUES))
    count = np.bincount(part.account_venue[under], minlength=len(VENUES)).astype(np.intp)

    position_amount = part.position_amount.copy()
    position_amount[rows[closed]] = 0.0
    cash = np.where(under, np.maximum(value, 0.0), part.account_cash)
    totals = replace(totals, liquidated_usd=liquidated, sold_units=sold, bad_debt_usd=totals.bad_debt_usd + bad_debt,
                     accounts_liquidated=totals.accounts_liquidated + count)
    return replace(part, position_amount=position_amount, account_cash=cash), under, totals


def _safe_ratio(numerator: FloatArray, denominator: FloatArray) -> FloatArray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1.0), 0.0)
