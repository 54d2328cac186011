"""Every seeded position read back by the adapters from the live devnet: sizes to the last wei, Aave's health
factor reproduced from the adapter's own output, Uniswap amounts and fees equal to what the contracts would pay."""

from __future__ import annotations

import math
from typing import Any

from support.devnet_fixtures import load_abi
from web3 import Web3

from adapters import ONCHAIN_ADAPTERS
from adapters.aave_v3.adapter import AaveDiscovery, AaveReading, AaveV3Adapter
from adapters.base import AdapterResult
from adapters.gmx_v2.adapter import GmxV2Adapter, compute_positions_reading
from adapters.onchain import DiscoveryCache, fetch_settled_reads, fetch_wallet_refresh
from adapters.uniswap_v3.adapter import UniswapDiscovery, UniswapV3Adapter
from adapters.wallet.adapter import WalletAdapter, compute_balances
from chains.client import ChainClient
from devnet.deploy import DEPLOYER, ChainDeployer, give_tokens
from devnet.run import RunningDevnet
from devnet.solidity import aave, load_npm_artifact
from risk_core.schema.positions import BorrowPosition, LendPosition, LPPosition, PerpPosition, SpotPosition
from risk_core.schema.venues import VenueState
from risk_core.venues.aave import AaveAccount, AaveReserve, EModeCategory, aave_health

HF_RELATIVE_TOLERANCE = 1e-9


async def refresh(devnet: RunningDevnet, clients: dict[str, ChainClient]) -> dict[str, AdapterResult]:
    outcome = await fetch_wallet_refresh(
        list(clients.values()),
        ONCHAIN_ADAPTERS,
        account=devnet.manifest.demo_account,
        cache=DiscoveryCache(),
        timeout_seconds=10,
    )
    assert outcome.complete, [(r.source, r.status.reason) for r in outcome.results if not r.complete]
    return {result.source: result for result in outcome.results}


async def test_wallet_balances_to_the_wei(devnet: RunningDevnet, clients: dict[str, ChainClient]) -> None:
    results = await refresh(devnet, clients)
    for chain in devnet.manifest.chains:
        name = chain.config.name
        reads = await fetch_settled_reads(
            clients[name], [WalletAdapter()], account=devnet.manifest.demo_account, cache=DiscoveryCache()
        )
        (read,) = reads.reads
        raw = {symbol: amount for symbol, _, _, amount in compute_balances(chain.config, read.results)}
        expected = {"ETH": chain.seeds.native_wei} | {
            t.symbol: chain.seeds.erc20.get(t.symbol, 0) for t in chain.config.tokens
        }
        assert raw == expected
        decimals = {t.symbol: t.decimals for t in chain.config.tokens} | {"ETH": 18}
        positions = {p.id: p for p in results[f"wallet@{name}"].positions}
        assert positions == {
            f"wallet:{name}:{symbol}": SpotPosition(
                kind="spot",
                id=f"wallet:{name}:{symbol}",
                venue="wallet",
                chain=name,
                account=devnet.manifest.demo_account,
                asset="ETH"
                if symbol in ("ETH", "WETH")
                else next(t.asset for t in chain.config.tokens if t.symbol == symbol),
                quantity=amount / 10 ** decimals[symbol],
                provenance=positions[f"wallet:{name}:{symbol}"].provenance,
            )
            for symbol, amount in expected.items()
            if amount
        }
        provenance = next(iter(positions.values())).provenance
        assert provenance is not None and provenance.block == reads.snapshot.block and provenance.complete  # type: ignore[union-attr]


