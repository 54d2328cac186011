"""MetariskVerifier on the devnet: a valid attestation is accepted and its figures read back as signed; every way
of tampering with it is refused with its own custom error; the Python EIP-712 of the specification
(tests/support/eip712_reference.py) computes the contract's domain, struct hash and digest on every field."""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from support.attestation_chain import attest, custom_error, demo_report
from support.eip712_reference import digest, hash_struct, recover
from web3 import Web3

from aggregator.attestation import SignedAttestation
from devnet.attestation_contracts import attestation_tuple, register_signer, verifier, verify_arguments
from devnet.deploy import ChainDeployer
from devnet.manifest import DevnetChain
from devnet.run import RunningDevnet
from devnet.solidity import compile_sources

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
CHAIN = "arbitrum"
SERVICE = Account.from_key(keccak(text="metarisk attestation test signer"))
OTHER = Account.from_key(keccak(text="someone else"))


@pytest.fixture
def chain(devnet: RunningDevnet, restore_chains: None) -> Iterator[DevnetChain]:
    """The chain, its verifier trusting SERVICE from time 0 on; rolled back after the test."""
    chain = devnet.manifest.chain(CHAIN)
    register_signer(_w3(devnet), chain, SERVICE.address, valid_from=0)
    yield chain


def _w3(devnet: RunningDevnet, name: str = CHAIN) -> Web3:
    return Web3(Web3.HTTPProvider(devnet.nodes[name].url))


def _now(w3: Web3) -> int:
    return int(w3.eth.get_block("latest")["timestamp"])


def _signed(
    devnet: RunningDevnet, chain: DevnetChain, signer: LocalAccount = SERVICE, **kwargs: Any
) -> SignedAttestation:
    w3 = _w3(devnet)
    kwargs.setdefault("issued_at", _now(w3))
    return attest(signer, wallet=devnet.manifest.demo_account, chain_id=chain.config.chain_id,
                  verifier=chain.attestation.verifier, **kwargs)


def _verify(devnet: RunningDevnet, chain: DevnetChain, typed_data: dict[str, Any], signature: str,
            *, on: str = CHAIN) -> Any:
    contract = verifier(_w3(devnet, on), devnet.manifest.chain(on))
    return lambda: contract.functions.verify(*verify_arguments(typed_data, signature)).call()


def test_a_valid_attestation_is_accepted_with_its_figures(devnet: RunningDevnet, chain: DevnetChain) -> None:
    signed = _signed(devnet, chain)
    m = signed.typed_data["message"]
    figures = _verify(devnet, chain, signed.typed_data, signed.signature)()
    assert tuple(figures) == (
        m["wallet"], SERVICE.address, *(int(m[f]) for f in (
            "equityUsd", "collateralUsd", "maintenanceMarginUsd", "initialMarginUsd", "freeCollateralUsd", "marginRatio"
        )), m["issuedAt"], m["expiresAt"],
    )
    report = demo_report()
    # fixed point 1e18: exactly the figure's decimal form
    assert Fraction(figures[6], 10**18) == Fraction(repr(report.free_collateral_usd))
    assert Fraction(figures[4], 10**18) == Fraction(repr(report.maintenance_margin_usd))
    assert recover(signed.typed_data, signed.signature) == SERVICE.address


def test_python_eip712_agrees_with_the_contract_on_every_field(devnet: RunningDevnet, chain: DevnetChain) -> None:
    """The domain separator, the struct hash and the digest agree; then each field changed alone changes the
    contract's digest exactly as the specification's does, and the attestation no longer verifies."""
    contract = verifier(_w3(devnet), chain)
    signed = _signed(devnet, chain)
    typed = signed.typed_data
    types = typed["types"]
    assert contract.functions.domainSeparatorV4().call() == hash_struct("EIP712Domain", typed["domain"], types)
    assert contract.functions.hashAttestation(attestation_tuple(typed["message"])).call() == hash_struct(
        "MarginAttestation", typed["message"], types
    )
    assert contract.functions.digest(attestation_tuple(typed["message"])).call() == digest(typed)
    for field, changed in _changed_fields(typed["message"]):
        tampered = {**typed, "message": {**typed["message"], field: changed}}
        on_chain = contract.functions.digest(attestation_tuple(tampered["message"])).call()
        assert on_chain == digest(tampered) != digest(typed), field
        name, _ = custom_error(_verify(devnet, chain, tampered, signed.signature))
        assert name == "SignerNotAuthorized", field


def _changed_fields(message: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    for field, value in message.items():
        if isinstance(value, bool):
            yield field, not value
        elif isinstance(value, int):
            yield field, value - 1
        elif field.endswith(("Usd", "Ratio")):
            yield field, str(int(value) - 1)
        elif field == "wallet":
            yield field, Web3.to_checksum_address("0x" + "11" * 20)
        elif field.endswith("Hash"):
            yield field, "0x" + ("00" if value[2:4] != "00" else "ff") + value[4:]
        elif field == "blocks":
            yield field, [{**value[0], "blockNumber": value[0]["blockNumber"] + 1}, *value[1:]]
        elif field == "sources":
            yield field, [{**value[0], "source": value[0]["source"] + "x"}, *value[1:]]
        else:
            yield field, value + "x"


def test_a_forged_signature_is_refused(devnet: RunningDevnet, chain: DevnetChain) -> None:
    signed = _signed(devnet, chain)
    raw = bytes.fromhex(signed.signature.removeprefix("0x"))
    s = int.from_bytes(raw[32:64], "big")
    malleable_twin = raw[:32] + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - raw[64]])
    forgeries = [malleable_twin, raw[:64] + bytes([29]), bytes(65), raw[:64]]
    for forged in forgeries:
        assert custom_error(_verify(devnet, chain, signed.typed_data, "0x" + forged.hex())) == ("InvalidSignature", ())


