"""Deploy the real protocols on one fresh anvil chain and seed the demo wallet (runs only when the cache is cold).

Synchronous web3 over anvil's unlocked accounts: deployment is a one-off script, every transaction is mined at once
and its receipt checked, so a revert stops the build with the step that failed.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract
from web3.logs import DISCARD

import reference_data
from chains.config import (
    AaveV3Contracts,
    ChainConfig,
    GmxV2Contracts,
    NativeToken,
    PriceFeed,
    PythContracts,
    SequencerUptimeFeed,
    Token,
    UniswapV3Contracts,
)
from devnet.errors import DevnetError
from devnet.manifest import AttestationContracts, ChainSeeds, DevnetChain, SeededAave, SeededLp, SeededPerp
from devnet.solidity import Artifact, aave, compile_sources, load_npm_artifact

INTERFACES_DIR = reference_data.path("interfaces")
MULTICALL3 = "0xcA11bde05977b3631167028862bE2a173976CA11"
MULTICALL3_DEPLOYER = "0x05f32B3cC3888453ff71B01135B34FF8e41263F2"
# anvil's first two default accounts (mnemonic "test test ... junk"): unlocked, so eth_sendTransaction signs.
DEPLOYER = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
DEMO_ACCOUNT = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"

FEED_DECIMALS = 8
# Pyth's own feed ids, so code written against the devnet reads mainnet ids unchanged.
PYTH_PRICE_IDS = {
    "ETH": "0xff61491a931112ddf1bd8147cd1b641375f79f5825126d665480874634fd0ace",
    "BTC": "0xe62df6c8b4a85fe1a67db44dc12de5db330f7ac66b72dc658afedf0f4a415b43",
}
PYTH_EXPO = -8
SEQUENCER_GRACE_SECONDS = 3600
# The sequencer came up long ago: a devnet loaded from cache must not look as if it were in its grace period.
SEQUENCER_UP_FOR_SECONDS = 30 * 86400
CREDIT_LINE_STABLECOIN = "USDC"
CREDIT_LINE_SAFETY_FACTOR_WAD = 15 * 10**17  # lend only against 1.5x the debt in attested free collateral
CREDIT_LINE_LIQUIDITY = 10_000_000  # whole stablecoins the lender holds


@dataclass(frozen=True)
class TokenSpec:
    symbol: str
    decimals: int
    asset: str
    usd_price: int  # whole dollars, the feed's initial answer / 10**FEED_DECIMALS
    # Aave reserve configuration in basis points: LTV, liquidation threshold, liquidation bonus.
    aave_risk: tuple[int, int, int]


TOKENS = (
    TokenSpec("WETH", 18, "ETH", 3000, (8000, 8250, 10500)),
    TokenSpec("USDC", 6, "USDC", 1, (7700, 8000, 10450)),
    TokenSpec("WBTC", 8, "BTC", 60000, (7000, 7500, 10650)),
    TokenSpec("WSTETH", 18, "WSTETH", 3500, (6900, 7900, 10700)),
)
ETH_CORRELATED_EMODE = (1, 9300, 9500, 10100, "ETH correlated", ("WETH", "WSTETH"))


@dataclass(frozen=True)
class ChainPlan:
    """What one chain of the devnet carries, and the demo wallet's positions on it."""

    name: str
    chain_id: int
    is_l2: bool
    native_wei: int
    erc20: dict[str, int]
    aave_supply: dict[str, int] = field(default_factory=dict)
    aave_borrow: dict[str, int] = field(default_factory=dict)
    aave_emode: int = 0
    uniswap_lp: bool = False
    gmx_perps: bool = False


