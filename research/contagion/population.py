"""Wallet populations: a Parquet table, one row per position, and the synthetic generator.

Columns (POPULATION_SCHEMA):
- wallet (int64): the wallet's id;
- venue (string): aave-v3 | hyperliquid | derive | gmx-v2 | uniswap-v3;
- account (int64): the account inside the wallet's venue (a GMX v2 position is an account of its own, an Aave v3
  account is one per chain, a Uniswap v3 range one per NFT; 0 elsewhere);
- asset (string): BTC, ETH, SOL, WSTETH, USDC...;
- kind (string): supply | borrow (Aave, units >= 0), perp (signed units, short < 0), cash (USD margin balance),
  lp (Uniswap v3: units >= 0 of the asset a range holds at the price of the population's build, one row per token);
- amount (float64): units of the asset, or USD for cash;
- entry_price (float64, null unless perp): the perp's entry price.
Rows of one wallet are contiguous; partitions split between wallets, so no account straddles two.

The cascade liquidates nothing on uniswap-v3: no venue rule reads `lp` rows (an LP is not levered), so they ride
along unchanged and the venue's figures stay zero. They are in the population for researchers' own joins (who is
exposed to which pool), not yet as the pools' depth, which comes from the cascade parameters.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from risk_core.pricing.lp import lp_amounts
from risk_core.schema.positions import BorrowPosition, LendPosition, LPPosition, PerpPosition, Position, SpotPosition

VENUES: tuple[str, ...] = ("aave-v3", "hyperliquid", "derive", "gmx-v2", "uniswap-v3")
KINDS: tuple[str, ...] = ("supply", "borrow", "perp", "cash", "lp")
PERP_VENUES: tuple[str, ...] = ("hyperliquid", "derive", "gmx-v2")

POPULATION_SCHEMA = pa.schema(
    [
        pa.field("wallet", pa.int64(), nullable=False),
        pa.field("venue", pa.string(), nullable=False),
        pa.field("account", pa.int64(), nullable=False),
        pa.field("asset", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("amount", pa.float64(), nullable=False),
        pa.field("entry_price", pa.float64(), nullable=True),
    ]
)


class PopulationError(ValueError):
    """A population table that does not follow POPULATION_SCHEMA; the message names the column."""


def validate_population(table: pa.Table) -> pa.Table:
    """The table cast to POPULATION_SCHEMA; raises PopulationError naming the first bad column or value."""
    missing = [name for name in POPULATION_SCHEMA.names if name not in table.column_names]
    if missing:
        raise PopulationError(f"population: missing column {missing[0]!r}")
    try:
        table = table.select(POPULATION_SCHEMA.names).cast(POPULATION_SCHEMA)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as error:
        raise PopulationError(f"population: {error}") from None
    for column, allowed in (("venue", VENUES), ("kind", KINDS)):
        unknown = sorted(set(table.column(column).unique().to_pylist()) - set(allowed))
        if unknown:
            raise PopulationError(f"population.{column}: unknown value {unknown[0]!r} (allowed: {', '.join(allowed)})")
    amount = table.column("amount")
    if not pc.all(pc.is_finite(amount)).as_py():
        raise PopulationError("population.amount: every amount must be finite")
    kind = table.column("kind")
    holdings = pc.is_in(kind, value_set=pa.array(["supply", "borrow", "lp"]))
    if pc.any(pc.and_(holdings, pc.less(amount, 0.0))).as_py():
        raise PopulationError("population.amount: supply, borrow and lp amounts are units >= 0")
    perp_entry = pc.filter(table.column("entry_price"), pc.equal(kind, "perp"))
    positive = pc.and_(pc.is_finite(perp_entry), pc.greater(perp_entry, 0.0))
    if perp_entry.null_count or not pc.all(positive, min_count=0).as_py():  # min_count 0: no perps is valid
        raise PopulationError("population.entry_price: every perp needs a finite entry price > 0")
    wallet = table.column("wallet").to_numpy()
    if (np.diff(wallet) < 0).any():
        raise PopulationError("population.wallet: rows must be sorted by wallet")
    return table


def partition_count(path: Path) -> int:
    """The population file's partitions: its row groups, each holding whole wallets (checked from the row groups'
    wallet statistics, so no wallet's accounts are split between two workers)."""
    metadata = pq.ParquetFile(path).metadata
    names = metadata.schema.to_arrow_schema().names
    missing = [name for name in POPULATION_SCHEMA.names if name not in names]
    if missing:
        raise PopulationError(f"population: missing column {missing[0]!r}")
    column = names.index("wallet")
    previous_max = None
    for group in range(metadata.num_row_groups):
        stats = metadata.row_group(group).column(column).statistics
        if stats is None or not stats.has_min_max:
            raise PopulationError(f"population.wallet: row group {group} has no min/max statistics")
        if previous_max is not None and stats.min <= previous_max:
            raise PopulationError(
                f"population.wallet: row group {group} starts at wallet {stats.min}, not after the previous group's "
                f"last wallet {previous_max}: sort by wallet and keep each wallet in one row group"
            )
        previous_max = stats.max
    return metadata.num_row_groups


