"""The devnet itself: our GMX reader speaks the real Reader ABI, every chain carries what the chains file says,
the chains file round-trips, and a warm start comes from the cache in seconds."""

from __future__ import annotations

import time
from pathlib import Path

from support.devnet_fixtures import load_abi
from web3 import Web3

from chains.config import load_chains_file
from devnet.deploy import DEMO_ACCOUNT, MULTICALL3
from devnet.run import RunningDevnet, compute_cache_key, default_cache_root, start_devnet
from devnet.solidity import compile_sources


def test_gmx_reader_exposes_the_real_reader_abi() -> None:
    ours = {entry["name"]: entry for entry in compile_sources()["DevnetGmxReader"].abi if entry["type"] == "function"}
    real = {entry["name"]: entry for entry in load_abi("gmx-v2/Reader.abi.json") if entry.get("type") == "function"}
    for name in ("getAccountPositions", "getMarket"):
        assert ours[name] == real[name]


def test_every_chain_has_its_contracts_and_the_demo_wallet(devnet: RunningDevnet, web3s: dict[str, Web3]) -> None:
    assert {chain.name: chain.chain_id for chain in devnet.chains.chains} == {
        "ethereum": 1,
        "arbitrum": 42161,
        "base": 8453,
    }
    for chain in devnet.chains.chains:
        w3 = web3s[chain.name]
        assert w3.eth.chain_id == chain.chain_id
        assert chain.multicall3 == MULTICALL3
        addresses = [chain.multicall3, *(t.address for t in chain.tokens), *(f.address for f in chain.price_feeds)]
        addresses += [chain.pyth.address] if chain.pyth else []
        for contracts in (chain.aave_v3, chain.uniswap_v3, chain.gmx_v2):
            addresses += [value for value in contracts.model_dump().values()] if contracts else []
        for address in addresses:
            assert w3.eth.get_code(Web3.to_checksum_address(address)) != b"", (chain.name, address)
        assert (chain.sequencer_uptime_feed is not None) == (chain.chain_id != 1)
    assert devnet.manifest.demo_account == DEMO_ACCOUNT
    assert sum(chain.aave_v3 is not None for chain in devnet.chains.chains) == 2


def test_uniswap_pool_is_where_the_periphery_computes_it(devnet: RunningDevnet, web3s: dict[str, Web3]) -> None:
    from adapters.uniswap_v3.maths import compute_pool_address

    chain = devnet.chains.chain("ethereum")
    lp = devnet.manifest.chain("ethereum").seeds.lp
    assert chain.uniswap_v3 is not None and lp is not None
    token = {t.symbol: t.address for t in chain.tokens}
    factory = web3s["ethereum"].eth.contract(
        address=Web3.to_checksum_address(chain.uniswap_v3.factory), abi=load_abi("uniswap-v3/UniswapV3Factory.abi.json")
    )
    on_chain = factory.functions.getPool(token[lp.token0], token[lp.token1], lp.fee).call()
    computed = compute_pool_address(
        factory=chain.uniswap_v3.factory, token0=token[lp.token0], token1=token[lp.token1], fee=lp.fee
    )
    assert on_chain == computed == lp.pool


def test_chains_file_round_trips(devnet: RunningDevnet, tmp_path: Path) -> None:
    path = tmp_path / "chains.yaml"
    devnet.write_chains_file(path)
    assert load_chains_file(path) == devnet.chains


def test_warm_start_loads_the_cache_in_seconds(devnet: RunningDevnet) -> None:
    assert (default_cache_root() / compute_cache_key() / "manifest.json").exists()
    started = time.monotonic()
    second = start_devnet()
    try:
        elapsed = time.monotonic() - started
        assert elapsed < 15, elapsed
        assert second.manifest == devnet.manifest
        pool = devnet.manifest.chain("ethereum").config.aave_v3
        assert pool is not None
        assert second.nodes["ethereum"].rpc("eth_getCode", [pool.pool, "latest"]) not in ("0x", None)
    finally:
        second.stop()


def test_mock_pyth_serves_fresh_prices_under_the_real_feed_ids(devnet: RunningDevnet, web3s: dict[str, Web3]) -> None:
    for chain in devnet.chains.chains:
        assert chain.pyth is not None
        pyth = web3s[chain.name].eth.contract(
            address=Web3.to_checksum_address(chain.pyth.address), abi=load_abi("pyth/IPyth.json")
        )
        for asset, usd in (("ETH", 3000), ("BTC", 60000)):
            price, _, expo, publish_time = pyth.functions.getPriceUnsafe(chain.pyth.price_ids[asset]).call()
            assert price * 10.0**expo == usd
            now = web3s[chain.name].eth.get_block("latest")["timestamp"]
            assert now - publish_time < 300  # republished when the devnet started from its cache


def test_a_node_dies_with_the_process_that_started_it(tmp_path: Path) -> None:
    """A test run or demo killed outright (SIGKILL: no cleanup runs) leaves no anvil behind."""
    import os
    import signal
    import subprocess
    import sys

    pid_file = tmp_path / "anvil.pid"
    starter = subprocess.Popen(
        [sys.executable, "-c", (
            "import sys, time; from pathlib import Path; from devnet.node import start_anvil\n"
            "node = start_anvil(chain_id=31337)\n"
            f"Path({str(pid_file)!r}).write_text(str(node.process.pid))\n"
            "time.sleep(600)\n"
        )],
        cwd=Path(__file__).resolve().parents[2],
    )
    deadline = time.monotonic() + 60
    while not pid_file.exists() or not pid_file.read_text():
        assert starter.poll() is None and time.monotonic() < deadline, "the node did not start"
        time.sleep(0.05)
    anvil = int(pid_file.read_text())
    os.kill(anvil, 0)  # running
    starter.send_signal(signal.SIGKILL)
    starter.wait()
    deadline = time.monotonic() + 10
    while Path(f"/proc/{anvil}").exists() and Path(f"/proc/{anvil}/stat").read_text().split()[2] != "Z":
        assert time.monotonic() < deadline, "anvil outlived the process that started it"
        time.sleep(0.05)