# Odd trailing wei everywhere: a read that rounds through a float, or scales twice, shows up in the tests.
PLANS = (
    ChainPlan(
        name="ethereum",
        chain_id=1,
        is_l2=False,
        native_wei=3_750_000_000_000_000_987,
        erc20={"WETH": 2_500_000_000_000_001_234, "USDC": 15_000_123_456, "WBTC": 12_345_678},
        aave_supply={"WETH": 10 * 10**18 + 7},
        aave_borrow={"USDC": 12_000_500_000},
        uniswap_lp=True,
    ),
    ChainPlan(
        name="arbitrum",
        chain_id=42161,
        is_l2=True,
        native_wei=1_250_000_000_000_000_003,
        erc20={"WETH": 750_000_000_000_000_011, "USDC": 4_321_000_001, "WSTETH": 10**18 + 1},
        aave_supply={"WSTETH": 5 * 10**18 + 3},
        aave_borrow={"WETH": 3_200_000_000_000_000_011},
        aave_emode=ETH_CORRELATED_EMODE[0],
        gmx_perps=True,
    ),
    ChainPlan(
        name="base",
        chain_id=8453,
        is_l2=True,
        native_wei=420_000_000_000_000_017,
        erc20={"USDC": 2_500_000_042, "WETH": 100_000_000_000_000_009},
    ),
)


class ChainDeployer:
    """Sends transactions from anvil's unlocked accounts and checks every receipt."""

    def __init__(self, w3: Web3) -> None:
        self.w3 = w3

    def deploy(self, artifact: Artifact, *args: Any, sender: str = DEPLOYER) -> Contract:
        factory = self.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
        receipt = self._mined(factory.constructor(*args).transact({"from": sender}), f"deploy {artifact.name}")
        address = receipt["contractAddress"]
        return self.w3.eth.contract(address=address, abi=artifact.abi)

    def send(self, call: Any, *, sender: str = DEPLOYER, value: int = 0, what: str) -> Any:
        return self._mined(call.transact({"from": sender, "value": value}), what)

    def rpc(self, method: str, params: list[Any]) -> Any:
        response = self.w3.provider.make_request(method, params)  # type: ignore[arg-type]
        if "error" in response:
            raise DevnetError(f"{method}: {response['error']}")
        return response["result"]

    def _mined(self, tx_hash: bytes, what: str) -> Any:
        receipt = self.w3.eth.wait_for_transaction_receipt(HexBytes(tx_hash))
        if receipt["status"] != 1:
            raise DevnetError(f"{what} reverted")
        return receipt


def deploy_multicall3(deployer: ChainDeployer) -> None:
    """Multicall3 at its canonical address, by replaying its pre-signed (chain-agnostic) deployment."""
    presigned = (INTERFACES_DIR / "multicall3" / "presigned_deploy_tx.txt").read_text().strip()
    deployer.rpc("anvil_setBalance", [MULTICALL3_DEPLOYER, hex(10**17)])
    tx_hash = deployer.w3.eth.send_raw_transaction(bytes.fromhex(presigned.removeprefix("0x")))
    deployer._mined(tx_hash, "deploy Multicall3")
    if deployer.w3.eth.get_code(Web3.to_checksum_address(MULTICALL3)) == b"":
        raise DevnetError("Multicall3 is not at its canonical address after its deployment")


def deploy_tokens(deployer: ChainDeployer) -> dict[str, Contract]:
    tokens: dict[str, Contract] = {}
    for spec in TOKENS:
        if spec.symbol == "WETH":
            tokens[spec.symbol] = deployer.deploy(aave("dependencies/weth/WETH9.sol/WETH9.json").artifact)
        else:
            mintable = aave("mocks/tokens/MintableERC20.sol/MintableERC20.json").artifact
            tokens[spec.symbol] = deployer.deploy(mintable, spec.symbol, spec.symbol, spec.decimals)
    return tokens


def give_tokens(deployer: ChainDeployer, tokens: dict[str, Contract], symbol: str, to: str, amount: int) -> None:
    token = tokens[symbol]
    if symbol == "WETH":
        deployer.rpc("anvil_setBalance", [to, hex(amount + 10**21)])
        deployer.send(token.functions.deposit(), sender=to, value=amount, what="wrap WETH")
    else:
        deployer.send(token.functions.mint(to, amount), what=f"mint {symbol}")


