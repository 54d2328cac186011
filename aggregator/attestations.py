"""Margin attestations of wallets, signed by the service's own key for the verifier of the consuming chain."""

from __future__ import annotations

from datetime import timedelta

from eth_account.signers.local import LocalAccount

from aggregator.attestation import (
    ATTESTATION_NAME,
    ATTESTATION_VERSION,
    SignedAttestation,
    compute_message,
    compute_typed_data,
    sign_attestation,
)
from aggregator.attestation_signer import SignerChain, SignerInfo
from aggregator.service import AggregatorService, Clock, utc_now
from aggregator.settings import AttestationSettings
from risk_core.errors import InputError


class AttestationService:
    """`clock` stamps issued-at and expires-at, which verifiers compare with their chain's block time: the wall
    clock even where the service's own clock replays a recorded market (the demo)."""

    def __init__(
        self,
        *,
        risk: AggregatorService,
        signer: LocalAccount,
        settings: AttestationSettings,
        clock: Clock = utc_now,
    ) -> None:
        self.risk = risk
        self.signer = signer
        self.settings = settings
        self.clock = clock

    def signer_info(self) -> SignerInfo:
        return SignerInfo(
            address=self.signer.address,
            chains=[
                SignerChain(chain_id=chain_id, verifying_contract=address)
                for chain_id, address in sorted(self.settings.verifiers.items())
            ],
            history=list(self.settings.rotated_signers),
            name=ATTESTATION_NAME,
            version=ATTESTATION_VERSION,
            ttl_seconds=self.settings.ttl_s,
        )

    async def wallet_attestation(self, address: str, chain_id: int) -> SignedAttestation:
        """Raises:
        InputError: no verifier on `chain_id` (field chain_id), or a malformed address (field address).
        LookupError, ConnectionError: as the aggregator's wallet routes raise them."""
        verifier = self.settings.verifiers.get(chain_id)
        if verifier is None:
            known = ", ".join(str(c) for c in sorted(self.settings.verifiers)) or "none"
            raise InputError("chain_id", f"the service attests for no verifier on chain {chain_id} (known: {known})")
        refreshed = await self.risk.wallet_refresh(address)
        chain_ids = self.risk.chain_ids()
        blocks = {chain_ids[name]: block for name, block in refreshed.positions.blocks.items() if name in chain_ids}
        # on-chain sources are bound by their block numbers; `venue@chain` names them
        offchain = [s for s in refreshed.positions.sources if "@" not in s.name]
        message = compute_message(
            address,
            refreshed.report,
            blocks=blocks,
            offchain_sources=offchain,
            issued_at=self.clock(),
            ttl=timedelta(seconds=self.settings.ttl_s),
        )
        typed_data = compute_typed_data(message, chain_id=chain_id, verifying_contract=verifier)
        return sign_attestation(typed_data, self.signer)