async def test_aave_supply_and_debt_to_the_wei(devnet: RunningDevnet, clients: dict[str, ChainClient]) -> None:
    results = await refresh(devnet, clients)
    for chain in devnet.manifest.chains:
        seeded = chain.seeds.aave
        if seeded is None:
            continue
        name = chain.config.name
        adapter = AaveV3Adapter()
        reads = await fetch_settled_reads(
            clients[name], [adapter], account=devnet.manifest.demo_account, cache=DiscoveryCache()
        )
        (read,) = reads.reads
        assert isinstance(read.discovery, AaveDiscovery)
        reading = adapter.compute_reading(discovery=read.discovery, results=read.results)
        symbol_of = {t.address: t.symbol for t in chain.config.tokens}
        supplied = {symbol_of[r.asset_address]: r.user.current_a_token_balance for r in reading.reserves}
        debt = {
            symbol_of[r.asset_address]: r.user.current_variable_debt + r.user.current_stable_debt
            for r in reading.reserves
        }
        assert {s: v for s, v in supplied.items() if v and s in seeded.supplied} == seeded.supplied
        assert {s: v for s, v in debt.items() if v} == seeded.borrowed
        assert read.discovery.emode_category == seeded.emode_category

        result = results[f"aave-v3@{name}"]
        decimals = {t.symbol: t.decimals for t in chain.config.tokens}
        asset = {t.symbol: t.asset for t in chain.config.tokens}
        lends = {(p.asset, p.quantity) for p in result.positions if isinstance(p, LendPosition)}
        borrows = {(p.asset, p.quantity) for p in result.positions if isinstance(p, BorrowPosition)}
        assert lends == {(asset[s], v / 10 ** decimals[s]) for s, v in seeded.supplied.items()}
        assert borrows == {(asset[s], v / 10 ** decimals[s]) for s, v in seeded.borrowed.items()}


async def test_gmx_perps_to_the_wei(devnet: RunningDevnet, clients: dict[str, ChainClient]) -> None:
    results = await refresh(devnet, clients)
    chain = devnet.manifest.chain("arbitrum")
    decimals = {t.symbol: t.decimals for t in chain.config.tokens}
    asset = {t.symbol: t.asset for t in chain.config.tokens}
    reads = await fetch_settled_reads(
        clients["arbitrum"], [GmxV2Adapter()], account=devnet.manifest.demo_account, cache=DiscoveryCache()
    )
    raw = [
        (p.addresses.market, p.is_long, p.numbers.size_in_usd, p.numbers.size_in_tokens, p.numbers.collateral_amount)
        for p in compute_positions_reading(reads.reads[0].results[0])
    ]
    assert raw == [
        (s.market, s.is_long, s.size_in_usd, s.size_in_tokens, s.collateral_amount) for s in chain.seeds.perps
    ]
    positions = results["gmx-v2@arbitrum"].positions
    perps = [p for p in positions if isinstance(p, PerpPosition)]
    collateral = [p for p in positions if isinstance(p, SpotPosition)]
    assert len(perps) == len(chain.seeds.perps) == 2
    for perp, seeded, held in zip(perps, chain.seeds.perps, collateral, strict=True):
        size = seeded.size_in_tokens / 10 ** decimals[seeded.index_token]
        assert perp.underlying == asset[seeded.index_token]
        assert perp.quantity == (size if seeded.is_long else -size)
        assert perp.entry_price == (seeded.size_in_usd / 10**30) / size
        assert held.asset == asset[seeded.collateral_token]
        assert held.quantity == seeded.collateral_amount / 10 ** decimals[seeded.collateral_token]


def recompute_health_factor(positions: list[Any], state: VenueState) -> float:
    """Our health factor from the adapter's positions and the venue state's thresholds and prices
    (risk_core/venues/aave.py)."""
    parameters = state.parameters
    emode = parameters["emode"]
    supplied: dict[str, float] = {}
    borrowed: dict[str, float] = {}
    for position in positions:
        if isinstance(position, LendPosition):
            supplied[position.asset] = supplied.get(position.asset, 0.0) + position.quantity
        elif isinstance(position, BorrowPosition):
            borrowed[position.asset] = borrowed.get(position.asset, 0.0) + position.quantity
    reserves = tuple(
        AaveReserve(
            asset=asset,
            supplied=supplied.get(asset, 0.0),
            borrowed=borrowed.get(asset, 0.0),
            price_usd=parameters["prices_usd"][asset],
            liquidation_threshold_bps=parameters["liquidation_thresholds_bps"][asset],
            usage_as_collateral=asset not in parameters["collateral_disabled"],
            emode_category=(emode or {}).get("assets", {}).get(asset),
        )
        for asset in sorted(set(supplied) | set(borrowed))
    )
    category = (
        EModeCategory(
            category_id=emode["category_id"],
            liquidation_threshold_bps=emode["liquidation_threshold_bps"],
            price_usd=emode["price_usd"],
        )
        if emode
        else None
    )
    return aave_health(AaveAccount(reserves=reserves, emode=category)).health_factor


