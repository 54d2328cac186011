"""Schema positions to population rows (the one conversion the store, subgraph and devnet populations share): every
row restated by hand, LP amounts from the whitepaper's formulas, and the cascade unmoved by the lp rows it ignores."""

from __future__ import annotations

import math

import pyarrow as pa
import pytest

from research.contagion.accounts import AssetIndex
from research.contagion.cascade import InProcessRunner, run_cascade
from research.contagion.params import load_cascade_params
from research.contagion.population import PopulationError, population_from_positions, validate_population
from risk_core.schema.positions import PositionAdapter

PRICES = {"ETH": 3_000.0, "BTC": 60_000.0, "USDC": 1.0}


def positions(*documents: dict) -> list:
    return [PositionAdapter.validate_python(d) for d in documents]


ALICE = positions(
    {"kind": "lend", "venue": "aave-v3", "chain": "ethereum", "account": "0xa", "asset": "ETH", "quantity": 10},
    {"kind": "borrow", "venue": "aave-v3", "chain": "ethereum", "account": "0xa", "asset": "USDC", "quantity": 12_000},
    {"kind": "lend", "venue": "aave-v3", "chain": "arbitrum", "account": "0xa", "asset": "BTC", "quantity": 0.5},
    {"kind": "perp", "venue": "hyperliquid", "chain": "hyperliquid", "account": "0xa", "underlying": "ETH",
     "quantity": -5, "entry_price": 3_100},
    {"kind": "spot", "venue": "hyperliquid", "chain": "hyperliquid", "account": "0xa", "asset": "USDC",
     "quantity": 4_000},
    {"kind": "lp", "id": "uniswap-v3:ethereum:7", "venue": "uniswap-v3", "chain": "ethereum", "account": "0xa",
     "token0": "ETH", "token1": "USDC", "liquidity": 1_500, "price_lower": 2_700, "price_upper": 3_300},
    {"kind": "spot", "id": "uniswap-v3:ethereum:7:fees:USDC", "venue": "uniswap-v3", "chain": "ethereum",
     "account": "0xa", "asset": "USDC", "quantity": 3},
    {"kind": "spot", "venue": "wallet", "chain": "ethereum", "account": "0xa", "asset": "ETH", "quantity": 1},
)
BOB = positions(
    {"kind": "perp", "id": "gmx-v2:arbitrum:1", "venue": "gmx-v2", "chain": "arbitrum", "account": "0xb",
     "underlying": "BTC", "quantity": -0.05},
    {"kind": "spot", "id": "gmx-v2:arbitrum:1:collateral", "venue": "gmx-v2", "chain": "arbitrum", "account": "0xb",
     "asset": "ETH", "quantity": 0.5},
    {"kind": "perp", "id": "gmx-v2:arbitrum:0", "venue": "gmx-v2", "chain": "arbitrum", "account": "0xb",
     "underlying": "ETH", "quantity": 1.5, "entry_price": 2_900},
    {"kind": "spot", "id": "gmx-v2:arbitrum:0:collateral", "venue": "gmx-v2", "chain": "arbitrum", "account": "0xb",
     "asset": "USDC", "quantity": 1_000},
    {"kind": "option", "venue": "deribit", "chain": "offchain", "account": "sub", "underlying": "BTC", "quantity": 1,
     "option_type": "put", "strike": 85_000, "expiry": "2026-12-25T08:00:00Z"},
)


def test_every_row_by_hand() -> None:
    built = population_from_positions({"0xb": BOB, "0xa": ALICE}, PRICES)
    # the range's amounts at 3,000 USDC per ETH (whitepaper 6.29-6.30)
    lp_eth = 1_500 * (1 / math.sqrt(3_000) - 1 / math.sqrt(3_300))
    lp_usdc = 1_500 * (math.sqrt(3_000) - math.sqrt(2_700))
    expected = [
        # wallet 0 is 0xa (sorted addresses); its Aave accounts are one per chain, arbitrum before ethereum
        (0, "aave-v3", 0, "BTC", "supply", 0.5, None),
        (0, "aave-v3", 1, "USDC", "borrow", 12_000.0, None),
        (0, "aave-v3", 1, "ETH", "supply", 10.0, None),
        (0, "hyperliquid", 0, "USDC", "cash", 4_000.0, None),
        (0, "hyperliquid", 0, "ETH", "perp", -5.0, 3_100.0),
        (0, "uniswap-v3", 0, "ETH", "lp", lp_eth, None),
        (0, "uniswap-v3", 0, "USDC", "lp", lp_usdc, None),
        # each GMX position is an account with its collateral (ETH collateral at 3,000 USD); no entry: the price
        (1, "gmx-v2", 0, "USDC", "cash", 1_000.0, None),
        (1, "gmx-v2", 0, "ETH", "perp", 1.5, 2_900.0),
        (1, "gmx-v2", 1, "USDC", "cash", 1_500.0, None),
        (1, "gmx-v2", 1, "BTC", "perp", -0.05, 60_000.0),
    ]
    rows = [tuple(r.values()) for r in built.table.to_pylist()]
    assert [r[:5] for r in rows] == [e[:5] for e in expected]
    assert [r[5] for r in rows] == pytest.approx([e[5] for e in expected], rel=1e-12)
    assert [r[6] for r in rows] == [e[6] for e in expected]
    assert built.addresses == ("0xa", "0xb")
    assert built.wallet_table().to_pylist() == [{"wallet": 0, "address": "0xa"}, {"wallet": 1, "address": "0xb"}]
    assert built.skipped == {"option@deribit": 1, "spot@uniswap-v3": 1, "spot@wallet": 1}


def test_an_asset_without_a_price_is_named() -> None:
    with pytest.raises(PopulationError, match="'BTC' has no price"):
        population_from_positions({"0xb": BOB}, {"ETH": 3_000.0, "USDC": 1.0})


def test_negative_lp_amounts_are_refused() -> None:
    table = population_from_positions({"0xa": ALICE}, PRICES).table
    amounts = [-1.0 if kind == "lp" else a for kind, a in zip(table["kind"].to_pylist(), table["amount"].to_pylist(),
                                                                 strict=True)]
    with pytest.raises(PopulationError, match="population.amount"):
        validate_population(table.set_column(table.schema.get_field_index("amount"), "amount",
                                             pa.array(amounts, pa.float64())))


def test_the_cascade_ignores_lp_rows() -> None:
    """LPs are not levered: a population with its ranges gives the cascade it gives without them."""
    with_ranges = population_from_positions({"0xa": ALICE, "0xb": BOB}, PRICES).table
    without = with_ranges.filter(pa.compute.not_equal(with_ranges["kind"], "lp"))
    assets = AssetIndex(tuple(sorted(PRICES)))
    params = load_cascade_params()
    shock = {"ETH": -0.45, "BTC": -0.4}
    ours, theirs = (run_cascade(InProcessRunner.from_table(t, assets), assets, PRICES, shock, params)
                    for t in (with_ranges, without))
    assert ours.liquidated_usd > 0  # the shock does liquidate: the comparison is not of two empty cascades
    assert ours.liquidated_usd_by_venue == theirs.liquidated_usd_by_venue
    assert ours.final_prices == theirs.final_prices
    assert ours.liquidated_usd_by_venue["uniswap-v3"] == 0.0
