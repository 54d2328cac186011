"""Liquidation cascades to a fixed point: shock, liquidate, sell, move prices, liquidate again.

Each asset's market (its Uniswap v3 pools read, else its depth curve: research.contagion.depth) is the liquidity
as it stood before the shock; the shock moves the price along it (as arbitrage would), and the liquidations' sales
move it further along the same market.

The loop runs on the client; the partitions live wherever the runner keeps them (in this process, or on Dask
workers). Each round the client prices what every partition needs once (RoundInputs), the runner applies one
round of the venues' rules to every partition, and the client adds the partitions' totals in partition order (the
same sum whatever runs them) and moves each asset along its market by the cumulative net flow.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import pyarrow as pa

from research.contagion.accounts import (
    AssetIndex,
    Partition,
    RoundInputs,
    RoundTotals,
    derive_requirements,
    liquidate_round,
)
from research.contagion.depth import MarketDepth, market_depth
from research.contagion.params import CascadeParams
from research.contagion.population import VENUES, partition_count, read_partition, validate_population
from risk_core.schema.market import UniswapV3Pool


class PartitionRunner(Protocol):
    """Holds a population's partitions and applies one round to all of them."""

    def run_round(self, inputs: RoundInputs) -> list[RoundTotals]: ...


@dataclass(frozen=True)
class RoundResult:
    round: int
    prices: dict[str, float]  # at which this round's liquidations happened
    liquidated_usd: float
    liquidated_usd_by_venue: dict[str, float]
    liquidated_usd_by_venue_asset: dict[str, dict[str, float]]
    sold_by_asset: dict[str, float]  # net units sold into each market (bought < 0)
    accounts_liquidated: dict[str, int]
    accounts_first_liquidated: dict[str, int]  # liquidated for the first time in this round
    bad_debt_usd_by_venue: dict[str, float]


@dataclass(frozen=True)
class ContagionEdge:
    source: str  # "shock", or the venue whose liquidation sales moved the prices
    target: str  # the venue whose accounts those moves pushed under
    round: int
    value_usd: float


@dataclass(frozen=True)
class CascadeResult:
    shock: dict[str, float]
    initial_prices: dict[str, float]
    final_prices: dict[str, float]
    rounds: int  # rounds with liquidations before the fixed point
    reached_fixed_point: bool
    per_round: list[RoundResult]
    bad_debt_usd_by_venue: dict[str, float]
    contagion: list[ContagionEdge] = field(default_factory=list)
    params_version: str = ""
    params_sha256: str = ""
    depth_source: dict[str, str] = field(default_factory=dict)  # per asset: "depth curve" or the pools read

    @property
    def liquidated_usd(self) -> float:
        return math.fsum(r.liquidated_usd for r in self.per_round)

    @property
    def accounts_liquidated(self) -> int:
        """Distinct accounts liquidated at least once."""
        return sum(sum(r.accounts_first_liquidated.values()) for r in self.per_round)

    @property
    def liquidated_usd_by_venue(self) -> dict[str, float]:
        return {v: math.fsum(r.liquidated_usd_by_venue[v] for r in self.per_round) for v in VENUES}


class ShockError(ValueError):
    """A shock that names an asset without a price, or a move that is not finite or at -100% or below."""


def shocked_prices(prices: dict[str, float], shock: dict[str, float]) -> dict[str, float]:
    """Prices after the exogenous shock; an unknown asset in the shock is an error naming it."""
    for asset, move in shock.items():
        if asset not in prices:
            raise ShockError(f"shock.{asset}: no price for {asset} in the market")
        if not (move > -1.0 and math.isfinite(move)):
            raise ShockError(f"shock.{asset}: a move must be finite and above -100%, got {move}")
    moved = {asset: price * (1.0 + shock.get(asset, 0.0)) for asset, price in prices.items()}
    # a tracked token moves with what it tracks (wstETH with ETH) unless shocked itself
    if "WSTETH" in moved and "WSTETH" not in shock and "ETH" in shock:
        moved["WSTETH"] = prices["WSTETH"] * (1.0 + shock["ETH"])
    return moved


