"""GMX v2 perps of one account: a `perp` position per GMX position (signed size in index tokens, entry price from
sizeInUsd / sizeInTokens) and its collateral as a spot holding on the venue.

Discovery is the set of markets the account trades (each market's index token comes from Reader.getMarket); the
steady-state batch re-reads the positions beside those markets.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import Field

from adapters.base import AdapterResult
from adapters.onchain import BlockSnapshot
from chains.config import ChainConfig, GmxV2Contracts
from chains.decoding import Address, ContractOutput, parse_values
from chains.errors import RpcError
from chains.multicall import CallResult, ContractCall
from risk_core.schema.market import SourceStatus
from risk_core.schema.positions import PerpPosition, Position, SpotPosition

VENUE = "gmx-v2"
USD_UNIT = 10**30  # GMX keeps USD amounts with 30 decimals
# Positions per read; a full page means there may be more, and the result says it is partial.
PAGE = 1000
Uint = Annotated[int, Field(ge=0)]

POSITION_PROPS = (
    "((address,address,address),"
    "(uint256,uint256,uint256,int256,uint256,uint256,uint256,uint256,uint256,uint256),"
    "(bool))"
)
GET_ACCOUNT_POSITIONS = ("getAccountPositions(address,address,uint256,uint256)", (f"{POSITION_PROPS}[]",))
GET_MARKET = ("getMarket(address,address)", ("(address,address,address,address)",))


class PositionAddresses(ContractOutput):
    account: Address
    market: Address
    collateral_token: Address


class PositionNumbers(ContractOutput):
    size_in_usd: Uint
    size_in_tokens: Uint
    collateral_amount: Uint
    pending_impact_amount: int
    borrowing_factor: Uint
    funding_fee_amount_per_size: Uint
    long_token_claimable_funding_amount_per_size: Uint
    short_token_claimable_funding_amount_per_size: Uint
    increased_at_time: Uint
    decreased_at_time: Uint


@dataclass(frozen=True)
class GmxPosition:
    addresses: PositionAddresses
    numbers: PositionNumbers
    is_long: bool


class MarketProps(ContractOutput):
    market_token: Address
    index_token: Address
    long_token: Address
    short_token: Address


@dataclass(frozen=True)
class GmxDiscovery:
    markets: tuple[str, ...]


def _contracts(chain: ChainConfig) -> GmxV2Contracts:
    assert chain.gmx_v2 is not None  # applies_to guarantees it
    return chain.gmx_v2


def compute_positions_reading(result: CallResult) -> list[GmxPosition]:
    """Raises RpcError."""
    (props,) = result.decoded()
    positions = []
    for addresses, numbers, flags in props:
        if len(flags) != 1 or not isinstance(flags[0], bool):
            raise RpcError("getAccountPositions: flags are not (bool)")
        positions.append(
            GmxPosition(
                addresses=parse_values(PositionAddresses, addresses, what="Position.Addresses"),
                numbers=parse_values(PositionNumbers, numbers, what="Position.Numbers"),
                is_long=flags[0],
            )
        )
    return positions


class GmxV2Adapter:
    venue = VENUE

    def applies_to(self, chain: ChainConfig) -> bool:
        return chain.gmx_v2 is not None

    def compute_calls(self, *, chain: ChainConfig, account: str, discovery: Hashable | None) -> list[ContractCall]:
        gmx = _contracts(chain)
        signature, outputs = GET_ACCOUNT_POSITIONS
        calls = [ContractCall(gmx.reader, signature, (gmx.data_store, account, 0, PAGE), outputs)]
        if isinstance(discovery, GmxDiscovery):
            signature, outputs = GET_MARKET
            calls += [
                ContractCall(gmx.reader, signature, (gmx.data_store, market), outputs) for market in discovery.markets
            ]
        return calls

    def compute_discovery(
        self, *, chain: ChainConfig, account: str, discovery: Hashable | None, results: Sequence[CallResult]
    ) -> Hashable:
        positions = compute_positions_reading(results[0])
        return GmxDiscovery(markets=tuple(sorted({position.addresses.market for position in positions})))

    def compute_result(
        self,
        *,
        chain: ChainConfig,
        account: str,
        discovery: Hashable,
        results: Sequence[CallResult],
        snapshot: BlockSnapshot,
    ) -> AdapterResult:
        assert isinstance(discovery, GmxDiscovery)
        positions = compute_positions_reading(results[0])
        markets = {
            market: parse_values(MarketProps, result.decoded()[0], what="getMarket")
            for market, result in zip(discovery.markets, results[1:], strict=True)
        }
        return compute_gmx_result(chain=chain, account=account, positions=positions, markets=markets, snapshot=snapshot)


def compute_gmx_result(
    *,
    chain: ChainConfig,
    account: str,
    positions: Sequence[GmxPosition],
    markets: dict[str, MarketProps],
    snapshot: BlockSnapshot,
) -> AdapterResult:
    source = f"{VENUE}@{chain.name}"
    problems: list[str] = []
    if len(positions) >= PAGE:
        problems.append(f"{PAGE} positions or more: only the first {PAGE} are read")
    out: list[Position] = []
    readable: list[tuple[int, GmxPosition, Any, Any]] = []
    for index, position in enumerate(positions):
        index_token = chain.token_by_address(markets[position.addresses.market].index_token)
        collateral = chain.token_by_address(position.addresses.collateral_token)
        if index_token is None or collateral is None:
            problems.append(f"market {position.addresses.market}: token not in the chains file, position skipped")
            continue
        readable.append((index, position, index_token, collateral))
    provenance = snapshot.provenance(source, complete=not problems)
    for index, position, index_token, collateral in readable:
        numbers = position.numbers
        if numbers.size_in_tokens == 0:
            continue
        size = numbers.size_in_tokens / 10**index_token.decimals
        common = {"venue": VENUE, "chain": chain.name, "account": account, "provenance": provenance}
        out.append(
            PerpPosition(
                kind="perp",
                id=f"{VENUE}:{chain.name}:{index}",
                underlying=index_token.asset,
                quantity=size if position.is_long else -size,
                entry_price=(numbers.size_in_usd / USD_UNIT) / size,
                **common,
            )
        )
        if numbers.collateral_amount:
            out.append(
                SpotPosition(
                    kind="spot",
                    id=f"{VENUE}:{chain.name}:{index}:collateral",
                    asset=collateral.asset,
                    quantity=numbers.collateral_amount / 10**collateral.decimals,
                    **common,
                )
            )
    status = SourceStatus(
        name=source,
        status="failed" if problems else "ok",
        reason="; ".join(problems) or None,
        as_of=snapshot.timestamp,
    )
    return AdapterResult(source=source, status=status, positions=out, block=snapshot.block)
