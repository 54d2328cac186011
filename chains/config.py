"""The chains file: per chain its name, id, RPC URLs, contract addresses, tokens and price feeds (YAML).

Tokens map to the asset the risk engine prices: a wrapped token names its underlying (WETH -> ETH), so a wallet's
WETH and an Aave WETH supply are the same ETH exposure. Parsing is strict: an unknown or misspelt key is an error.

    chains:
      - name: ethereum
        chain_id: 1
        rpc_urls: ["http://127.0.0.1:8545"]
        multicall3: "0xcA11bde05977b3631167028862bE2a173976CA11"
        native: {symbol: ETH, decimals: 18, asset: ETH}
        tokens:
          - {symbol: WETH, address: "0x...", decimals: 18, asset: ETH}
        price_feeds:
          - {asset: ETH, address: "0x...", heartbeat_seconds: 3600, min_answer: 1, max_answer: 100000000000000}
        sequencer_uptime_feed: null            # {address, grace_period_seconds} on L2s
        aave_v3: {pool: "0x...", data_provider: "0x...", oracle: "0x..."}
        uniswap_v3: {factory: "0x...", position_manager: "0x..."}
        gmx_v2: {reader: "0x...", data_store: "0x..."}
        pyth: {address: "0x...", price_ids: {ETH: "0x..."}}
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator
from web3 import Web3

from chains.errors import ChainConfigError
from risk_core.schema.positions import Asset


def _checksummed(value: str) -> str:
    if not Web3.is_address(value):
        raise ValueError(f"{value!r} is not an address")
    return Web3.to_checksum_address(value)


Address = Annotated[str, AfterValidator(_checksummed)]
Decimals = Annotated[int, Field(ge=0, le=36)]
Bytes32Hex = Annotated[str, Field(pattern=r"^0x[0-9a-fA-F]{64}$")]


class _ConfigModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class NativeToken(_ConfigModel):
    symbol: str
    decimals: Decimals
    asset: Asset


class Token(_ConfigModel):
    symbol: str
    address: Address
    decimals: Decimals
    asset: Asset = Field(description="the asset priced by the engine; a wrapped token names its underlying")


class PriceFeed(_ConfigModel):
    """A Chainlink feed. min/max answer are the aggregator's bounds in answer units: an answer pinned at either is
    the aggregator clamping a price it could not report, not a price."""

    asset: Asset
    address: Address
    heartbeat_seconds: Annotated[int, Field(gt=0)]
    min_answer: int
    max_answer: int

    @model_validator(mode="after")
    def _bounds_ordered(self) -> PriceFeed:
        if not self.min_answer < self.max_answer:
            raise ValueError("min_answer must be below max_answer")
        return self


class SequencerUptimeFeed(_ConfigModel):
    address: Address
    grace_period_seconds: Annotated[int, Field(ge=0)]


class AaveV3Contracts(_ConfigModel):
    pool: Address
    data_provider: Address
    oracle: Address


class UniswapV3Contracts(_ConfigModel):
    factory: Address
    position_manager: Address


class GmxV2Contracts(_ConfigModel):
    reader: Address
    data_store: Address


class PythContracts(_ConfigModel):
    address: Address
    price_ids: dict[Asset, Bytes32Hex]


class ChainConfig(_ConfigModel):
    name: Annotated[str, Field(min_length=1, max_length=64)]
    chain_id: Annotated[int, Field(gt=0)]
    rpc_urls: Annotated[list[Annotated[str, Field(pattern=r"^https?://")]], Field(min_length=1)]
    multicall3: Address
    native: NativeToken
    tokens: list[Token] = Field(default_factory=list)
    price_feeds: list[PriceFeed] = Field(default_factory=list)
    sequencer_uptime_feed: SequencerUptimeFeed | None = None
    aave_v3: AaveV3Contracts | None = None
    uniswap_v3: UniswapV3Contracts | None = None
    gmx_v2: GmxV2Contracts | None = None
    pyth: PythContracts | None = None

    @model_validator(mode="after")
    def _tokens_unique(self) -> ChainConfig:
        addresses = [token.address for token in self.tokens]
        if len(set(addresses)) != len(addresses):
            raise ValueError("a token address is listed twice")
        return self

    def token_by_address(self, address: str) -> Token | None:
        # Compared in lower case: checksumming is a keccak per call, and adapters look tokens up per position.
        wanted = address.lower()
        return next((token for token in self.tokens if token.address.lower() == wanted), None)


class ChainsFile(_ConfigModel):
    chains: Annotated[list[ChainConfig], Field(min_length=1)]

    @model_validator(mode="after")
    def _names_unique(self) -> ChainsFile:
        names = [chain.name for chain in self.chains]
        if len(set(names)) != len(names):
            raise ValueError("a chain name is listed twice")
        return self

    def chain(self, name: str) -> ChainConfig:
        """Raises:
        KeyError: no chain of that name."""
        for chain in self.chains:
            if chain.name == name:
                return chain
        raise KeyError(name)


def load_chains_file(path: Path) -> ChainsFile:
    """Raises:
    ChainConfigError: the file is unreadable, not YAML or not a valid chains file (the message names the field)."""
    try:
        document = yaml.safe_load(path.read_text())
        return ChainsFile.model_validate(document)
    except (OSError, yaml.YAMLError, ValidationError) as e:
        raise ChainConfigError(f"{path}: {e}") from e


def dump_chains_file(chains: ChainsFile, path: Path) -> None:
    path.write_text(yaml.safe_dump(chains.model_dump(mode="json", exclude_none=True), sort_keys=False))
