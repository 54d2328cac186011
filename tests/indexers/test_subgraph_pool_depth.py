"""A pool's depth read through the local subgraph stand-in (the published schema's `pool { sqrtPrice tick liquidity
feeTier }` and `ticks { tickIdx liquidityNet }`) equals the one read on chain, block-pinned, through Multicall3;
and both price a swap as the pool does.

Before reading, a third range is minted beside the seeded ones and part of the demo range is burnt, so Mint and
Burn both move the indexed ticks."""

from __future__ import annotations

from support.devnet_fixtures import load_abi
from web3 import Web3

from chains.client import ChainClient
from devnet.deploy import DEPLOYER, ChainDeployer, give_tokens
from devnet.run import RunningDevnet
from devnet.solidity import aave
from indexers.subgraphs import read_pool_depth as read_from_subgraph
from oracles.uniswap_v3_pools import read_pool_depth as read_on_chain
from risk_core.pricing.pool_impact import asset_pool, route


async def test_the_subgraphs_ticks_equal_the_pools_own(
    devnet: RunningDevnet, clients: dict[str, ChainClient], web3s: dict[str, Web3], restore_chains: None
) -> None:
    from venue_servers.subgraph import run_subgraph_server, subgraph_url

    manifest = devnet.manifest.chain("ethereum")
    chain, seeded = manifest.config, manifest.seeds.lp
    assert seeded is not None and chain.uniswap_v3 is not None
    w3 = web3s["ethereum"]
    deployer = ChainDeployer(w3)
    manager = w3.eth.contract(address=Web3.to_checksum_address(chain.uniswap_v3.position_manager),
                              abi=load_abi("uniswap-v3/NonfungiblePositionManager.abi.json"))
    token = {t.symbol: t for t in chain.tokens}
    abi = {"WETH": aave("dependencies/weth/WETH9.sol/WETH9.json").artifact.abi,
           "USDC": aave("mocks/tokens/MintableERC20.sol/MintableERC20.json").artifact.abi}
    contracts = {s: w3.eth.contract(address=Web3.to_checksum_address(token[s].address), abi=abi[s]) for s in abi}
    for symbol, amount in (("WETH", 5 * 10**18), ("USDC", 15_000 * 10**6)):
        give_tokens(deployer, contracts, symbol, DEPLOYER, amount)
        deployer.send(contracts[symbol].functions.approve(manager.address, amount), what="approve")
    amounts = {"WETH": 5 * 10**18, "USDC": 15_000 * 10**6}
    lower, upper = seeded.tick_lower + 600, seeded.tick_upper + 1200  # overlaps the demo range, shares no tick
    deployer.send(manager.functions.mint((token[seeded.token0].address, token[seeded.token1].address, seeded.fee,
                                          lower, upper, amounts[seeded.token0], amounts[seeded.token1], 0, 0,
                                          DEPLOYER, 2**64)), what="mint")
    demo = devnet.manifest.demo_account
    deployer.send(manager.functions.decreaseLiquidity((seeded.token_id, seeded.liquidity // 3, 0, 0, 2**64)),
                  sender=demo, what="burn a third of the demo range")

    weth_is_token0 = seeded.token0 == "WETH"
    on_chain = await read_on_chain(clients["ethereum"], seeded.pool, words_each_side=80)
    async with run_subgraph_server(clients) as base:
        indexed = await read_from_subgraph(subgraph_url(base, "uniswap-v3", "ethereum"), chain, seeded.pool,
                                           page_size=2)
    assert len(on_chain.ticks) == 6  # the wide range's two ticks, the demo range's two, the new range's two
    assert indexed.ticks == on_chain.ticks
    assert (indexed.sqrt_price_x96, indexed.tick, indexed.liquidity, indexed.fee, indexed.tick_spacing) == (
        on_chain.sqrt_price_x96, on_chain.tick, on_chain.liquidity, on_chain.fee, on_chain.tick_spacing)
    assert (indexed.asset, indexed.quote, indexed.asset_is_token0) == ("ETH", "USDC", weth_is_token0)
    # both price a sale of 30 ETH alike
    assert route((asset_pool(indexed),), 30.0)[:2] == route((asset_pool(on_chain),), 30.0)[:2]
