"""Calling the attestation contracts from Python: their exported ABIs, the call arguments of a signed attestation,
signer registration by the verifier's owner, and CreditLine borrows. Used by the demo, the tests and the
benchmark; a protocol's own client does the same with the ABIs in contracts/abi/."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from eth_abi import decode, encode
from eth_utils import keccak
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractCustomError

from devnet.deploy import DEPLOYER, ChainDeployer
from devnet.manifest import DevnetChain
from devnet.solidity import REPO_ROOT

ABI_DIR = REPO_ROOT / "contracts" / "abi"
EXPORTED = ("MetariskVerifier", "CreditLine")
FOREVER = 2**64 - 1  # a signer window without end
ATTESTATION_TUPLE = (
    "(address,int256,int256,int256,int256,int256,uint256,bool,(uint256,uint64)[],(string,uint64)[],"
    "bytes32,bytes32,bytes32,string,uint64,uint64)"
)


@cache
def exported_abi(name: str) -> list[dict[str, Any]]:
    abi: list[dict[str, Any]] = json.loads((ABI_DIR / f"{name}.json").read_text())
    return abi


def verifier(w3: Web3, chain: DevnetChain) -> Contract:
    return w3.eth.contract(address=Web3.to_checksum_address(chain.attestation.verifier),
                           abi=exported_abi("MetariskVerifier"))


def credit_line(w3: Web3, chain: DevnetChain) -> Contract:
    return w3.eth.contract(address=Web3.to_checksum_address(chain.attestation.credit_line),
                           abi=exported_abi("CreditLine"))


def attestation_tuple(message: dict[str, Any]) -> tuple[Any, ...]:
    """The MarginAttestation struct as the contracts take it, from the typed data's message."""
    return (
        Web3.to_checksum_address(message["wallet"]),
        int(message["equityUsd"]),
        int(message["collateralUsd"]),
        int(message["maintenanceMarginUsd"]),
        int(message["initialMarginUsd"]),
        int(message["freeCollateralUsd"]),
        int(message["marginRatio"]),
        bool(message["complete"]),
        [(int(b["chainId"]), int(b["blockNumber"])) for b in message["blocks"]],
        [(str(s["source"]), int(s["timestamp"])) for s in message["sources"]],
        bytes.fromhex(message["reportHash"].removeprefix("0x")),
        bytes.fromhex(message["paramsHash"].removeprefix("0x")),
        bytes.fromhex(message["marketHash"].removeprefix("0x")),
        str(message["model"]),
        int(message["issuedAt"]),
        int(message["expiresAt"]),
    )


def verify_arguments(typed_data: dict[str, Any], signature: str) -> tuple[tuple[Any, ...], int, bytes]:
    """(attestation, chainId, signature): the arguments of MetariskVerifier.verify and of CreditLine.borrow after
    the amount."""
    return (
        attestation_tuple(typed_data["message"]),
        int(typed_data["domain"]["chainId"]),
        bytes.fromhex(signature.removeprefix("0x")),
    )


def account_status_blob(typed_data: dict[str, Any], signature: str) -> bytes:
    """CreditLine.checkAccountStatus's `attestation` argument: abi.encode(MarginAttestation, chainId, signature)."""
    return encode([ATTESTATION_TUPLE, "uint256", "bytes"], list(verify_arguments(typed_data, signature)))


def register_signer(w3: Web3, chain: DevnetChain, signer: str, *, valid_from: int, valid_until: int = FOREVER) -> None:
    """Set `signer`'s window on the chain's verifier, sent by its owner (the devnet's deployer, unlocked)."""
    call = verifier(w3, chain).functions.setSigner(Web3.to_checksum_address(signer), valid_from, valid_until)
    ChainDeployer(w3).send(call, sender=DEPLOYER, what=f"setSigner on {chain.config.name}")


def borrow(w3: Web3, chain: DevnetChain, amount: int, typed_data: dict[str, Any], signature: str) -> Any:
    """Borrow `amount` (the stablecoin's smallest units) as the attested wallet (an unlocked devnet account);
    returns the receipt.

    Raises:
        web3.exceptions.ContractCustomError: CreditLine or the verifier refused (the error names why).
    """
    wallet = Web3.to_checksum_address(typed_data["message"]["wallet"])
    call = credit_line(w3, chain).functions.borrow(amount, *verify_arguments(typed_data, signature))
    call.call({"from": wallet})  # a refusal raises here with its custom error, before any transaction
    return w3.eth.wait_for_transaction_receipt(call.transact({"from": wallet}))


@cache
def _custom_errors() -> dict[bytes, tuple[str, tuple[str, ...]]]:
    """selector -> (name, argument types) of every custom error of the exported contracts."""
    found = {}
    for name in EXPORTED:
        for entry in exported_abi(name):
            if entry["type"] == "error":
                kinds = tuple(i["type"] for i in entry["inputs"])
                found[keccak(text=f"{entry['name']}({','.join(kinds)})")[:4]] = (entry["name"], kinds)
    return found


def decode_refusal(error: ContractCustomError) -> tuple[str, tuple[Any, ...]]:
    """The custom error a contract reverted with, as (name, decoded arguments).

    Raises:
        KeyError: the revert is none of the attestation contracts' errors.
    """
    data = bytes.fromhex(str(error.data).removeprefix("0x"))
    name, kinds = _custom_errors()[data[:4]]
    return name, tuple(decode(list(kinds), data[4:]))
