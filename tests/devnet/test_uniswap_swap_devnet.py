"""The pure swap maths (risk_core.pricing.uniswap_v3) against Uniswap v3's own contracts on the devnet, to the wei.

A fresh WETH/USDC 0.05% pool (real v3-core bytecode) gets liquidity in several ranges, adjacent, overlapping and
one far away across empty bitmap words; its depth is read block-pinned through Multicall3
(oracles.uniswap_v3_pools) and checked against the ranges minted; then swaps crossing ticks are quoted by the real
QuoterV2 (both directions, exact input and exact output) and one is executed through the SwapRouter, and every
amount, the price after, the tick and the active liquidity after equal the pure maths' exactly.
"""

from __future__ import annotations

from typing import Any

from support.devnet_fixtures import load_abi
from web3 import Web3
from web3.logs import DISCARD

from chains.client import ChainClient
from devnet.deploy import DEPLOYER, ChainDeployer, give_tokens
from devnet.run import RunningDevnet
from devnet.solidity import aave, load_npm_artifact
from oracles.uniswap_v3_pools import read_pool_depth
from risk_core.pricing.uniswap_v3 import TickProfile, amount_to_price, sqrt_ratio_at_tick, swap

FEE, SPACING = 500, 10


def contracts(devnet: RunningDevnet, w3: Web3) -> dict[str, Any]:
    chain = devnet.manifest.chain("ethereum")
    assert chain.config.uniswap_v3 is not None and chain.seeds.swap_router is not None
    abi = {"WETH": aave("dependencies/weth/WETH9.sol/WETH9.json").artifact.abi,
           "USDC": aave("mocks/tokens/MintableERC20.sol/MintableERC20.json").artifact.abi}
    made: dict[str, Any] = {t.symbol: w3.eth.contract(address=Web3.to_checksum_address(t.address), abi=abi[t.symbol])
                            for t in chain.config.tokens if t.symbol in abi}
    made["factory"] = w3.eth.contract(address=Web3.to_checksum_address(chain.config.uniswap_v3.factory),
                                      abi=load_abi("uniswap-v3/UniswapV3Factory.abi.json"))
    made["manager"] = w3.eth.contract(address=Web3.to_checksum_address(chain.config.uniswap_v3.position_manager),
                                      abi=load_abi("uniswap-v3/NonfungiblePositionManager.abi.json"))
    router = load_npm_artifact("@uniswap/v3-periphery/artifacts/contracts/SwapRouter.sol/SwapRouter.json")
    made["router"] = w3.eth.contract(address=Web3.to_checksum_address(chain.seeds.swap_router),
                                     abi=router.artifact.abi)
    return made


