"""The demo's attestation signer: its own key, created at first start in the data directory (an eth-account
keystore), trusted by every devnet chain's verifier from now on. Never a wallet's key."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from eth_account.signers.local import LocalAccount
from web3 import Web3

from aggregator.attestation_signer import PASSWORD_VARIABLE, load_or_create_keystore, load_signer
from aggregator.settings import AttestationSettings
from devnet.attestation_contracts import register_signer
from devnet.run import RunningDevnet

KEYSTORE_FILE = "attestation-key.json"
# The demo's keystore lives on the demo's own machine; a deployment sets its own password (or key) in the environment.
DEMO_KEYSTORE_PASSWORD = "metarisk-demo"


def demo_signer(directory: Path, environ: Mapping[str, str] = os.environ) -> LocalAccount:
    """The key the environment names, else the demo's keystore in `directory` (created at first start).

    Raises:
        ValueError: naming the variable or file at fault.
    """
    configured = load_signer(environ)
    if configured is not None:
        return configured
    return load_or_create_keystore(directory / KEYSTORE_FILE, environ.get(PASSWORD_VARIABLE, DEMO_KEYSTORE_PASSWORD))


def trust_signer_on_devnet(devnet: RunningDevnet, signer: LocalAccount) -> AttestationSettings:
    """Register `signer` on each chain's verifier (sent by its owner, the devnet's deployer), valid from the chain's
    current time on; the settings attesting for those verifiers."""
    verifiers: dict[int, str] = {}
    for chain in devnet.manifest.chains:
        w3 = Web3(Web3.HTTPProvider(devnet.nodes[chain.config.name].url))
        now = int(w3.eth.get_block("latest")["timestamp"])
        register_signer(w3, chain, signer.address, valid_from=now)
        verifiers[chain.config.chain_id] = chain.attestation.verifier
    return AttestationSettings(verifiers=verifiers)
