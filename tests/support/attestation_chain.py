"""Test helpers around the attestation contracts: attestations signed as the service signs them, and a contract
revert decoded into its custom error's name and arguments from the exported ABIs."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from web3.exceptions import ContractCustomError

from aggregator.attestation import SignedAttestation, compute_message, compute_typed_data, sign_attestation
from devnet.attestation_contracts import decode_refusal
from risk_core.margin.engine import compute_margin_request
from risk_core.schema.report import MarginReport
from risk_core.schema.request import MarginRequest

DEMO_REQUEST = Path(__file__).resolve().parents[2] / "examples" / "demo_request.json"


@cache
def demo_report() -> MarginReport:
    return compute_margin_request(MarginRequest.model_validate_json(DEMO_REQUEST.read_bytes()))


def attest(
    signer: LocalAccount,
    *,
    wallet: str,
    chain_id: int,
    verifier: str,
    issued_at: int,
    report: MarginReport | None = None,
    ttl_s: int = 300,
) -> SignedAttestation:
    """An attestation of `report` (the demo request's by default) signed by `signer`, through the service's path."""
    message = compute_message(
        wallet,
        report or demo_report(),
        blocks={1: 101, 42161: 4_200_001},
        offchain_sources=[],
        issued_at=datetime.fromtimestamp(issued_at, UTC),
        ttl=timedelta(seconds=ttl_s),
    )
    return sign_attestation(compute_typed_data(message, chain_id=chain_id, verifying_contract=verifier), signer)


def custom_error(call: Callable[[], Any]) -> tuple[str, tuple[Any, ...]]:
    """The custom error `call` reverts with: (name, decoded arguments). Fails the test when it does not revert."""
    try:
        call()
    except ContractCustomError as e:
        return decode_refusal(e)
    raise AssertionError("the call did not revert")
