"""`metarisk pools` reads the devnet's Uniswap v3 pool into a market file, and `metarisk cascade --market` then prices
ETH through that pool (its depth source named in the summary), the liquidations' sale moving the price exactly as
the pool's own swap from the shocked price; a pool that is not one exits 2 naming the argument."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from api.cli import main
from devnet.run import RunningDevnet
from research.contagion.population import POPULATION_SCHEMA
from risk_core.pricing.pool_impact import asset_pool, route
from risk_core.schema.market import MarketSnapshot

SPOT = {"BTC": 60_000.0, "ETH": 3_000.0, "USDC": 1.0}


def test_pools_into_a_market_then_a_cascade_through_them(devnet: RunningDevnet, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    chains = tmp_path / "chains.yaml"
    devnet.write_chains_file(chains)
    seeded = devnet.manifest.chain("ethereum").seeds.lp
    assert seeded is not None
    market_in, market_out = tmp_path / "market.json", tmp_path / "market-pools.json"
    market_in.write_text(json.dumps({"as_of": "2026-12-05T00:00:00Z", "spot": SPOT}))
    assert main(["pools", "--chains", str(chains), "--chain", "ethereum", "--pool", seeded.pool, "--market",
                 str(market_in), "--out", str(market_out), "--words-each-side", "80"]) == 0
    market = MarketSnapshot.model_validate_json(market_out.read_text())
    [pool] = market.pools
    assert (pool.asset, pool.quote, pool.fee, pool.source, pool.chain) == ("ETH", "USDC", 3000, "onchain", "ethereum")
    assert len(pool.ticks) == 4  # the wide background range and the demo range

    rows = [(0, "hyperliquid", 0, "ETH", "perp", 20.0, 3_000.0), (0, "hyperliquid", 0, "USDC", "cash", 5_000.0, None)]
    population = tmp_path / "pop.parquet"
    columns = list(zip(*rows, strict=True))
    pq.write_table(pa.table({n: list(v) for n, v in zip(POPULATION_SCHEMA.names, columns, strict=True)},
                            schema=POPULATION_SCHEMA), population)
    out = tmp_path / "run"
    capsys.readouterr()
    assert main(["cascade", str(population), "--market", str(market_out), "--shock", "ETH=-0.2", "--workers", "0",
                 "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["depth_source"]["ETH"].startswith(f"uniswap-v3 onchain ethereum {seeded.pool.lower()}")
    assert f"@ block {pool.block}" in summary["depth_source"]["ETH"]
    # the pool moved to 80% of its price by arbitrage, then the closed long's 20 ETH sold into it
    read = asset_pool(pool)
    _, shocked = read.moved_to(read.price() * 0.8)
    _, end, _ = route((shocked,), 20.0)
    assert summary["final_prices"]["ETH"] == pytest.approx(2_400.0 * end / shocked.price(), rel=1e-12)
    assert summary["final_prices"]["ETH"] < 2_400.0


def test_an_address_that_is_not_a_pool_exits_2(devnet: RunningDevnet, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    chains = tmp_path / "chains.yaml"
    devnet.write_chains_file(chains)
    market_in = tmp_path / "market.json"
    market_in.write_text(json.dumps({"as_of": "2026-12-05T00:00:00Z", "spot": SPOT}))
    not_a_pool = devnet.manifest.chain("ethereum").config.tokens[0].address
    with pytest.raises(SystemExit) as exit_:
        main(["pools", "--chains", str(chains), "--chain", "ethereum", "--pool", not_a_pool, "--market",
              str(market_in), "--out", str(tmp_path / "out.json")])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.startswith("error: --pool: ")
