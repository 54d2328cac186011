// SPDX-License-Identifier: MIT
// Measures, inside one call, the gas of MetariskVerifier.verify and of the bare signature recovery it contains,
// so the benchmark reports verification beyond ecrecover without the transaction's intrinsic and calldata costs.
// Deployed by the benchmark only.
pragma solidity ^0.8.19;

import {MarginAttestation, MetariskVerifier} from "./MetariskVerifier.sol";

contract AttestationGasProbe {
    function gasOfVerify(
        MetariskVerifier verifier,
        MarginAttestation calldata attestation,
        uint256 chainId,
        bytes calldata signature
    ) external view returns (uint256 used) {
        uint256 before = gasleft();
        verifier.verify(attestation, chainId, signature);
        used = before - gasleft();
    }

    function gasOfEcrecover(bytes32 hash, uint8 v, bytes32 r, bytes32 s) external view returns (uint256 used) {
        uint256 before = gasleft();
        ecrecover(hash, v, r, s);
        used = before - gasleft();
    }
}
