"""The Aave v3 reads and their outputs (Pool, AaveProtocolDataProvider and AaveOracle of @aave/core-v3 1.19.3)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from chains.decoding import Address, ContractOutput

Uint = Annotated[int, Field(ge=0)]
Bps = Annotated[int, Field(ge=0, le=65535)]

GET_RESERVES_LIST = ("getReservesList()", ("address[]",))
GET_USER_EMODE = ("getUserEMode(address)", ("uint256",))
GET_USER_ACCOUNT_DATA = (
    "getUserAccountData(address)",
    ("uint256", "uint256", "uint256", "uint256", "uint256", "uint256"),
)
GET_EMODE_CATEGORY_DATA = ("getEModeCategoryData(uint8)", ("(uint16,uint16,uint16,address,string)",))
GET_USER_RESERVE_DATA = (
    "getUserReserveData(address,address)",
    ("uint256", "uint256", "uint256", "uint256", "uint256", "uint256", "uint256", "uint40", "bool"),
)
GET_RESERVE_CONFIGURATION_DATA = (
    "getReserveConfigurationData(address)",
    ("uint256", "uint256", "uint256", "uint256", "uint256", "bool", "bool", "bool", "bool", "bool"),
)
GET_RESERVE_EMODE_CATEGORY = ("getReserveEModeCategory(address)", ("uint256",))
GET_ASSET_PRICE = ("getAssetPrice(address)", ("uint256",))
BASE_CURRENCY_UNIT = ("BASE_CURRENCY_UNIT()", ("uint256",))


class UserAccountData(ContractOutput):
    total_collateral_base: Uint
    total_debt_base: Uint
    available_borrows_base: Uint
    current_liquidation_threshold: Uint
    ltv: Uint
    health_factor: Uint  # x 1e18; uint256 max without debt


class EModeCategoryData(ContractOutput):
    ltv: Bps
    liquidation_threshold: Bps
    liquidation_bonus: Bps
    price_source: Address
    label: str


class UserReserveData(ContractOutput):
    current_a_token_balance: Uint
    current_stable_debt: Uint
    current_variable_debt: Uint
    principal_stable_debt: Uint
    scaled_variable_debt: Uint
    stable_borrow_rate: Uint
    liquidity_rate: Uint
    stable_rate_last_updated: Uint
    usage_as_collateral_enabled: bool


class ReserveConfigurationData(ContractOutput):
    decimals: Annotated[int, Field(ge=0, le=255)]
    ltv: Bps
    liquidation_threshold: Bps
    liquidation_bonus: Bps
    reserve_factor: Bps
    usage_as_collateral_enabled: bool
    borrowing_enabled: bool
    stable_borrow_rate_enabled: bool
    is_active: bool
    is_frozen: bool
