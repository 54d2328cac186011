"""Aave v3 positions of one account and the venue's own view (thresholds, e-mode, getUserAccountData).

Discovery is the reserve list, the user's e-mode category and that category's price source; the steady-state
batch re-reads them beside the per-reserve data, so a new reserve or an e-mode switch costs one more round.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

from eth_utils import to_checksum_address

from adapters.aave_v3.decoding import (
    BASE_CURRENCY_UNIT,
    GET_ASSET_PRICE,
    GET_EMODE_CATEGORY_DATA,
    GET_RESERVE_CONFIGURATION_DATA,
    GET_RESERVE_EMODE_CATEGORY,
    GET_RESERVES_LIST,
    GET_USER_ACCOUNT_DATA,
    GET_USER_EMODE,
    GET_USER_RESERVE_DATA,
    EModeCategoryData,
    ReserveConfigurationData,
    UserAccountData,
    UserReserveData,
)
from adapters.base import AdapterResult
from adapters.onchain import BlockSnapshot
from chains.config import AaveV3Contracts, ChainConfig
from chains.decoding import parse_result, parse_single, parse_values
from chains.errors import RpcError
from chains.multicall import CallResult, ContractCall
from risk_core.schema.market import SourceStatus
from risk_core.schema.positions import BorrowPosition, LendPosition, Position
from risk_core.schema.venues import VenueState

VENUE = "aave-v3"
NO_PRICE_SOURCE = "0x0000000000000000000000000000000000000000"
HEALTH_FACTOR_UNIT = 10**18
# getUserAccountData's health factor without debt.
NO_DEBT_HEALTH_FACTOR = 2**256 - 1


@dataclass(frozen=True)
class AaveDiscovery:
    reserves: tuple[str, ...]
    emode_category: int
    emode_price_source: str | None  # None: not yet read (the category's data rides in the next round)


@dataclass(frozen=True)
class AaveReserveReading:
    """One reserve for one user, integers as on chain."""

    asset_address: str
    user: UserReserveData
    configuration: ReserveConfigurationData
    emode_category: int
    price_base: int  # the Aave oracle's price, in base currency units


@dataclass(frozen=True)
class AaveReading:
    account: UserAccountData
    reserves: tuple[AaveReserveReading, ...]
    emode: EModeCategoryData | None
    emode_price_base: int | None
    base_currency_unit: int


def _contracts(chain: ChainConfig) -> AaveV3Contracts:
    assert chain.aave_v3 is not None  # applies_to guarantees it
    return chain.aave_v3


def _call(target: str, read: tuple[str, tuple[str, ...]], *args: object) -> ContractCall:
    signature, outputs = read
    return ContractCall(target, signature, tuple(args), outputs)


class AaveV3Adapter:
    venue = VENUE

    def applies_to(self, chain: ChainConfig) -> bool:
        return chain.aave_v3 is not None

    def compute_calls(self, *, chain: ChainConfig, account: str, discovery: Hashable | None) -> list[ContractCall]:
        aave = _contracts(chain)
        calls = [_call(aave.pool, GET_RESERVES_LIST), _call(aave.pool, GET_USER_EMODE, account)]
        if not isinstance(discovery, AaveDiscovery):
            return calls
        if discovery.emode_category:
            calls.append(_call(aave.pool, GET_EMODE_CATEGORY_DATA, discovery.emode_category))
        calls += [_call(aave.pool, GET_USER_ACCOUNT_DATA, account), _call(aave.oracle, BASE_CURRENCY_UNIT)]
        if discovery.emode_price_source not in (None, NO_PRICE_SOURCE):
            calls.append(_call(aave.oracle, GET_ASSET_PRICE, discovery.emode_price_source))
        for reserve in discovery.reserves:
            calls += [
                _call(aave.data_provider, GET_USER_RESERVE_DATA, reserve, account),
                _call(aave.data_provider, GET_RESERVE_CONFIGURATION_DATA, reserve),
                _call(aave.data_provider, GET_RESERVE_EMODE_CATEGORY, reserve),
                _call(aave.oracle, GET_ASSET_PRICE, reserve),
            ]
        return calls

    def compute_discovery(
        self, *, chain: ChainConfig, account: str, discovery: Hashable | None, results: Sequence[CallResult]
    ) -> Hashable:
        reserves = tuple(to_checksum_address(address) for address in parse_single(results[0], tuple))
        emode_category = parse_single(results[1], int)
        price_source: str | None = None  # unknown until the category's data has been read
        if emode_category == 0:
            price_source = NO_PRICE_SOURCE
        elif isinstance(discovery, AaveDiscovery) and discovery.emode_category == emode_category:
            price_source = self._emode_data(results[2]).price_source
        return AaveDiscovery(reserves=reserves, emode_category=emode_category, emode_price_source=price_source)

    @staticmethod
    def _emode_data(result: CallResult) -> EModeCategoryData:
        (values,) = result.decoded()
        return parse_values(EModeCategoryData, values, what="getEModeCategoryData")

    def compute_reading(self, *, discovery: AaveDiscovery, results: Sequence[CallResult]) -> AaveReading:
        """The calls' results, parsed (the pure step between the batch and the positions). Raises RpcError."""
        rest = list(results[2:])
        emode = self._emode_data(rest.pop(0)) if discovery.emode_category else None
        account = parse_result(UserAccountData, rest.pop(0))
        base_currency_unit = parse_single(rest.pop(0), int)
        emode_price = None
        if discovery.emode_price_source not in (None, NO_PRICE_SOURCE):
            emode_price = parse_single(rest.pop(0), int)
        reserves = []
        for index, reserve in enumerate(discovery.reserves):
            user, configuration, category, price = rest[4 * index : 4 * index + 4]
            reserves.append(
                AaveReserveReading(
                    asset_address=reserve,
                    user=parse_result(UserReserveData, user),
                    configuration=parse_result(ReserveConfigurationData, configuration),
                    emode_category=parse_single(category, int),
                    price_base=parse_single(price, int),
                )
            )
        if base_currency_unit == 0:
            raise RpcError("AaveOracle.BASE_CURRENCY_UNIT is zero")
        return AaveReading(
            account=account,
            reserves=tuple(reserves),
            emode=emode,
            emode_price_base=emode_price,
            base_currency_unit=base_currency_unit,
        )

    def compute_result(
        self,
        *,
        chain: ChainConfig,
        account: str,
        discovery: Hashable,
        results: Sequence[CallResult],
        snapshot: BlockSnapshot,
    ) -> AdapterResult:
        assert isinstance(discovery, AaveDiscovery)
        reading = self.compute_reading(discovery=discovery, results=results)
        return compute_aave_result(
            chain=chain, account=account, reading=reading, discovery=discovery, snapshot=snapshot
        )


