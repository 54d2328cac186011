"""GraphQL types of the attestation signer, camelCase like the rest of the schema (the EIP-712 document itself
stays one JSON value: its keys are the standard's)."""

from __future__ import annotations

from datetime import datetime

import strawberry
from pydantic import BaseModel


@strawberry.type
class SignerChain:
    chain_id: int
    verifying_contract: str


@strawberry.type(description="A key the verifiers accept for attestations issued inside its window")
class SignerWindow:
    address: str
    valid_from: datetime
    valid_until: datetime | None = strawberry.field(description="null: not rotated out")


@strawberry.type(description="The service's attestation signer, the chains and verifiers it signs for, and the keys "
                 "before it, as GET /v1/attestations/signer answers it")
class AttestationSigner:
    address: str
    chains: list[SignerChain]
    history: list[SignerWindow]
    name: str
    version: str
    ttl_seconds: int

    @classmethod
    def from_info(cls, info: BaseModel) -> AttestationSigner:
        """From the aggregator's SignerInfo, read by field name (as service_types reads its models)."""
        data = info.model_dump()
        return cls(
            address=data["address"],
            chains=[SignerChain(**chain) for chain in data["chains"]],
            history=[SignerWindow(**window) for window in data["history"]],
            name=data["name"],
            version=data["version"],
            ttl_seconds=data["ttl_seconds"],
        )
