"""The service's settings: where the chains and venues are, what to read for whom, and how fresh to keep it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, StringConstraints

from aggregator.attestation_signer import SignerWindow

# Pyth's public price-feed ids (the same on every chain and on Hermes).
PYTH_FEED_IDS = {
    "BTC": "e62df6c8b4a85fe1a67db44dc12de5db330f7ac66b72dc658afedf0f4a415b43",
    "ETH": "ff61491a931112ddf1bd8147cd1b641375f79f5825126d665480874634fd0ace",
    "SOL": "ef0d8b6fda2ceba41da15d4095d1da392a0d2f8ed0c6c7bc0f4cfac8c280b56d",
}


class VenueEndpoints(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    deribit: str | None = Field(default=None, description="base URL including /api/v2")
    derive: str | None = None
    hyperliquid: str | None = None
    pyth: str | None = Field(default=None, description="Hermes base URL")


class VenueCredentials(BaseModel):
    """Read-only credentials by sub-account: never stored in the database, only in the service's settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    deribit: dict[str, str] = Field(default_factory=dict, description="client_id -> client_secret")
    derive: dict[str, str] = Field(default_factory=dict, description="wallet -> session key (hex)")


EvmAddress = Annotated[str, StringConstraints(pattern=r"^0x[0-9a-fA-F]{40}$")]


class AttestationSettings(BaseModel):
    """Where the service's margin attestations are verified, and how long they live. The key is a secret: it
    comes from the environment (aggregator/attestation_signer.py), never from here."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    verifiers: dict[PositiveInt, EvmAddress] = Field(
        default_factory=dict, description="chain id -> MetariskVerifier address on it: the chains attested for"
    )
    ttl_s: int = Field(default=300, gt=0, description="an attestation expires this long after it is issued")
    rotated_signers: list[SignerWindow] = Field(
        default_factory=list, description="keys signed with before the current one, with their validity windows"
    )


class ServiceSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    chains_file: Path | None = None
    venues: VenueEndpoints = VenueEndpoints()
    credentials: VenueCredentials = VenueCredentials()
    assets: tuple[str, ...] = ("BTC", "ETH", "SOL")
    pyth_feeds: dict[str, str] = Field(default_factory=lambda: dict(PYTH_FEED_IDS))
    hyperliquid_dexes: tuple[str, ...] = Field(default=(), description="HIP-3 dexes whose oracle prices to read")
    single_source_assets: tuple[str, ...] = Field(
        default=(), description="assets priced by one source only (a HIP-3 dex's own oracle): quorum of one"
    )
    spot_only_assets: tuple[str, ...] = Field(
        default=(), description="assets priced but with no options anywhere (tokens): no surface is expected"
    )
    pegs: dict[str, float] = Field(
        default_factory=dict, description="asset -> its peg (USDC: 1.0): a price off it is flagged as a depeg"
    )
    price_notes: dict[str, str] = Field(
        default_factory=dict, description="asset -> a note every price of it carries (how a source approximates it)"
    )
    chainlink_chains: tuple[str, ...] = Field(
        default=(),
        description="chains whose Chainlink feeds are market sources, one source `chainlink@CHAIN` each. One chain "
        "per asset is enough: the same oracle network on several chains would get several votes in the median",
    )
    chainlink_age_at_block: bool = Field(
        default=False,
        description="the chains' clock is not the service's (demo: a replayed market beside live devnet chains): "
        "a round's age is taken at the block it was read at, its timestamps moved onto the service's clock, and "
        "on-chain positions and sources are stamped with the service's clock at the block read",
    )
    max_cached_reports: int = Field(default=10_000, ge=1, description="accounts and wallets kept in memory")
    report_ttl_s: float = Field(default=10.0, gt=0, description="a cached report younger than this is served")
    market_ttl_s: float = Field(default=15.0, gt=0, description="a market snapshot younger than this is reused")
    source_timeout_s: float = Field(default=4.0, gt=0, description="per chain and per venue, for one refresh")
    market_timeout_s: float = Field(default=20.0, gt=0, description="per venue for a market snapshot (whole chains)")
    refresh_timeout_s: float = Field(
        default=30.0, gt=0, description="a market or account refresh as a whole: past it, abandoned and retried"
    )
    market_stale_after_s: float = Field(default=60.0, gt=0, description="/health is degraded past this market age")
    account_stale_after_s: float = Field(
        default=180.0, gt=0, description="/health is degraded when a watched account's report is older"
    )
    account_refresh_s: float = Field(default=60.0, gt=0)
    account_reread_s: float = Field(
        default=2.0, ge=0, description="a watched account's definition read from the store is reused this long"
    )
    history_retention_days: float = Field(default=30.0, gt=0)
    signer_key: str | None = Field(default=None, description="hex private key signing credit views (EIP-712)")
    attestation: AttestationSettings = AttestationSettings()
