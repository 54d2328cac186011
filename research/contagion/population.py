"""Wallet populations: a Parquet table, one row per position, and the synthetic generator.

Columns (POPULATION_SCHEMA):
- wallet (int64): the wallet's id;
- venue (string): aave-v3 | hyperliquid | derive | gmx-v2;
- account (int64): the account inside the wallet's venue (a GMX v2 position is an account of its own; 0 elsewhere);
- asset (string): BTC, ETH, SOL, WSTETH, USDC...;
- kind (string): supply | borrow (Aave, units >= 0), perp (signed units, short < 0), cash (USD margin balance);
- amount (float64): units of the asset, or USD for cash;
- entry_price (float64, null unless perp): the perp's entry price.
Rows of one wallet are contiguous; partitions split between wallets, so no account straddles two.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

VENUES: tuple[str, ...] = ("aave-v3", "hyperliquid", "derive", "gmx-v2")
KINDS: tuple[str, ...] = ("supply", "borrow", "perp", "cash")
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
    loans = pc.is_in(kind, value_set=pa.array(["supply", "borrow"]))
    if pc.any(pc.and_(loans, pc.less(amount, 0.0))).as_py():
        raise PopulationError("population.amount: supply and borrow amounts are units >= 0")
    perp_entry = pc.filter(table.column("entry_price"), pc.equal(kind, "perp"))
    if perp_entry.null_count or not pc.all(pc.and_(pc.is_finite(perp_entry), pc.greater(perp_entry, 0.0))).as_py():
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