def deploy_price_feeds(deployer: ChainDeployer) -> dict[str, Contract]:
    """One Chainlink MockV3Aggregator per asset (8 decimals, like Chainlink's USD feeds)."""
    mock = compile_sources()["MockV3Aggregator"]
    feeds: dict[str, Contract] = {}
    for spec in TOKENS:
        if spec.asset not in feeds:
            feeds[spec.asset] = deployer.deploy(mock, FEED_DECIMALS, spec.usd_price * 10**FEED_DECIMALS)
    return feeds


def deploy_sequencer_feed(deployer: ChainDeployer) -> Contract:
    """An L2 sequencer-uptime feed reporting 'up' (answer 0) since long ago."""
    feed = deployer.deploy(compile_sources()["MockV3Aggregator"], 0, 0)
    now = deployer.w3.eth.get_block("latest")["timestamp"]
    started_at = now - SEQUENCER_UP_FOR_SECONDS
    deployer.send(feed.functions.updateRoundData(2, 0, now, started_at), what="sequencer feed: up")
    return feed


def deploy_pyth(deployer: ChainDeployer) -> Contract:
    pyth = deployer.deploy(compile_sources()["MockPyth"], 60, 1)
    publish_pyth_prices(deployer, pyth, {"ETH": 3000 * 10**-PYTH_EXPO, "BTC": 60000 * 10**-PYTH_EXPO})
    return pyth


def publish_pyth_prices(deployer: ChainDeployer, pyth: Contract, raw_prices: dict[str, int]) -> None:
    """Publish prices (in units of 10**PYTH_EXPO USD) stamped with the chain's current time."""
    now = deployer.w3.eth.get_block("latest")["timestamp"]
    updates = [
        pyth.functions.createPriceFeedUpdateData(
            PYTH_PRICE_IDS[asset], price, 10**6, PYTH_EXPO, price, 10**6, now, now - 1
        ).call()
        for asset, price in raw_prices.items()
    ]
    fee = pyth.functions.getUpdateFee(updates).call()
    deployer.send(pyth.functions.updatePriceFeeds(updates), value=fee, what="publish Pyth prices")


@dataclass(frozen=True)
class AaveMarket:
    pool: Contract
    configurator: Contract
    data_provider: Contract
    oracle: Contract


