"""Properties of cascades on a seeded synthetic population, and the same figures on Dask as in one process."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from research.contagion import simulate
from research.contagion.accounts import AssetIndex
from research.contagion.cascade import InProcessRunner, run_cascade
from research.contagion.params import load_cascade_params
from research.contagion.population import PopulationError, partition_count, write_synthetic_population

PRICES = {"BTC": 93_640.0, "ETH": 3_220.0, "SOL": 190.0, "WSTETH": 3_900.0, "USDC": 1.0}
ASSETS = AssetIndex(tuple(sorted(PRICES)))


@pytest.fixture(scope="module")
def population(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("population") / "pop.parquet"
    write_synthetic_population(path, wallets=3_000, seed=11, prices=PRICES, block=1_000)
    return path


@pytest.fixture(scope="module")
def long_only(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every liquidation sells into the falling market: the monotone case. (With shorts, a liquidated cross account
    buys back its shorts and lifts that market, which can spare accounts a smaller shock would have reached.)"""
    path = tmp_path_factory.mktemp("population") / "long.parquet"
    write_synthetic_population(path, wallets=3_000, seed=12, prices=PRICES, block=1_000, long_share=1.0)
    return path


def cascade(path: Path, shock: dict[str, float], depth_factor: float = 1.0, **options: object):
    params = load_cascade_params().with_depth_scaled(depth_factor * 1e-3)  # thin pools: rounds that matter
    return run_cascade(InProcessRunner.from_file(path, ASSETS), ASSETS, PRICES, shock, params, **options)  # type: ignore[arg-type]


def test_the_population_is_wallet_aligned_row_groups(population: Path) -> None:
    assert partition_count(population) == 3
    wallets = pq.read_table(population, columns=["wallet"]).column("wallet").to_numpy()
    assert wallets.min() == 0 and wallets.max() <= 2_999


def test_a_larger_shock_never_liquidates_less(long_only: Path) -> None:
    results = [cascade(long_only, {"BTC": -move, "ETH": -move}) for move in (0.05, 0.1, 0.2, 0.3, 0.4, 0.5)]
    counts = [r.accounts_liquidated for r in results]
    assert counts == sorted(counts) and counts[0] < counts[-1]
    finals = [r.final_prices["ETH"] for r in results]
    assert finals == sorted(finals, reverse=True)


def test_deeper_pools_never_liquidate_more_nor_push_prices_further(long_only: Path) -> None:
    """On this seeded long-only population. Proved (docs/contagion.md, "Deeper pools and rounds") only for whole-
    account closes; Aave's close factor can break it (test_cascade_depth_rounds.py has the counterexample), so for
    a population with Aave loans this is a check of one population, not of a theorem."""
    results = [cascade(long_only, {"BTC": -0.25, "ETH": -0.25}, factor) for factor in (0.5, 1, 4, 16, 1e12)]
    counts = [r.accounts_liquidated for r in results]
    assert counts == sorted(counts, reverse=True)
    finals = [r.final_prices["BTC"] for r in results]
    assert finals == sorted(finals)
    rounds = [r.rounds for r in results]
    # with depth enough that no sale moves a price past another account's line, one round is all there is
    assert rounds[-1] == 1 and rounds[0] >= rounds[-1]


def test_without_impact_one_round(population: Path) -> None:
    assert cascade(population, {"BTC": -0.3, "ETH": -0.3}, price_impact=False).rounds == 1


def test_scaling_every_position_keeps_who_is_liquidated(tmp_path: Path, population: Path) -> None:
    """Liquidation rules are ratios (HF, margin fractions): doubling every amount, cash included, liquidates the
    same accounts at the same prices when there is no impact."""
    table = pq.read_table(population)
    doubled = table.set_column(table.schema.get_field_index("amount"), "amount",
                               pa.array(table.column("amount").to_numpy() * 2.0))
    path = tmp_path / "doubled.parquet"
    pq.write_table(doubled, path, row_group_size=doubled.num_rows)
    base = cascade(population, {"BTC": -0.3, "ETH": -0.3}, price_impact=False)
    scaled = cascade(path, {"BTC": -0.3, "ETH": -0.3}, price_impact=False)
    assert scaled.per_round[0].accounts_liquidated == base.per_round[0].accounts_liquidated
    assert scaled.liquidated_usd == pytest.approx(2 * base.liquidated_usd, rel=1e-9)


def test_a_local_cluster_of_two_workers_gives_the_single_process_figures(population: Path) -> None:
    shock = {"BTC": -0.3, "ETH": -0.35}
    params = load_cascade_params().with_depth_scaled(1e-3)
    alone = simulate(population, PRICES, shock, workers=0, params=params)
    on_dask = simulate(population, PRICES, shock, workers=2, params=params)
    assert alone.rounds == on_dask.rounds >= 2
    assert on_dask.final_prices == pytest.approx(alone.final_prices, rel=1e-9)
    for mine, theirs in zip(alone.per_round, on_dask.per_round, strict=True):
        assert theirs.liquidated_usd_by_venue == pytest.approx(mine.liquidated_usd_by_venue, rel=1e-9)
        assert theirs.accounts_liquidated == mine.accounts_liquidated
    assert on_dask.bad_debt_usd_by_venue == pytest.approx(alone.bad_debt_usd_by_venue, rel=1e-9)


def test_a_wallet_split_across_row_groups_is_refused_naming_the_column(tmp_path: Path, population: Path) -> None:
    table = pq.read_table(population)
    path = tmp_path / "split.parquet"
    pq.write_table(table, path, row_group_size=7)  # cuts through wallets
    with pytest.raises(PopulationError, match=r"population\.wallet"):
        partition_count(path)
