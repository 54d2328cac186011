"""The on-chain Pyth read (getPriceNoOlderThan) against MockPyth on the devnet, and its staleness revert."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from web3 import Web3

import reference_data
from chains.client import ChainClient
from devnet.deploy import PYTH_EXPO, PYTH_PRICE_IDS, compile_abi
from devnet.run import RunningDevnet
from oracles.pyth_onchain import GET_PRICE_NO_OLDER_THAN_ABI, fetch_pyth_onchain_observations
from venue_http import SourceError


def test_the_embedded_abi_is_ipyths() -> None:
    data = json.loads(reference_data.path("interfaces", "pyth", "IPyth.json").read_text())
    abi = data if isinstance(data, list) else data["abi"]
    assert [f for f in abi if f.get("name") == "getPriceNoOlderThan"] == GET_PRICE_NO_OLDER_THAN_ABI


def _chain_with_pyth(devnet: RunningDevnet) -> str:
    return next(c.config.name for c in devnet.manifest.chains if c.config.pyth is not None)


async def test_reads_mockpyth_prices_at_a_pinned_block(devnet: RunningDevnet, clients: dict[str, ChainClient],
                                                       web3s: dict[str, Web3]) -> None:
    name = _chain_with_pyth(devnet)
    w3 = web3s[name]
    config = devnet.manifest.chain(name).config.pyth
    assert config is not None
    pyth = w3.eth.contract(address=Web3.to_checksum_address(config.address), abi=compile_abi("MockPyth"))
    block = w3.eth.block_number
    expected = {a: pyth.functions.getPriceUnsafe(bytes.fromhex(PYTH_PRICE_IDS[a][2:])).call(block_identifier=block)
                for a in ("ETH", "BTC")}
    obs = await fetch_pyth_onchain_observations(clients[name], assets=["ETH", "BTC", "SOL"], max_age_s=3600,
                                                block=block)
    by_asset = {o.asset: o for o in obs}
    assert set(by_asset) == {"ETH", "BTC"}  # SOL has no feed on the devnet: not read, not invented
    for asset, (price, conf, expo, publish) in expected.items():
        o = by_asset[asset]
        assert expo == PYTH_EXPO
        assert o.price == price * 10.0**expo and o.confidence == conf * 10.0**expo
        assert o.published_at == datetime.fromtimestamp(publish, tz=UTC) and o.raw["block"] == str(block)


async def test_a_price_older_than_the_age_is_a_stale_source(devnet: RunningDevnet, clients: dict[str, ChainClient],
                                                            restore_chains: None) -> None:
    name = _chain_with_pyth(devnet)
    node = devnet.nodes[name]
    node.rpc("evm_increaseTime", [7200])
    node.rpc("evm_mine", [])
    with pytest.raises(SourceError, match="reverted StalePrice \\(max age 3600 s"):
        await fetch_pyth_onchain_observations(clients[name], assets=["ETH"], max_age_s=3600)