def read_partition(path: Path, index: int) -> pa.Table:
    """Row group `index` of a population file, validated."""
    return validate_population(pq.ParquetFile(path).read_row_group(index, columns=POPULATION_SCHEMA.names))


def synthetic_population(
    wallets: int, seed: int, *, first_wallet: int = 0, prices: dict[str, float], long_share: float = 0.6
) -> pa.Table:
    """A seeded synthetic population, calibrated to published figures (docs/contagion.md cites them):
    - venue mix: 45% of wallets hold an Aave v3 loan, 35% Hyperliquid perps, 10% Derive perps, 25% GMX v2
      positions (a wallet may hold several);
    - Aave health factors: log-normal around 1.6, 8% of loans below 1.1 (Chaos Labs / Gauntlet Aave risk reports);
    - perp leverage: log-normal with median 5x, 5% above 20x (Hyperliquid leaderboard distributions);
    - about 50 positions per wallet across its venues (many small GMX positions and perp legs);
    - `long_share` of the perp legs long (0.6: crypto perps' long bias in open-interest data).
    """
    rng = np.random.default_rng([seed, first_wallet])  # each block its own stream, whatever the block size
    wallet_ids = np.arange(first_wallet, first_wallet + wallets, dtype=np.int64)
    columns: dict[str, list[np.ndarray]] = {name: [] for name in POPULATION_SCHEMA.names}

    def add(wallet: np.ndarray, venue: str, account: np.ndarray, asset: np.ndarray, kind: str,
            amount: np.ndarray, entry: np.ndarray | None = None) -> None:
        n = wallet.size
        columns["wallet"].append(wallet)
        columns["venue"].append(np.full(n, venue, dtype=object))
        columns["account"].append(account.astype(np.int64))
        columns["asset"].append(asset.astype(object))
        columns["kind"].append(np.full(n, kind, dtype=object))
        columns["amount"].append(amount.astype(np.float64))
        columns["entry_price"].append(np.full(n, np.nan) if entry is None else entry.astype(np.float64))

    majors = np.array(["BTC", "ETH"], dtype=object)
    perp_assets = np.array(["BTC", "ETH", "SOL"], dtype=object)
    price_of = np.vectorize(prices.__getitem__, otypes=[np.float64])

    # Aave v3: one or two collateral assets against a USDC debt, the debt set by a drawn health factor.
    aave = wallet_ids[rng.random(wallets) < 0.45]
    collateral_usd = rng.lognormal(np.log(20_000), 1.2, aave.size)
    health = 1.0 + rng.lognormal(np.log(0.6), 0.7, aave.size)
    collateral_asset = np.where(rng.random(aave.size) < 0.2, "WSTETH", majors[rng.integers(0, 2, aave.size)])
    threshold = np.where(collateral_asset == "BTC", 0.78, np.where(collateral_asset == "ETH", 0.83, 0.81))
    add(aave, "aave-v3", np.zeros(aave.size), collateral_asset, "supply", collateral_usd / price_of(collateral_asset))
    add(aave, "aave-v3", np.zeros(aave.size), np.full(aave.size, "USDC", dtype=object), "borrow",
        collateral_usd * threshold / health)

    def perps(venue: str, share: float, legs: int, isolated: bool) -> None:
        holders = wallet_ids[rng.random(wallets) < share]
        if holders.size == 0:
            return
        leg_wallet = np.repeat(holders, legs)
        asset = perp_assets[rng.integers(0, 3, leg_wallet.size)]
        notional = rng.lognormal(np.log(3_000), 1.0, leg_wallet.size)
        side = np.where(rng.random(leg_wallet.size) < long_share, 1.0, -1.0)
        price = price_of(asset)
        entry = price * rng.lognormal(0.0, 0.05, leg_wallet.size)
        leverage = np.clip(rng.lognormal(np.log(5.0), 0.8, leg_wallet.size), 1.0, 50.0)
        account = np.tile(np.arange(legs), holders.size) if isolated else np.zeros(leg_wallet.size)
        add(leg_wallet, venue, account, asset, "perp", side * notional / price, entry)
        margin = notional / leverage
        if isolated:  # each position carries its own collateral
            add(leg_wallet, venue, account, np.full(leg_wallet.size, "USDC", dtype=object), "cash", margin)
        else:  # one cross balance for the account
            cash = np.bincount(np.repeat(np.arange(holders.size), legs), weights=margin)
            add(holders, venue, np.zeros(holders.size), np.full(holders.size, "USDC", dtype=object), "cash", cash)

    perps("hyperliquid", 0.35, 40, isolated=False)
    perps("derive", 0.10, 20, isolated=False)
    perps("gmx-v2", 0.25, 60, isolated=True)

    merged = {name: np.concatenate(parts) if parts else np.array([]) for name, parts in columns.items()}
    order = np.lexsort((merged["account"], merged["venue"].astype(str), merged["wallet"]))
    table = pa.table(
        {name: pa.array(values[order], type=POPULATION_SCHEMA.field(name).type, from_pandas=True)
         for name, values in merged.items()},
        schema=POPULATION_SCHEMA,
    )
    return table


