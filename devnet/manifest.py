"""What a devnet build deployed and seeded, saved beside the cached chain states.

The chains configuration is the one the adapters read; the seeds are the demo wallet's positions as put on chain,
in raw integers, so tests compare what the adapters read back to the last wei.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict

from chains.config import ChainConfig


class _ManifestModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SeededAave(_ManifestModel):
    supplied: dict[str, int]  # token symbol -> raw amount
    borrowed: dict[str, int]
    emode_category: int  # 0: e-mode off


class SeededLp(_ManifestModel):
    token_id: int
    pool: str
    token0: str  # symbols
    token1: str
    fee: int
    tick_lower: int
    tick_upper: int
    liquidity: int


class SeededPerp(_ManifestModel):
    market: str
    index_token: str  # symbol
    collateral_token: str
    is_long: bool
    size_in_usd: int  # USD x 1e30, as GMX keeps it
    size_in_tokens: int
    collateral_amount: int


class ChainSeeds(_ManifestModel):
    native_wei: int
    erc20: dict[str, int]  # wallet balances, token symbol -> raw amount
    aave: SeededAave | None = None
    lp: SeededLp | None = None
    perps: list[SeededPerp] = []
    swap_router: str | None = None  # Uniswap SwapRouter, used by the seeding swaps and by tests


class AttestationContracts(_ManifestModel):
    """The attestation verifier (owned by the deployer, no signer yet) and the example lender of the chain."""

    verifier: str
    credit_line: str
    stablecoin: str  # symbol of the token CreditLine lends
    safety_factor_wad: int  # CreditLine's safety factor, 1e18 = 1


class DevnetChain(_ManifestModel):
    config: ChainConfig  # rpc_urls hold a placeholder until the chain is started
    seeds: ChainSeeds
    attestation: AttestationContracts


class DevnetManifest(_ManifestModel):
    demo_account: str
    deployer: str
    chains: list[DevnetChain]

    def chain(self, name: str) -> DevnetChain:
        """Raises:
        KeyError: no chain of that name."""
        for chain in self.chains:
            if chain.config.name == name:
                return chain
        raise KeyError(name)


def load_manifest(path: Path) -> DevnetManifest:
    return DevnetManifest.model_validate_json(path.read_text())
