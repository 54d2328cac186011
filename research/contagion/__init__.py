"""Cross-venue liquidation cascades over wallet populations (one process, a LocalCluster or a Dask scheduler).

    from research.contagion import simulate
    result = simulate(Path("pop.parquet"), {"BTC": 93_640.0, "ETH": 3_220.0, ...}, {"BTC": -0.3}, workers=2)
    result.rounds, result.liquidated_usd_by_venue, result.final_prices
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from research.contagion.accounts import AssetIndex
from research.contagion.cascade import CascadeResult, InProcessRunner, RoundResult, run_cascade
from research.contagion.params import CascadeParams, load_cascade_params
from risk_core.schema.market import UniswapV3Pool

__all__ = ["CascadeResult", "simulate"]


def simulate(
    population: Path,
    prices: dict[str, float],
    shock: dict[str, float],
    *,
    workers: int = 0,
    scheduler: str | None = None,
    params: CascadeParams | None = None,
    max_rounds: int = 20,
    price_impact: bool = True,
    on_round: Callable[[RoundResult], None] | None = None,
    pools: Sequence[UniswapV3Pool] = (),
) -> CascadeResult:
    """A cascade of the population file under `shock` (relative moves by asset). `workers=0` and no scheduler run
    in this process; otherwise on Dask (a LocalCluster of `workers` processes, or the scheduler's cluster).
    `pools`: Uniswap v3 pools read (a market snapshot's `pools`): their assets' impact comes from them."""
    params = params or load_cascade_params()
    assets = AssetIndex(tuple(sorted(prices)))
    if workers == 0 and scheduler is None:
        return run_cascade(InProcessRunner.from_file(population, assets), assets, prices, shock, params,
                           max_rounds=max_rounds, price_impact=price_impact, on_round=on_round, pools=pools)
    from research.contagion.dask_runner import DaskRunner, connect  # Dask only when asked for

    with connect(scheduler, workers) as client:
        runner = DaskRunner.from_file(client, population, assets)
        return run_cascade(runner, assets, prices, shock, params, max_rounds=max_rounds, price_impact=price_impact,
                           on_round=on_round, pools=pools)