async def assert_health_factors_match(devnet: RunningDevnet, clients: dict[str, ChainClient]) -> dict[str, float]:
    results = await refresh(devnet, clients)
    figures = {}
    for chain in devnet.manifest.chains:
        if chain.seeds.aave is None:
            continue
        result = results[f"aave-v3@{chain.config.name}"]
        (state,) = result.venue_states
        ours = recompute_health_factor(result.positions, state)
        assert math.isclose(ours, state.reported["health_factor"], rel_tol=HF_RELATIVE_TOLERANCE), (
            ours,
            state.reported,
        )
        # And Aave's own integer arithmetic, from the same adapter's raw reading, to the last unit of 1e-18.
        adapter = AaveV3Adapter()
        reads = await fetch_settled_reads(
            clients[chain.config.name], [adapter], account=devnet.manifest.demo_account, cache=DiscoveryCache()
        )
        (read,) = reads.reads
        assert isinstance(read.discovery, AaveDiscovery)
        reading = adapter.compute_reading(discovery=read.discovery, results=read.results)
        exact = compute_aave_integer_health_factor(reading, emode_category=read.discovery.emode_category)
        assert exact == reading.account.health_factor
        figures[chain.config.name] = state.reported["health_factor"]
    return figures


async def test_health_factor_matches_aave_before_and_after_a_price_shock(
    devnet: RunningDevnet, clients: dict[str, ChainClient], web3s: dict[str, Web3], restore_chains: None
) -> None:
    before = await assert_health_factors_match(devnet, clients)
    assert set(before) == {"ethereum", "arbitrum"}
    # The collateral of each account falls: ETH by 20% on ethereum, wstETH by 15% on arbitrum (e-mode).
    shocks = {"ethereum": ("ETH", 0.80), "arbitrum": ("WSTETH", 0.85)}
    mock_abi = load_abi("chainlink/MockV3Aggregator.json")
    for name, (asset, factor) in shocks.items():
        feed = next(f for f in devnet.chains.chain(name).price_feeds if f.asset == asset)
        contract = web3s[name].eth.contract(address=Web3.to_checksum_address(feed.address), abi=mock_abi)
        answer = contract.functions.latestAnswer().call()
        tx = contract.functions.updateAnswer(int(answer * factor)).transact({"from": devnet.manifest.deployer})
        web3s[name].eth.wait_for_transaction_receipt(tx)
    after = await assert_health_factors_match(devnet, clients)
    for name, (_, factor) in shocks.items():
        assert math.isclose(after[name], before[name] * factor, rel_tol=1e-12)


async def test_uniswap_amounts_and_fees_equal_what_the_manager_would_pay(
    devnet: RunningDevnet, clients: dict[str, ChainClient], web3s: dict[str, Web3]
) -> None:
    chain = devnet.manifest.chain("ethereum")
    seeded = chain.seeds.lp
    assert seeded is not None and chain.config.uniswap_v3 is not None
    adapter = UniswapV3Adapter()
    reads = await fetch_settled_reads(
        clients["ethereum"], [adapter], account=devnet.manifest.demo_account, cache=DiscoveryCache()
    )
    (read,) = reads.reads
    assert isinstance(read.discovery, UniswapDiscovery)
    (reading,) = adapter.compute_readings(discovery=read.discovery, results=read.results)
    assert (reading.key.token_id, reading.liquidity) == (seeded.token_id, seeded.liquidity)
    assert (reading.key.tick_lower, reading.key.tick_upper) == (seeded.tick_lower, seeded.tick_upper)

    manager = web3s["ethereum"].eth.contract(
        address=Web3.to_checksum_address(chain.config.uniswap_v3.position_manager),
        abi=load_abi("uniswap-v3/NonfungiblePositionManager.abi.json"),
    )
    owner = {"from": devnet.manifest.demo_account}
    block = reads.snapshot.block  # type: ignore[union-attr]
    decreased = manager.functions.decreaseLiquidity((seeded.token_id, seeded.liquidity, 0, 0, 2**64)).call(
        owner, block_identifier=block
    )
    collected = manager.functions.collect((seeded.token_id, devnet.manifest.demo_account, 2**128 - 1, 2**128 - 1)).call(
        owner, block_identifier=block
    )
    assert (reading.amount0, reading.amount1) == tuple(decreased)
    assert (reading.fees0, reading.fees1) == tuple(collected)
    assert reading.amount0 > 0 and reading.amount1 > 0  # the range is in range
    assert reading.fees0 > 0 and reading.fees1 > 0  # the seeding swaps crossed it both ways

    results = await refresh(devnet, clients)
    tokens = {t.symbol: t for t in chain.config.tokens}
    token0, token1 = tokens[seeded.token0], tokens[seeded.token1]
    positions = results["uniswap-v3@ethereum"].positions
    (lp,) = [p for p in positions if isinstance(p, LPPosition)]
    assert (lp.token0, lp.token1) == (token0.asset, token1.asset)
    assert lp.liquidity == seeded.liquidity / 10 ** ((token0.decimals + token1.decimals) / 2)
    scale = 10.0 ** (token0.decimals - token1.decimals)
    assert lp.price_lower == 1.0001**seeded.tick_lower * scale
    assert lp.price_upper == 1.0001**seeded.tick_upper * scale
    fees = {p.asset: p.quantity for p in positions if isinstance(p, SpotPosition)}
    assert fees == {token0.asset: collected[0] / 10**token0.decimals, token1.asset: collected[1] / 10**token1.decimals}


