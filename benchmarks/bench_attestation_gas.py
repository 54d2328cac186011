"""Gas of verifying a margin attestation on-chain, and of a CreditLine borrow, on the devnet.

    .venv/bin/python benchmarks/bench_attestation_gas.py

AttestationGasProbe measures, inside one call, MetariskVerifier.verify and a bare ecrecover of the same digest;
verification beyond the signature recovery is their difference (target: under 30,000 gas), for attestations
binding 0, 3 and 10 chains and off-chain sources. A borrow is the whole transaction's gas (receipt), first loan
(fresh storage) and a second one. The devnet is rolled back afterwards.
"""

from __future__ import annotations

import platform
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak
from web3 import Web3

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aggregator.attestation import compute_message, compute_typed_data, sign_attestation  # noqa: E402
from devnet.attestation_contracts import (  # noqa: E402
    borrow,
    register_signer,
    verifier,
    verify_arguments,
)
from devnet.deploy import ChainDeployer  # noqa: E402
from devnet.run import start_devnet  # noqa: E402
from devnet.solidity import compile_sources  # noqa: E402
from risk_core.margin.engine import compute_margin_request  # noqa: E402
from risk_core.schema.market import SourceStatus  # noqa: E402
from risk_core.schema.request import MarginRequest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CHAIN = "base"
TARGET_BEYOND_ECRECOVER = 30_000
SIGNER = Account.from_key(keccak(text="metarisk gas benchmark signer"))


def main() -> None:
    request = MarginRequest.model_validate_json((ROOT / "examples" / "demo_request.json").read_bytes())
    report = compute_margin_request(request)
    devnet = start_devnet()
    try:
        chain = devnet.manifest.chain(CHAIN)
        w3 = Web3(Web3.HTTPProvider(devnet.nodes[CHAIN].url))
        snapshot = devnet.nodes[CHAIN].rpc("evm_snapshot", [])
        register_signer(w3, chain, SIGNER.address, valid_from=0)
        probe = ChainDeployer(w3).deploy(compile_sources()["AttestationGasProbe"])
        contract = verifier(w3, chain)
        now = datetime.fromtimestamp(int(w3.eth.get_block("latest")["timestamp"]), UTC)

        def signed(bound: int) -> tuple[dict[str, object], str]:
            sources = [SourceStatus(name=f"venue-{i}", status="ok", as_of=now) for i in range(max(0, bound - 1))]
            message = compute_message(
                devnet.manifest.demo_account, report, blocks={10_000 + i: 20_000_000 + i for i in range(bound)},
                offchain_sources=sources, issued_at=now, ttl=timedelta(minutes=5),
            )
            attested = sign_attestation(compute_typed_data(message, chain_id=chain.config.chain_id,
                                                           verifying_contract=chain.attestation.verifier), SIGNER)
            return attested.typed_data, attested.signature

        print(f"# {platform.processor() or platform.machine()}, {platform.python_version()}, anvil devnet ({CHAIN})")
        print("bound chains+sources | verify gas | ecrecover gas | beyond ecrecover | vs 30k target")
        for bound in (0, 3, 10):
            typed, signature = signed(bound)
            raw = bytes.fromhex(signature.removeprefix("0x"))
            digest = encode_typed_data(full_message=typed)
            hashed = keccak(b"\x19\x01" + digest.header + digest.body)
            verify_gas = probe.functions.gasOfVerify(contract.address, *verify_arguments(typed, signature)).call()
            ecrecover_gas = probe.functions.gasOfEcrecover(hashed, raw[64], raw[:32], raw[32:64]).call()
            beyond = verify_gas - ecrecover_gas
            print(f"{bound:>20} | {verify_gas:>10,} | {ecrecover_gas:>13,} | {beyond:>16,} | "
                  f"{beyond / TARGET_BEYOND_ECRECOVER:.2f}x")

        typed, signature = signed(3)
        first = borrow(w3, chain, 1_000 * 10**6, typed, signature)["gasUsed"]
        second = borrow(w3, chain, 1_000 * 10**6, typed, signature)["gasUsed"]
        estimate = contract.functions.verify(*verify_arguments(typed, signature)).estimate_gas()
        print(f"CreditLine.borrow transaction: first loan {first:,} gas, second {second:,} gas; "
              f"verify() as a transaction (21,000 intrinsic + calldata included): {estimate:,} gas")
        devnet.nodes[CHAIN].rpc("evm_revert", [snapshot])
    finally:
        devnet.stop()


if __name__ == "__main__":
    main()
