"""Contract artifacts for the devnet: the protocols' own npm artifacts (hardhat format, libraries linked here) and
the few sources compiled offline with solc-js (Chainlink's MockV3Aggregator, Pyth's MockPyth, our GMX reader, the
attestation verifier and the example lender)."""

from __future__ import annotations

import json
import subprocess
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from devnet.errors import DevnetError

REPO_ROOT = Path(__file__).resolve().parent.parent
NODE_MODULES = REPO_ROOT / "node_modules"
SOLCJS = NODE_MODULES / ".bin" / "solcjs"

# Source unit names as solc's import callback resolves them (--base-path repo, --include-path node_modules).
COMPILED_SOURCES = (
    "@chainlink/contracts/src/v0.8/tests/MockV3Aggregator.sol",
    "@pythnetwork/pyth-sdk-solidity/MockPyth.sol",
    "contracts/DevnetGmxReader.sol",
    "contracts/MetariskVerifier.sol",
    "contracts/CreditLine.sol",
    "contracts/AttestationGasProbe.sol",
)


@dataclass(frozen=True)
class Artifact:
    name: str
    abi: list[dict[str, Any]]
    bytecode: str  # 0x-prefixed creation code, libraries already linked

    def linked(
        self, libraries: dict[str, str], link_references: dict[str, dict[str, list[dict[str, int]]]]
    ) -> Artifact:
        """The bytecode with each library placeholder replaced by its deployed address.

        Raises:
            DevnetError: a library the bytecode references is missing from `libraries`.
        """
        # Placeholders are text (`__$hash$__`) inside the hex string; offsets and lengths count bytes.
        code = self.bytecode.removeprefix("0x")
        for by_name in link_references.values():
            for library, spots in by_name.items():
                if library not in libraries:
                    raise DevnetError(f"{self.name} needs library {library}, which is not deployed")
                address = libraries[library].removeprefix("0x").lower()
                for spot in spots:
                    start, end = 2 * spot["start"], 2 * (spot["start"] + spot["length"])
                    code = code[:start] + address + code[end:]
        return Artifact(name=self.name, abi=self.abi, bytecode="0x" + code)


@dataclass(frozen=True)
class NpmArtifact:
    artifact: Artifact
    link_references: dict[str, dict[str, list[dict[str, int]]]]


def load_npm_artifact(relative_path: str) -> NpmArtifact:
    """A hardhat artifact shipped in an npm package, e.g. '@aave/core-v3/artifacts/contracts/.../Pool.json'."""
    path = NODE_MODULES / relative_path
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as e:
        raise DevnetError(f"{path} is missing: run `npm ci` at the repository root") from e
    return NpmArtifact(
        artifact=Artifact(name=data["contractName"], abi=data["abi"], bytecode=data["bytecode"]),
        link_references=data["linkReferences"],
    )


def aave(relative_path: str) -> NpmArtifact:
    return load_npm_artifact(f"@aave/core-v3/artifacts/contracts/{relative_path}")


@cache
def compile_sources() -> dict[str, Artifact]:
    """Every contract of COMPILED_SOURCES (and their imports) by contract name, compiled with solc-js.

    Raises:
        DevnetError: solc-js is not installed or the compilation reports an error.
    """
    standard_input = {
        "language": "Solidity",
        "sources": {name: {"urls": [name]} for name in COMPILED_SOURCES},
        "settings": {
            "optimizer": {"enabled": True, "runs": 200},
            "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object"]}},
        },
    }
    # Output goes to a file: node truncates a large stdout written to a pipe when solc-js exits.
    with tempfile.TemporaryFile() as stdout:
        try:
            subprocess.run(
                [str(SOLCJS), "--standard-json", "--base-path", ".", "--include-path", "node_modules"],
                input=json.dumps(standard_input).encode(),
                stdout=stdout,
                stderr=subprocess.PIPE,
                cwd=REPO_ROOT,
                check=True,
                timeout=300,
            )
        except (OSError, subprocess.SubprocessError) as e:
            raise DevnetError(f"solc-js failed to run ({SOLCJS}): run `npm ci` at the repository root") from e
        stdout.seek(0)
        text = stdout.read().decode()
    # solc-js prints a note about SMT solvers before the JSON document.
    output = json.loads(text[text.index("{") :])
    errors = [error["formattedMessage"] for error in output.get("errors", []) if error["severity"] == "error"]
    if errors:
        raise DevnetError("solc-js: " + "\n".join(errors))
    return {
        name: Artifact(name=name, abi=contract["abi"], bytecode="0x" + contract["evm"]["bytecode"]["object"])
        for source in output["contracts"].values()
        for name, contract in source.items()
        if contract["evm"]["bytecode"]["object"]
    }