async def test_uniswap_amounts_out_of_range_on_both_sides(
    devnet: RunningDevnet, clients: dict[str, ChainClient], web3s: dict[str, Web3], restore_chains: None
) -> None:
    """Swaps push the price below and then above the range: the one-sided branches of the payout maths agree
    with the manager's own decreaseLiquidity too."""
    chain = devnet.manifest.chain("ethereum")
    seeded, router_address = chain.seeds.lp, chain.seeds.swap_router
    assert seeded is not None and router_address is not None and chain.config.uniswap_v3 is not None
    w3 = web3s["ethereum"]
    deployer = ChainDeployer(w3)
    token_abi = {"WETH": aave("dependencies/weth/WETH9.sol/WETH9.json").artifact.abi}
    token_abi["USDC"] = aave("mocks/tokens/MintableERC20.sol/MintableERC20.json").artifact.abi
    tokens = {
        t.symbol: w3.eth.contract(address=Web3.to_checksum_address(t.address), abi=token_abi[t.symbol])
        for t in chain.config.tokens
        if t.symbol in token_abi
    }
    router_abi = load_npm_artifact("@uniswap/v3-periphery/artifacts/contracts/SwapRouter.sol/SwapRouter.json")
    router = w3.eth.contract(address=Web3.to_checksum_address(router_address), abi=router_abi.artifact.abi)
    manager = w3.eth.contract(
        address=Web3.to_checksum_address(chain.config.uniswap_v3.position_manager),
        abi=load_abi("uniswap-v3/NonfungiblePositionManager.abi.json"),
    )
    adapter = UniswapV3Adapter()
    out_of_range = []
    for token_in, token_out, amount in (("WETH", "USDC", 400 * 10**18), ("USDC", "WETH", 3_000_000 * 10**6)):
        give_tokens(deployer, tokens, token_in, DEPLOYER, amount)
        deployer.send(tokens[token_in].functions.approve(router.address, amount), what="approve")
        params = (tokens[token_in].address, tokens[token_out].address, seeded.fee, DEPLOYER, 2**64, amount, 0, 0)
        deployer.send(router.functions.exactInputSingle(params), what="swap out of the range")
        reads = await fetch_settled_reads(
            clients["ethereum"], [adapter], account=devnet.manifest.demo_account, cache=DiscoveryCache()
        )
        (read,) = reads.reads
        assert isinstance(read.discovery, UniswapDiscovery) and reads.snapshot is not None
        (reading,) = adapter.compute_readings(discovery=read.discovery, results=read.results)
        decreased = manager.functions.decreaseLiquidity((seeded.token_id, seeded.liquidity, 0, 0, 2**64)).call(
            {"from": devnet.manifest.demo_account}, block_identifier=reads.snapshot.block
        )
        assert (reading.amount0, reading.amount1) == tuple(decreased)
        out_of_range.append(
            (reading.current_tick < seeded.tick_lower, reading.current_tick >= seeded.tick_upper, reading.amount0 > 0)
        )
    # Selling token0 pushes the price below the range (all token0), buying it back above (all token1) - or the
    # other way round when WETH is token1.
    assert sorted(out_of_range[i][:2] for i in range(2)) == [(False, True), (True, False)]
    assert {(below, has0) for below, _, has0 in out_of_range} == {(True, True), (False, False)}