def compute_aave_result(
    *, chain: ChainConfig, account: str, reading: AaveReading, discovery: AaveDiscovery, snapshot: BlockSnapshot
) -> AdapterResult:
    source = f"{VENUE}@{chain.name}"
    unknown = [
        r.asset_address
        for r in reading.reserves
        if chain.token_by_address(r.asset_address) is None
        and (r.user.current_a_token_balance or r.user.current_stable_debt or r.user.current_variable_debt)
    ]
    complete = not unknown
    provenance = snapshot.provenance(source, complete=complete)
    positions: list[Position] = []
    thresholds: dict[str, int] = {}
    prices: dict[str, float] = {}
    categories: dict[str, int] = {}
    collateral_disabled: list[str] = []
    for reserve in reading.reserves:
        token = chain.token_by_address(reserve.asset_address)
        if token is None:
            continue
        thresholds[token.asset] = reserve.configuration.liquidation_threshold
        prices[token.asset] = reserve.price_base / reading.base_currency_unit
        if reserve.emode_category:
            categories[token.asset] = reserve.emode_category
        supplied = reserve.user.current_a_token_balance
        debt = reserve.user.current_stable_debt + reserve.user.current_variable_debt
        common = {"venue": VENUE, "chain": chain.name, "account": account, "provenance": provenance}
        if supplied:
            positions.append(
                LendPosition(
                    kind="lend",
                    id=f"{VENUE}:{chain.name}:{token.symbol}:supply",
                    asset=token.asset,
                    quantity=supplied / 10**token.decimals,
                    **common,
                )
            )
            if not reserve.user.usage_as_collateral_enabled:
                collateral_disabled.append(token.asset)
        if debt:
            positions.append(
                BorrowPosition(
                    kind="borrow",
                    id=f"{VENUE}:{chain.name}:{token.symbol}:debt",
                    asset=token.asset,
                    quantity=debt / 10**token.decimals,
                    **common,
                )
            )
    emode = None
    if reading.emode is not None:
        emode = {
            "category_id": discovery.emode_category,
            "label": reading.emode.label,
            "liquidation_threshold_bps": reading.emode.liquidation_threshold,
            "price_usd": (
                reading.emode_price_base / reading.base_currency_unit if reading.emode_price_base is not None else None
            ),
            "assets": categories,
        }
    reported = {
        "total_collateral_usd": reading.account.total_collateral_base / reading.base_currency_unit,
        "total_debt_usd": reading.account.total_debt_base / reading.base_currency_unit,
    }
    # Without debt Aave answers uint256 max; the schema holds finite figures, so there is no figure to report.
    if reading.account.health_factor != NO_DEBT_HEALTH_FACTOR:
        reported["health_factor"] = reading.account.health_factor / HEALTH_FACTOR_UNIT
    state = VenueState(
        venue=VENUE,
        chain=chain.name,
        account=account,
        method="aave-v3-health-factor",
        parameters={
            "liquidation_thresholds_bps": thresholds,
            "prices_usd": prices,
            "collateral_disabled": collateral_disabled,
            "emode_category": discovery.emode_category,
            "emode": emode,
        },
        reported=reported,
        provenance=provenance,
    )
    status = SourceStatus(
        name=source,
        status="ok" if complete else "failed",
        reason=None if complete else f"reserves not in the chains file, positions skipped: {', '.join(unknown)}",
        as_of=snapshot.timestamp,
    )
    return AdapterResult(source=source, status=status, positions=positions, venue_states=[state], block=snapshot.block)
