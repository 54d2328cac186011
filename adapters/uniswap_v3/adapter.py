"""Uniswap v3 ranges of one wallet: each NonfungiblePositionManager token becomes an `lp` position (human-unit
liquidity and price bounds) and its uncollected fees become spot positions on the venue.

Discovery is the wallet's token ids with each one's pool and ticks (all fixed for the life of a token), found in
up to three rounds for a new wallet: the token count, then the ids, then each id's position. The steady-state batch
re-reads the count, ids and positions beside each pool's slot0, fee-growth accumulators and tick data.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Annotated

from pydantic import Field

from adapters.base import AdapterResult
from adapters.onchain import BlockSnapshot
from adapters.uniswap_v3.maths import (
    compute_fee_growth_inside,
    compute_pool_address,
    compute_position_amounts,
    compute_uncollected_fees,
)
from chains.config import ChainConfig, UniswapV3Contracts
from chains.decoding import Address, ContractOutput, parse_result, parse_single
from chains.multicall import CallResult, ContractCall
from risk_core.pricing.lp import human_liquidity, tick_price
from risk_core.schema.market import SourceStatus
from risk_core.schema.positions import LPPosition, Position, SpotPosition

VENUE = "uniswap-v3"
Uint = Annotated[int, Field(ge=0)]

BALANCE_OF = ("balanceOf(address)", ("uint256",))
TOKEN_OF_OWNER_BY_INDEX = ("tokenOfOwnerByIndex(address,uint256)", ("uint256",))
POSITIONS = (
    "positions(uint256)",
    ("uint96", "address", "address", "address", "uint24", "int24", "int24", "uint128", "uint256", "uint256")
    + ("uint128", "uint128"),
)
SLOT0 = ("slot0()", ("uint160", "int24", "uint16", "uint16", "uint16", "uint8", "bool"))
FEE_GROWTH_GLOBAL0 = ("feeGrowthGlobal0X128()", ("uint256",))
FEE_GROWTH_GLOBAL1 = ("feeGrowthGlobal1X128()", ("uint256",))
TICKS = ("ticks(int24)", ("uint128", "int128", "uint256", "uint256", "int56", "uint160", "uint32", "bool"))


class NpmPosition(ContractOutput):
    nonce: Uint
    operator: Address
    token0: Address
    token1: Address
    fee: Uint
    tick_lower: int
    tick_upper: int
    liquidity: Uint
    fee_growth_inside0_last_x128: Uint
    fee_growth_inside1_last_x128: Uint
    tokens_owed0: Uint
    tokens_owed1: Uint


class Slot0(ContractOutput):
    sqrt_price_x96: Uint
    tick: int
    observation_index: Uint
    observation_cardinality: Uint
    observation_cardinality_next: Uint
    fee_protocol: Uint
    unlocked: bool


class TickInfo(ContractOutput):
    liquidity_gross: Uint
    liquidity_net: int
    fee_growth_outside0_x128: Uint
    fee_growth_outside1_x128: Uint
    tick_cumulative_outside: int
    seconds_per_liquidity_outside_x128: Uint
    seconds_outside: Uint
    initialized: bool


@dataclass(frozen=True)
class RangeKey:
    """What a token id fixes at mint: its pool and range."""

    token_id: int
    token0: Address
    token1: Address
    fee: int
    tick_lower: int
    tick_upper: int


@dataclass(frozen=True)
class UniswapDiscovery:
    count: int
    token_ids: tuple[int, ...] | None  # None: ids not read yet
    ranges: tuple[RangeKey, ...] | None  # None: positions not read yet


@dataclass(frozen=True)
class LpReading:
    """One range, integers as on chain, with what the pool would pay out now."""

    key: RangeKey
    liquidity: int
    sqrt_price_x96: int
    current_tick: int
    amount0: int
    amount1: int
    fees0: int
    fees1: int


def _call(target: str, read: tuple[str, tuple[str, ...]], *args: object) -> ContractCall:
    signature, outputs = read
    return ContractCall(target, signature, tuple(args), outputs)


def _contracts(chain: ChainConfig) -> UniswapV3Contracts:
    assert chain.uniswap_v3 is not None  # applies_to guarantees it
    return chain.uniswap_v3


def compute_range_calls(uniswap: UniswapV3Contracts, key: RangeKey) -> list[ContractCall]:
    pool = compute_pool_address(factory=uniswap.factory, token0=key.token0, token1=key.token1, fee=key.fee)
    return [
        _call(pool, SLOT0),
        _call(pool, FEE_GROWTH_GLOBAL0),
        _call(pool, FEE_GROWTH_GLOBAL1),
        _call(pool, TICKS, key.tick_lower),
        _call(pool, TICKS, key.tick_upper),
    ]


class UniswapV3Adapter:
    venue = VENUE

    def applies_to(self, chain: ChainConfig) -> bool:
        return chain.uniswap_v3 is not None

    def compute_calls(self, *, chain: ChainConfig, account: str, discovery: Hashable | None) -> list[ContractCall]:
        manager = _contracts(chain).position_manager
        calls = [_call(manager, BALANCE_OF, account)]
        if not isinstance(discovery, UniswapDiscovery):
            return calls
        calls += [_call(manager, TOKEN_OF_OWNER_BY_INDEX, account, index) for index in range(discovery.count)]
        if discovery.token_ids is None:
            return calls
        calls += [_call(manager, POSITIONS, token_id) for token_id in discovery.token_ids]
        for key in discovery.ranges or ():
            calls += compute_range_calls(_contracts(chain), key)
        return calls

    def compute_discovery(
        self, *, chain: ChainConfig, account: str, discovery: Hashable | None, results: Sequence[CallResult]
    ) -> Hashable:
        count = parse_single(results[0], int)
        if not isinstance(discovery, UniswapDiscovery) or discovery.count != count:
            return UniswapDiscovery(count=count, token_ids=None, ranges=None)
        token_ids = tuple(parse_single(result, int) for result in results[1 : 1 + count])
        if discovery.token_ids != token_ids:
            return UniswapDiscovery(count=count, token_ids=token_ids, ranges=None)
        positions = [parse_result(NpmPosition, result) for result in results[1 + count : 1 + 2 * count]]
        ranges = tuple(
            RangeKey(
                token_id=token_id,
                token0=position.token0,
                token1=position.token1,
                fee=position.fee,
                tick_lower=position.tick_lower,
                tick_upper=position.tick_upper,
            )
            for token_id, position in zip(token_ids, positions, strict=True)
        )
        return UniswapDiscovery(count=count, token_ids=token_ids, ranges=ranges)

    def compute_readings(self, *, discovery: UniswapDiscovery, results: Sequence[CallResult]) -> list[LpReading]:
        """Parsed results and the pool's payout maths (pure). Raises RpcError."""
        count = discovery.count
        positions = [parse_result(NpmPosition, result) for result in results[1 + count : 1 + 2 * count]]
        pool_results = results[1 + 2 * count :]
        readings = []
        for index, (key, position) in enumerate(zip(discovery.ranges or (), positions, strict=True)):
            slot0_result, global0, global1, lower_result, upper_result = pool_results[5 * index : 5 * index + 5]
            slot0 = parse_result(Slot0, slot0_result)
            lower = parse_result(TickInfo, lower_result)
            upper = parse_result(TickInfo, upper_result)
            amount0, amount1 = compute_position_amounts(
                liquidity=position.liquidity,
                tick_lower=key.tick_lower,
                tick_upper=key.tick_upper,
                current_tick=slot0.tick,
                sqrt_price_x96=slot0.sqrt_price_x96,
            )
            fees = []
            for global_result, outside_lower, outside_upper, last, owed in (
                (global0, lower.fee_growth_outside0_x128, upper.fee_growth_outside0_x128,
                 position.fee_growth_inside0_last_x128, position.tokens_owed0),
                (global1, lower.fee_growth_outside1_x128, upper.fee_growth_outside1_x128,
                 position.fee_growth_inside1_last_x128, position.tokens_owed1),
            ):  # fmt: skip
                inside = compute_fee_growth_inside(
                    current_tick=slot0.tick,
                    tick_lower=key.tick_lower,
                    tick_upper=key.tick_upper,
                    fee_growth_global=parse_single(global_result, int),
                    outside_lower=outside_lower,
                    outside_upper=outside_upper,
                )
                fees.append(
                    compute_uncollected_fees(
                        tokens_owed=owed,
                        fee_growth_inside=inside,
                        fee_growth_inside_last=last,
                        liquidity=position.liquidity,
                    )
                )
            readings.append(
                LpReading(
                    key=key,
                    liquidity=position.liquidity,
                    sqrt_price_x96=slot0.sqrt_price_x96,
                    current_tick=slot0.tick,
                    amount0=amount0,
                    amount1=amount1,
                    fees0=fees[0],
                    fees1=fees[1],
                )
            )
        return readings

    def compute_result(
        self,
        *,
        chain: ChainConfig,
        account: str,
        discovery: Hashable,
        results: Sequence[CallResult],
        snapshot: BlockSnapshot,
    ) -> AdapterResult:
        assert isinstance(discovery, UniswapDiscovery)
        readings = self.compute_readings(discovery=discovery, results=results)
        return compute_uniswap_result(chain=chain, account=account, readings=readings, snapshot=snapshot)