async def test_swaps_crossing_ticks_equal_the_real_pool_to_the_wei(
    devnet: RunningDevnet, clients: dict[str, ChainClient], web3s: dict[str, Web3], restore_chains: None
) -> None:
    w3 = web3s["ethereum"]
    deployer = ChainDeployer(w3)
    c = contracts(devnet, w3)
    weth, usdc = c["WETH"], c["USDC"]
    token0, token1 = sorted((weth, usdc), key=lambda t: int(t.address, 16))
    weth_is_token0 = token0.address == weth.address
    # a new pool at the seeded pool's price (3000 USDC per WETH), raw token1 per token0
    deployer.send(c["factory"].functions.createPool(weth.address, usdc.address, FEE), what="createPool")
    pool_address = c["factory"].functions.getPool(weth.address, usdc.address, FEE).call()
    pool_abi = load_npm_artifact("@uniswap/v3-core/artifacts/contracts/UniswapV3Pool.sol/UniswapV3Pool.json")
    pool = w3.eth.contract(address=pool_address, abi=pool_abi.artifact.abi)
    raw = 3000 * 10**6 / 10**18 if weth_is_token0 else 10**18 / (3000 * 10**6)
    deployer.send(pool.functions.initialize(int(raw**0.5 * 2**96)), what="initialize")
    start_tick = pool.functions.slot0().call()[1]
    t0 = start_tick // SPACING * SPACING

    minted: dict[int, int] = {}  # tick -> liquidityNet, from the manager's IncreaseLiquidity events

    def mint(lower: int, upper: int, weth_amount: int, usdc_amount: int) -> None:
        amounts = {weth.address: weth_amount, usdc.address: usdc_amount}
        for token, symbol in ((weth, "WETH"), (usdc, "USDC")):
            give_tokens(deployer, {"WETH": weth, "USDC": usdc}, symbol, DEPLOYER, amounts[token.address])
            deployer.send(token.functions.approve(c["manager"].address, amounts[token.address]), what="approve")
        params = (token0.address, token1.address, FEE, lower, upper, amounts[token0.address],
                  amounts[token1.address], 0, 0, DEPLOYER, 2**64)
        receipt = deployer.send(c["manager"].functions.mint(params), what="mint")
        liquidity = c["manager"].events.IncreaseLiquidity().process_receipt(receipt, errors=DISCARD)[0]["args"][
            "liquidity"]
        minted[lower] = minted.get(lower, 0) + liquidity
        minted[upper] = minted.get(upper, 0) - liquidity

    mint(t0 - 4000, t0 + 4000, 50 * 10**18, 150_000 * 10**6)  # wide, around the price
    mint(t0 - 1500, t0 - 200, 40 * 10**18, 120_000 * 10**6)  # below the price (one token only)
    mint(t0 - 3000, t0 - 1500, 40 * 10**18, 120_000 * 10**6)  # adjacent to it at t0 - 1500
    mint(t0 + 100, t0 + 2500, 40 * 10**18, 120_000 * 10**6)  # above
    mint(t0 - 60000, t0 - 50000, 40 * 10**18, 120_000 * 10**6)  # far below, across empty bitmap words
    mint(t0 + 50000, t0 + 56000, 40 * 10**18, 120_000 * 10**6)  # far above

    read = await read_pool_depth(clients["ethereum"], pool_address, words_each_side=30)
    assert (read.asset, read.quote, read.asset_is_token0) == ("ETH", "USDC", weth_is_token0)
    assert (read.decimals0, read.decimals1) == ((18, 6) if weth_is_token0 else (6, 18))
    assert read.block == w3.eth.block_number and read.fee == FEE and read.tick_spacing == SPACING
    assert read.sqrt_price_x96 == pool.functions.slot0().call()[0] and read.tick == start_tick
    assert read.liquidity == pool.functions.liquidity().call()
    assert {t.tick: t.liquidity_net for t in read.ticks} == {t: n for t, n in minted.items() if n}
    profile = TickProfile(sqrt_price_x96=read.sqrt_price_x96, tick=read.tick, liquidity=read.liquidity, fee=FEE,
                          tick_spacing=SPACING, ticks=tuple((t.tick, t.liquidity_net) for t in read.ticks))

    quoter_artifact = load_npm_artifact("@uniswap/v3-periphery/artifacts/contracts/lens/QuoterV2.sol/QuoterV2.json")
    quoter = deployer.deploy(quoter_artifact.artifact, c["factory"].address, weth.address)

    def quote_in(zero_for_one: bool, amount: int) -> tuple[int, int]:
        token_in, token_out = (token0, token1) if zero_for_one else (token1, token0)
        out, sqrt_after, _, _ = quoter.functions.quoteExactInputSingle(
            (token_in.address, token_out.address, amount, FEE, 0)).call()
        return out, sqrt_after

    def quote_out(zero_for_one: bool, amount: int) -> tuple[int, int]:
        token_in, token_out = (token0, token1) if zero_for_one else (token1, token0)
        paid, sqrt_after, _, _ = quoter.functions.quoteExactOutputSingle(
            (token_in.address, token_out.address, amount, FEE, 0)).call()
        return paid, sqrt_after

    # the amounts that take the price to a few ticks past several initialised ones, less a little (ends mid-range)
    down = amount_to_price(profile, sqrt_ratio_at_tick(t0 - 3500)).amount0 * 99 // 100
    up = amount_to_price(profile, sqrt_ratio_at_tick(t0 + 3000)).amount1 * 99 // 100
    cases = []
    for zero_for_one, amount in ((True, down), (False, up), (True, 12345), (True, 3 * down // 10)):
        ours = swap(profile, zero_for_one=zero_for_one, amount_specified=amount)
        out, sqrt_after = quote_in(zero_for_one, amount)
        assert ours.complete and (-(ours.amount1 if zero_for_one else ours.amount0), ours.after.sqrt_price_x96) == (
            out, sqrt_after), (zero_for_one, amount)
        cases.append(ours.ticks_crossed)
    assert cases[0] >= 2 and cases[1] >= 2  # of t0 - 200, t0 - 1500, t0 - 3000 down; t0 + 100, t0 + 2500 up
    # exact output: the token1 that a price down to t0 - 2000 pays out, asked for exactly
    wanted = -amount_to_price(profile, sqrt_ratio_at_tick(t0 - 2000)).amount1
    ours = swap(profile, zero_for_one=True, amount_specified=-wanted)
    assert (ours.amount0, ours.after.sqrt_price_x96) == quote_out(True, wanted)
    assert ours.amount1 == -wanted and ours.ticks_crossed >= 2

    # executed through the router, far past the empty words into the far range: balances, slot0 and liquidity
    target = amount_to_price(profile, sqrt_ratio_at_tick(t0 - 55000))
    amount = target.amount0
    ours = swap(profile, zero_for_one=True, amount_specified=amount)
    symbol_in = "WETH" if weth_is_token0 else "USDC"
    give_tokens(deployer, {"WETH": weth, "USDC": usdc}, symbol_in, DEPLOYER, amount)
    deployer.send(token0.functions.approve(c["router"].address, amount), what="approve router")
    before = token1.functions.balanceOf(DEPLOYER).call()
    deployer.send(c["router"].functions.exactInputSingle(
        (token0.address, token1.address, FEE, DEPLOYER, 2**64, amount, 0, 0)), what="swap")
    received = token1.functions.balanceOf(DEPLOYER).call() - before
    slot0 = pool.functions.slot0().call()
    assert received == -ours.amount1
    assert (slot0[0], slot0[1], pool.functions.liquidity().call()) == (
        ours.after.sqrt_price_x96, ours.after.tick, ours.after.liquidity)
    # crossed t0 - 200, t0 - 1500, t0 - 3000, t0 - 4000 and the far range's upper tick t0 - 50000
    assert ours.ticks_crossed == 5 and ours.after.liquidity == minted[t0 - 60000]
