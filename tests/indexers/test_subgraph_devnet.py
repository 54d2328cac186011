"""The devnet's wallets discovered through the local subgraph stand-in hold exactly the positions the on-chain
adapters read for them (acceptance of issue 16's populations (c)).

Before discovering, a third wallet supplies, borrows, repays and withdraws on Aave, the demo wallet takes liquidity
out of its range and the deployer hands its wide range to the third wallet, so every indexed event kind moves a
figure; pages of two entities make every discovery take several pages."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any

import aiohttp
import pyarrow.parquet as pq
import pytest
from support.devnet_fixtures import load_abi
from web3 import Web3

from adapters.aave_v3.adapter import AaveV3Adapter
from adapters.onchain import DiscoveryCache, fetch_wallet_refresh
from adapters.uniswap_v3.adapter import UniswapV3Adapter
from api.cascade_cli import default_prices
from api.cli import main
from chains.client import ChainClient
from devnet.deploy import DEPLOYER, TOKENS, ChainDeployer
from devnet.run import RunningDevnet
from devnet.solidity import aave
from indexers.subgraphs import discover_chain, discover_uniswap, merge
from research.contagion.population import population_from_positions
from risk_core.schema.positions import BorrowPosition, LendPosition, LPPosition, Position
from venue_servers.subgraph import run_subgraph_server, subgraph_url

THIRD = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"  # anvil's third default account (unlocked)
PRICES = {"ETH": 3000.0, "BTC": 60000.0, "USDC": 1.0, "WSTETH": 3500.0}


def move_every_event_kind(devnet: RunningDevnet, w3: Web3) -> dict[str, Any]:
    chain = devnet.manifest.chain("ethereum").config
    assert chain.aave_v3 is not None and chain.uniswap_v3 is not None
    deployer = ChainDeployer(w3)
    pool = w3.eth.contract(address=Web3.to_checksum_address(chain.aave_v3.pool), abi=load_abi("aave-v3/Pool.abi.json"))
    token = {t.symbol: t for t in chain.tokens}
    wbtc = w3.eth.contract(address=Web3.to_checksum_address(token["WBTC"].address),
                           abi=aave("mocks/tokens/MintableERC20.sol/MintableERC20.json").artifact.abi)
    usdc = w3.eth.contract(address=Web3.to_checksum_address(token["USDC"].address), abi=wbtc.abi)
    deployer.send(wbtc.functions.mint(THIRD, 50_000_001), what="mint")
    deployer.send(wbtc.functions.approve(pool.address, 50_000_001), sender=THIRD, what="approve")
    deployer.send(pool.functions.supply(wbtc.address, 50_000_001, THIRD, 0), sender=THIRD, what="supply")
    deployer.send(pool.functions.borrow(usdc.address, 10_000_000_003, 2, 0, THIRD), sender=THIRD, what="borrow")
    deployer.send(usdc.functions.approve(pool.address, 2_500_000_001), sender=THIRD, what="approve")
    deployer.send(pool.functions.repay(usdc.address, 2_500_000_001, 2, THIRD), sender=THIRD, what="repay")
    deployer.send(pool.functions.withdraw(wbtc.address, 7_000_000, THIRD), sender=THIRD, what="withdraw")

    manager = w3.eth.contract(address=Web3.to_checksum_address(chain.uniswap_v3.position_manager),
                              abi=load_abi("uniswap-v3/NonfungiblePositionManager.abi.json"))
    seeded = devnet.manifest.chain("ethereum").seeds.lp
    assert seeded is not None
    demo = devnet.manifest.demo_account
    taken_out = seeded.liquidity // 3
    deployer.send(manager.functions.decreaseLiquidity((seeded.token_id, taken_out, 0, 0, 2**64)), sender=demo,
                  what="decreaseLiquidity")
    wide_id = seeded.token_id - 1  # the deployer minted the wide range just before the demo's
    deployer.send(manager.functions.transferFrom(DEPLOYER, THIRD, wide_id), what="transfer the wide range")
    return {"supplied_btc": (50_000_001 - 7_000_000) / 10**8, "debt_usdc": (10_000_000_003 - 2_500_000_001) / 10**6,
            "demo_liquidity_raw": seeded.liquidity - taken_out, "wide_id": wide_id}


def comparable(positions: list[Position]) -> list[dict[str, Any]]:
    kept = [p for p in positions if isinstance(p, LendPosition | BorrowPosition | LPPosition)]
    return sorted((p.model_dump(exclude={"provenance"}) for p in kept), key=lambda d: (d["chain"], d["id"]))


async def test_subgraph_discovery_equals_the_onchain_adapters(
    devnet: RunningDevnet, clients: dict[str, ChainClient], web3s: dict[str, Web3], restore_chains: None
) -> None:
    moved = move_every_event_kind(devnet, web3s["ethereum"])
    async with run_subgraph_server(clients) as base:
        found = merge(*[
            await discover_chain(chain.config, {
                protocol: subgraph_url(base, protocol, chain.config.name)
                for protocol, present in (("aave-v3", chain.config.aave_v3), ("uniswap-v3", chain.config.uniswap_v3))
                if present is not None
            }, page_size=2)
            for chain in devnet.manifest.chains
        ])
    demo = devnet.manifest.demo_account
    # Who holds what, known from the seeding and the moves above: the deployer seeded every Aave market's
    # liquidity, the demo wallet's loans and range, the third wallet's loan and the range it was handed.
    assert set(found.positions) == {DEPLOYER, demo, THIRD}
    assert found.unknown_tokens == {}
    third = {(p.chain, p.kind, getattr(p, "asset", None)): p for p in found.positions[THIRD]}
    assert third[("ethereum", "lend", "BTC")].quantity == moved["supplied_btc"]  # type: ignore[union-attr]
    assert third[("ethereum", "borrow", "USDC")].quantity == moved["debt_usdc"]  # type: ignore[union-attr]
    (third_range,) = [p for p in found.positions[THIRD] if isinstance(p, LPPosition)]
    assert third_range.id == f"uniswap-v3:ethereum:{moved['wide_id']}"
    (demo_range,) = [p for p in found.positions[demo] if isinstance(p, LPPosition)]
    assert demo_range.liquidity == moved["demo_liquidity_raw"] / 10 ** ((18 + 6) / 2)

    onchain: dict[str, list[Position]] = {}
    for wallet in found.positions:
        outcome = await fetch_wallet_refresh(list(clients.values()), [AaveV3Adapter(), UniswapV3Adapter()],
                                             account=wallet, cache=DiscoveryCache(), timeout_seconds=10)
        assert outcome.complete
        onchain[wallet] = [p for result in outcome.results for p in result.positions]
        assert comparable(found.positions[wallet]) == comparable(onchain[wallet])

    from_subgraph = population_from_positions(found.positions, PRICES)
    from_adapters = population_from_positions(onchain, PRICES)
    assert from_subgraph.table.equals(from_adapters.table)
    assert from_subgraph.addresses == from_adapters.addresses == tuple(sorted({DEPLOYER, demo, THIRD}))
    # the adapters also read uncollected fees as spot positions: the one thing the population leaves out
    assert set(from_adapters.skipped) <= {"spot@uniswap-v3"}


async def test_population_subgraph_cli_against_the_stand_in(
    devnet: RunningDevnet, clients: dict[str, ChainClient], tmp_path: Path
) -> None:
    """`metarisk population subgraph` over HTTP gives the population the in-process discovery gives."""
    chains_file = tmp_path / "chains.yaml"
    devnet.write_chains_file(chains_file)
    out = tmp_path / "pop.parquet"
    chain = devnet.manifest.chain("ethereum").config
    async with run_subgraph_server(clients) as base:
        urls = {p: subgraph_url(base, p, "ethereum") for p in ("aave-v3", "uniswap-v3")}
        code = await asyncio.to_thread(main, [
            "population", "subgraph", "--chains", str(chains_file), "--chain", "ethereum",
            "--url", f"aave-v3={urls['aave-v3']}", "--url", f"uniswap-v3={urls['uniswap-v3']}", "--page-size", "1",
            "--out", str(out)])
        found = await discover_chain(chain, urls)
    assert code == 0
    expected = population_from_positions(found.positions, default_prices())
    assert pq.read_table(out).equals(expected.table)
    assert [r["address"] for r in pq.read_table(tmp_path / "pop.wallets.parquet").to_pylist()] == list(
        expected.addresses)
    assert len(expected.addresses) == 2  # the seeded deployer and demo wallet on ethereum


def test_population_devnet_cli_from_the_seeds(devnet: RunningDevnet, tmp_path: Path) -> None:
    """`metarisk population devnet` (its own devnet from the cache, discovered through the stand-in): the rows the
    devnet's build seeded, restated from its manifest and deploy plan."""
    out = tmp_path / "pop.parquet"
    assert main(["population", "devnet", "--out", str(out)]) == 0
    wallets = [r["address"] for r in pq.read_table(tmp_path / "pop.wallets.parquet").to_pylist()]
    demo = devnet.manifest.demo_account
    assert wallets == sorted([DEPLOYER, demo])
    prices = default_prices()
    got: dict[tuple[str, str, str, str], float] = {}
    chains_of_wallet: dict[tuple[str, str, int], set[str]] = {}
    for row in pq.read_table(out).to_pylist():
        address = wallets[row["wallet"]]
        got[(address, row["venue"], row["kind"], row["asset"])] = (
            got.get((address, row["venue"], row["kind"], row["asset"]), 0.0) + row["amount"])
        chains_of_wallet.setdefault((address, row["venue"], row["account"]), set()).add(row["asset"])

    expected: dict[tuple[str, str, str, str], float] = {}
    for chain in devnet.manifest.chains:
        decimals = {t.symbol: t.decimals for t in chain.config.tokens}
        asset = {t.symbol: t.asset for t in chain.config.tokens}
        seeds = chain.seeds
        if seeds.aave is not None:
            for kind, amounts in (("supply", seeds.aave.supplied), ("borrow", seeds.aave.borrowed)):
                for symbol, raw in amounts.items():
                    key = (demo, "aave-v3", kind, asset[symbol])
                    expected[key] = expected.get(key, 0.0) + raw / 10 ** decimals[symbol]
            # the deployer's liquidity: 1,000,000 USD of each reserve at its seeding price (devnet/deploy.py)
            for spec in TOKENS:
                if spec.symbol == "WSTETH" and not seeds.aave.emode_category:
                    continue  # WSTETH is a reserve only where e-mode is set up
                key = (DEPLOYER, "aave-v3", "supply", spec.asset)
                seeded = 1_000_000 * 10**spec.decimals // spec.usd_price
                expected[key] = expected.get(key, 0.0) + seeded / 10**spec.decimals
        if seeds.lp is not None:
            lp = seeds.lp
            d0, d1 = decimals[lp.token0], decimals[lp.token1]
            price = prices[asset[lp.token0]] / prices[asset[lp.token1]]  # token1 per token0 at the recorded market
            liquidity = lp.liquidity / 10 ** ((d0 + d1) / 2)
            lower, upper = (1.0001**t * 10.0 ** (d0 - d1) for t in (lp.tick_lower, lp.tick_upper))
            p = min(max(price, lower), upper)
            expected[(demo, "uniswap-v3", "lp", asset[lp.token0])] = liquidity * (1 / math.sqrt(p) - 1 / math.sqrt(
                upper))
            expected[(demo, "uniswap-v3", "lp", asset[lp.token1])] = liquidity * (math.sqrt(p) - math.sqrt(lower))
    deployer_lp = {k: v for k, v in got.items() if k[0] == DEPLOYER and k[1] == "uniswap-v3"}
    assert set(deployer_lp) == {(DEPLOYER, "uniswap-v3", "lp", "ETH"), (DEPLOYER, "uniswap-v3", "lp", "USDC")}
    assert {k: v for k, v in got.items() if k not in deployer_lp} == pytest.approx(expected, rel=1e-12)
    # the demo wallet's Aave accounts are one per chain: ethereum's ETH / USDC apart from arbitrum's WSTETH / ETH
    assert sorted(sorted(assets) for (w, v, _), assets in chains_of_wallet.items() if w == demo and v == "aave-v3") \
        == [["ETH", "USDC"], ["ETH", "WSTETH"]]