def compute_uniswap_result(
    *, chain: ChainConfig, account: str, readings: Sequence[LpReading], snapshot: BlockSnapshot
) -> AdapterResult:
    source = f"{VENUE}@{chain.name}"
    unknown = sorted(
        {
            address
            for reading in readings
            for address in (reading.key.token0, reading.key.token1)
            if chain.token_by_address(address) is None
        }
    )
    complete = not unknown
    provenance = snapshot.provenance(source, complete=complete)
    positions: list[Position] = []
    for reading in readings:
        token0 = chain.token_by_address(reading.key.token0)
        token1 = chain.token_by_address(reading.key.token1)
        if token0 is None or token1 is None:
            continue
        common = {"venue": VENUE, "chain": chain.name, "account": account, "provenance": provenance}
        if reading.liquidity:
            positions.append(
                LPPosition(
                    kind="lp",
                    id=f"{VENUE}:{chain.name}:{reading.key.token_id}",
                    token0=token0.asset,
                    token1=token1.asset,
                    liquidity=human_liquidity(reading.liquidity, token0.decimals, token1.decimals),
                    price_lower=tick_price(reading.key.tick_lower, token0.decimals, token1.decimals),
                    price_upper=tick_price(reading.key.tick_upper, token0.decimals, token1.decimals),
                    **common,
                )
            )
        for token, fees in ((token0, reading.fees0), (token1, reading.fees1)):
            if fees:
                positions.append(
                    SpotPosition(
                        kind="spot",
                        id=f"{VENUE}:{chain.name}:{reading.key.token_id}:fees:{token.symbol}",
                        asset=token.asset,
                        quantity=fees / 10**token.decimals,
                        **common,
                    )
                )
    status = SourceStatus(
        name=source,
        status="ok" if complete else "failed",
        reason=None if complete else f"tokens not in the chains file, ranges skipped: {', '.join(unknown)}",
        as_of=snapshot.timestamp,
    )
    return AdapterResult(source=source, status=status, positions=positions, block=snapshot.block)