def test_a_signature_by_another_key_is_refused(devnet: RunningDevnet, chain: DevnetChain) -> None:
    signed = _signed(devnet, chain, OTHER)
    error = custom_error(_verify(devnet, chain, signed.typed_data, signed.signature))
    assert error == ("SignerNotAuthorized", (OTHER.address.lower(),))


def test_an_expired_attestation_is_refused(devnet: RunningDevnet, chain: DevnetChain) -> None:
    issued = _now(_w3(devnet)) - 301
    signed = _signed(devnet, chain, issued_at=issued, ttl_s=300)
    name, (expires_at, at) = custom_error(_verify(devnet, chain, signed.typed_data, signed.signature))
    assert (name, expires_at) == ("Expired", issued + 300)
    assert at > expires_at


def test_an_attestation_replayed_on_another_chain_is_refused(devnet: RunningDevnet, chain: DevnetChain) -> None:
    signed = _signed(devnet, chain)
    error = custom_error(_verify(devnet, chain, signed.typed_data, signed.signature, on="ethereum"))
    assert error == ("WrongChain", (42161, 1))
    # claiming the other chain's id changes the digest: the signature then recovers to nobody trusted
    ethereum = devnet.manifest.chain("ethereum")
    register_signer(_w3(devnet, "ethereum"), ethereum, SERVICE.address, valid_from=0)
    relabelled = {**signed.typed_data, "domain": {**signed.typed_data["domain"], "chainId": 1}}
    name, _ = custom_error(_verify(devnet, chain, relabelled, signed.signature, on="ethereum"))
    assert name == "SignerNotAuthorized"


def test_an_incomplete_report_is_attested_incomplete_and_refused(devnet: RunningDevnet, chain: DevnetChain) -> None:
    incomplete = demo_report().model_copy(update={"complete": False})
    signed = _signed(devnet, chain, report=incomplete)
    assert signed.typed_data["message"]["complete"] is False
    assert custom_error(_verify(devnet, chain, signed.typed_data, signed.signature)) == ("IncompleteReport", ())


def test_a_rotated_out_key_is_refused_outside_its_window(devnet: RunningDevnet, chain: DevnetChain) -> None:
    w3 = _w3(devnet)
    now = _now(w3)
    rotated_until = now - 60
    register_signer(w3, chain, OTHER.address, valid_from=0, valid_until=rotated_until)
    late = _signed(devnet, chain, OTHER, issued_at=now)
    error = custom_error(_verify(devnet, chain, late.typed_data, late.signature))
    assert error == ("SignerOutsideWindow", (OTHER.address.lower(), 0, rotated_until))
    # signed inside the window, but presented after the key was rotated out: refused as well
    early = _signed(devnet, chain, OTHER, issued_at=rotated_until - 10, ttl_s=3600)
    assert custom_error(_verify(devnet, chain, early.typed_data, early.signature))[0] == "SignerOutsideWindow"
    # within an overlap window the old key still verifies
    register_signer(w3, chain, OTHER.address, valid_from=0, valid_until=now + 3600)
    assert _verify(devnet, chain, late.typed_data, late.signature)()[1] == OTHER.address


def test_only_the_owner_manages_signers(devnet: RunningDevnet, chain: DevnetChain) -> None:
    contract = verifier(_w3(devnet), chain)
    outsider = devnet.manifest.demo_account
    call = contract.functions.setSigner(OTHER.address, 0, 2**64 - 1)
    assert custom_error(lambda: call.call({"from": outsider})) == ("NotOwner", (outsider.lower(),))


def test_verification_costs_under_30k_gas_beyond_the_signature_recovery(
    devnet: RunningDevnet, chain: DevnetChain
) -> None:
    """Gas is deterministic, so the benchmark's target is also checked here: an attestation binding 2 chains' blocks
    and the market (attest()'s) verifies in under 30,000 gas more than a bare ecrecover of its digest."""
    w3 = _w3(devnet)
    probe = ChainDeployer(w3).deploy(compile_sources()["AttestationGasProbe"])
    signed = _signed(devnet, chain)
    raw = bytes.fromhex(signed.signature.removeprefix("0x"))
    verify_gas = probe.functions.gasOfVerify(
        chain.attestation.verifier, *verify_arguments(signed.typed_data, signed.signature)
    ).call()
    recovery_gas = probe.functions.gasOfEcrecover(digest(signed.typed_data), raw[64], raw[:32], raw[32:64]).call()
    assert recovery_gas >= 3_000  # the precompile's own price
    assert verify_gas - recovery_gas < 30_000