def run_cascade(
    runner: PartitionRunner,
    assets: AssetIndex,
    prices: dict[str, float],
    shock: dict[str, float],
    params: CascadeParams,
    *,
    max_rounds: int = 20,
    price_impact: bool = True,
    on_round: Callable[[RoundResult], None] | None = None,
    pools: Sequence[UniswapV3Pool] = (),
) -> CascadeResult:
    """`pools`: Uniswap v3 pools read (the market snapshot's); an asset with any is priced through them, the
    others through the parameter file's depth curves."""
    start = shocked_prices(prices, shock)
    curves: dict[int, MarketDepth] = {}
    sources: dict[str, str] = {}
    if price_impact:
        for code, name in enumerate(assets.names):
            depth = market_depth(params, name, prices[name], pools)
            if depth is not None:
                # the shock moves the market along its own depth, as arbitrage would
                curves[code] = depth.shocked(start[name] / prices[name])
                sources[name] = depth.source
    aave_threshold, aave_bonus, max_leverage = _venue_tables(assets, params)
    perp_codes = np.array([assets.names.index(a) for a in ("BTC", "ETH", "SOL") if a in assets.names], np.intp)
    pm2 = params.pm2_parameters()

    current = np.array([start[name] for name in assets.names], dtype=np.float64)
    cumulative_sold = np.zeros(len(assets.names))
    per_round: list[RoundResult] = []
    edges: list[ContagionEdge] = []
    previous_sold_usd_by_venue: np.ndarray | None = None
    bad_debt = np.zeros(len(VENUES))
    reached = False
    for round_index in range(max_rounds):
        inputs = RoundInputs(
            prices=current,
            derive_unit_balance=derive_requirements(current, assets, perp_codes, pm2),
            aave_threshold=aave_threshold,
            aave_bonus=aave_bonus,
            hyperliquid_max_leverage=max_leverage,
            params=params,
        )
        partials = runner.run_round(inputs)
        totals = RoundTotals.zero(len(assets.names))
        for partial in partials:
            totals = totals + partial
        if int(totals.accounts_liquidated.sum()) == 0:
            reached = True
            break
        bad_debt += totals.bad_debt_usd
        result = _round_result(round_index, assets, current, totals)
        per_round.append(result)
        edges.extend(_edges(round_index, result, previous_sold_usd_by_venue))
        if on_round is not None:
            on_round(result)
        sold_usd_by_venue = np.maximum(totals.sold_units, 0.0) @ current
        previous_sold_usd_by_venue = sold_usd_by_venue
        cumulative_sold += totals.sold_units.sum(axis=0)
        current = current.copy()
        for code, curve in curves.items():
            current[code] = curve.price_after(start[assets.names[code]], float(cumulative_sold[code]))
    return CascadeResult(
        shock=dict(shock),
        initial_prices=dict(prices),
        final_prices={name: float(current[code]) for code, name in enumerate(assets.names)},
        rounds=len(per_round),
        reached_fixed_point=reached,
        per_round=per_round,
        bad_debt_usd_by_venue={v: float(bad_debt[i]) for i, v in enumerate(VENUES)},
        contagion=edges,
        params_version=params.version,
        params_sha256=params.digest(),
        depth_source=sources,
    )


def _venue_tables(assets: AssetIndex, params: CascadeParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    reserves = params.aave.reserves
    threshold = np.array([reserves[a].liquidation_threshold if a in reserves else 0.0 for a in assets.names])
    bonus = np.array([reserves[a].liquidation_bonus if a in reserves else 0.0 for a in assets.names])
    leverage = np.array([float(params.hyperliquid.max_leverage.get(a, math.inf)) for a in assets.names])
    return threshold, bonus, leverage


def _round_result(index: int, assets: AssetIndex, prices: np.ndarray, totals: RoundTotals) -> RoundResult:
    names = assets.names
    return RoundResult(
        round=index,
        prices={name: float(prices[code]) for code, name in enumerate(names)},
        liquidated_usd=float(totals.liquidated_usd.sum()),
        liquidated_usd_by_venue={v: float(totals.liquidated_usd[i].sum()) for i, v in enumerate(VENUES)},
        liquidated_usd_by_venue_asset={
            v: {name: float(totals.liquidated_usd[i, c]) for c, name in enumerate(names) if totals.liquidated_usd[i, c]}
            for i, v in enumerate(VENUES)
        },
        sold_by_asset={name: float(totals.sold_units[:, c].sum()) for c, name in enumerate(names)},
        accounts_liquidated={v: int(totals.accounts_liquidated[i]) for i, v in enumerate(VENUES)},
        accounts_first_liquidated={v: int(totals.accounts_first_liquidated[i]) for i, v in enumerate(VENUES)},
        bad_debt_usd_by_venue={v: float(totals.bad_debt_usd[i]) for i, v in enumerate(VENUES)},
    )


def _edges(index: int, result: RoundResult, sold_usd_by_venue: np.ndarray | None) -> list[ContagionEdge]:
    """Round 0's liquidations come from the shock; a later round's from the previous round's sales, shared among
    the venues in proportion to the USD each sold."""
    targets = [(v, value) for v, value in result.liquidated_usd_by_venue.items() if value > 0]
    if sold_usd_by_venue is None:
        return [ContagionEdge("shock", v, index, value) for v, value in targets]
    total = float(sold_usd_by_venue.sum())
    if total <= 0:
        return []
    return [
        ContagionEdge(source, target, index, value * float(sold_usd_by_venue[i]) / total)
        for i, source in enumerate(VENUES)
        if sold_usd_by_venue[i] > 0
        for target, value in targets
    ]


@dataclass
class InProcessRunner:
    """Partitions kept in this process (`--workers 0`), rounds applied in order."""

    partitions: list[Partition]

    @classmethod
    def from_file(cls, path: Path, assets: AssetIndex) -> InProcessRunner:
        return cls([Partition.from_table(read_partition(path, i), assets) for i in range(partition_count(path))])

    @classmethod
    def from_table(cls, table: pa.Table, assets: AssetIndex) -> InProcessRunner:
        return cls([Partition.from_table(validate_population(table), assets)])

    def run_round(self, inputs: RoundInputs) -> list[RoundTotals]:
        results = [liquidate_round(part, inputs) for part in self.partitions]
        self.partitions = [part for part, _ in results]
        return [totals for _, totals in results]


def sweep(
    make_runner: Callable[[], PartitionRunner],
    assets: AssetIndex,
    prices: dict[str, float],
    shocks: Sequence[dict[str, float]],
    params: CascadeParams,
    *,
    max_rounds: int = 20,
    price_impact: bool = True,
    pools: Sequence[UniswapV3Pool] = (),
) -> list[CascadeResult]:
    """One cascade per shock, each on a fresh copy of the population."""
    return [
        run_cascade(make_runner(), assets, prices, shock, params, max_rounds=max_rounds, price_impact=price_impact,
                    pools=pools)
        for shock in shocks
    ]
