"""The margin attestation of a wallet: an EIP-712 document that contracts/MetariskVerifier.sol verifies on-chain.

Fixed point: every USD figure (equity, collateral, MM, IM, free collateral) is an int256 of 1e18 per USD, so
negative equity and free collateral are representable; the margin ratio (MM / collateral) is a uint256 of 1e18
per unit, type(uint256).max when collateral <= 0 (the ratio is unbounded). Times are unix seconds. A figure is
converted from its shortest decimal form, so 1234.5 USD is exactly 1234500000000000000000. In the JSON document
these six 256-bit values are decimal strings, as eth_signTypedData_v4 takes them: a JSON number loses precision
past 2^53 in most clients.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from pydantic import BaseModel, ConfigDict, Field

from risk_core.schema.market import SourceStatus
from risk_core.schema.report import MarginReport

ATTESTATION_NAME = "metarisk"
ATTESTATION_VERSION = "1"
WAD_DECIMALS = 18
UNBOUNDED_RATIO = 2**256 - 1
MARKET_SOURCE = "market"  # the SourceTime entry of the market snapshot the report was priced against
PRIMARY_TYPE = "MarginAttestation"
TYPES: dict[str, list[dict[str, str]]] = {
    "EIP712Domain": [
        {"name": "name", "type": "string"},
        {"name": "version", "type": "string"},
        {"name": "chainId", "type": "uint256"},
        {"name": "verifyingContract", "type": "address"},
    ],
    "ChainBlock": [{"name": "chainId", "type": "uint256"}, {"name": "blockNumber", "type": "uint64"}],
    "SourceTime": [{"name": "source", "type": "string"}, {"name": "timestamp", "type": "uint64"}],
    PRIMARY_TYPE: [
        {"name": "wallet", "type": "address"},
        {"name": "equityUsd", "type": "int256"},
        {"name": "collateralUsd", "type": "int256"},
        {"name": "maintenanceMarginUsd", "type": "int256"},
        {"name": "initialMarginUsd", "type": "int256"},
        {"name": "freeCollateralUsd", "type": "int256"},
        {"name": "marginRatio", "type": "uint256"},
        {"name": "complete", "type": "bool"},
        {"name": "blocks", "type": "ChainBlock[]"},
        {"name": "sources", "type": "SourceTime[]"},
        {"name": "reportHash", "type": "bytes32"},
        {"name": "paramsHash", "type": "bytes32"},
        {"name": "marketHash", "type": "bytes32"},
        {"name": "model", "type": "string"},
        {"name": "issuedAt", "type": "uint64"},
        {"name": "expiresAt", "type": "uint64"},
    ],
}


class SignedAttestation(BaseModel):
    model_config = ConfigDict(frozen=True)

    typed_data: dict[str, Any] = Field(
        description="the EIP-712 document (types, primaryType, domain, message) as eth_signTypedData_v4 takes it; "
        "USD figures and the margin ratio are fixed point x 1e18, bytes32 fields 0x-prefixed hex"
    )
    signature: str = Field(description="65 bytes r || s || v, 0x-prefixed hex")


@dataclass(frozen=True)
class InputHashes:
    params: bytes
    market: bytes


def canonical_json(document: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8: what the hashes are taken over (reproducible with Python's json)."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def compute_report_hash(report: MarginReport) -> bytes:
    """keccak256 of the report as the wallet's risk route serves it, without its age (which changes per request)."""
    return keccak(canonical_json(report.model_dump(mode="json", exclude={"age_seconds"})))


def compute_input_hashes(report: MarginReport) -> InputHashes:
    """The hashes of the parameters and of the market snapshot the report was computed with, from what the report
    carries: its parameter version, and the market's time with the status of every source that fed it."""
    params = {"params_version": report.params_version}
    market = report.model_dump(mode="json", include={"as_of", "sources"})
    return InputHashes(params=keccak(canonical_json(params)), market=keccak(canonical_json(market)))


def to_wad(value: float, field: str) -> int:
    """Raises:
    ValueError: the figure is not finite (a figure is finite or refused)."""
    if not math.isfinite(value):
        raise ValueError(f"{field}: {value} is not finite")
    return int(Decimal(repr(value)).scaleb(WAD_DECIMALS).to_integral_value())


def compute_model(report: MarginReport) -> str:
    return f"metarisk-portfolio-margin/schema-{report.schema_version}/params-{report.params_version}"


def compute_message(
    wallet: str,
    report: MarginReport,
    *,
    blocks: dict[int, int],
    offchain_sources: list[SourceStatus],
    issued_at: datetime,
    ttl: timedelta,
) -> dict[str, Any]:
    """The attestation's message. `blocks` is chain id -> block the wallet's reads were pinned to;
    `offchain_sources` are the position sources read off-chain (a failed one, never read, has timestamp 0)."""
    hashes = compute_input_hashes(report)
    ratio = UNBOUNDED_RATIO if report.margin_ratio is None else to_wad(report.margin_ratio, "margin_ratio")
    sources = [{"source": s.name, "timestamp": _unix(s.as_of) if s.as_of else 0} for s in offchain_sources]
    sources.append({"source": MARKET_SOURCE, "timestamp": _unix(report.as_of)})
    issued = _unix(issued_at)
    return {
        "wallet": wallet,
        "equityUsd": str(to_wad(report.equity_usd, "equity_usd")),
        "collateralUsd": str(to_wad(report.collateral_usd, "collateral_usd")),
        "maintenanceMarginUsd": str(to_wad(report.maintenance_margin_usd, "maintenance_margin_usd")),
        "initialMarginUsd": str(to_wad(report.initial_margin_usd, "initial_margin_usd")),
        "freeCollateralUsd": str(to_wad(report.free_collateral_usd, "free_collateral_usd")),
        "marginRatio": str(ratio),
        "complete": report.complete,
        "blocks": [{"chainId": chain_id, "blockNumber": block} for chain_id, block in sorted(blocks.items())],
        "sources": sorted(sources, key=lambda s: str(s["source"])),
        "reportHash": "0x" + compute_report_hash(report).hex(),
        "paramsHash": "0x" + hashes.params.hex(),
        "marketHash": "0x" + hashes.market.hex(),
        "model": compute_model(report),
        "issuedAt": issued,
        "expiresAt": issued + math.ceil(ttl.total_seconds()),
    }


def compute_typed_data(message: dict[str, Any], *, chain_id: int, verifying_contract: str) -> dict[str, Any]:
    domain = {
        "name": ATTESTATION_NAME,
        "version": ATTESTATION_VERSION,
        "chainId": chain_id,
        "verifyingContract": verifying_contract,
    }
    return {"types": TYPES, "primaryType": PRIMARY_TYPE, "domain": domain, "message": message}


def sign_attestation(typed_data: dict[str, Any], signer: LocalAccount) -> SignedAttestation:
    signed = signer.sign_message(encode_typed_data(full_message=typed_data))
    return SignedAttestation(typed_data=typed_data, signature="0x" + bytes(signed.signature).hex())


def _unix(moment: datetime) -> int:
    return math.floor(moment.timestamp())