async def test_stand_in_answers_like_graph_node(devnet: RunningDevnet, clients: dict[str, ChainClient]) -> None:
    """The owner filter, descending order and graph-node's limit on `first`, through the stand-in."""
    demo = devnet.manifest.demo_account
    chain = devnet.manifest.chain("ethereum")
    assert chain.seeds.lp is not None
    async with run_subgraph_server(clients) as base:
        url = subgraph_url(base, "uniswap-v3", "ethereum")
        mine = await discover_uniswap(url, chain.config, owners=[demo])
        async with aiohttp.ClientSession() as session:
            async def post(query: str) -> dict[str, Any]:
                async with session.post(url, json={"query": query}) as response:
                    return await response.json()  # type: ignore[no-any-return]

            descending = await post("{ positions(orderBy: id, orderDirection: desc) { id owner } }")
            too_many = await post("{ positions(first: 1001) { id } }")
            missing = await post("{ positions(first: 1) { id colour } }")
    assert [p.id for ps in mine.positions.values() for p in ps] == [f"uniswap-v3:ethereum:{chain.seeds.lp.token_id}"]
    assert list(mine.positions) == [demo]
    ids = [p["id"] for p in descending["data"]["positions"]]
    assert ids == sorted(ids, reverse=True) and len(ids) == 2
    assert "between 0 and 1000" in too_many["errors"][0]["message"]
    assert "colour" in missing["errors"][0]["message"]