def deploy_aave(
    deployer: ChainDeployer, tokens: dict[str, Contract], feeds: dict[str, Contract], *, with_emode: bool
) -> AaveMarket:
    """A real Aave v3 market (the order of DEVNET.md), zero interest so seeded balances stay exact to the wei."""
    libraries: dict[str, str] = {}
    for name in ("SupplyLogic", "BorrowLogic", "LiquidationLogic", "EModeLogic", "BridgeLogic", "PoolLogic"):
        libraries[name] = deployer.deploy(aave(f"protocol/libraries/logic/{name}.sol/{name}.json").artifact).address
    flash = aave("protocol/libraries/logic/FlashLoanLogic.sol/FlashLoanLogic.json")
    libraries["FlashLoanLogic"] = deployer.deploy(flash.artifact.linked(libraries, flash.link_references)).address
    configurator_logic = aave("protocol/libraries/logic/ConfiguratorLogic.sol/ConfiguratorLogic.json").artifact
    libraries["ConfiguratorLogic"] = deployer.deploy(configurator_logic).address

    provider_artifact = aave("protocol/configuration/PoolAddressesProvider.sol/PoolAddressesProvider.json").artifact
    provider = deployer.deploy(provider_artifact, "metarisk-devnet", DEPLOYER)
    deployer.send(provider.functions.setACLAdmin(DEPLOYER), what="setACLAdmin")
    acl = deployer.deploy(aave("protocol/configuration/ACLManager.sol/ACLManager.json").artifact, provider.address)
    deployer.send(provider.functions.setACLManager(acl.address), what="setACLManager")
    deployer.send(acl.functions.addPoolAdmin(DEPLOYER), what="addPoolAdmin")

    pool_npm = aave("protocol/pool/Pool.sol/Pool.json")
    pool_impl = deployer.deploy(pool_npm.artifact.linked(libraries, pool_npm.link_references), provider.address)
    deployer.send(provider.functions.setPoolImpl(pool_impl.address), what="setPoolImpl")
    pool = deployer.w3.eth.contract(address=provider.functions.getPool().call(), abi=pool_npm.artifact.abi)

    configurator_npm = aave("protocol/pool/PoolConfigurator.sol/PoolConfigurator.json")
    configurator_impl = deployer.deploy(configurator_npm.artifact.linked(libraries, configurator_npm.link_references))
    deployer.send(provider.functions.setPoolConfiguratorImpl(configurator_impl.address), what="setConfiguratorImpl")
    configurator = deployer.w3.eth.contract(
        address=provider.functions.getPoolConfigurator().call(), abi=configurator_npm.artifact.abi
    )

    reserves = [spec for spec in TOKENS if with_emode or spec.symbol != "WSTETH"]
    oracle = deployer.deploy(
        aave("misc/AaveOracle.sol/AaveOracle.json").artifact,
        provider.address,
        [tokens[spec.symbol].address for spec in reserves],
        [feeds[spec.asset].address for spec in reserves],
        "0x0000000000000000000000000000000000000000",
        "0x0000000000000000000000000000000000000000",
        10**8,
    )
    deployer.send(provider.functions.setPriceOracle(oracle.address), what="setPriceOracle")
    data_provider = deployer.deploy(
        aave("misc/AaveProtocolDataProvider.sol/AaveProtocolDataProvider.json").artifact, provider.address
    )
    deployer.send(provider.functions.setPoolDataProvider(data_provider.address), what="setPoolDataProvider")

    a_token = deployer.deploy(aave("protocol/tokenization/AToken.sol/AToken.json").artifact, pool.address)
    stable = deployer.deploy(
        aave("protocol/tokenization/StableDebtToken.sol/StableDebtToken.json").artifact, pool.address
    )
    variable = deployer.deploy(
        aave("protocol/tokenization/VariableDebtToken.sol/VariableDebtToken.json").artifact, pool.address
    )
    strategy = deployer.deploy(
        aave("misc/ZeroReserveInterestRateStrategy.sol/ZeroReserveInterestRateStrategy.json").artifact,
        provider.address,
    )
    inputs = [
        (
            a_token.address,
            stable.address,
            variable.address,
            spec.decimals,
            strategy.address,
            tokens[spec.symbol].address,
            DEPLOYER,  # treasury
            "0x0000000000000000000000000000000000000000",  # no incentives controller
            f"Aave {spec.symbol}",
            f"a{spec.symbol}",
            f"Aave variable debt {spec.symbol}",
            f"variableDebt{spec.symbol}",
            f"Aave stable debt {spec.symbol}",
            f"stableDebt{spec.symbol}",
            b"",
        )
        for spec in reserves
    ]
    deployer.send(configurator.functions.initReserves(inputs), what="initReserves")
    for spec in reserves:
        ltv, threshold, bonus = spec.aave_risk
        deployer.send(
            configurator.functions.configureReserveAsCollateral(tokens[spec.symbol].address, ltv, threshold, bonus),
            what=f"configureReserveAsCollateral {spec.symbol}",
        )
        deployer.send(
            configurator.functions.setReserveBorrowing(tokens[spec.symbol].address, True),
            what=f"setReserveBorrowing {spec.symbol}",
        )
    if with_emode:
        category, ltv, threshold, bonus, label, members = ETH_CORRELATED_EMODE
        deployer.send(
            configurator.functions.setEModeCategory(
                category, ltv, threshold, bonus, "0x0000000000000000000000000000000000000000", label
            ),
            what="setEModeCategory",
        )
        for symbol in members:
            deployer.send(
                configurator.functions.setAssetEModeCategory(tokens[symbol].address, category),
                what=f"setAssetEModeCategory {symbol}",
            )
    # Liquidity for the demo wallet to borrow from.
    for spec in reserves:
        amount = 1_000_000 * 10**spec.decimals // spec.usd_price
        give_tokens(deployer, tokens, spec.symbol, DEPLOYER, amount)
        deployer.send(tokens[spec.symbol].functions.approve(pool.address, amount), what="approve pool")
        deployer.send(
            pool.functions.supply(tokens[spec.symbol].address, amount, DEPLOYER, 0), what=f"seed {spec.symbol}"
        )
    return AaveMarket(pool=pool, configurator=configurator, data_provider=data_provider, oracle=oracle)