def write_synthetic_population(path: Path, wallets: int, seed: int, prices: dict[str, float],
                               block: int = 20_000, long_share: float = 0.6) -> int:
    """Write a synthetic population of `wallets` in blocks (bounded memory); returns the rows written."""
    rows = 0
    with pq.ParquetWriter(path, POPULATION_SCHEMA) as writer:
        for start in range(0, wallets, block):
            count = min(block, wallets - start)
            table = synthetic_population(count, seed, first_wallet=start, prices=prices, long_share=long_share)
            writer.write_table(table, row_group_size=max(table.num_rows, 1))  # whole wallets per group
            rows += table.num_rows
    return rows


@dataclass(frozen=True)
class PositionsPopulation:
    """Schema positions of many wallets as a population: the table (wallet i is `addresses[i]`) and what it left
    out, counted by `kind@venue` (options, futures, wallet tokens, uncollected LP fees: no venue rule reads them)."""

    table: pa.Table
    addresses: tuple[str, ...]
    skipped: dict[str, int]

    def wallet_table(self) -> pa.Table:
        """The wallet ids beside the addresses they stand for."""
        return pa.table({"wallet": pa.array(range(len(self.addresses)), pa.int64()),
                         "address": pa.array(self.addresses, pa.string())})


def population_from_positions(wallets: Mapping[str, Sequence[Position]], prices: Mapping[str, float]
                              ) -> PositionsPopulation:
    """The one conversion of schema positions (what the adapters read, the store keeps and the subgraph discovery
    builds) to population rows. Wallets are numbered in sorted address order. Per position:
    - Aave v3 lend / borrow: supply / borrow rows, one account per chain;
    - a perp on hyperliquid, derive or gmx-v2: a perp row (without an entry price, the current price); the venue's
      USDC / token balance (a spot position there) a cash row at its USD value; a GMX v2 position and its
      collateral (ids `...:N` and `...:N:collateral`) one account;
    - a Uniswap v3 range: two lp rows, the token amounts it holds at the current price (token1 per token0 =
      prices[token0] / prices[token1]), one account per range;
    - anything else is skipped and counted.
    Raises PopulationError naming an asset without a price."""

    def price(asset: str) -> float:
        value = prices.get(asset)
        if value is None or not np.isfinite(value) or value <= 0:
            raise PopulationError(f"population.asset: {asset!r} has no price to convert its position")
        return float(value)

    rows: list[tuple[int, str, str, str, str, float, float | None]] = []  # wallet, venue, account key, ...
    skipped: Counter[str] = Counter()
    addresses = tuple(sorted(wallets))
    for wallet, address in enumerate(addresses):
        for position in wallets[address]:
            venue = position.venue
            if venue == "aave-v3" and isinstance(position, LendPosition | BorrowPosition):
                kind = "supply" if isinstance(position, LendPosition) else "borrow"
                rows.append((wallet, venue, _account_key(position), position.asset, kind, position.quantity, None))
            elif venue in PERP_VENUES and isinstance(position, PerpPosition):
                entry = position.entry_price or price(position.underlying)
                rows.append((wallet, venue, _account_key(position), position.underlying, "perp", position.quantity,
                             entry))
            elif venue in PERP_VENUES and isinstance(position, SpotPosition):
                rows.append((wallet, venue, _account_key(position), "USDC", "cash",
                             position.quantity * price(position.asset), None))
            elif venue == "uniswap-v3" and isinstance(position, LPPosition):
                current = price(position.token0) / price(position.token1)
                amount0, amount1 = lp_amounts(position.liquidity, current, position.price_lower, position.price_upper)
                key = _account_key(position)
                rows.append((wallet, venue, key, position.token0, "lp", float(amount0), None))
                rows.append((wallet, venue, key, position.token1, "lp", float(amount1), None))
            else:
                skipped[f"{position.kind}@{venue}"] += 1
    # account ids: each wallet's (venue, key) pairs numbered in sorted order within the venue
    rows.sort(key=lambda row: (row[0], row[1], row[2], row[4], row[3]))
    account_of: dict[tuple[int, str, str], int] = {}
    counts: Counter[tuple[int, str]] = Counter()
    for wallet, venue, key, *_ in rows:
        if (wallet, venue, key) not in account_of:
            account_of[(wallet, venue, key)] = counts[(wallet, venue)]
            counts[(wallet, venue)] += 1
    table = pa.table(
        {
            "wallet": pa.array([r[0] for r in rows], pa.int64()),
            "venue": pa.array([r[1] for r in rows], pa.string()),
            "account": pa.array([account_of[(r[0], r[1], r[2])] for r in rows], pa.int64()),
            "asset": pa.array([r[3] for r in rows], pa.string()),
            "kind": pa.array([r[4] for r in rows], pa.string()),
            "amount": pa.array([r[5] for r in rows], pa.float64()),
            "entry_price": pa.array([r[6] for r in rows], pa.float64()),
        },
        schema=POPULATION_SCHEMA,
    )
    return PositionsPopulation(validate_population(table), addresses, dict(sorted(skipped.items())))


def _account_key(position: Position) -> str:
    """What makes one venue account: the chain and account, and for GMX v2 and Uniswap v3 the position itself
    (its id, less the `:collateral` / `:fees:...` suffixes the adapters add to its companions)."""
    if position.venue in ("gmx-v2", "uniswap-v3") and position.id:
        return f"{position.chain}:{position.id.split(':collateral')[0]}"
    return f"{position.chain}:{position.account}"