def compute_aave_integer_health_factor(reading: AaveReading, *, emode_category: int) -> int:
    """getUserAccountData's health factor (x 1e18) in Aave v3.0's own integer arithmetic (GenericLogic
    .calculateUserAccountData): balances floored into base currency, the threshold averaged in whole basis points
    (floored), percentMul and wadDiv rounding half up."""
    total_collateral = weighted = total_debt = 0
    for reserve in reading.reserves:
        unit = 10**reserve.configuration.decimals
        in_emode = emode_category != 0 and reserve.emode_category == emode_category
        price = reading.emode_price_base if in_emode and reading.emode_price_base else reserve.price_base
        threshold = reserve.configuration.liquidation_threshold
        if threshold != 0 and reserve.user.usage_as_collateral_enabled:
            value = reserve.user.current_a_token_balance * price // unit
            total_collateral += value
            weighted += value * (reading.emode.liquidation_threshold if in_emode and reading.emode else threshold)
        debt = reserve.user.current_stable_debt + reserve.user.current_variable_debt
        total_debt += debt * price // unit
    average_threshold = weighted // total_collateral if total_collateral else 0
    return ((total_collateral * average_threshold + 5_000) // 10_000 * 10**18 + total_debt // 2) // total_debt


async def test_health_factor_with_several_collaterals(
    devnet: RunningDevnet, clients: dict[str, ChainClient], web3s: dict[str, Web3], restore_chains: None
) -> None:
    """With collaterals of different thresholds Aave averages the threshold in whole basis points, floored: our
    float recomputation (risk_core/venues/aave.py, which does not reproduce Aave's rounding) then differs by up to
    one basis point of threshold (4e-5 relative here), while Aave's integer arithmetic reproduces it exactly."""
    chain = devnet.manifest.chain("ethereum")
    assert chain.config.aave_v3 is not None
    w3 = web3s["ethereum"]
    deployer = ChainDeployer(w3)
    mintable = aave("mocks/tokens/MintableERC20.sol/MintableERC20.json").artifact.abi
    pool = w3.eth.contract(
        address=Web3.to_checksum_address(chain.config.aave_v3.pool), abi=load_abi("aave-v3/Pool.abi.json")
    )
    account = devnet.manifest.demo_account
    for symbol, amount in (("USDC", 7_777_123_457), ("WBTC", 3_141_593)):
        token = next(t for t in chain.config.tokens if t.symbol == symbol)
        contract = w3.eth.contract(address=Web3.to_checksum_address(token.address), abi=mintable)
        deployer.send(contract.functions.mint(account, amount), what="mint")
        deployer.send(contract.functions.approve(pool.address, amount), sender=account, what="approve")
        deployer.send(pool.functions.supply(token.address, amount, account, 0), sender=account, what="supply")

    adapter = AaveV3Adapter()
    reads = await fetch_settled_reads(clients["ethereum"], [adapter], account=account, cache=DiscoveryCache())
    (read,) = reads.reads
    assert isinstance(read.discovery, AaveDiscovery) and reads.snapshot is not None
    reading = adapter.compute_reading(discovery=read.discovery, results=read.results)
    exact = compute_aave_integer_health_factor(reading, emode_category=read.discovery.emode_category)
    assert exact == reading.account.health_factor

    result = adapter.compute_result(
        chain=chain.config, account=account, discovery=read.discovery, results=read.results, snapshot=reads.snapshot
    )
    (state,) = result.venue_states
    ours = recompute_health_factor(result.positions, state)
    average_threshold_bps = reading.account.current_liquidation_threshold
    assert math.isclose(ours, state.reported["health_factor"], rel_tol=1 / average_threshold_bps)