def seed_aave(deployer: ChainDeployer, market: AaveMarket, tokens: dict[str, Contract], plan: ChainPlan) -> SeededAave:
    if plan.aave_emode:
        deployer.send(market.pool.functions.setUserEMode(plan.aave_emode), sender=DEMO_ACCOUNT, what="setUserEMode")
    for symbol, amount in plan.aave_supply.items():
        give_tokens(deployer, tokens, symbol, DEMO_ACCOUNT, amount)
        token = tokens[symbol]
        deployer.send(token.functions.approve(market.pool.address, amount), sender=DEMO_ACCOUNT, what="approve")
        deployer.send(
            market.pool.functions.supply(token.address, amount, DEMO_ACCOUNT, 0),
            sender=DEMO_ACCOUNT,
            what=f"demo supply {symbol}",
        )
    for symbol, amount in plan.aave_borrow.items():
        deployer.send(
            market.pool.functions.borrow(tokens[symbol].address, amount, 2, 0, DEMO_ACCOUNT),
            sender=DEMO_ACCOUNT,
            what=f"demo borrow {symbol}",
        )
    return SeededAave(supplied=dict(plan.aave_supply), borrowed=dict(plan.aave_borrow), emode_category=plan.aave_emode)


def compute_sqrt_price_x96(*, token1_per_token0_raw_numerator: int, denominator: int) -> int:
    return math.isqrt(token1_per_token0_raw_numerator * 2**192 // denominator)


def compute_tick_for_price(price_raw: float, *, spacing: int) -> int:
    return math.floor(math.log(price_raw, 1.0001) / spacing) * spacing


def deploy_and_seed_uniswap(
    deployer: ChainDeployer, tokens: dict[str, Contract]
) -> tuple[UniswapV3Contracts, SeededLp, str]:
    """Factory, NonfungiblePositionManager and SwapRouter from Uniswap's artifacts; a WETH/USDC 0.3% pool at
    3000 USDC per WETH with wide background liquidity, the demo wallet's range 2500-3600, and swaps both ways so
    the range holds uncollected fees."""
    factory_artifact = load_npm_artifact(
        "@uniswap/v3-core/artifacts/contracts/UniswapV3Factory.sol/UniswapV3Factory.json"
    )
    factory = deployer.deploy(factory_artifact.artifact)
    weth = tokens["WETH"]
    # The descriptor only renders token URIs; no read here uses it.
    descriptor = DEPLOYER
    npm_path = (
        "@uniswap/v3-periphery/artifacts/contracts/NonfungiblePositionManager.sol/NonfungiblePositionManager.json"
    )
    manager = deployer.deploy(load_npm_artifact(npm_path).artifact, factory.address, weth.address, descriptor)
    router_path = "@uniswap/v3-periphery/artifacts/contracts/SwapRouter.sol/SwapRouter.json"
    router = deployer.deploy(load_npm_artifact(router_path).artifact, factory.address, weth.address)

    fee, spacing = 3000, 60
    token0, token1 = sorted(("WETH", "USDC"), key=lambda symbol: int(tokens[symbol].address, 16))
    decimals = {"WETH": 18, "USDC": 6}
    usdc_per_weth = {"lower": 2500, "spot": 3000, "upper": 3600}

    def raw_price(usd: int) -> tuple[int, int]:
        """token1 per token0 in raw units, as numerator and denominator."""
        if token0 == "WETH":
            return usd * 10 ** decimals["USDC"], 10 ** decimals["WETH"]
        return 10 ** decimals["WETH"], usd * 10 ** decimals["USDC"]

    deployer.send(factory.functions.createPool(weth.address, tokens["USDC"].address, fee), what="createPool")
    pool_address = factory.functions.getPool(weth.address, tokens["USDC"].address, fee).call()
    pool_abi = load_npm_artifact("@uniswap/v3-core/artifacts/contracts/UniswapV3Pool.sol/UniswapV3Pool.json")
    pool = deployer.w3.eth.contract(address=pool_address, abi=pool_abi.artifact.abi)
    numerator, denominator = raw_price(usdc_per_weth["spot"])
    deployer.send(
        pool.functions.initialize(
            compute_sqrt_price_x96(token1_per_token0_raw_numerator=numerator, denominator=denominator)
        ),
        what="initialize pool",
    )

    def mint(owner: str, tick_lower: int, tick_upper: int, weth_amount: int, usdc_amount: int) -> tuple[int, int]:
        amounts = {"WETH": weth_amount, "USDC": usdc_amount}
        for symbol, amount in amounts.items():
            give_tokens(deployer, tokens, symbol, owner, amount)
            deployer.send(tokens[symbol].functions.approve(manager.address, amount), sender=owner, what="approve")
        params = (
            tokens[token0].address,
            tokens[token1].address,
            fee,
            tick_lower,
            tick_upper,
            amounts[token0],
            amounts[token1],
            0,
            0,
            owner,
            2**64,
        )
        receipt = deployer.send(manager.functions.mint(params), sender=owner, what="mint LP")
        event = manager.events.IncreaseLiquidity().process_receipt(receipt, errors=DISCARD)[0]
        return int(event["args"]["tokenId"]), int(event["args"]["liquidity"])

    wide = 887220  # the widest range on a 60-tick grid
    mint(DEPLOYER, -wide, wide, 200 * 10**18, 600_000 * 10**6)
    ticks = sorted(
        compute_tick_for_price(n / d, spacing=spacing)
        for n, d in map(raw_price, (usdc_per_weth["lower"], usdc_per_weth["upper"]))
    )
    token_id, liquidity = mint(DEMO_ACCOUNT, ticks[0], ticks[1], 2 * 10**18, 6_000 * 10**6)

    swaps = (("WETH", "USDC", 3 * 10**18), ("USDC", "WETH", 7_000 * 10**6))
    for token_in, token_out, amount in swaps:
        give_tokens(deployer, tokens, token_in, DEPLOYER, amount)
        deployer.send(tokens[token_in].functions.approve(router.address, amount), what="approve router")
        params = (tokens[token_in].address, tokens[token_out].address, fee, DEPLOYER, 2**64, amount, 0, 0)
        deployer.send(router.functions.exactInputSingle(params), what=f"swap {token_in}->{token_out}")

    lp = SeededLp(
        token_id=token_id,
        pool=pool_address,
        token0=token0,
        token1=token1,
        fee=fee,
        tick_lower=ticks[0],
        tick_upper=ticks[1],
        liquidity=liquidity,
    )
    return UniswapV3Contracts(factory=factory.address, position_manager=manager.address), lp, router.address


def deploy_and_seed_gmx(
    deployer: ChainDeployer, tokens: dict[str, Contract]
) -> tuple[GmxV2Contracts, list[SeededPerp]]:
    """Our GMX-v2-ABI reader with two markets (ETH/USD, BTC/USD) and a long and a short for the demo wallet."""
    reader = deployer.deploy(compile_sources()["DevnetGmxReader"])
    data_store = reader.address  # the reader keys its storage by data store; it stands for its own
    market_token = aave("mocks/tokens/MintableERC20.sol/MintableERC20.json").artifact
    perps: list[SeededPerp] = []
    specs = (
        ("WETH", True, 4_500 * 10**30 + 12345, 1_500_000_000_000_000_005, 1_000 * 10**6),
        ("WBTC", False, 3_000 * 10**30, 5_000_001, 500_000_001),
    )
    for index_symbol, is_long, size_usd, size_tokens, collateral in specs:
        market = deployer.deploy(market_token, f"GM {index_symbol}/USD", "GM", 18)
        props = (market.address, tokens[index_symbol].address, tokens[index_symbol].address, tokens["USDC"].address)
        deployer.send(reader.functions.setMarket(data_store, props), what="gmx setMarket")
        now = deployer.w3.eth.get_block("latest")["timestamp"]
        position = (
            (DEMO_ACCOUNT, market.address, tokens["USDC"].address),
            (size_usd, size_tokens, collateral, 0, 0, 0, 0, 0, now, 0),
            (is_long,),
        )
        deployer.send(reader.functions.addPosition(data_store, position), what="gmx addPosition")
        perps.append(
            SeededPerp(
                market=market.address,
                index_token=index_symbol,
                collateral_token="USDC",
                is_long=is_long,
                size_in_usd=size_usd,
                size_in_tokens=size_tokens,
                collateral_amount=collateral,
            )
        )
    return GmxV2Contracts(reader=reader.address, data_store=data_store), perps


def deploy_attestation(deployer: ChainDeployer, tokens: dict[str, Contract]) -> AttestationContracts:
    """MetariskVerifier owned by the deployer (the service registers its signer at start) and CreditLine lending
    the devnet's stablecoin, funded."""
    artifacts = compile_sources()
    verifier = deployer.deploy(artifacts["MetariskVerifier"], DEPLOYER)
    stablecoin = tokens[CREDIT_LINE_STABLECOIN]
    credit_line = deployer.deploy(
        artifacts["CreditLine"], stablecoin.address, verifier.address, CREDIT_LINE_SAFETY_FACTOR_WAD
    )
    decimals = next(spec.decimals for spec in TOKENS if spec.symbol == CREDIT_LINE_STABLECOIN)
    give_tokens(deployer, tokens, CREDIT_LINE_STABLECOIN, credit_line.address, CREDIT_LINE_LIQUIDITY * 10**decimals)
    return AttestationContracts(
        verifier=verifier.address,
        credit_line=credit_line.address,
        stablecoin=CREDIT_LINE_STABLECOIN,
        safety_factor_wad=CREDIT_LINE_SAFETY_FACTOR_WAD,
    )


def set_wallet_balances(deployer: ChainDeployer, tokens: dict[str, Contract], plan: ChainPlan) -> None:
    """The demo wallet's token and native balances set exactly, after the seeding transactions moved them."""
    for symbol, token in tokens.items():
        target = plan.erc20.get(symbol, 0)
        balance = token.functions.balanceOf(DEMO_ACCOUNT).call()
        if balance > target:
            deployer.send(
                token.functions.transfer(DEPLOYER, balance - target), sender=DEMO_ACCOUNT, what="trim balance"
            )
        elif balance < target:
            give_tokens(deployer, tokens, symbol, DEMO_ACCOUNT, target - balance)
    # Last, since every transaction above paid gas from it.
    deployer.rpc("anvil_setBalance", [DEMO_ACCOUNT, hex(plan.native_wei)])


def deploy_chain(w3: Web3, plan: ChainPlan) -> DevnetChain:
    """Everything of one chain, deployed and seeded on a fresh anvil node at `w3`."""
    deployer = ChainDeployer(w3)
    deploy_multicall3(deployer)
    tokens = deploy_tokens(deployer)
    feeds = deploy_price_feeds(deployer)
    sequencer = deploy_sequencer_feed(deployer) if plan.is_l2 else None
    pyth = deploy_pyth(deployer)

    aave_contracts: AaveV3Contracts | None = None
    seeded_aave: SeededAave | None = None
    if plan.aave_supply:
        market = deploy_aave(deployer, tokens, feeds, with_emode=bool(plan.aave_emode))
        seeded_aave = seed_aave(deployer, market, tokens, plan)
        aave_contracts = AaveV3Contracts(
            pool=market.pool.address, data_provider=market.data_provider.address, oracle=market.oracle.address
        )
    uniswap_contracts: UniswapV3Contracts | None = None
    seeded_lp: SeededLp | None = None
    swap_router: str | None = None
    if plan.uniswap_lp:
        uniswap_contracts, seeded_lp, swap_router = deploy_and_seed_uniswap(deployer, tokens)
    gmx_contracts: GmxV2Contracts | None = None
    perps: list[SeededPerp] = []
    if plan.gmx_perps:
        gmx_contracts, perps = deploy_and_seed_gmx(deployer, tokens)
    attestation = deploy_attestation(deployer, tokens)
    set_wallet_balances(deployer, tokens, plan)

    config = ChainConfig(
        name=plan.name,
        chain_id=plan.chain_id,
        rpc_urls=["http://127.0.0.1:0"],
        multicall3=MULTICALL3,
        native=NativeToken(symbol="ETH", decimals=18, asset="ETH"),
        tokens=[
            Token(symbol=spec.symbol, address=tokens[spec.symbol].address, decimals=spec.decimals, asset=spec.asset)
            for spec in TOKENS
        ],
        price_feeds=[
            PriceFeed(
                asset=asset,
                address=feed.address,
                heartbeat_seconds=3600 if asset != "USDC" else 86400,
                # Chainlink's OCR aggregators clamp at such bounds; these are wide, like the real ones.
                min_answer=10**FEED_DECIMALS // 100,
                max_answer=10**6 * 10**FEED_DECIMALS,
            )
            for asset, feed in feeds.items()
        ],
        sequencer_uptime_feed=(
            SequencerUptimeFeed(address=sequencer.address, grace_period_seconds=SEQUENCER_GRACE_SECONDS)
            if sequencer
            else None
        ),
        aave_v3=aave_contracts,
        uniswap_v3=uniswap_contracts,
        gmx_v2=gmx_contracts,
        pyth=PythContracts(address=pyth.address, price_ids=dict(PYTH_PRICE_IDS)),
    )
    seeds = ChainSeeds(
        native_wei=plan.native_wei,
        erc20=dict(plan.erc20),
        aave=seeded_aave,
        lp=seeded_lp,
        perps=perps,
        swap_router=swap_router,
    )
    return DevnetChain(config=config, seeds=seeds, attestation=attestation)


def refresh_feeds(w3: Web3, chain: DevnetChain) -> None:
    """Republish every price at its current value, as keepers would: a devnet loaded from an old cache otherwise
    serves prices older than their heartbeat. The sequencer feed is left alone (it has been up since long ago)."""
    deployer = ChainDeployer(w3)
    mock_abi = compile_abi("MockV3Aggregator")
    for feed in chain.config.price_feeds:
        contract = w3.eth.contract(address=Web3.to_checksum_address(feed.address), abi=mock_abi)
        answer = contract.functions.latestAnswer().call()
        deployer.send(contract.functions.updateAnswer(answer), what=f"refresh {feed.asset} feed")
    pyth_config = chain.config.pyth
    if pyth_config is not None:
        pyth = w3.eth.contract(address=Web3.to_checksum_address(pyth_config.address), abi=compile_abi("MockPyth"))
        prices = {
            asset: pyth.functions.getPriceUnsafe(price_id).call()[0]
            for asset, price_id in pyth_config.price_ids.items()
        }
        publish_pyth_prices(deployer, pyth, prices)


def compile_abi(name: str) -> list[dict[str, Any]]:
    """The ABI of a solc-js-compiled contract, read from the interface files where they exist (no compiler run)."""
    files = {
        "MockV3Aggregator": INTERFACES_DIR / "chainlink" / "MockV3Aggregator.json",
        "MockPyth": INTERFACES_DIR / "pyth" / "MockPyth.json",
    }
    data = json.loads(files[name].read_text())
    return data["abi"] if isinstance(data, dict) else data
