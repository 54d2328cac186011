"""Every read the adapters and the Chainlink oracle send exists, with the same inputs and outputs, in the real
protocol's ABI (reference_data/interfaces): a signature or output type typo would otherwise show on chain."""

from __future__ import annotations

from typing import Any

import pytest
from support.devnet_fixtures import load_abi

from adapters.aave_v3 import decoding as aave
from adapters.gmx_v2 import adapter as gmx
from adapters.uniswap_v3 import adapter as uniswap
from adapters.uniswap_v3.maths import MAX_TICK, MIN_TICK, compute_sqrt_ratio_at_tick
from chains.multicall import split_types
from oracles import chainlink


def canonical(entry: dict[str, Any]) -> str:
    if entry["type"].startswith("tuple"):
        return "(" + ",".join(canonical(c) for c in entry["components"]) + ")" + entry["type"][len("tuple") :]
    return str(entry["type"])


def abi_reads(relative: str) -> set[tuple[str, tuple[str, ...]]]:
    return {
        (
            f"{entry['name']}({','.join(canonical(i) for i in entry['inputs'])})",
            tuple(canonical(o) for o in entry["outputs"]),
        )
        for entry in load_abi(relative)
        if entry.get("type") == "function"
    }


READS = [
    ("aave-v3/Pool.abi.json", aave.GET_RESERVES_LIST),
    ("aave-v3/Pool.abi.json", aave.GET_USER_EMODE),
    ("aave-v3/Pool.abi.json", aave.GET_USER_ACCOUNT_DATA),
    ("aave-v3/Pool.abi.json", aave.GET_EMODE_CATEGORY_DATA),
    ("aave-v3/AaveProtocolDataProvider.abi.json", aave.GET_USER_RESERVE_DATA),
    ("aave-v3/AaveProtocolDataProvider.abi.json", aave.GET_RESERVE_CONFIGURATION_DATA),
    ("aave-v3/AaveProtocolDataProvider.abi.json", aave.GET_RESERVE_EMODE_CATEGORY),
    ("aave-v3/AaveOracle.abi.json", aave.GET_ASSET_PRICE),
    ("aave-v3/AaveOracle.abi.json", aave.BASE_CURRENCY_UNIT),
    ("uniswap-v3/NonfungiblePositionManager.abi.json", uniswap.BALANCE_OF),
    ("uniswap-v3/NonfungiblePositionManager.abi.json", uniswap.TOKEN_OF_OWNER_BY_INDEX),
    ("uniswap-v3/NonfungiblePositionManager.abi.json", uniswap.POSITIONS),
    ("uniswap-v3/UniswapV3Pool.abi.json", uniswap.SLOT0),
    ("uniswap-v3/UniswapV3Pool.abi.json", uniswap.FEE_GROWTH_GLOBAL0),
    ("uniswap-v3/UniswapV3Pool.abi.json", uniswap.FEE_GROWTH_GLOBAL1),
    ("uniswap-v3/UniswapV3Pool.abi.json", uniswap.TICKS),
    ("gmx-v2/Reader.abi.json", gmx.GET_ACCOUNT_POSITIONS),
    ("gmx-v2/Reader.abi.json", gmx.GET_MARKET),
    ("chainlink/AggregatorV3Interface.json", chainlink.LATEST_ROUND_DATA),
    ("chainlink/AggregatorV3Interface.json", chainlink.DECIMALS),
]


@pytest.mark.parametrize(("abi", "read"), READS, ids=[f"{abi}:{read[0]}" for abi, read in READS])
def test_read_is_in_the_real_abi(abi: str, read: tuple[str, tuple[str, ...]]) -> None:
    assert read in abi_reads(abi)


def test_split_types_keeps_tuples_whole() -> None:
    assert split_types("address,(uint256,(bool,bytes)),uint8[]") == ["address", "(uint256,(bool,bytes))", "uint8[]"]
    assert split_types("") == []


def test_sqrt_ratio_at_tick_matches_tickmath_constants() -> None:
    # TickMath.MIN_SQRT_RATIO / MAX_SQRT_RATIO and the 1:1 price.
    assert compute_sqrt_ratio_at_tick(MIN_TICK) == 4295128739
    assert compute_sqrt_ratio_at_tick(MAX_TICK) == 1461446703485210103287273052203988822378723970342
    assert compute_sqrt_ratio_at_tick(0) == 2**96
    with pytest.raises(ValueError):
        compute_sqrt_ratio_at_tick(MAX_TICK + 1)
